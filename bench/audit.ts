/**
 * `npm run build && node dist/bench/audit.js`: what recording costs, audit strict vs async.
 *
 * Drives the broker's recorder (src/broker/recorder.ts) exactly as a protocol session does —
 * beforeStatement (awaited when it returns a promise, as the session waits), then the
 * completion (not awaited, as the session does not wait for it) — on the real SQLite store in
 * a file on this machine's disk, with N concurrent sessions, each running statements back to
 * back for a fixed time. No database and no network: this isolates the recording path, which
 * is what strict changes. Reports statements/s, and for strict the transactions per second and
 * statements per transaction (group commit at work).
 *
 *   --sessions 1,8,32   concurrent sessions (default 1,8,32)
 *   --seconds 3         per run (default 3)
 *   --rounds 3          interleaved runs per mode and concurrency; the median is reported
 *   --dir PATH          where the database goes (default: a temp dir under the current dir,
 *                       so it is on a real disk rather than a tmpfs)
 *   --json PATH         also write the results as JSON
 *   --thread both       where SQLite runs: same (the broker's thread), worker, or both
 *
 * "main µs/st" is the broker thread's busy time per statement (event-loop utilisation): what
 * recording takes from relaying sessions. With the store on a worker thread, SQLite's share
 * moves there; the worker's own cost shows as statements/s when it is the bottleneck.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { AuditSigner } from "../src/audit/signer.js";
import { WriteGate, type AuditMode } from "../src/audit/service.js";
import { createLogger } from "../src/broker/logger.js";
import { recordingHooks } from "../src/broker/recorder.js";
import { SqliteStore } from "../src/store/sqlite-store.js";
import { ThreadedStore } from "../src/store/threaded-store.js";
import type { SessionStore } from "../src/store/types.js";
import { availableParallelism, cpus, release } from "node:os";
import { median, table } from "./lib/report.js";

type Mode = AuditMode;
type Thread = "same" | "worker";

interface Result {
  mode: Mode;
  thread: Thread;
  mainUsPerStatement: number;
  sessions: number;
  statementsPerSecond: number;
  batchesPerSecond: number;
  durableBatchesPerSecond: number;
  p50Ms: number;
  p99Ms: number;
}

const signer = AuditSigner.ephemeral();
const log = createLogger({ level: "error", write: () => undefined });
let sessionNo = 0;

async function runOnce(
  dir: string,
  mode: Mode,
  thread: Thread,
  sessions: number,
  seconds: number,
): Promise<Result> {
  const file = join(dir, `bench-${mode}-${thread}-${sessions}-${++sessionNo}.db`);
  const sqlite = thread === "same" ? SqliteStore.open(file) : null;
  const store: SessionStore = sqlite ?? (await ThreadedStore.open(file));
  const stats = () => sqlite?.stats ?? { batches: NaN, durableBatches: NaN };
  const gate = new WriteGate(10_000);
  const deadline = performance.now() + seconds * 1000;
  const latencies: number[] = [];
  let statements = 0;
  const before = stats();
  const elu0 = performance.eventLoopUtilization();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: sessions }, async (_, i) => {
      const id = `bench-${sessionNo}-${i}`;
      const hooks = recordingHooks({
        store,
        sessionId: id,
        identity: {
          oid: `oid-${i}`,
          tid: undefined,
          name: `bench ${i}`,
          upn: undefined,
          type: "user",
          groups: [],
          roles: [],
          expiresAt: 0,
        },
        connection: "bench",
        clientAddress: null,
        log,
        audit: {
          mode,
          preview: { rows: 20, kib: 16 },
          signer,
          gate,
          now: Date.now,
        },
      });
      await hooks.onStart({ applicationName: "bench", startup: new Map() });
      let n = 0;
      const pending: Promise<void>[] = [];
      while (performance.now() < deadline) {
        const sql = `SELECT abalance FROM pgbench_accounts WHERE aid = ${(n * 7919 + i) % 1_000_000}`;
        const s0 = performance.now();
        const wait = hooks.beforeStatement({ sql, protocol: "extended" });
        if (wait) await wait;
        const at = Date.now();
        const done = hooks.onStatement({
          at,
          durationMs: 0.05,
          sql,
          protocol: "extended",
          commandTag: "SELECT 1",
          rows: 1,
          errorCode: null,
          errorMessage: null,
          decision: "allowed",
          preview: { columns: ["abalance"], rows: [["0"]], truncated: false },
        } as Parameters<typeof hooks.onStatement>[0]);
        if (done) pending.push(done);
        // The next statement comes when this one's answer has gone back: one event-loop turn.
        await new Promise((r) => setImmediate(r));
        latencies.push(performance.now() - s0);
        n++;
        if (pending.length > 256) await Promise.all(pending.splice(0));
      }
      await Promise.all(pending);
      statements += n;
      hooks.onEnd({
        reason: "client_closed",
        detail: null,
        bytesIn: 0,
        bytesOut: 0,
        statements: n,
      });
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  const busyMs = performance.eventLoopUtilization(elu0).active;
  const after = stats();
  await store.close();
  latencies.sort((a, b) => a - b);
  return {
    mode,
    thread,
    mainUsPerStatement: (busyMs * 1000) / Math.max(1, statements),
    sessions,
    statementsPerSecond: statements / elapsed,
    batchesPerSecond: (after.batches - before.batches) / elapsed,
    durableBatchesPerSecond: (after.durableBatches - before.durableBatches) / elapsed,
    p50Ms: latencies[Math.floor(latencies.length * 0.5)] ?? NaN,
    p99Ms: latencies[Math.floor(latencies.length * 0.99)] ?? NaN,
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      sessions: { type: "string", default: "1,8,32" },
      seconds: { type: "string", default: "3" },
      rounds: { type: "string", default: "3" },
      dir: { type: "string" },
      json: { type: "string" },
      thread: { type: "string", default: "both" },
    },
  });
  const threads: Thread[] =
    values.thread === "same"
      ? ["same"]
      : values.thread === "worker"
        ? ["worker"]
        : ["same", "worker"];
  const concurrency = values.sessions.split(",").map((s) => Math.max(1, Number(s) || 1));
  const seconds = Math.max(0.5, Number(values.seconds) || 3);
  const rounds = Math.max(1, Number(values.rounds) || 3);
  const dir = values.dir ?? mkdtempSync(join(resolve("."), ".bench-audit-"));
  const modes: Mode[] = ["async", "strict"];
  const all: Result[] = [];
  try {
    for (let r = 0; r < rounds; r++) {
      for (const sessions of concurrency) {
        for (const mode of modes) {
          for (const thread of threads) {
            const res = await runOnce(dir, mode, thread, sessions, seconds);
            all.push(res);
            process.stderr.write(
              `round ${r + 1}/${rounds} ${mode} ${thread} x${sessions}: ${Math.round(res.statementsPerSecond)} statements/s, ${res.mainUsPerStatement.toFixed(1)} µs/st on the broker thread\n`,
            );
          }
        }
      }
    }
  } finally {
    if (!values.dir) rmSync(dir, { recursive: true, force: true });
  }
  const summary = concurrency.flatMap((sessions) =>
    modes.flatMap((mode) =>
      threads.map((thread) => {
        const runs = all.filter(
          (x) => x.mode === mode && x.sessions === sessions && x.thread === thread,
        );
        const m = (k: keyof Result) => median(runs.map((x) => x[k] as number));
        return {
          mode,
          thread,
          mainUsPerStatement: m("mainUsPerStatement"),
          sessions,
          statementsPerSecond: m("statementsPerSecond"),
          batchesPerSecond: m("batchesPerSecond"),
          durableBatchesPerSecond: m("durableBatchesPerSecond"),
          p50Ms: m("p50Ms"),
          p99Ms: m("p99Ms"),
        };
      }),
    ),
  );
  const rows = summary.map((s) => {
    const async_ = summary.find(
      (x) => x.mode === "async" && x.sessions === s.sessions && x.thread === s.thread,
    )!;
    return [
      `${s.mode} ${s.thread} x${s.sessions}`,
      Math.round(s.statementsPerSecond).toLocaleString("en-US"),
      s.mainUsPerStatement.toFixed(1),
      s.mode === "strict"
        ? `${(s.statementsPerSecond / async_.statementsPerSecond).toFixed(2)}x`
        : "1.00x",
      Number.isNaN(s.batchesPerSecond)
        ? "—"
        : Math.round(s.batchesPerSecond).toLocaleString("en-US"),
      s.durableBatchesPerSecond > 0
        ? (s.statementsPerSecond / s.durableBatchesPerSecond).toFixed(1)
        : "—",
      s.p50Ms.toFixed(3),
      s.p99Ms.toFixed(3),
    ];
  });
  process.stdout.write(
    "\n" +
      table(
        [
          "audit thread x sessions",
          "statements/s",
          "main µs/st",
          "vs async",
          "commits/s",
          "stmts/sync",
          "p50 ms",
          "p99 ms",
        ],
        rows,
      ) +
      "\n\n" +
      `median of ${rounds} run(s) of ${seconds}s each; SQLite in ${values.dir ?? "a temp dir under ."}\n`,
  );
  if (values.json) {
    writeFileSync(
      values.json,
      JSON.stringify(
        {
          machine: {
            nproc: availableParallelism(),
            cpu: cpus()[0]?.model ?? "unknown",
            kernel: release(),
            node: process.version,
          },
          rounds,
          seconds,
          summary,
          runs: all,
        },
        null,
        2,
      ),
    );
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
