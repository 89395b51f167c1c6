/**
 * The session's side of policy, with a scripted policy against a real PostgreSQL: refused
 * statements never reach the target and the client stays in step (simple and extended
 * protocol, pipelined batches); held statements wait, then run or are refused, in order.
 */
import { afterAll, beforeAll, expect, test } from "vitest";
import { createServer, type Server, type Socket } from "node:net";
import pg from "pg";
import { CancelRegistry } from "../../../src/protocols/postgres/cancel-registry.js";
import {
  PostgresSession,
  type ClientChannel,
  type HoldOutcome,
  type SessionPolicy,
  type Verdict,
} from "../../../src/protocols/postgres/session.js";
import type { CompletedStatement } from "../../../src/protocols/postgres/statement-tracker.js";
import { startPostgres, type PgServer } from "../../helpers/postgres.js";

class SocketChannel implements ClientChannel {
  constructor(private readonly s: Socket) {}
  send(data: Buffer): void {
    if (!this.s.destroyed) this.s.write(data);
  }
  get congested(): boolean {
    return this.s.writableLength > 1 << 20;
  }
  onDrain(cb: () => void): void {
    this.s.on("drain", cb);
  }
  pause(): void {
    this.s.pause();
  }
  resume(): void {
    this.s.resume();
  }
  close(): void {
    this.s.end();
  }
  get remoteAddress(): string | null {
    return this.s.remoteAddress ?? null;
  }
}

let db: PgServer;
let server: Server;
let port: number;
const recorded: CompletedStatement[] = [];
/** Pending holds, resolved by the test. */
const holds: { sql: string; resolve: (o: HoldOutcome) => void; signal: AbortSignal }[] = [];

const policy: SessionPolicy = {
  decide(sql: string): Verdict {
    if (/forbidden/i.test(sql)) return { action: "block", reason: "gw: forbidden by test policy" };
    if (/risky/i.test(sql)) return { action: "hold", reason: "needs a human" };
    return { action: "allow" };
  },
  decideFunctionCall: () => ({ action: "block", reason: "gw: no fast-path calls" }),
  hold(sql, notify, signal) {
    notify(`gw: waiting for approval of ${sql.slice(0, 20)}`);
    return new Promise((resolve) => holds.push({ sql, resolve, signal }));
  },
};

async function waitForHold(): Promise<(typeof holds)[number]> {
  for (let i = 0; i < 200 && holds.length === 0; i++) await new Promise((r) => setTimeout(r, 25));
  const h = holds.shift();
  if (!h) throw new Error("no statement was held");
  return h;
}

beforeAll(async () => {
  db = await startPostgres();
  const setup = new pg.Client({ connectionString: db.url });
  await setup.connect();
  await setup.query("create table events (id int primary key, note text)");
  await setup.end();
  const cancels = new CancelRegistry();
  server = createServer((s) => {
    const session = new PostgresSession(new SocketChannel(s), {
      target: {
        name: "t",
        host: db.host,
        port: db.port,
        database: db.database,
        user: db.user,
        password: db.password,
        tls: "disable",
        connectTimeoutMs: 5000,
      },
      ownerOid: "o",
      maxMessageBytes: 1 << 20,
      maxStartupBytes: 10_000,
      cancels,
      policy,
      hooks: {
        onStart: async () => undefined,
        onStatement: (st) => void recorded.push(st),
        onEnd: () => undefined,
        log: () => undefined,
      },
    });
    s.on("data", (c: Buffer) => session.onClientData(c));
    s.on("close", () => session.onClientClosed());
    s.on("error", () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  port = (server.address() as { port: number }).port;
});

afterAll(async () => {
  server?.close();
  await db?.stop();
});

const client = async () => {
  const c = new pg.Client({ host: "127.0.0.1", port, database: "app", user: "x" });
  await c.connect();
  return c;
};

async function count(note: string): Promise<number> {
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  const r = await c.query("select count(*)::int as n from events where note = $1", [note]);
  await c.end();
  return r.rows[0].n as number;
}

test("a blocked simple query gets 42501, never runs, and the session goes on", async () => {
  const c = await client();
  const err = (await c
    .query("insert into events values (1, 'forbidden')")
    .catch((e: unknown) => e)) as pg.DatabaseError;
  expect(err.code).toBe("42501");
  expect(err.message).toBe("gw: forbidden by test policy");
  expect((await c.query("select 41 + 1 as n")).rows).toEqual([{ n: 42 }]);
  expect(await count("forbidden")).toBe(0);
  expect(recorded.some((r) => r.decision === "blocked" && r.sql.includes("forbidden"))).toBe(true);
  await c.end();
});

test("a blocked statement inside a transaction leaves the transaction usable as the target sees it", async () => {
  const c = await client();
  await c.query("begin");
  await c.query("insert into events values (2, 'in-tx')");
  await expect(c.query("select 'forbidden'")).rejects.toMatchObject({ code: "42501" });
  await c.query("commit");
  expect(await count("in-tx")).toBe(1);
  await c.end();
});

test("a blocked extended-protocol statement: the batch is refused, the client stays in step", async () => {
  const c = await client();
  const err = (await c
    .query({ text: "insert into events values ($1, 'forbidden')", values: [3] })
    .catch((e: unknown) => e)) as pg.DatabaseError;
  expect(err.code).toBe("42501");
  // Named statement too: refused at Parse, so a later execution finds nothing prepared.
  await expect(
    c.query({ name: "f1", text: "select $1::text as forbidden", values: ["x"] }),
  ).rejects.toMatchObject({ code: "42501" });
  expect((await c.query({ text: "select $1::int + 1 as n", values: [1] })).rows).toEqual([
    { n: 2 },
  ]);
  expect(await count("forbidden")).toBe(0);
  await c.end();
});

test("pipelined: allowed, blocked and allowed statements answer in order", async () => {
  const c = await client();
  const results = await Promise.allSettled([
    c.query({ text: "select $1::int as a", values: [1] }),
    c.query({ text: "select $1::text as forbidden", values: ["no"] }),
    c.query("select 3 as c"),
    c.query("select 'forbidden'"),
    c.query({ text: "select $1::int as e", values: [5] }),
  ]);
  expect(results.map((r) => r.status)).toEqual([
    "fulfilled",
    "rejected",
    "fulfilled",
    "rejected",
    "fulfilled",
  ]);
  expect((results[0] as PromiseFulfilledResult<pg.QueryResult>).value.rows).toEqual([{ a: 1 }]);
  expect((results[2] as PromiseFulfilledResult<pg.QueryResult>).value.rows).toEqual([{ c: 3 }]);
  expect((results[4] as PromiseFulfilledResult<pg.QueryResult>).value.rows).toEqual([{ e: 5 }]);
  await c.end();
});

test("a held statement waits, the client sees a notice, approval runs it in the same session", async () => {
  const c = await client();
  const notices: string[] = [];
  c.on("notice", (n) => notices.push(n.message ?? ""));
  const pid = (await c.query("select pg_backend_pid() as pid")).rows[0].pid;
  const q = c.query("insert into events values (10, 'risky') returning pg_backend_pid() as pid");
  const after = c.query("select 'after' as x"); // queued behind the held one
  const h = await waitForHold();
  expect(h.sql).toContain("risky");
  expect(await count("risky")).toBe(0);
  h.resolve({ action: "allow" });
  expect((await q).rows).toEqual([{ pid }]);
  expect((await after).rows).toEqual([{ x: "after" }]);
  expect(notices.some((n) => n.startsWith("gw: waiting for approval"))).toBe(true);
  expect(recorded.some((r) => r.decision === "approved" && r.sql.includes("risky"))).toBe(true);
  await c.end();
});

test("a denied held statement (extended) is refused with the reason; the session still works", async () => {
  const c = await client();
  const q = c.query({ text: "insert into events values ($1, 'risky-denied')", values: [11] });
  const h = await waitForHold();
  h.resolve({ action: "deny", reason: "gw: request 7f3a denied by Dana: not now" });
  await expect(q).rejects.toMatchObject({
    code: "42501",
    message: "gw: request 7f3a denied by Dana: not now",
  });
  expect(await count("risky-denied")).toBe(0);
  expect((await c.query("select 1 as one")).rows).toEqual([{ one: 1 }]);
  await c.end();
});

test("a requester who disconnects while held aborts the wait; nothing runs", async () => {
  const c = await client();
  c.on("error", () => undefined);
  void c.query("insert into events values (12, 'risky-gone')").catch(() => undefined);
  const h = await waitForHold();
  await c.end().catch(() => undefined);
  for (let i = 0; i < 100 && !h.signal.aborted; i++) await new Promise((r) => setTimeout(r, 20));
  expect(h.signal.aborted).toBe(true);
  h.resolve({ action: "allow" });
  await new Promise((r) => setTimeout(r, 100));
  expect(await count("risky-gone")).toBe(0);
});
