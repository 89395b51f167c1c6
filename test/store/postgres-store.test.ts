/**
 * The PostgreSQL store against a real server (SCRAM): the whole store contract, each test on a
 * database of its own, then what only a shared store does: migrations under an advisory lock,
 * two replicas racing on one database, LISTEN/NOTIFY, the replica registry, and failures that
 * must say where the store is without ever saying its password.
 */
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../../src/demo/postgres-host.js";
import { GwError } from "../../src/errors.js";
import { openStore } from "../../src/store/open-store.js";
import { POSTGRES_SCHEMA_VERSION } from "../../src/store/postgres-migrations.js";
import { PostgresStore } from "../../src/store/postgres-store.js";
import { startPostgres, type PgServer } from "../helpers/postgres.js";
import {
  approvalRecord,
  decision,
  rejectionCode,
  runStoreSuite,
  sessionRecord,
  statementEvent,
} from "./store-suite.js";

let server: PgServer | undefined;
let starting: Promise<PgServer> | undefined;
let dbCounter = 0;

/** One server for the file, started by whichever needs it first. */
function pgServer(): Promise<PgServer> {
  starting ??= startPostgres().then((s) => (server = s));
  return starting;
}

afterAll(async () => {
  await server?.stop();
});

async function admin<T>(fn: (c: pg.Client) => Promise<T>, database = "postgres"): Promise<T> {
  const s = await pgServer();
  const c = new pg.Client({
    host: s.host,
    port: s.port,
    user: s.user,
    password: s.password,
    database,
  });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** A new empty database; resolves to its URL. */
async function freshDatabase(): Promise<{ name: string; url: string }> {
  const s = await pgServer();
  const name = `gw_store_${process.pid}_${++dbCounter}`;
  await admin((c) => c.query(`CREATE DATABASE ${name}`));
  return { name, url: s.url.replace(/\/app$/, `/${name}`) };
}

async function dropDatabase(name: string): Promise<void> {
  await admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
}

runStoreSuite("postgres", async () => {
  const db = await freshDatabase();
  const store = await PostgresStore.open(db.url);
  return {
    store,
    async cleanup() {
      await store.close();
      await dropDatabase(db.name);
    },
  };
});

async function rejectionOf(p: Promise<unknown>): Promise<GwError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(GwError);
    return err as GwError;
  }
  throw new Error("expected a GwError");
}

describe("PostgresStore", () => {
  const stores: PostgresStore[] = [];
  const databases: string[] = [];

  beforeAll(async () => {
    await pgServer();
  });
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close();
    for (const d of databases.splice(0)) await dropDatabase(d);
  });

  async function database(): Promise<string> {
    const db = await freshDatabase();
    databases.push(db.name);
    return db.url;
  }

  async function open(url: string, opts: Parameters<typeof PostgresStore.open>[1] = {}) {
    const s = await PostgresStore.open(url, opts);
    stores.push(s);
    return s;
  }

  const query = <R extends pg.QueryResultRow>(url: string, sql: string, params: unknown[] = []) =>
    admin(async (c) => (await c.query<R>(sql, params)).rows, new URL(url).pathname.slice(1));

  it("migrates once, and opening again changes nothing and keeps the data", async () => {
    const url = await database();
    const first = await PostgresStore.open(url);
    const rec = sessionRecord();
    await first.createSession(rec);
    await first.close();
    const second = await open(url);
    expect(await second.getSession(rec.id)).toEqual(rec);
    const versions = await query<{ version: number }>(
      url,
      "SELECT version FROM gw_schema_migrations ORDER BY version",
    );
    expect(versions.map((v) => v.version)).toEqual(
      Array.from({ length: POSTGRES_SCHEMA_VERSION }, (_, i) => i + 1),
    );
  });

  it("lets two replicas opening an empty database at once both start, on one schema", async () => {
    const url = await database();
    const [a, b] = await Promise.all([open(url), open(url)]);
    const versions = await query<{ n: string }>(
      url,
      "SELECT count(*) AS n FROM gw_schema_migrations",
    );
    expect(Number(versions[0]!.n)).toBe(POSTGRES_SCHEMA_VERSION);
    const tables = await query<{ table_name: string }>(
      url,
      "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' " +
        "ORDER BY table_name",
    );
    expect(tables.map((t) => t.table_name)).toEqual([
      "approval_decisions",
      "approvals",
      "events",
      "gw_replicas",
      "gw_schema_migrations",
      "sessions",
      "statements",
    ]);
    const rec = sessionRecord();
    await a.createSession(rec);
    expect(await b.getSession(rec.id)).toEqual(rec);
  });

  it("refuses a database a newer gw migrated", async () => {
    const url = await database();
    await (await PostgresStore.open(url)).close();
    await query(url, "INSERT INTO gw_schema_migrations (version, description) VALUES (999, 'x')");
    const err = await rejectionOf(PostgresStore.open(url));
    expect(err.code).toBe("store_unavailable");
    expect(err.message).toContain("schema version 999");
    expect(err.hint).toMatch(/Upgrade every broker replica/);
  });

  it("fails with store_unavailable naming host and database, never the password", async () => {
    const s = await pgServer();
    const port = await freePort();
    const password = "s3cret-Pa55word-that-must-not-leak";
    const closed = `postgres://gw:${encodeURIComponent(password)}@127.0.0.1:${port}/gwstore`;
    const down = await rejectionOf(PostgresStore.open(closed, { connectTimeoutMs: 2000 }));
    expect(down.code).toBe("store_unavailable");
    expect(down.message).toContain(`database gwstore on 127.0.0.1:${port}`);
    expect(down.message).toMatch(/ECONNREFUSED/);
    expect(down.hint).toContain(`127.0.0.1:${port}`);
    expect(JSON.stringify(down)).not.toContain(password);

    const wrong = `postgres://${s.user}:${encodeURIComponent(password)}@127.0.0.1:${s.port}/app`;
    const denied = await rejectionOf(PostgresStore.open(wrong));
    expect(denied.code).toBe("store_unavailable");
    expect(denied.message).toContain(`database app on 127.0.0.1:${s.port}`);
    expect(denied.message).toMatch(/password authentication failed/);
    expect(denied.hint).toMatch(/user and password/);
    expect(`${denied.message} ${denied.hint}`).not.toContain(password);

    const missing = await rejectionOf(PostgresStore.open(s.url.replace(/\/app$/, "/nosuchdb")));
    expect(missing.message).toContain("database nosuchdb");
    expect(missing.hint).toMatch(/createdb nosuchdb/);
    expect(missing.message).not.toContain(s.password);

    const garbage = await rejectionOf(PostgresStore.open(`not a url ${password}`));
    expect(garbage.code).toBe("store_unavailable");
    expect(garbage.message).not.toContain(password);
  });

  it("opens from the broker config, reading the URL from a secret", async () => {
    const url = await database();
    const env = `GW_TEST_STORE_URL_${process.pid}`;
    process.env[env] = url;
    try {
      const store = await openStore({ postgres: { env } });
      stores.push(store as PostgresStore);
      expect(store).toBeInstanceOf(PostgresStore);
      const rec = sessionRecord();
      await store.createSession(rec);
      expect(await store.getSession(rec.id)).toEqual(rec);
    } finally {
      delete process.env[env];
    }
  });

  it("commits the writes of one tick in one transaction", async () => {
    const store = await open(await database());
    const rec = sessionRecord();
    await store.createSession(rec);
    const before = store.stats.batches;
    await Promise.all(
      Array.from({ length: 200 }, (_, i) => store.addStatement(statementEvent(rec.id, i + 1))),
    );
    expect(store.stats.batches - before).toBeLessThanOrEqual(2);
    expect(await store.listStatements(rec.id)).toHaveLength(200);
  });

  it("refuses only the write PostgreSQL rejects, and commits the rest of its batch", async () => {
    const store = await open(await database());
    const rec = sessionRecord();
    await store.createSession(rec);
    const good1 = store.addStatement(statementEvent(rec.id, 1));
    // PostgreSQL text cannot hold NUL (SQLite can): the fast path fails, the batch is rerun
    // with a savepoint per write.
    const nul = store.addStatement(statementEvent(rec.id, 2, { sql: "SELECT 'a\u0000b'" }));
    const good2 = store.addStatement(statementEvent(rec.id, 3));
    expect(await rejectionCode(nul)).toBe("store_write_failed");
    await expect(good1).resolves.toBeUndefined();
    await expect(good2).resolves.toBeUndefined();
    expect((await store.listStatements(rec.id)).map((s) => s.seq)).toEqual([1, 3]);
    expect(store.stats.savepointBatches).toBeGreaterThanOrEqual(1);
  });

  it("rejects every write of a batch when the transaction fails, keeping none of them", async () => {
    const url = await database();
    const store = await open(url);
    const rec = sessionRecord();
    await store.createSession(rec);
    await query(url, "ALTER TABLE statements RENAME TO statements_gone");
    const other = sessionRecord();
    const created = store.createSession(other);
    const added = store.addStatement(statementEvent(rec.id, 1));
    const err = await rejectionOf(added);
    expect(err.code).toBe("store_write_failed");
    expect(err.message).toContain("database ");
    expect(await rejectionCode(created)).toBe("store_write_failed");
    await query(url, "ALTER TABLE statements_gone RENAME TO statements");
    expect(await store.getSession(other.id)).toBeNull();
    await store.addStatement(statementEvent(rec.id, 1));
    expect(await store.listStatements(rec.id)).toHaveLength(1);
  });

  it("lets exactly one of two replicas' racing decisions win", async () => {
    const url = await database();
    const [a, b] = await Promise.all([open(url), open(url)]);
    for (let i = 0; i < 10; i++) {
      const req = approvalRecord({ minApprovals: 1 });
      await a.createApproval(req);
      const results = await Promise.allSettled([
        a.recordDecision(req.id, decision("oid-bob", "approve", req.createdAt + 1)),
        b.recordDecision(req.id, decision("oid-carol", "deny", req.createdAt + 2, "no")),
      ]);
      expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
      const lost = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
      expect((lost.reason as GwError).code).toBe("approval_not_pending");
      expect((await b.getApproval(req.id))?.decisions).toHaveLength(1);
    }
  });

  it("counts two replicas' approvals of an N-of-M request, each exactly once", async () => {
    const url = await database();
    const [a, b] = await Promise.all([open(url), open(url)]);
    const req = approvalRecord({ minApprovals: 2 });
    await a.createApproval(req);
    const [x, y] = await Promise.all([
      a.recordDecision(req.id, decision("oid-bob", "approve", req.createdAt + 1)),
      b.recordDecision(req.id, decision("oid-carol", "approve", req.createdAt + 2)),
    ]);
    const final = await a.getApproval(req.id);
    expect(final?.status).toBe("approved");
    expect(final?.decisions.map((d) => d.by.oid).sort()).toEqual(["oid-bob", "oid-carol"]);
    expect([x.status, y.status].sort()).toEqual(["approved", "pending"]);
  });

  it("refuses a duplicate event another replica wrote, without failing the rest of the batch", async () => {
    const url = await database();
    const [a, b] = await Promise.all([open(url), open(url)]);
    const rec = sessionRecord();
    await a.createSession(rec);
    const ev = {
      sessionId: rec.id,
      seq: 1,
      kind: "statement_start" as const,
      at: 1,
      body: "{}",
      prevHash: "0".repeat(64),
      hash: "1".repeat(64),
    };
    await b.appendEvent(ev);
    const dup = a.appendEvent(ev);
    const other = sessionRecord();
    const created = a.createSession(other);
    expect(await rejectionCode(dup)).toBe("store_write_failed");
    await created;
    expect(await a.getSession(other.id)).toEqual(other);
    expect(await a.listEvents(rec.id)).toEqual([ev]);
  });

  it("tells watchers of every committed approval write, on every replica, and nothing else", async () => {
    const url = await database();
    const [a, b] = await Promise.all([open(url), open(url)]);
    const heard: Array<string | null> = [];
    const unwatch = b.watchApprovals((id) => heard.push(id));
    expect(await b.approvalsWatchReady()).toBe(true);
    expect(heard).toEqual([null]); // listening: anything before may have been missed
    heard.length = 0;
    const req = approvalRecord({ minApprovals: 2 });
    const other = approvalRecord();
    await a.createApproval(req);
    await a.createApproval(other);
    await rejectionCode(a.createApproval(req)); // refused: no notification
    await a.recordDecision(req.id, decision("oid-bob", "approve", req.createdAt + 1));
    await a.setStatus(other.id, "cancelled", { at: 2, detail: "client gone" });
    await rejectionCode(a.setStatus(other.id, "expired", { at: 3, detail: null })); // refused
    await b.recordDecision(req.id, decision("oid-carol", "approve", req.createdAt + 2));
    const want = [req.id, other.id, req.id, other.id, req.id];
    for (let i = 0; i < 200 && heard.length < want.length; i++) await sleep(10);
    await sleep(100); // anything extra would arrive by now
    expect(heard).toEqual(want);
    unwatch();
  });

  it("re-listens after its notification connection is killed, and says it may have missed some", async () => {
    const url = await database();
    const a = await open(url);
    const b = await open(url, { listenBackoffMs: { min: 20, max: 100 } });
    const heard: Array<string | null> = [];
    b.watchApprovals((id) => heard.push(id));
    expect(await b.approvalsWatchReady()).toBe(true);
    heard.length = 0;
    await query(
      url,
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity " +
        "WHERE application_name = 'gw broker (approvals listener)'",
    );
    for (let i = 0; i < 300 && !heard.includes(null); i++) await sleep(10);
    expect(heard).toEqual([null]);
    expect(await b.approvalsWatchReady()).toBe(true);
    const req = approvalRecord();
    await a.createApproval(req);
    for (let i = 0; i < 200 && !heard.includes(req.id); i++) await sleep(10);
    expect(heard).toContain(req.id);
  });

  it("keeps a registry of replicas and their heartbeats, by the database's clock", async () => {
    const store = await open(await database());
    const me = { id: "replica-1", url: "https://a:8443", keyId: "abcd", startedAt: 1000 };
    expect(await store.heartbeatReplica(me)).toBe(true);
    expect(await store.heartbeatReplica(me)).toBe(false);
    await store.heartbeatReplica({ ...me, id: "replica-2", url: null, keyId: null });
    const list = await store.listReplicas();
    expect(list.map((r) => [r.id, r.url, r.keyId, r.startedAt])).toEqual([
      ["replica-1", "https://a:8443", "abcd", 1000],
      ["replica-2", null, null, 1000],
    ]);
    for (const r of list) expect(r.heartbeatAgeMs).toBeGreaterThanOrEqual(0);
    await sleep(60);
    const aged = await store.listReplicas();
    expect(aged[0]!.heartbeatAgeMs).toBeGreaterThanOrEqual(50);
    expect(await store.removeReplica("replica-1", { ifOlderThanMs: 60_000 })).toBe(false);
    expect(await store.removeReplica("replica-1", { ifOlderThanMs: 10 })).toBe(true);
    expect(await store.removeReplica("replica-2")).toBe(true);
    expect(await store.listReplicas()).toEqual([]);
    // A replica that finds itself removed (declared lost) registers anew.
    expect(await store.heartbeatReplica(me)).toBe(true);
  });
});

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
