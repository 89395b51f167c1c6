import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isGwError } from "../../src/errors.js";
import {
  DEFAULT_SESSION_LIMIT,
  MAX_SESSION_LIMIT,
  type ApprovalDecision,
  type ApprovalRequest,
  type SessionRecord,
  type SessionStore,
  type StatementEvent,
} from "../../src/store/types.js";

export interface StoreUnderTest {
  store: SessionStore;
  cleanup(): Promise<void>;
}

let counter = 0;

/** A fresh session record; ids are unique across the whole test run. */
export function sessionRecord(over: Partial<SessionRecord> = {}): SessionRecord {
  counter++;
  return {
    id: `s-${counter}-${Math.random().toString(36).slice(2, 8)}`,
    identity: { oid: "oid-alice", name: "Alice", upn: "alice@example.com", type: "user" },
    connection: "orders",
    protocol: "postgres",
    applicationName: "psql",
    clientAddress: "127.0.0.1:50000",
    startedAt: 1_700_000_000_000 + counter,
    endedAt: null,
    endReason: null,
    endDetail: null,
    bytesIn: 0,
    bytesOut: 0,
    statementCount: 0,
    ...over,
  };
}

export function statementEvent(
  sessionId: string,
  seq: number,
  over: Partial<StatementEvent> = {},
): StatementEvent {
  return {
    sessionId,
    seq,
    at: 1_700_000_100_000 + seq,
    durationMs: 1.25 * seq,
    sql: `SELECT ${seq}`,
    protocol: "simple",
    commandTag: "SELECT 1",
    rows: 1,
    errorCode: null,
    errorMessage: null,
    decision: "allowed",
    ...over,
  };
}

/** A fresh pending approval request; ids are unique across the whole test run. */
export function approvalRecord(over: Partial<ApprovalRequest> = {}): ApprovalRequest {
  counter++;
  return {
    id: `${(counter % 0x10000).toString(16).padStart(4, "0")}${Math.random().toString(16).slice(2, 6)}`,
    sessionId: "s-held",
    connection: "orders",
    requester: { oid: "oid-alice", name: "Alice", type: "user" },
    applicationName: "psql",
    agentLabel: null,
    sql: "DELETE FROM orders WHERE created_at < now() - interval '1 year'",
    statementHash: "ab".repeat(32),
    matchedRule: { index: 2, description: "deletes on orders need a second pair of eyes" },
    reason: "DELETE on a protected table",
    approvers: ["group:dba", "user:oid-carol"],
    minApprovals: 1,
    createdAt: 1_700_000_000_000 + counter,
    expiresAt: 1_700_000_000_000 + counter + 300_000,
    status: "pending",
    decisions: [],
    decidedAt: null,
    statusDetail: null,
    ...over,
  };
}

export function decision(
  oid: string,
  kind: "approve" | "deny",
  at: number,
  reason: string | null = null,
): ApprovalDecision {
  return { by: { oid, name: oid.replace(/^oid-/, "") }, decision: kind, reason, at };
}

/** Resolves to the rejection's GwError code, or fails the test if the promise resolves. */
export async function rejectionCode(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (isGwError(err)) return err.code;
    throw err;
  }
  throw new Error("expected the promise to reject");
}

/**
 * The contract every SessionStore keeps (see SessionStore in src/store/types.ts). Each test
 * gets a fresh, empty store from makeStore and cleans it up afterwards.
 */
export function runStoreSuite(name: string, makeStore: () => Promise<StoreUnderTest>): void {
  describe(`SessionStore contract: ${name}`, () => {
    let sut: StoreUnderTest;
    let store: SessionStore;

    beforeEach(async () => {
      sut = await makeStore();
      store = sut.store;
    });
    afterEach(async () => {
      await sut.cleanup();
    });

    it("creates a session and reads it back", async () => {
      const rec = sessionRecord();
      await store.createSession(rec);
      expect(await store.getSession(rec.id)).toEqual(rec);
    });

    it("keeps a session without upn, application name or client address", async () => {
      const rec = sessionRecord({
        identity: { oid: "oid-app", name: "etl-job", type: "app" },
        applicationName: null,
        clientAddress: null,
      });
      await store.createSession(rec);
      const got = await store.getSession(rec.id);
      expect(got).toEqual(rec);
      expect(got?.identity.upn).toBeUndefined();
    });

    it("returns null for an unknown session id", async () => {
      expect(await store.getSession("no-such-session")).toBeNull();
    });

    it("records how a session ended", async () => {
      const rec = sessionRecord();
      await store.createSession(rec);
      const end = {
        endedAt: rec.startedAt + 5000,
        endReason: "upstream_error" as const,
        endDetail: "connection reset by peer",
        bytesIn: 1234,
        bytesOut: 56789,
        statementCount: 7,
      };
      await store.endSession(rec.id, end);
      expect(await store.getSession(rec.id)).toEqual({ ...rec, ...end });
      const [listed] = await store.listSessions({});
      expect(listed).toEqual({ ...rec, ...end });
    });

    it("lists sessions newest first", async () => {
      const a = sessionRecord({ startedAt: 1000 });
      const b = sessionRecord({ startedAt: 3000 });
      const c = sessionRecord({ startedAt: 2000 });
      for (const r of [a, b, c]) await store.createSession(r);
      expect((await store.listSessions({})).map((s) => s.id)).toEqual([b.id, c.id, a.id]);
    });

    it("lists sessions that started at the same time most recently created first", async () => {
      const a = sessionRecord({ startedAt: 1000 });
      const b = sessionRecord({ startedAt: 1000 });
      await store.createSession(a);
      await store.createSession(b);
      expect((await store.listSessions({})).map((s) => s.id)).toEqual([b.id, a.id]);
    });

    it("filters sessions by oid, by connection, and by both", async () => {
      const alice = {
        oid: "oid-alice",
        name: "Alice",
        upn: "alice@example.com",
        type: "user" as const,
      };
      const bob = { oid: "oid-bob", name: "Bob", upn: "bob@example.com", type: "user" as const };
      const a1 = sessionRecord({ identity: alice, connection: "orders", startedAt: 1 });
      const a2 = sessionRecord({ identity: alice, connection: "billing", startedAt: 2 });
      const b1 = sessionRecord({ identity: bob, connection: "orders", startedAt: 3 });
      const b2 = sessionRecord({ identity: bob, connection: "billing", startedAt: 4 });
      for (const r of [a1, a2, b1, b2]) await store.createSession(r);
      const ids = async (q: Parameters<SessionStore["listSessions"]>[0]) =>
        (await store.listSessions(q)).map((s) => s.id);
      expect(await ids({ oid: "oid-alice" })).toEqual([a2.id, a1.id]);
      expect(await ids({ oid: "oid-bob" })).toEqual([b2.id, b1.id]);
      expect(await ids({ connection: "orders" })).toEqual([b1.id, a1.id]);
      expect(await ids({ oid: "oid-bob", connection: "billing" })).toEqual([b2.id]);
      expect(await ids({ oid: "oid-nobody" })).toEqual([]);
      expect(await ids({ connection: "no-such-connection" })).toEqual([]);
      expect(await ids({})).toEqual([b2.id, b1.id, a2.id, a1.id]);
    });

    it("applies the limit to the newest sessions", async () => {
      const recs = [1, 2, 3, 4, 5].map((t) => sessionRecord({ startedAt: t * 1000 }));
      for (const r of recs) await store.createSession(r);
      expect((await store.listSessions({ limit: 2 })).map((s) => s.id)).toEqual([
        recs[4]!.id,
        recs[3]!.id,
      ]);
      expect((await store.listSessions({ limit: 1, oid: "oid-alice" })).map((s) => s.id)).toEqual([
        recs[4]!.id,
      ]);
      expect(await store.listSessions({ limit: 0 })).toHaveLength(1);
      expect(await store.listSessions({ limit: 100 })).toHaveLength(5);
    });

    it(`applies a default limit of ${DEFAULT_SESSION_LIMIT} and a cap of ${MAX_SESSION_LIMIT}`, async () => {
      const n = DEFAULT_SESSION_LIMIT + 5;
      await Promise.all(
        Array.from({ length: n }, (_, i) => store.createSession(sessionRecord({ startedAt: i }))),
      );
      const page = await store.listSessions({});
      expect(page).toHaveLength(DEFAULT_SESSION_LIMIT);
      expect(page[0]!.startedAt).toBe(n - 1);
      expect(await store.listSessions({ limit: MAX_SESSION_LIMIT * 10 })).toHaveLength(n);
    });

    it("returns statements in seq order, whatever order they were added in", async () => {
      const rec = sessionRecord();
      await store.createSession(rec);
      const evs = [3, 1, 2].map((seq) => statementEvent(rec.id, seq));
      for (const ev of evs) await store.addStatement(ev);
      const got = await store.listStatements(rec.id);
      expect(got.map((e) => e.seq)).toEqual([1, 2, 3]);
      expect(got).toEqual([evs[1], evs[2], evs[0]]);
    });

    it("keeps every statement field, including failures and extended protocol", async () => {
      const rec = sessionRecord();
      await store.createSession(rec);
      const failed = statementEvent(rec.id, 1, {
        sql: "SELECT * FROM missing WHERE note = 'it''s \u00e9t\u00e9 \u{1F600}'\nAND x = $1",
        protocol: "extended",
        durationMs: 0.375,
        commandTag: null,
        rows: null,
        errorCode: "42P01",
        errorMessage: 'relation "missing" does not exist',
      });
      const ok = statementEvent(rec.id, 2, { commandTag: "INSERT 0 3", rows: 3, durationMs: 12 });
      const blocked = statementEvent(rec.id, 3, {
        decision: "blocked",
        errorCode: "42501",
        errorMessage: "gw: not on production",
      });
      const approved = statementEvent(rec.id, 4, { decision: "approved" });
      const denied = statementEvent(rec.id, 5, { decision: "denied", errorCode: "42501" });
      for (const ev of [failed, ok, blocked, approved, denied]) await store.addStatement(ev);
      expect(await store.listStatements(rec.id)).toEqual([failed, ok, blocked, approved, denied]);
    });

    it("keeps statements per session", async () => {
      const a = sessionRecord();
      const b = sessionRecord();
      await store.createSession(a);
      await store.createSession(b);
      await store.addStatement(statementEvent(a.id, 1));
      await store.addStatement(statementEvent(b.id, 1, { sql: "SELECT 'b'" }));
      await store.addStatement(statementEvent(a.id, 2));
      expect((await store.listStatements(a.id)).map((e) => e.seq)).toEqual([1, 2]);
      expect((await store.listStatements(b.id)).map((e) => e.sql)).toEqual(["SELECT 'b'"]);
      expect(await store.listStatements("no-such-session")).toEqual([]);
    });

    it("persists many writes made in the same tick", async () => {
      const rec = sessionRecord();
      const n = 500;
      const writes: Promise<void>[] = [store.createSession(rec)];
      for (let seq = 1; seq <= n; seq++)
        writes.push(store.addStatement(statementEvent(rec.id, seq)));
      writes.push(
        store.endSession(rec.id, {
          endedAt: rec.startedAt + 1,
          endReason: "client_closed",
          endDetail: null,
          bytesIn: 10,
          bytesOut: 20,
          statementCount: n,
        }),
      );
      await Promise.all(writes);
      const got = await store.listStatements(rec.id);
      expect(got).toHaveLength(n);
      expect(got.map((e) => e.seq)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
      expect((await store.getSession(rec.id))?.statementCount).toBe(n);
    });

    it("lets a reader see writes it has not awaited yet", async () => {
      const rec = sessionRecord();
      const created = store.createSession(rec);
      const added = store.addStatement(statementEvent(rec.id, 1));
      expect(await store.getSession(rec.id)).toEqual(rec);
      expect(await store.listStatements(rec.id)).toHaveLength(1);
      expect((await store.listSessions({})).map((s) => s.id)).toEqual([rec.id]);
      await Promise.all([created, added]);
    });

    it("refuses a bad write without losing the others in the same tick", async () => {
      const rec = sessionRecord();
      const ended = sessionRecord();
      await store.createSession(rec);
      await store.createSession(ended);
      const end = {
        endedAt: 1,
        endReason: "client_closed" as const,
        endDetail: null,
        bytesIn: 0,
        bytesOut: 0,
        statementCount: 0,
      };
      await store.endSession(ended.id, end);

      const good1 = store.addStatement(statementEvent(rec.id, 1));
      const dupSession = store.createSession({ ...rec, connection: "other" });
      const unknownEnd = store.endSession("no-such-session", end);
      const endTwice = store.endSession(ended.id, { ...end, endReason: "broker_shutdown" });
      const unknownStmt = store.addStatement(statementEvent("no-such-session", 1));
      const dupStmt = store.addStatement(statementEvent(rec.id, 1, { sql: "SELECT 'dup'" }));
      const good2 = store.addStatement(statementEvent(rec.id, 2));

      expect(await rejectionCode(dupSession)).toBe("store_write_failed");
      expect(await rejectionCode(unknownEnd)).toBe("store_write_failed");
      expect(await rejectionCode(endTwice)).toBe("store_write_failed");
      expect(await rejectionCode(unknownStmt)).toBe("store_write_failed");
      expect(await rejectionCode(dupStmt)).toBe("store_write_failed");
      await expect(good1).resolves.toBeUndefined();
      await expect(good2).resolves.toBeUndefined();

      expect(await store.getSession(rec.id)).toEqual(rec);
      expect(await store.getSession(ended.id)).toEqual({ ...ended, ...end });
      expect(await store.getSession("no-such-session")).toBeNull();
      expect((await store.listStatements(rec.id)).map((e) => e.sql)).toEqual([
        "SELECT 1",
        "SELECT 2",
      ]);
    });

    it("is not changed by callers mutating what they passed or got", async () => {
      const rec = sessionRecord();
      const ev = statementEvent(rec.id, 1);
      const p1 = store.createSession(rec);
      const p2 = store.addStatement(ev);
      const original = structuredClone(rec);
      const originalEv = { ...ev };
      rec.identity.name = "Mallory";
      rec.connection = "elsewhere";
      ev.sql = "DROP TABLE evidence";
      await Promise.all([p1, p2]);
      const got = await store.getSession(rec.id);
      expect(got).toEqual(original);
      got!.identity.oid = "changed";
      expect(await store.getSession(rec.id)).toEqual(original);
      expect(await store.listStatements(rec.id)).toEqual([originalEv]);
    });

    it("commits pending writes on close, then refuses writes and reads", async () => {
      const rec = sessionRecord();
      const created = store.createSession(rec);
      await store.close();
      await expect(created).resolves.toBeUndefined();
      expect(await rejectionCode(store.createSession(sessionRecord()))).toBe("store_closed");
      expect(await rejectionCode(store.addStatement(statementEvent(rec.id, 1)))).toBe(
        "store_closed",
      );
      expect(
        await rejectionCode(
          store.endSession(rec.id, {
            endedAt: 1,
            endReason: "client_closed",
            endDetail: null,
            bytesIn: 0,
            bytesOut: 0,
            statementCount: 0,
          }),
        ),
      ).toBe("store_closed");
      expect(await rejectionCode(store.getSession(rec.id))).toBe("store_closed");
      await store.close(); // a second close is harmless
    });
    it("keeps the broker replica of sessions and finds a replica's open sessions", async () => {
      const a = sessionRecord({ brokerId: "replica-a", startedAt: 1 });
      const a2 = sessionRecord({ brokerId: "replica-a", startedAt: 2 });
      const b = sessionRecord({ brokerId: "replica-b", startedAt: 3 });
      const none = sessionRecord({ startedAt: 4 });
      for (const r of [a, a2, b, none]) await store.createSession(r);
      expect(await store.getSession(a.id)).toEqual(a);
      expect(await store.getSession(none.id)).not.toHaveProperty("brokerId");
      const open = async (brokerId: string) =>
        (await store.listSessions({ brokerId, open: true })).map((s) => s.id);
      expect(await open("replica-a")).toEqual([a2.id, a.id]);
      expect(await open("replica-b")).toEqual([b.id]);
      expect(await open("replica-c")).toEqual([]);
      const end = {
        endedAt: a.startedAt + 10,
        endReason: "broker_lost" as const,
        endDetail: "its replica stopped sending heartbeats",
        bytesIn: 0,
        bytesOut: 0,
        statementCount: 0,
      };
      await store.endSession(a.id, end);
      expect(await open("replica-a")).toEqual([a2.id]);
      expect(await store.getSession(a.id)).toEqual({ ...a, ...end });
    });

    // --- approvals ---------------------------------------------------------------------

    it("creates an approval request and reads it back", async () => {
      const a = approvalRecord({
        agentLabel: "claude-code",
        contextStatements: ["BEGIN", "SELECT count(*) FROM orders", "it's \u00e9t\u00e9 \u{1F600}"],
      });
      await store.createApproval(a);
      expect(await store.getApproval(a.id)).toEqual(a);
    });

    it("keeps the broker replica that holds an approval request", async () => {
      const held = approvalRecord({ brokerId: "replica-a" });
      const plain = approvalRecord();
      await store.createApproval(held);
      await store.createApproval(plain);
      expect(await store.getApproval(held.id)).toEqual(held);
      expect(await store.getApproval(plain.id)).not.toHaveProperty("brokerId");
      const after = await store.setStatus(held.id, "cancelled", { at: 1, detail: "lost" });
      expect(after.brokerId).toBe("replica-a");
    });

    it("keeps an approval request without context statements or application name", async () => {
      const a = approvalRecord({
        applicationName: null,
        requester: { oid: "oid-etl", name: "etl-job", type: "app" },
        approvers: ["app:oid-guard"],
        minApprovals: 3,
      });
      await store.createApproval(a);
      const got = await store.getApproval(a.id);
      expect(got).toEqual(a);
      expect(got).not.toHaveProperty("contextStatements");
      expect(await store.getApproval("nope0000")).toBeNull();
    });

    it("refuses an approval request whose id exists, or that is not new and pending", async () => {
      const a = approvalRecord();
      await store.createApproval(a);
      expect(await rejectionCode(store.createApproval({ ...a, sql: "SELECT 1" }))).toBe(
        "store_write_failed",
      );
      expect(
        await rejectionCode(store.createApproval(approvalRecord({ status: "approved" }))),
      ).toBe("store_write_failed");
      const withDecision = approvalRecord({ decisions: [decision("oid-bob", "approve", 1)] });
      expect(await rejectionCode(store.createApproval(withDecision))).toBe("store_write_failed");
      expect(await store.getApproval(withDecision.id)).toBeNull();
      expect((await store.getApproval(a.id))?.sql).toBe(a.sql);
    });

    it("lists approval requests newest first, by status, with a limit", async () => {
      const a = approvalRecord({ createdAt: 1000 });
      const b = approvalRecord({ createdAt: 3000 });
      const c = approvalRecord({ createdAt: 2000 });
      const d = approvalRecord({ createdAt: 2000 });
      for (const r of [a, b, c, d]) await store.createApproval(r);
      await store.recordDecision(b.id, decision("oid-bob", "approve", 3001));
      await store.setStatus(a.id, "cancelled", { at: 1001, detail: "client disconnected" });
      const ids = async (q: Parameters<SessionStore["listApprovals"]>[0]) =>
        (await store.listApprovals(q)).map((x) => x.id);
      expect(await ids({})).toEqual([b.id, d.id, c.id, a.id]);
      expect(await ids({ status: "pending" })).toEqual([d.id, c.id]);
      expect(await ids({ status: "approved" })).toEqual([b.id]);
      expect(await ids({ status: "cancelled" })).toEqual([a.id]);
      expect(await ids({ status: "denied" })).toEqual([]);
      expect(await ids({ limit: 2 })).toEqual([b.id, d.id]);
      expect(await ids({ limit: 0 })).toEqual([b.id]);
      const [listed] = await store.listApprovals({ status: "approved" });
      expect(listed).toEqual(await store.getApproval(b.id));
      expect(listed!.decisions).toHaveLength(1);
    });

    it("approves with one approval by default, recording who, why and when", async () => {
      const a = approvalRecord();
      await store.createApproval(a);
      const d = decision("oid-bob", "approve", a.createdAt + 10, "looks right");
      const after = await store.recordDecision(a.id, d);
      const expected = { ...a, status: "approved", decisions: [d], decidedAt: d.at };
      expect(after).toEqual(expected);
      expect(await store.getApproval(a.id)).toEqual(expected);
    });

    it("needs minApprovals distinct approvers, and any deny denies", async () => {
      const a = approvalRecord({ minApprovals: 2 });
      const b = approvalRecord({ minApprovals: 2 });
      await store.createApproval(a);
      await store.createApproval(b);
      const first = await store.recordDecision(
        a.id,
        decision("oid-bob", "approve", a.createdAt + 1),
      );
      expect(first.status).toBe("pending");
      expect(first.decidedAt).toBeNull();
      expect(
        await rejectionCode(
          store.recordDecision(a.id, decision("oid-bob", "approve", a.createdAt + 2)),
        ),
      ).toBe("approval_duplicate");
      const second = await store.recordDecision(
        a.id,
        decision("oid-carol", "approve", a.createdAt + 3),
      );
      expect(second.status).toBe("approved");
      expect(second.decidedAt).toBe(a.createdAt + 3);
      expect(second.decisions.map((d) => d.by.oid)).toEqual(["oid-bob", "oid-carol"]);

      await store.recordDecision(b.id, decision("oid-bob", "approve", b.createdAt + 1));
      const denied = await store.recordDecision(
        b.id,
        decision("oid-carol", "deny", b.createdAt + 2, "not during business hours"),
      );
      expect(denied.status).toBe("denied");
      expect(denied.decidedAt).toBe(b.createdAt + 2);
      expect(denied.decisions[1]).toEqual(
        decision("oid-carol", "deny", b.createdAt + 2, "not during business hours"),
      );
    });

    it("refuses decisions on unknown, decided, expired and past-deadline requests", async () => {
      const a = approvalRecord();
      const b = approvalRecord();
      await store.createApproval(a);
      await store.createApproval(b);
      expect(
        await rejectionCode(store.recordDecision("nope0000", decision("oid-bob", "approve", 1))),
      ).toBe("approval_not_found");
      await store.recordDecision(a.id, decision("oid-bob", "deny", a.createdAt + 1, "no"));
      expect(
        await rejectionCode(
          store.recordDecision(a.id, decision("oid-carol", "approve", a.createdAt + 2)),
        ),
      ).toBe("approval_not_pending");
      expect(
        await rejectionCode(
          store.recordDecision(b.id, decision("oid-bob", "approve", b.expiresAt)),
        ),
      ).toBe("approval_not_pending");
      expect((await store.getApproval(b.id))?.decisions).toEqual([]);
      await store.setStatus(b.id, "expired", { at: b.expiresAt, detail: "nobody decided" });
      expect(
        await rejectionCode(
          store.recordDecision(b.id, decision("oid-bob", "approve", b.createdAt + 1)),
        ),
      ).toBe("approval_not_pending");
      expect((await store.getApproval(a.id))?.decisions).toHaveLength(1);
    });

    it("expires or cancels only pending requests", async () => {
      const a = approvalRecord();
      const b = approvalRecord();
      await store.createApproval(a);
      await store.createApproval(b);
      const cancelled = await store.setStatus(a.id, "cancelled", {
        at: a.createdAt + 5,
        detail: "client disconnected",
      });
      const expected = {
        ...a,
        status: "cancelled",
        decidedAt: a.createdAt + 5,
        statusDetail: "client disconnected",
      };
      expect(cancelled).toEqual(expected);
      expect(await store.getApproval(a.id)).toEqual(expected);
      expect(await rejectionCode(store.setStatus(a.id, "expired", { at: 1, detail: null }))).toBe(
        "approval_not_pending",
      );
      expect(
        await rejectionCode(store.setStatus("nope0000", "expired", { at: 1, detail: null })),
      ).toBe("approval_not_found");
      const expired = await store.setStatus(b.id, "expired", { at: b.expiresAt, detail: null });
      expect(expired).toEqual({ ...b, status: "expired", decidedAt: b.expiresAt });
      expect(await store.getApproval(a.id)).toEqual(expected);
    });

    it("lets exactly one of racing decisions win, without losing other writes", async () => {
      const a = approvalRecord();
      const rec = sessionRecord();
      await store.createApproval(a);
      const created = store.createSession(rec);
      const bob = store.recordDecision(a.id, decision("oid-bob", "approve", a.createdAt + 1));
      const carol = store.recordDecision(
        a.id,
        decision("oid-carol", "deny", a.createdAt + 2, "no"),
      );
      const timeout = store.setStatus(a.id, "expired", { at: a.createdAt + 3, detail: null });
      const stmt = store.addStatement(statementEvent(rec.id, 1));
      expect((await bob).status).toBe("approved");
      expect(await rejectionCode(carol)).toBe("approval_not_pending");
      expect(await rejectionCode(timeout)).toBe("approval_not_pending");
      await Promise.all([created, stmt]);
      const got = await store.getApproval(a.id);
      expect(got?.status).toBe("approved");
      expect(got?.decisions.map((d) => d.by.oid)).toEqual(["oid-bob"]);
      expect(await store.listStatements(rec.id)).toHaveLength(1);
    });

    it("lets a reader see approval writes it has not awaited yet", async () => {
      const a = approvalRecord();
      const created = store.createApproval(a);
      const decided = store.recordDecision(a.id, decision("oid-bob", "approve", a.createdAt + 1));
      expect((await store.getApproval(a.id))?.status).toBe("approved");
      expect((await store.listApprovals({ status: "approved" })).map((x) => x.id)).toEqual([a.id]);
      await Promise.all([created, decided]);
    });

    it("is not changed by callers mutating approval requests they passed or got", async () => {
      const a = approvalRecord({ contextStatements: ["SELECT 1"] });
      const p = store.createApproval(a);
      const original = structuredClone(a);
      a.approvers.push("group:everyone");
      a.contextStatements!.push("DROP TABLE evidence");
      a.requester.name = "Mallory";
      await p;
      const got = await store.getApproval(a.id);
      expect(got).toEqual(original);
      got!.approvers.push("group:everyone");
      got!.matchedRule.description = "changed";
      const d = decision("oid-bob", "approve", original.createdAt + 1);
      const pd = store.recordDecision(a.id, d);
      d.by.oid = "oid-mallory";
      const after = await pd;
      after.decisions[0]!.reason = "changed";
      const again = await store.getApproval(a.id);
      expect(again?.approvers).toEqual(original.approvers);
      expect(again?.matchedRule).toEqual(original.matchedRule);
      expect(again?.decisions).toEqual([decision("oid-bob", "approve", original.createdAt + 1)]);
    });

    it("refuses approval writes and reads after close", async () => {
      const a = approvalRecord();
      const created = store.createApproval(a);
      await store.close();
      await expect(created).resolves.toBeUndefined();
      expect(await rejectionCode(store.createApproval(approvalRecord()))).toBe("store_closed");
      expect(
        await rejectionCode(
          store.recordDecision(a.id, decision("oid-bob", "approve", a.createdAt)),
        ),
      ).toBe("store_closed");
      expect(await rejectionCode(store.setStatus(a.id, "expired", { at: 1, detail: null }))).toBe(
        "store_closed",
      );
      expect(await rejectionCode(store.getApproval(a.id))).toBe("store_closed");
      expect(await rejectionCode(store.listApprovals({}))).toBe("store_closed");
    });
  });
}
