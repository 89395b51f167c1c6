/**
 * The recorder as the protocol session drives it: start events before statements run
 * (strict: durable first; async: buffered, bounded), completions matched with their starts,
 * approvals and previews, the seal, and failing closed when the store fails.
 */
import { createPublicKey } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { buildReplay } from "../../src/audit/replay.js";
import { WriteGate } from "../../src/audit/service.js";
import { verifySession } from "../../src/audit/verify.js";
import { isGwError } from "../../src/errors.js";
import { storeWriteFailed } from "../../src/store/errors.js";
import { MemoryStore } from "../../src/store/memory-store.js";
import { SqliteStore } from "../../src/store/sqlite-store.js";
import type { AppendOptions, AuditEvent } from "../../src/store/types.js";
import { Clock, audit, completed, hooksFor, settle, signer } from "./fixtures.js";

/** A memory store whose event writes fail (or hang) on demand. */
class FlakyStore extends MemoryStore {
  fail = false;
  hang = false;
  private readonly hung: (() => void)[] = [];
  override appendEvent(ev: AuditEvent, opts?: AppendOptions): Promise<void> {
    if (this.fail) return Promise.reject(storeWriteFailed("disk I/O error (simulated)"));
    if (this.hang) {
      return new Promise((resolve, reject) =>
        this.hung.push(() => super.appendEvent(ev, opts).then(resolve, reject)),
      );
    }
    return super.appendEvent(ev, opts);
  }
  release(): void {
    this.hang = false;
    for (const go of this.hung.splice(0)) go();
  }
}

async function code(p: Promise<unknown> | unknown): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (isGwError(err)) return err.code;
    throw err;
  }
  throw new Error("expected a rejection");
}

const key = () => createPublicKey(signer().publicKeyPem);

async function verifyIn(store: MemoryStore | SqliteStore, id: string) {
  const session = (await store.getSession(id))!;
  return verifySession({
    session,
    events: await store.listEvents(id),
    statements: await store.listStatements(id),
    publicKey: key(),
  });
}

describe("recorder: strict audit", () => {
  it("refuses the statement when the store fails mid-session, and every one after it", async () => {
    const store = new FlakyStore();
    const hooks = hooksFor(store, "s-strict-fail", audit({ mode: "strict" }));
    await hooks.onStart({ applicationName: "psql", startup: new Map() });
    await hooks.beforeStatement({ sql: "SELECT 1", protocol: "simple" });
    await hooks.onStatement(completed({ sql: "SELECT 1" }));

    store.fail = true;
    expect(
      await code(hooks.beforeStatement({ sql: "DELETE FROM orders", protocol: "simple" })),
    ).toBe("audit_write_failed");
    // The session must end; until it does, nothing more gets in, even once the store is back.
    store.fail = false;
    expect(await code(hooks.beforeStatement({ sql: "SELECT 2", protocol: "simple" }))).toBe(
      "audit_unavailable",
    );
    expect(await code(hooks.onStatement(completed({ sql: "SELECT 2" })))).toBe("audit_unavailable");
  });

  it("refuses the statement when the SQLite store stops taking writes", async () => {
    const store = SqliteStore.open(":memory:");
    const hooks = hooksFor(store, "s-strict-closed", audit({ mode: "strict" }));
    await hooks.onStart({ applicationName: null, startup: new Map() });
    await hooks.beforeStatement({ sql: "SELECT 1", protocol: "simple" });
    await store.close();
    let err: unknown;
    try {
      await hooks.beforeStatement({ sql: "SELECT 2", protocol: "simple" });
    } catch (e) {
      err = e;
    }
    expect(isGwError(err) && err.code).toBe("audit_write_failed");
    expect((err as Error).message).toBe(
      "the broker could not record this statement before running it: the session store is closed; nothing more can be recorded",
    );
  });

  it("makes the start durable before the statement may run (a second connection sees it)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "gw-strict-"));
    const path = join(dir, "gw.db");
    const store = SqliteStore.open(path);
    try {
      const hooks = hooksFor(store, "s-strict-durable", audit({ mode: "strict" }));
      await hooks.onStart({ applicationName: null, startup: new Map() });
      const before = store.stats.durableBatches;
      const p = hooks.beforeStatement({ sql: "UPDATE accounts SET x = 1", protocol: "simple" });
      expect(p).toBeInstanceOf(Promise);
      await p;
      expect(store.stats.durableBatches).toBe(before + 1);
      const other = new Database(path, { readonly: true });
      const rows = other.prepare("SELECT kind, body FROM events").all() as {
        kind: string;
        body: string;
      }[];
      other.close();
      expect(rows).toHaveLength(1);
      expect(rows[0]!.kind).toBe("statement_start");
      expect(JSON.parse(rows[0]!.body)).toMatchObject({ sql: "UPDATE accounts SET x = 1", seq: 1 });
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("group-commits concurrent sessions' starts into one durable transaction", async () => {
    const store = SqliteStore.open(":memory:");
    try {
      const sessions = await Promise.all(
        Array.from({ length: 20 }, async (_, i) => {
          const h = hooksFor(store, `s-group-${i}`, audit({ mode: "strict" }));
          await h.onStart({ applicationName: null, startup: new Map() });
          return h;
        }),
      );
      const before = store.stats.batches;
      await Promise.all(
        sessions.map((h) => h.beforeStatement({ sql: "SELECT 1", protocol: "simple" })),
      );
      expect(store.stats.batches - before).toBe(1);
    } finally {
      await store.close();
    }
  });
});

describe("recorder: async audit", () => {
  it("buffers the start (the statement need not wait) and refuses once the store fails", async () => {
    const store = new FlakyStore();
    const gate = new WriteGate(100);
    const hooks = hooksFor(store, "s-async", audit({ mode: "async", gate }));
    await hooks.onStart({ applicationName: null, startup: new Map() });
    expect(hooks.beforeStatement({ sql: "SELECT 1", protocol: "simple" })).toBeUndefined();
    await hooks.onStatement(completed({ sql: "SELECT 1" }));
    expect((await store.listEvents("s-async")).map((e) => e.kind)).toEqual([
      "statement_start",
      "statement",
    ]);

    store.fail = true;
    expect(hooks.beforeStatement({ sql: "SELECT 2", protocol: "simple" })).toBeUndefined();
    await new Promise((r) => setImmediate(r));
    // The failed write was noticed: fail closed, for this session and (for a while) others.
    expect(await code(hooks.beforeStatement({ sql: "SELECT 3", protocol: "simple" }))).toBe(
      "audit_unavailable",
    );
    const other = hooksFor(store, "s-async-2", audit({ mode: "async", gate }));
    store.fail = false;
    await other.onStart({ applicationName: null, startup: new Map() });
    expect(await code(other.beforeStatement({ sql: "SELECT 1", protocol: "simple" }))).toBe(
      "audit_unavailable",
    );
  });

  it("refuses statements while the bounded buffer is full", async () => {
    const store = new FlakyStore();
    const gate = new WriteGate(2);
    const hooks = hooksFor(store, "s-full", audit({ mode: "async", gate }));
    await hooks.onStart({ applicationName: null, startup: new Map() });
    store.hang = true;
    hooks.beforeStatement({ sql: "SELECT 1", protocol: "simple" });
    hooks.beforeStatement({ sql: "SELECT 2", protocol: "simple" });
    expect(gate.pending).toBe(2);
    const refused = hooks.beforeStatement({ sql: "SELECT 3", protocol: "simple" });
    expect(await code(refused)).toBe("audit_unavailable");
    await refused?.catch((err: Error) => expect(err.message).toContain("buffer is full"));
    store.release();
    await new Promise((r) => setImmediate(r));
    expect(gate.pending).toBe(0);
    expect(hooks.beforeStatement({ sql: "SELECT 4", protocol: "simple" })).toBeUndefined();
  });
});

describe("recorder: what a session's chain holds", () => {
  let store: MemoryStore;
  beforeEach(() => {
    store = new MemoryStore();
  });
  afterEach(() => store.close());

  it("records starts and completions in order, matched even when pipelined or skipped", async () => {
    const clock = new Clock();
    const hooks = hooksFor(store, "s-mix", audit({ clock }), { agentLabel: "claude-code" });
    await hooks.onStart({ applicationName: "app", startup: new Map() });
    // An extended batch of three: the first fails, so the target skips the other two.
    for (const sql of [
      "INSERT INTO t VALUES (1)",
      "INSERT INTO t VALUES (2)",
      "INSERT INTO t VALUES (3)",
    ]) {
      await hooks.beforeStatement({ sql, protocol: "extended" });
    }
    const t1 = clock.t;
    clock.advance(10);
    await hooks.onStatement(
      completed({
        at: t1,
        sql: "INSERT INTO t VALUES (1)",
        protocol: "extended",
        commandTag: null,
        rows: null,
        errorCode: "23505",
        errorMessage: "duplicate key value violates unique constraint",
      }),
    );
    // A blocked statement never reached the target: no start.
    await hooks.onStatement(
      completed({
        at: clock.advance(1),
        sql: "DROP TABLE t",
        decision: "blocked",
        commandTag: null,
        rows: null,
        errorCode: "42501",
        errorMessage: "gw: blocked by rule 1 of policy prod: DROP",
        durationMs: 0,
      }),
    );
    const t3 = clock.advance(1);
    await hooks.beforeStatement({ sql: "SELECT * FROM t", protocol: "simple" });
    await hooks.onStatement(
      completed({
        at: t3,
        sql: "SELECT * FROM t",
        commandTag: "SELECT 2",
        rows: 2,
        preview: { columns: ["id"], rows: [["1"], ["2"]], truncated: false },
      }),
    );
    hooks.onEnd({ reason: "client_closed", detail: null, bytesIn: 1, bytesOut: 2, statements: 3 });
    await settle(store, "s-mix");

    const events = await store.listEvents("s-mix");
    expect(events.map((e) => [e.seq, e.kind])).toEqual([
      [1, "statement_start"],
      [2, "statement_start"],
      [3, "statement_start"],
      [4, "statement"],
      [5, "statement"],
      [6, "statement_start"],
      [7, "statement"],
    ]);
    const bodies = events.map((e) => JSON.parse(e.body) as Record<string, unknown>);
    expect(bodies[3]).toMatchObject({ n: 1, startSeq: 1, sql: null, errorCode: "23505" });
    expect(bodies[4]).toMatchObject({
      n: 2,
      startSeq: null,
      sql: "DROP TABLE t",
      decision: "blocked",
    });
    expect(bodies[6]).toMatchObject({ n: 3, startSeq: 6, sql: null, rows: 2 });
    expect(events[0]!.prevHash).toMatch(/^[0-9a-f]{64}$/);
    for (let i = 1; i < events.length; i++) expect(events[i]!.prevHash).toBe(events[i - 1]!.hash);

    const session = (await store.getSession("s-mix"))!;
    expect(session.agentLabel).toBe("claude-code");
    expect(session.decisions).toEqual({ allowed: 2, blocked: 1, approved: 0, denied: 0 });
    expect(session.seal).toMatchObject({
      eventCount: 7,
      headHash: events[6]!.hash,
      keyId: signer().keyId,
    });
    expect((await verifyIn(store, "s-mix")).status).toBe("intact");

    const statements = await store.listStatements("s-mix");
    expect(statements.map((s) => [s.seq, s.eventSeq, s.sql])).toEqual([
      [1, 4, "INSERT INTO t VALUES (1)"],
      [2, 5, "DROP TABLE t"],
      [3, 7, "SELECT * FROM t"],
    ]);

    const replay = buildReplay(session, events, statements);
    expect(replay.statements.map((s) => [s.n, s.outcome, s.sql])).toEqual([
      [1, "error", "INSERT INTO t VALUES (1)"],
      [null, "unfinished", "INSERT INTO t VALUES (2)"],
      [null, "unfinished", "INSERT INTO t VALUES (3)"],
      [2, "refused", "DROP TABLE t"],
      [3, "completed", "SELECT * FROM t"],
    ]);
  });

  it("records a held statement's approval: who decided, in order with what came after", async () => {
    await store.createApproval({
      id: "a1b2c3d4",
      sessionId: "s-held",
      connection: "db-test",
      requester: { oid: "oid-dana", name: "Dana DBA", type: "user" },
      applicationName: null,
      agentLabel: null,
      sql: "DELETE FROM orders",
      statementHash: "00".repeat(32),
      matchedRule: { index: 0, description: "deletes" },
      reason: "DELETE",
      approvers: ["user:oid-carol"],
      minApprovals: 1,
      createdAt: 1,
      expiresAt: Date.now() + 60_000,
      status: "pending",
      decisions: [],
      decidedAt: null,
      statusDetail: null,
    });
    await store.recordDecision("a1b2c3d4", {
      by: { oid: "oid-carol", name: "Carol" },
      decision: "approve",
      reason: "ticket 42",
      at: 2,
    });
    const hooks = hooksFor(store, "s-held", audit());
    await hooks.onStart({ applicationName: null, startup: new Map() });
    await hooks.beforeStatement({ sql: "DELETE FROM orders", protocol: "simple" });
    // The completion waits for the approval lookup; the next statement must not overtake it.
    const done = hooks.onStatement(
      completed({
        sql: "DELETE FROM orders",
        decision: "approved",
        approvalId: "a1b2c3d4",
        commandTag: "DELETE 3",
        rows: 3,
      }),
    );
    const next = hooks.beforeStatement({ sql: "SELECT 1", protocol: "simple" });
    await Promise.all([done, next]);
    await hooks.onStatement(completed({ sql: "SELECT 1" }));
    hooks.onEnd({ reason: "client_closed", detail: null, bytesIn: 0, bytesOut: 0, statements: 2 });
    await settle(store, "s-held");

    const events = await store.listEvents("s-held");
    expect(events.map((e) => e.kind)).toEqual([
      "statement_start",
      "statement",
      "statement_start",
      "statement",
    ]);
    expect(JSON.parse(events[1]!.body).approval).toEqual({
      id: "a1b2c3d4",
      status: "approved",
      decisions: [
        {
          by: { oid: "oid-carol", name: "Carol" },
          decision: "approve",
          reason: "ticket 42",
          at: 2,
        },
      ],
    });
    const [st] = await store.listStatements("s-held");
    expect(st!.approval?.decisions[0]?.by.name).toBe("Carol");
    expect((await verifyIn(store, "s-held")).status).toBe("intact");
  });

  it("trims previews to the limits, and records none when previews are off", async () => {
    const big = {
      columns: ["id", "note"],
      rows: Array.from({ length: 50 }, (_, i) => [String(i), "x".repeat(100)]),
      truncated: false,
    };
    const a = hooksFor(store, "s-prev", audit({ preview: { rows: 5, kib: 1 } }));
    await a.onStart({ applicationName: null, startup: new Map() });
    await a.beforeStatement({ sql: "SELECT * FROM notes", protocol: "simple" });
    await a.onStatement(completed({ sql: "SELECT * FROM notes", preview: big, rows: 50 }));
    const kept = JSON.parse((await store.listEvents("s-prev"))[1]!.body) as {
      preview: { rows: unknown[]; truncated: boolean };
    };
    expect(kept.preview.rows).toHaveLength(5);
    expect(kept.preview.truncated).toBe(true);
    // The statement row (the searchable copy) does not repeat it.
    expect((await store.listStatements("s-prev"))[0]!.preview).toBeUndefined();

    const b = hooksFor(store, "s-noprev", audit({ preview: false }));
    await b.onStart({ applicationName: null, startup: new Map() });
    await b.beforeStatement({ sql: "SELECT * FROM notes", protocol: "simple" });
    await b.onStatement(completed({ sql: "SELECT * FROM notes", preview: big }));
    const [st2] = await store.listStatements("s-noprev");
    expect(st2!.preview).toBeUndefined();
    expect(JSON.parse((await store.listEvents("s-noprev"))[1]!.body).preview).toBeNull();
  });

  it("writes an unsigned chain without a key: verification says it is not signed", async () => {
    const hooks = hooksFor(store, "s-unsigned", audit({ signer: null }));
    await hooks.onStart({ applicationName: null, startup: new Map() });
    await hooks.beforeStatement({ sql: "SELECT 1", protocol: "simple" });
    await hooks.onStatement(completed({ sql: "SELECT 1" }));
    hooks.onEnd({ reason: "client_closed", detail: null, bytesIn: 0, bytesOut: 0, statements: 1 });
    await settle(store, "s-unsigned");
    const r = await verifyIn(store, "s-unsigned");
    expect(r.status).toBe("unsealed");
    expect(r.summary).toBe("ended without a signed digest: 2 events chained but not signed");
  });
});
