import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isGwError } from "../../src/errors.js";
import {
  DEFAULT_SESSION_LIMIT,
  MAX_SESSION_LIMIT,
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
    ...over,
  };
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
      await store.addStatement(failed);
      await store.addStatement(ok);
      expect(await store.listStatements(rec.id)).toEqual([failed, ok]);
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
  });
}
