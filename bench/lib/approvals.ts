/**
 * "approve → statement running": how long a held statement waits once someone approves it.
 *
 * A client on the policy tunnel sends `DELETE FROM <scratch>` (no WHERE: the bench policy holds
 * it). A second identity, an approver in the same group, follows the approvals feed (Server-Sent
 * Events, through the CLI's own ApprovalsClient, as `gw approve` does), sees the request appear
 * and POSTs the approval. Measured per request, on this process's monotonic clock:
 *
 * - hold → visible: DELETE sent until the request arrives on the approver's feed;
 * - approve → running: just before the approval is POSTed until the client's DELETE completes
 *   (the broker released it, PostgreSQL ran it, the answer came back through the tunnel);
 * - approve → answered: the same start until the approval POST itself is answered.
 *
 * Requests run one at a time, after one unmeasured warm-up (TLS sessions, caches).
 */
import { performance } from "node:perf_hooks";
import pg from "pg";
import {
  ApprovalsClient,
  type ApprovalFeedEvent,
  type ApprovalView,
} from "../../src/tunnel/approvals-client.js";
import { percentile } from "./report.js";

const TABLE = "gw_bench_approval";
const WARMUP = 1;
/** Longest wait for any one step: well under the policy's hold timeout. */
const STEP_TIMEOUT_MS = 30_000;

export interface ApprovalBenchOptions {
  brokerUrl: string;
  caFile: string;
  approverToken: string;
  /** The connection whose policy holds the DELETE, and who its requests come from. */
  connection: string;
  requesterOid: string;
  /** libpq environment (PGHOST, PGPORT, ...) of a tunnel without policy: setup and inserts. */
  plainEnv: NodeJS.ProcessEnv;
  /** libpq environment of the policy tunnel: the held DELETEs. */
  policyEnv: NodeJS.ProcessEnv;
  iterations: number;
}

export interface Spread {
  p50: number;
  p90: number;
  max: number;
}

export interface ApprovalSample {
  holdVisibleMs: number;
  approveToRunningMs: number;
  approveAnsweredMs: number;
}

export interface ApprovalResult {
  connection: string;
  iterations: number;
  warmup: number;
  /** Milliseconds; see the file comment. */
  holdVisibleMs: Spread;
  approveToRunningMs: Spread;
  approveAnsweredMs: Spread;
  samples: ApprovalSample[];
  /** Why the measurement stopped early; the samples taken before are kept. */
  error?: string;
}

export async function measureApprovals(o: ApprovalBenchOptions): Promise<ApprovalResult> {
  const samples: ApprovalSample[] = [];
  let error: string | undefined;
  const approver = new ApprovalsClient({
    url: o.brokerUrl,
    token: o.approverToken,
    caFile: o.caFile,
  });
  const feed = new CreatedFeed(
    (a) => a.connection === o.connection && a.requester.oid === o.requesterOid,
  );
  const stop = new AbortController();
  const watching = approver
    .watch({
      onEvent: (ev) => feed.onEvent(ev),
      onStatus: (s) => s.state === "live" && feed.live(),
      signal: stop.signal,
      fatal: () => true,
    })
    .catch((err: unknown) => feed.fail(err instanceof Error ? err : new Error(String(err))));
  const clients: pg.Client[] = [];
  try {
    const plain = await connect(o.plainEnv, clients);
    const held = await connect(o.policyEnv, clients);
    await plain.query(`DROP TABLE IF EXISTS ${TABLE}; CREATE TABLE ${TABLE} (id int)`);
    await within(feed.ready, "the approver's feed to open");
    for (let i = 0; i < WARMUP + o.iterations; i++) {
      const s = await once(plain, held, approver, feed);
      if (i >= WARMUP) samples.push(s);
    }
    await plain.query(`DROP TABLE ${TABLE}`);
  } catch (err) {
    error = err instanceof Error ? err.message : String(err);
  } finally {
    stop.abort();
    await watching;
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  }
  const spread = (k: keyof ApprovalSample): Spread => {
    const v = samples.map((s) => s[k]);
    return { p50: percentile(v, 50), p90: percentile(v, 90), max: percentile(v, 100) };
  };
  return {
    connection: o.connection,
    iterations: samples.length,
    warmup: WARMUP,
    holdVisibleMs: spread("holdVisibleMs"),
    approveToRunningMs: spread("approveToRunningMs"),
    approveAnsweredMs: spread("approveAnsweredMs"),
    samples,
    ...(error !== undefined ? { error } : {}),
  };
}

/** One request: insert a row, hold a DELETE of it, approve it, wait for it to run. */
async function once(
  plain: pg.Client,
  held: pg.Client,
  approver: ApprovalsClient,
  feed: CreatedFeed,
): Promise<ApprovalSample> {
  await plain.query(`INSERT INTO ${TABLE} VALUES (1)`);
  const sent = performance.now();
  let ran = NaN;
  const running = held.query(`DELETE FROM ${TABLE}`).then((r) => {
    ran = performance.now();
    return r;
  });
  const seen = await within(
    Promise.race([
      feed.next(),
      running.then(() => {
        throw new Error(`DELETE FROM ${TABLE} ran without being held: is the policy attached?`);
      }),
    ]),
    "the held DELETE to reach the approver's feed",
  );
  const t0 = performance.now();
  let answered = NaN;
  const [, result] = await within(
    Promise.all([
      approver.approve(seen.id, { reason: "gw bench" }).then(() => {
        answered = performance.now();
      }),
      running,
    ]),
    `the approved DELETE (request ${seen.id}) to run`,
  );
  if (result.rowCount !== 1)
    throw new Error(`the approved DELETE removed ${result.rowCount} rows, not 1`);
  return {
    holdVisibleMs: seen.at - sent,
    approveToRunningMs: ran - t0,
    approveAnsweredMs: answered - t0,
  };
}

async function connect(env: NodeJS.ProcessEnv, clients: pg.Client[]): Promise<pg.Client> {
  // No password: the tunnel signs in to the target with the broker's credentials.
  const c = new pg.Client({
    host: env.PGHOST,
    port: Number(env.PGPORT),
    user: env.PGUSER,
    database: env.PGDATABASE,
    ssl: false,
    application_name: "gw bench approvals",
  });
  // A connection that drops is reported by the query that was waiting on it.
  c.on("error", () => undefined);
  clients.push(c);
  await c.connect();
  return c;
}

interface Seen {
  id: string;
  /** performance.now() when the feed delivered it. */
  at: number;
}

/** The approver's feed, reduced to "created" events of matching requests, in order. */
class CreatedFeed {
  readonly ready: Promise<void>;
  private markReady!: () => void;
  private failReady!: (err: Error) => void;
  private readonly queued: Seen[] = [];
  private waiter: { resolve(s: Seen): void; reject(err: Error): void } | undefined;
  private failed: Error | undefined;

  constructor(private readonly matches: (a: ApprovalView) => boolean) {
    this.ready = new Promise<void>((resolve, reject) => {
      this.markReady = resolve;
      this.failReady = reject;
    });
    this.ready.catch(() => undefined); // reported by whoever awaits it
  }

  live(): void {
    this.markReady();
  }

  onEvent(ev: ApprovalFeedEvent): void {
    if (ev.type !== "created" || !this.matches(ev.approval)) return;
    const seen = { id: ev.approval.id, at: performance.now() };
    const w = this.waiter;
    this.waiter = undefined;
    if (w) w.resolve(seen);
    else this.queued.push(seen);
  }

  fail(err: Error): void {
    this.failed = new Error(`the approver's feed failed: ${err.message}`);
    this.failReady(this.failed);
    this.waiter?.reject(this.failed);
    this.waiter = undefined;
  }

  next(): Promise<Seen> {
    const s = this.queued.shift();
    if (s) return Promise.resolve(s);
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
  }
}

function within<T>(p: Promise<T>, what: string, ms = STEP_TIMEOUT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`waited ${ms / 1000} s for ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
