/**
 * Two broker replicas sharing one PostgreSQL store: replica A runs as a real `gw broker start`
 * process, replica B in this process. A statement held on A (a client on A's tunnel) is
 * released by a decision made through B's HTTP API (LISTEN/NOTIFY), and B lists A's pending
 * request. Then A is SIGKILLed, with a session open and a statement held: B's sweep finds A
 * silent, ends A's session as broker_lost with a seal that verifies, and cancels A's request.
 */
import { createPublicKey } from "node:crypto";
import { readFileSync } from "node:fs";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifySessionIn } from "../../src/audit/service.js";
import { PostgresStore } from "../../src/store/postgres-store.js";
import type { ApprovalRequest, SessionRecord } from "../../src/store/types.js";
import {
  startReplicaStack,
  type ChildReplica,
  type InProcessReplica,
  type ReplicaStack,
} from "../helpers/replicas.js";
import { runGw } from "../helpers/cli.js";
import { GROUP_AUDIT, tunnelUrl } from "../helpers/stack.js";

const POLICY = {
  rules: [
    {
      name: "bulk-delete",
      match: { kind: ["delete"], where: "absent" },
      action: "hold",
      approvers: [`group:${GROUP_AUDIT}`],
      timeout: "60s",
      reason: "a DELETE without WHERE needs an auditor",
    },
  ],
};

/** B declares a replica lost after 6 s of silence; A heartbeats every 3 s (the default). */
const LOST_AFTER_MS = 6000;

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, ms = 30_000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const v = await probe();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe("broker replicas sharing a PostgreSQL store", () => {
  let stack: ReplicaStack;
  let a: ChildReplica;
  let b: InProcessReplica;
  let direct: pg.Client;
  let store: PostgresStore; // the test's own view of the shared store

  beforeAll(async () => {
    stack = await startReplicaStack({ policies: { approvals: POLICY }, policy: "approvals" });
    direct = new pg.Client({ connectionString: stack.pg.url });
    await direct.connect();
    await direct.query("create table t (id int primary key, note text)");
    await direct.query("insert into t select g, 'row ' || g from generate_series(1, 5) g");
    a = await stack.startChild();
    b = await stack.startInProcess({
      replicas: { heartbeatMs: 1000, lostAfterMs: LOST_AFTER_MS, sweepMs: 250 },
    });
    store = await PostgresStore.open(stack.storeUrl);
  });
  afterAll(async () => {
    await direct?.end().catch(() => undefined);
    await store?.close();
    await stack?.stop();
  });

  async function clientOnA(app: string): Promise<pg.Client> {
    const tunnel = await stack.openTunnel(a.url, stack.tokens.dba);
    const c = new pg.Client({
      connectionString: tunnelUrl(tunnel, stack.pg.database),
      application_name: app,
    });
    c.on("error", () => undefined);
    await c.connect();
    return c;
  }

  async function pendingOnB(sql: string): Promise<ApprovalRequest> {
    return waitFor("B to list the held statement", async () => {
      const r = await stack.api(b.broker.url, stack.tokens.auditor, "GET", "/v1/approvals");
      expect(r.status).toBe(200);
      return (r.json.approvals as ApprovalRequest[]).find((x) => x.sql === sql);
    });
  }

  it("registers both replicas in the store", async () => {
    const replicas = await store.listReplicas();
    expect(replicas.map((r) => r.id)).toContain(b.broker.brokerId);
    expect(replicas).toHaveLength(2);
    const keyIds = new Set(replicas.map((r) => r.keyId));
    expect(keyIds.size).toBe(1); // one signing key file for both
  });

  it("releases a statement held on A when it is approved through B, and B lists it", async () => {
    const c = await clientOnA("replica-e2e-release");
    try {
      const latencies: number[] = [];
      for (let i = 0; i < 10; i++) {
        await direct.query("insert into t values ($1, 'extra') on conflict do nothing", [100 + i]);
        const held = c.query("DELETE FROM t");
        const req = await pendingOnB("DELETE FROM t");
        const other = (await store.listReplicas()).find((r) => r.id !== b.broker.brokerId)!;
        expect(req.brokerId).toBe(other.id);
        if (i === 0) {
          // What gw approve and gw approvals read, through the real CLI, on B.
          const listed = await runGw(
            [
              "approvals",
              "list",
              "--json",
              "--broker",
              b.broker.url.replace("127.0.0.1", "localhost"),
              "--ca-file",
              stack.ca.caCert,
            ],
            { env: { GW_TOKEN: stack.tokens.auditor } },
          );
          expect(listed.code, listed.stderr).toBe(0);
          expect(listed.stdout).toContain(req.id);
        }
        const t0 = performance.now();
        const approved = await stack.api(
          b.broker.url,
          stack.tokens.auditor,
          "POST",
          `/v1/approvals/${req.id}/approve`,
          { statementHash: req.statementHash },
        );
        expect(approved.status).toBe(200);
        const tDecided = performance.now();
        const result = await held;
        const tReleased = performance.now();
        expect(result.command).toBe("DELETE");
        latencies.push(tReleased - t0);
        console.log(
          `cross-replica release #${i + 1}: approve POST on B → DELETE result on A's tunnel ` +
            `${(tReleased - t0).toFixed(1)} ms (after B answered: ${(tReleased - tDecided).toFixed(1)} ms)`,
        );
      }
      // Measured, not asserted (the goal is < 200 ms); the first includes cold code paths.
      const warm = latencies.slice(1).sort((x, y) => x - y);
      console.log(
        `cross-replica release latency: first ${latencies[0]!.toFixed(1)} ms; then median ` +
          `${warm[4]!.toFixed(1)} ms, max ${warm[8]!.toFixed(1)} ms (goal < 200 ms)`,
      );
      expect((await direct.query("select count(*)::int as n from t")).rows[0].n).toBe(0);
    } finally {
      await c.end().catch(() => undefined);
    }
  });

  it("when A is killed, B ends A's open session as broker_lost, sealed, and cancels its request", async () => {
    await direct.query("insert into t values (1, 'again')");
    const c = await clientOnA("replica-e2e-killed");
    await c.query("SELECT count(*) FROM t");
    const held = c.query("DELETE FROM t").catch((err: Error) => err);
    const req = await pendingOnB("DELETE FROM t");
    const [session] = await store.listSessions({ application: "replica-e2e-killed" });
    expect(session?.endedAt).toBeNull();
    const aId = session!.brokerId!;
    expect(aId).toBe(req.brokerId);
    expect(aId).not.toBe(b.broker.brokerId);

    const killed = Date.now();
    const exit = await a.stop("SIGKILL");
    expect(exit.signal).toBe("SIGKILL");
    expect(await held).toBeInstanceOf(Error); // the tunnel went with A

    const ended = await waitFor("B to seal A's session", async () => {
      const s = await store.getSession(session!.id);
      return s?.endedAt !== null ? (s as SessionRecord) : undefined;
    });
    console.log(`B swept the killed replica ${Date.now() - killed} ms after SIGKILL`);
    expect(ended.endReason).toBe("broker_lost");
    expect(ended.endDetail).toContain(`its broker replica ${aId} stopped sending heartbeats`);
    expect(ended.statementCount).toBe(1);
    expect(ended.seal).toMatchObject({ recovered: true });
    // gw audit verify's logic, with the public key every replica shares.
    const keyPem = readFileSync(stack.config.signingKey!.file + ".pub", "utf8");
    const verdict = await verifySessionIn(store, ended, createPublicKey(keyPem));
    expect(verdict.status).toBe("intact");
    expect((await b.broker.audit.verify(session!.id))?.status).toBe("intact");

    const cancelled = await waitFor("B to cancel A's request", async () => {
      const x = await store.getApproval(req.id);
      return x?.status === "pending" ? undefined : x;
    });
    expect(cancelled).toMatchObject({
      status: "cancelled",
      statusDetail: "the broker replica holding the statement was lost",
    });
    await waitFor("A's registration to go", async () =>
      (await store.listReplicas()).some((r) => r.id === aId) ? undefined : true,
    );
    expect(b.logs.some((l) => l.includes("a broker replica was lost"))).toBe(true);
    expect((await direct.query("select count(*)::int as n from t")).rows[0].n).toBe(1);
    await c.end().catch(() => undefined);
  });

  it("deregisters B on a clean shutdown", async () => {
    await b.stop();
    expect(await store.listReplicas()).toEqual([]);
  });
});
