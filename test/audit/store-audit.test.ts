/**
 * What recording needs from a SessionStore, on every store: chain events with their statement
 * rows (both or neither), agent labels, seals and decision counts, retention, and search by
 * identity, agent, application, time, id prefix and statement text. (PostgreSQL: a real server,
 * a database per test.)
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import { isGwError } from "../../src/errors.js";
import { MemoryStore } from "../../src/store/memory-store.js";
import { PostgresStore } from "../../src/store/postgres-store.js";
import { SqliteStore } from "../../src/store/sqlite-store.js";
import type {
  AuditEvent,
  SessionRecord,
  SessionSeal,
  SessionStore,
  StatementEvent,
} from "../../src/store/types.js";
import { startPostgres, type PgServer } from "../helpers/postgres.js";

let n = 0;
function session(over: Partial<SessionRecord> = {}): SessionRecord {
  n++;
  return {
    id: `5e55${String(n).padStart(4, "0")}-aaaa-4000-8000-${String(n).padStart(12, "0")}`,
    identity: { oid: "oid-alice", name: "Alice Example", upn: "alice@example.com", type: "user" },
    connection: "orders",
    protocol: "postgres",
    applicationName: "psql",
    clientAddress: null,
    startedAt: 1_700_000_000_000 + n * 1000,
    endedAt: null,
    endReason: null,
    endDetail: null,
    bytesIn: 0,
    bytesOut: 0,
    statementCount: 0,
    ...over,
  };
}

function event(sessionId: string, seq: number, over: Partial<AuditEvent> = {}): AuditEvent {
  return {
    sessionId,
    seq,
    kind: "statement",
    at: 1_700_000_100_000 + seq,
    body: JSON.stringify({ seq }),
    prevHash: "a".repeat(64),
    hash: String(seq).padStart(64, "0"),
    ...over,
  };
}

function statement(sessionId: string, seq: number, sql: string): StatementEvent {
  return {
    sessionId,
    seq,
    at: 1_700_000_100_000 + seq,
    durationMs: 1,
    sql,
    protocol: "simple",
    commandTag: "SELECT 1",
    rows: 1,
    errorCode: null,
    errorMessage: null,
    decision: "allowed",
    eventSeq: seq,
  };
}

const END = {
  endedAt: 1_700_000_500_000,
  endReason: "client_closed" as const,
  endDetail: null,
  bytesIn: 1,
  bytesOut: 2,
  statementCount: 1,
};

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (isGwError(err)) return err.code;
    throw err;
  }
  throw new Error("expected a rejection");
}

type Made = { store: SessionStore; cleanup: () => Promise<void> };

/** One PostgreSQL server for the file, and a database of its own per test. */
let pgServer: Promise<PgServer> | undefined;
let pgDatabases = 0;
afterAll(async () => {
  await (await pgServer)?.stop();
});

const stores: [string, () => Made | Promise<Made>][] = [
  [
    "memory",
    () => {
      const store = new MemoryStore();
      return { store, cleanup: () => store.close() };
    },
  ],
  [
    "sqlite",
    () => {
      const dir = mkdtempSync(join(tmpdir(), "gw-store-audit-"));
      const store = SqliteStore.open(join(dir, "gw.db"));
      return {
        store,
        cleanup: async () => {
          await store.close();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  ],
  [
    "postgres",
    async () => {
      const server = await (pgServer ??= startPostgres());
      const name = `gw_audit_${++pgDatabases}`;
      const admin = new pg.Client({ connectionString: server.url });
      await admin.connect();
      await admin.query(`CREATE DATABASE ${name}`);
      const store = await PostgresStore.open(server.url.replace(/\/app$/, `/${name}`));
      return {
        store,
        cleanup: async () => {
          await store.close();
          await admin.query(`DROP DATABASE ${name} WITH (FORCE)`);
          await admin.end();
        },
      };
    },
  ],
];

for (const [name, make] of stores) {
  describe(`SessionStore recording contract: ${name}`, () => {
    let store: SessionStore;
    let cleanup: () => Promise<void>;
    beforeEach(async () => {
      ({ store, cleanup } = await make());
    });
    afterEach(() => cleanup());

    it("appends events with their statement rows, and lists them in order", async () => {
      const s = session();
      await store.createSession(s);
      await store.appendEvent(event(s.id, 1, { kind: "statement_start" }));
      await store.appendEvent(event(s.id, 2), { statement: statement(s.id, 1, "SELECT 1") });
      expect((await store.listEvents(s.id)).map((e) => [e.seq, e.kind])).toEqual([
        [1, "statement_start"],
        [2, "statement"],
      ]);
      expect(await store.listEvents(s.id)).toEqual([
        event(s.id, 1, { kind: "statement_start" }),
        event(s.id, 2),
      ]);
      expect(await store.listStatements(s.id)).toEqual([statement(s.id, 1, "SELECT 1")]);
      expect(await store.listEvents("no-such-session")).toEqual([]);
    });

    it("refuses a repeated seq, an unknown or ended session, and keeps neither half of a refused write", async () => {
      const s = session();
      await store.createSession(s);
      await store.appendEvent(event(s.id, 1), { statement: statement(s.id, 1, "SELECT 1") });
      expect(await code(store.appendEvent(event(s.id, 1)))).toBe("store_write_failed");
      // The event is new but its statement row is not: neither is kept.
      expect(
        await code(
          store.appendEvent(event(s.id, 2), { statement: statement(s.id, 1, "SELECT again") }),
        ),
      ).toBe("store_write_failed");
      expect((await store.listEvents(s.id)).map((e) => e.seq)).toEqual([1]);
      expect(await code(store.appendEvent(event("no-such-session", 1)))).toBe("store_write_failed");
      await store.endSession(s.id, END);
      expect(await code(store.appendEvent(event(s.id, 3)))).toBe("store_write_failed");
    });

    it("keeps the agent label, and the decision counts and seal a session ends with", async () => {
      const plain = session();
      const labelled = session({ agentLabel: "claude-code" });
      await store.createSession(plain);
      await store.createSession(labelled);
      expect(await store.getSession(plain.id)).toEqual(plain);
      expect((await store.getSession(labelled.id))?.agentLabel).toBe("claude-code");
      const seal: SessionSeal = {
        v: 1,
        algorithm: "ed25519",
        keyId: "0123456789abcdef",
        eventCount: 0,
        headHash: "b".repeat(64),
        digest: "c".repeat(64),
        signature: "sig",
        sealedAt: 5,
      };
      const decisions = { allowed: 3, blocked: 1, approved: 0, denied: 2 };
      await store.endSession(labelled.id, { ...END, decisions, seal });
      const got = await store.getSession(labelled.id);
      expect(got).toEqual({ ...labelled, ...END, decisions, seal });
    });

    it("prunes the events and statements of sessions ended before the cutoff, keeping their seals", async () => {
      const old = session();
      const recent = session();
      const open = session({ startedAt: 1 });
      for (const s of [old, recent, open]) {
        await store.createSession(s);
        await store.appendEvent(event(s.id, 1), { statement: statement(s.id, 1, "SELECT 1") });
      }
      await store.endSession(old.id, { ...END, endedAt: 1000 });
      await store.endSession(recent.id, { ...END, endedAt: 5000 });
      expect(await store.pruneSessions(2000, { now: 9999, limit: 10 })).toBe(1);
      expect(await store.listEvents(old.id)).toEqual([]);
      expect(await store.listStatements(old.id)).toEqual([]);
      expect((await store.getSession(old.id))?.prunedAt).toBe(9999);
      expect(await store.listEvents(recent.id)).toHaveLength(1);
      expect(await store.listEvents(open.id)).toHaveLength(1);
      expect((await store.getSession(recent.id))?.prunedAt).toBeUndefined();
      // Pruned once: not again.
      expect(await store.pruneSessions(2000, { now: 10_000, limit: 10 })).toBe(0);
    });

    it("searches sessions by identity, agent, application, time, id prefix, open, and statement text", async () => {
      const a = session({ agentLabel: "claude", applicationName: "psql" });
      const b = session({
        identity: { oid: "oid-bob", name: "Bob", upn: "bob@example.com", type: "user" },
        applicationName: "metabase",
      });
      const c = session({
        identity: { oid: "oid-etl", name: "etl-job", type: "app" },
        agentLabel: "cursor",
      });
      for (const s of [a, b, c]) await store.createSession(s);
      await store.addStatement(statement(a.id, 1, "SELECT * FROM Orders WHERE id = 1"));
      await store.addStatement(statement(b.id, 1, "DELETE FROM orders_archive"));
      await store.addStatement(statement(c.id, 1, "select 100% of it -- _x_"));
      await store.endSession(c.id, END);
      const ids = async (q: Parameters<SessionStore["listSessions"]>[0]) =>
        (await store.listSessions(q)).map((s) => s.id);

      expect(await ids({ user: "oid-bob" })).toEqual([b.id]);
      expect(await ids({ user: "BOB@example.com" })).toEqual([b.id]);
      expect(await ids({ user: "alice" })).toEqual([a.id]);
      expect(await ids({ user: "etl-job" })).toEqual([c.id]);
      expect(await ids({ user: "ali" })).toEqual([]);
      expect(await ids({ agent: "claude" })).toEqual([a.id]);
      expect(await ids({ application: "metabase" })).toEqual([b.id]);
      expect(await ids({ since: b.startedAt })).toEqual([c.id, b.id]);
      expect(await ids({ until: b.startedAt })).toEqual([a.id]);
      expect(await ids({ open: true })).toEqual([b.id, a.id]);
      expect(await ids({ open: false })).toEqual([c.id]);
      expect(await ids({ idPrefix: a.id.slice(0, 8) })).toEqual([a.id]);
      // Statement text: a substring, case-insensitive; % and _ are literal.
      expect(await ids({ grep: "from orders" })).toEqual([b.id, a.id]);
      expect(await ids({ grep: "orders_archive" })).toEqual([b.id]);
      expect(await ids({ grep: "100%" })).toEqual([c.id]);
      expect(await ids({ grep: "_x_" })).toEqual([c.id]);
      expect(await ids({ grep: "%" })).toEqual([c.id]);
      expect(await ids({ grep: "nothing like this" })).toEqual([]);
      expect(await ids({ grep: "orders", oid: "oid-alice" })).toEqual([a.id]);
      // Statements of one session, by text.
      expect((await store.listStatements(b.id, { grep: "ARCHIVE" })).map((s) => s.seq)).toEqual([
        1,
      ]);
      expect(await store.listStatements(b.id, { grep: "nope" })).toEqual([]);
    });
  });
}
