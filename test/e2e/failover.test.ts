/**
 * Client failover between two real brokers on one store: broker A is `gw broker start` in a
 * child process (SIGKILLed: a real crash), broker B the stack's own. One tunnel is given both
 * URLs, the way `gw connect --broker A --broker B` opens it. After A dies, new connections
 * through the same local port go to B; connections open on A end.
 *
 * Durations are measured and printed, never asserted.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BrokerClient } from "../../src/tunnel/broker-client.js";
import { BrokerPool, type BrokerPoolEvent } from "../../src/tunnel/broker-pool.js";
import { Tunnel, type TunnelEvent } from "../../src/tunnel/tunnel.js";
import { startGw } from "../helpers/cli.js";
import { pgbenchPath, runTool as run } from "../helpers/pgbench.js";
import { startBrokerProcess, type BrokerProcess } from "../helpers/second-broker.js";
import { startStack, type Stack } from "../helpers/stack.js";

let stack: Stack;
const children: BrokerProcess[] = [];
const cleanup: Array<() => unknown> = [];
const APP = "gw-failover";

beforeAll(async () => {
  stack = await startStack();
});

afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
  for (const c of children) await c.kill().catch(() => undefined);
  await stack?.stop();
});

/** A tunnel through A, then B, as `gw connect --broker A --broker B` opens one. */
async function tunnelThrough(a: BrokerProcess) {
  const pool = new BrokerPool([a.url, stack.broker.url], { caFile: stack.ca.caCert });
  const poolEvents: Array<BrokerPoolEvent & { at: number }> = [];
  pool.onChange((e) => poolEvents.push({ ...e, at: Date.now() }));
  const client = new BrokerClient({
    url: pool.urls,
    pool,
    token: stack.tokens.dba,
    caFile: stack.ca.caCert,
  });
  const conn = (await client.connections()).find((c) => c.name === "db-test")!;
  const events: TunnelEvent[] = [];
  const tunnel = await Tunnel.open({
    client,
    connection: conn,
    token: () => stack.tokens.dba,
    bind: "127.0.0.1",
    port: 0,
    onEvent: (e) => events.push(e),
  });
  cleanup.push(() => pool.close());
  cleanup.push(() => tunnel.close());
  return { pool, poolEvents, tunnel, events };
}

function pgClient(port: number): pg.Client {
  return new pg.Client({
    host: "127.0.0.1",
    port,
    user: "someone",
    database: stack.pg.database,
    application_name: APP,
    connectionTimeoutMillis: 20_000,
  });
}

async function query(port: number, sql: string): Promise<unknown[]> {
  const c = pgClient(port);
  c.on("error", () => undefined);
  try {
    await c.connect();
    return (await c.query(sql)).rows;
  } finally {
    await c.end().catch(() => undefined);
  }
}

const brokersOf = (events: TunnelEvent[]) =>
  events.flatMap((e) => (e.type === "stream_open" ? [e.broker] : []));

/** Waits for a condition that must become true (a safety net, not a timing check). */
async function until(cond: () => boolean, what: string, deadlineMs = 30_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`never happened: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("two brokers, one tunnel", () => {
  it("after broker A is killed, new connections through the same port go to B", async () => {
    const a = await startBrokerProcess(stack);
    children.push(a);
    const { tunnel, events, poolEvents } = await tunnelThrough(a);
    const port = tunnel.address.port;

    for (let i = 0; i < 3; i++) expect(await query(port, `select ${i} as n`)).toEqual([{ n: i }]);
    expect(brokersOf(events)).toEqual([a.url, a.url, a.url]);
    expect(stack.broker.liveSessions).toBe(0);

    // A connection left open on A: it must end when A dies.
    const held = pgClient(port);
    const heldErrors: Error[] = [];
    held.on("error", (e) => heldErrors.push(e));
    await held.connect();
    expect((await held.query("select 'held' as s")).rows).toEqual([{ s: "held" }]);

    // The clock runs from the SIGKILL; the first new connection starts once A is gone.
    const killedAt = performance.now();
    await a.kill();
    const goneMs = performance.now() - killedAt;
    let attempts = 0;
    let rows: unknown[] | null = null;
    while (rows === null) {
      attempts++;
      try {
        rows = await query(port, "select 'after' as s");
      } catch (err) {
        if (performance.now() - killedAt > 60_000) throw err;
      }
    }
    const failoverMs = performance.now() - killedAt;
    console.log(
      `failover: a new connection through the tunnel answered ${failoverMs.toFixed(0)} ms after ` +
        `SIGKILL of broker A (process gone after ${goneMs.toFixed(0)} ms; ${attempts} ` +
        `attempt${attempts === 1 ? "" : "s"}; goal < 2000 ms)`,
    );
    expect(rows).toEqual([{ s: "after" }]);
    // The first attempt succeeded: the local client saw no failure, only B.
    expect(attempts).toBe(1);
    expect(brokersOf(events).at(-1)).toBe(stack.broker.url);
    expect(events.filter((e) => e.type === "stream_refused")).toEqual([]);
    expect(poolEvents[0]).toMatchObject({
      type: "down",
      endpoint: expect.objectContaining({ url: a.url }),
      next: expect.objectContaining({ url: stack.broker.url }),
    });

    // The connection that was on A has ended; its client sees the close.
    await expect(held.query("select 1")).rejects.toThrow();
    await held.end().catch(() => undefined);

    // New connections keep going to B: B holds this one's session.
    await until(() => stack.broker.liveSessions === 0, "the earlier session on B ends");
    const onB = pgClient(port);
    await onB.connect();
    expect((await onB.query("select current_user as u")).rows).toEqual([{ u: stack.pg.user }]);
    expect(stack.broker.liveSessions).toBe(1);
    await onB.end();
    await until(() => stack.broker.liveSessions === 0, "the session on B ends");
    // Three queries and the held connection on A; the rest on B.
    expect(brokersOf(events).slice(4)).toEqual([stack.broker.url, stack.broker.url]);
  });

  it("pgbench -C keeps running through the tunnel while broker A is killed", async () => {
    // A new replica recovers the store's open sessions when it starts: none may be B's.
    await until(() => stack.broker.liveSessions === 0, "B has no sessions open");
    const a = await startBrokerProcess(stack);
    children.push(a);
    const { tunnel, events } = await tunnelThrough(a);
    const env = {
      PATH: process.env["PATH"] ?? "",
      LC_ALL: "C",
      PGHOST: "127.0.0.1",
      PGPORT: String(tunnel.address.port),
      PGUSER: stack.pg.user,
      PGDATABASE: stack.pg.database,
      PGSSLMODE: "disable",
      PGPASSFILE: "/nonexistent/pgpass",
      PGAPPNAME: APP,
      PGCONNECT_TIMEOUT: "20",
    };
    const bench = pgbenchPath(stack.pg.binDir);
    // The tables straight in the database: only the benchmark goes through gw.
    const init = await run(bench, ["-i", "-s", "1", "-q"], { ...env, ...stack.pg.psqlEnv() });
    expect(init.code, init.stderr).toBe(0);

    // Rounds of pgbench -C (a new connection per transaction). A client whose connection
    // breaks aborts for the rest of its run (pgbench 15), so rounds are run one after another
    // until two have completed after the kill. Each transaction is logged with its time (-l).
    const logDir = mkdtempSync(join(tmpdir(), "gw-failover-bench-"));
    cleanup.push(() => rmSync(logDir, { recursive: true, force: true }));
    const CLIENTS = 4;
    const PER_CLIENT = 25;
    let killedAt: number | null = null;
    let roundsAfterKill = 0;
    const rounds: Array<{ processed: number; failed: number; aborted: number }> = [];
    const benchLoop = (async () => {
      for (let round = 0; roundsAfterKill < 2 && round < 200; round++) {
        const startedAfterKill = killedAt !== null;
        const r = await run(
          bench,
          [
            "-C",
            "-n",
            "-c",
            String(CLIENTS),
            "-j",
            "2",
            "-t",
            String(PER_CLIENT),
            "-l",
            `--log-prefix=${join(logDir, `r${round}`)}`,
          ],
          env,
        );
        const processed = Number(/actually processed: (\d+)/.exec(r.stdout)?.[1] ?? 0);
        const failed = Number(/number of failed transactions: (\d+)/.exec(r.stdout)?.[1] ?? 0);
        const aborted = r.stderr.match(/client \d+ aborted/g)?.length ?? 0;
        rounds.push({ processed, failed, aborted });
        if (startedAfterKill) roundsAfterKill++;
      }
    })();

    // Kill A in the middle of the second round (going by the streams the tunnel opened).
    const perRound = CLIENTS * PER_CLIENT;
    await until(() => tunnel.stats.streamsTotal > perRound + perRound / 2, "round 2 runs");
    killedAt = Date.now();
    await a.kill();
    await benchLoop;

    // Every transaction pgbench logged, with when it ended (epoch seconds and microseconds).
    const ends: number[] = [];
    for (const f of readdirSync(logDir)) {
      for (const line of readFileSync(join(logDir, f), "utf8").split("\n")) {
        const cols = line.trim().split(/\s+/);
        if (cols.length >= 6 && /^\d+$/.test(cols[2]!))
          ends.push(Number(cols[4]) * 1000 + Number(cols[5]) / 1000);
      }
    }
    const after = ends.filter((t) => t > killedAt!).length;
    const expected = rounds.length * perRound;
    const done = rounds.reduce((n, r) => n + r.processed, 0);
    const aborted = rounds.reduce((n, r) => n + r.aborted, 0);
    console.log(
      `pgbench -C -c ${CLIENTS} through the tunnel: ${rounds.length} rounds of ${perRound} ` +
        `transactions, ${done}/${expected} processed. The kill broke ${aborted} connection(s) ` +
        `on A mid-transaction (pgbench 15 then stops that client for the round: ` +
        `${expected - done - aborted} more not run); ` +
        `${rounds.reduce((n, r) => n + r.failed, 0)} reported failed; ` +
        `${after} transactions completed after the kill, all through B`,
    );
    // Progress after the kill, all of it through B.
    expect(after).toBeGreaterThan(0);
    expect(rounds.slice(-2).every((r) => r.processed === perRound && r.aborted === 0)).toBe(true);
    const lastStreams = brokersOf(events).slice(-perRound);
    expect(new Set(lastStreams)).toEqual(new Set([stack.broker.url]));
    // The store agrees: sessions were recorded after A died, so by B.
    const sessions = await stack.store.listSessions({ limit: 10_000 });
    const later = sessions.filter((s) => s.applicationName === APP && s.startedAt > killedAt!);
    expect(later.length).toBeGreaterThanOrEqual(2 * perRound);
  });

  it("gw connect --broker A --broker B: --json lists both; the log says when it fails over", async () => {
    await until(() => stack.broker.liveSessions === 0, "B has no sessions open");
    const a = await startBrokerProcess(stack);
    children.push(a);
    const gw = await startGw<{
      broker: string;
      brokers: Array<{ url: string; address: string | null; up: boolean }>;
      listen: { port: number };
    }>(
      [
        "connect",
        "db-test",
        "--port",
        "0",
        "--json",
        "--broker",
        a.url,
        "--broker",
        stack.broker.url,
        "--ca-file",
        stack.ca.caCert,
      ],
      { env: { GW_TOKEN: stack.tokens.dba } },
    );
    cleanup.push(() => gw.stop("SIGKILL"));
    expect(gw.json.broker).toBe(a.url);
    expect(gw.json.brokers).toEqual([
      { url: a.url, address: null, up: true },
      { url: stack.broker.url, address: null, up: true },
    ]);
    const port = gw.json.listen.port;
    expect(await query(port, "select 1 as n")).toEqual([{ n: 1 }]);

    await a.kill();
    expect(await query(port, "select 2 as n")).toEqual([{ n: 2 }]);
    await until(() => /is unreachable/.test(gw.stderr()), "the failover is logged");
    expect(gw.stderr()).toMatch(
      new RegExp(
        `broker ${a.url.replace(/\./g, "\\.")} is unreachable \\((ECONNREFUSED|ECONNRESET)\\); ` +
          `using ${stack.broker.url.replace(/\./g, "\\.")}`,
      ),
    );
    const res = await gw.stop("SIGINT");
    expect(res.code, res.stderr).toBe(0);
  });
});
