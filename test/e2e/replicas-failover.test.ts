/**
 * Issue 9's failover, whole: two replicas on one PostgreSQL store (A a real `gw broker start`
 * process, B in this process), one tunnel given both URLs, pgbench -C (a new connection per
 * transaction) running through it, and A SIGKILLed in the middle. New connections go through
 * B (the time from the kill to the first one that answers is measured and printed, never
 * asserted), pgbench keeps making progress, and once B has swept A no session record is left
 * open: A's sessions that were cut off are ended as broker_lost.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresStore } from "../../src/store/postgres-store.js";
import { BrokerClient } from "../../src/tunnel/broker-client.js";
import { BrokerPool } from "../../src/tunnel/broker-pool.js";
import { Tunnel, type TunnelEvent } from "../../src/tunnel/tunnel.js";
import {
  startReplicaStack,
  type ChildReplica,
  type InProcessReplica,
  type ReplicaStack,
} from "../helpers/replicas.js";
import { pgbenchPath, runTool as run } from "../helpers/pgbench.js";

const APP = "gw-replica-failover";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("a replica killed during a pgbench run through gw", () => {
  let stack: ReplicaStack;
  let a: ChildReplica;
  let b: InProcessReplica;
  let store: PostgresStore;
  let pool: BrokerPool;
  let tunnel: Tunnel;
  const events: TunnelEvent[] = [];

  beforeAll(async () => {
    stack = await startReplicaStack();
    a = await stack.startChild();
    b = await stack.startInProcess({
      replicas: { heartbeatMs: 1000, lostAfterMs: 6000, sweepMs: 250 },
    });
    store = await PostgresStore.open(stack.storeUrl);
    // The CLI's own pool and tunnel, as `gw connect --broker A --broker B` opens them.
    const urls = [a.url, b.broker.url].map((u) => u.replace("127.0.0.1", "localhost"));
    pool = new BrokerPool(urls, { caFile: stack.ca.caCert });
    const client = new BrokerClient({
      url: pool.urls,
      pool,
      token: stack.tokens.dba,
      caFile: stack.ca.caCert,
    });
    tunnel = await Tunnel.open({
      client,
      connection: { name: "db-test", type: "postgres", description: null, database: "app" },
      token: () => stack.tokens.dba,
      bind: "127.0.0.1",
      port: 0,
      onEvent: (e) => events.push(e),
    });
  });

  afterAll(async () => {
    await tunnel?.close();
    pool?.close();
    await store?.close();
    await stack?.stop();
  });

  it("new connections go through B, pgbench goes on, and no session is left open", async () => {
    const bench = pgbenchPath(stack.pg.binDir);
    const env = {
      PATH: process.env["PATH"] ?? "",
      LC_ALL: "C",
      PGHOST: "127.0.0.1",
      PGPORT: String(tunnel.address.port),
      PGUSER: "someone",
      PGDATABASE: stack.pg.database,
      PGSSLMODE: "disable",
      PGPASSFILE: "/nonexistent/pgpass",
      PGAPPNAME: APP,
      PGCONNECT_TIMEOUT: "20",
    };
    const init = await run(bench, ["-i", "-s", "1", "-q"], { ...env, ...stack.pg.psqlEnv() });
    expect(init.code, init.stderr).toBe(0);

    let killedAt: number | null = null;
    let roundsAfterKill = 0;
    const processed: number[] = [];
    const loop = (async () => {
      for (let round = 0; roundsAfterKill < 2 && round < 200; round++) {
        const afterKill = killedAt !== null;
        const r = await run(bench, ["-C", "-n", "-c", "4", "-j", "2", "-t", "25"], env);
        processed.push(Number(/actually processed: (\d+)/.exec(r.stdout)?.[1] ?? 0));
        if (afterKill) roundsAfterKill++;
      }
    })();

    // Kill A in the middle of the second round.
    while (tunnel.stats.streamsTotal < 150) await sleep(5);
    expect(
      events.some((e) => e.type === "stream_open" && e.broker.includes(`:${new URL(a.url).port}`)),
    ).toBe(true);
    killedAt = Date.now();
    const exit = await a.stop("SIGKILL");
    expect(exit.signal).toBe("SIGKILL");

    // A probe of its own: the first new connection through the same port that answers.
    let answeredAt: number | null = null;
    for (let i = 0; i < 400 && answeredAt === null; i++) {
      const c = new pg.Client({
        host: "127.0.0.1",
        port: tunnel.address.port,
        user: "someone",
        database: stack.pg.database,
        application_name: `${APP}-probe`,
        connectionTimeoutMillis: 20_000,
      });
      c.on("error", () => undefined);
      try {
        await c.connect();
        await c.query("select 1");
        answeredAt = Date.now();
      } catch {
        await sleep(20);
      } finally {
        await c.end().catch(() => undefined);
      }
    }
    expect(answeredAt).not.toBeNull();
    console.log(`first new connection answered ${answeredAt! - killedAt} ms after SIGKILL of A`);
    await loop;

    // pgbench went on after the kill, all through B.
    expect(processed.slice(-2)).toEqual([100, 100]);
    const b_ = b.broker.url.replace("127.0.0.1", "localhost");
    const last = events.filter((e) => e.type === "stream_open").slice(-100);
    expect(new Set(last.map((e) => (e as { broker: string }).broker))).toEqual(new Set([b_]));

    // Once B has swept A, nothing is left open, and what A had open says why it ended.
    const swept = Date.now();
    let open = await store.listSessions({ open: true, limit: 1000 });
    while (open.length > 0 && Date.now() - swept < 30_000) {
      await sleep(100);
      open = await store.listSessions({ open: true, limit: 1000 });
    }
    console.log(`no session open ${Date.now() - killedAt} ms after SIGKILL of A`);
    expect(open).toEqual([]);
    const all = await store.listSessions({ limit: 1000, since: killedAt - 60_000 });
    const lost = all.filter((s) => s.endReason === "broker_lost");
    expect(lost.length).toBeGreaterThan(0);
    expect(lost.every((s) => s.brokerId !== b.broker.brokerId)).toBe(true);
  });
});
