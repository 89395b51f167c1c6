/**
 * The workloads: pgbench runs (TPS) and a bulk COPY out through psql (MB/s).
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { run, track } from "./proc.js";

/** One place clients can connect to: the server itself, pgbouncer, or a gw tunnel. */
export interface Target {
  name: string;
  env: NodeJS.ProcessEnv;
  /** Proxy processes whose CPU time is charged to this target (none for direct). */
  proxyPids: Record<string, number>;
}

export interface Sample {
  /** TPS or MB/s; NaN when the run failed. */
  value: number;
  /** Transactions (pgbench) or megabytes (COPY): what proxy CPU is divided by. */
  units: number;
  seconds: number;
  /** pgbench's own words for what its tps covers, e.g. "without initial connection time". */
  note?: string;
  latencyMs?: number;
  failedTransactions?: number;
  error?: string;
  /** CPU seconds each proxy process used during the run. */
  proxyCpu?: Record<string, number>;
}

export interface Workload {
  name: string;
  title: string;
  unit: "TPS" | "MB/s";
  /** What proxy CPU is reported per: "txn" or "MB". */
  per: "txn" | "MB";
  run(binDir: string, target: Target, durationS: number): Promise<Sample>;
}

function pgbench(name: string, title: string, args: string[]): Workload {
  return {
    name,
    title,
    unit: "TPS",
    per: "txn",
    async run(binDir, target, durationS) {
      const argv = [...args, "-T", String(durationS)];
      const r = await run(join(binDir, "pgbench"), argv, { env: target.env });
      return parsePgbench(
        r.stdout,
        r.code === 0 ? undefined : `pgbench exited ${r.code}: ${lastLines(r.stderr)}`,
      );
    },
  };
}

const lastLines = (s: string, n = 3) => s.trim().split("\n").slice(-n).join(" | ");

/** Reads pgbench's summary; the tps line says whether connection time is included. */
export function parsePgbench(out: string, error?: string): Sample {
  const num = (re: RegExp) => {
    const m = re.exec(out);
    return m ? Number(m[1]) : undefined;
  };
  const tps = /^tps = ([\d.]+) \(([^)]*)\)/m.exec(out);
  const txns = num(/^number of transactions actually processed: (\d+)/m);
  const duration = num(/^duration: (\d+) s/m);
  const sample: Sample = {
    value: tps && !error ? Number(tps[1]) : NaN,
    units: txns ?? 0,
    seconds: duration ?? 0,
  };
  if (tps) sample.note = tps[2]!;
  const latency = num(/^latency average = ([\d.]+) ms/m);
  if (latency !== undefined) sample.latencyMs = latency;
  const failed = num(/^number of failed transactions: (\d+)/m);
  if (failed !== undefined) sample.failedTransactions = failed;
  if (error !== undefined || !tps)
    sample.error = error ?? `no tps line in pgbench output: ${lastLines(out)}`;
  return sample;
}

const COPY_SQL = "COPY (select g, md5(g::text) from generate_series(1,2000000) g) TO STDOUT";

/** One COPY through psql; resolves with the bytes psql wrote to stdout. */
function copyOnce(binDir: string, env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    const psql = track(
      spawn(join(binDir, "psql"), ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", COPY_SQL], {
        env,
        stdio: ["ignore", "pipe", "pipe"],
      }),
    );
    let bytes = 0;
    let stderr = "";
    psql.stdout.on("data", (c: Buffer) => (bytes += c.length));
    psql.stderr.on("data", (c: Buffer) => (stderr += c.toString("utf8")));
    psql.once("error", reject);
    psql.once("close", (code) =>
      code === 0 ? resolve(bytes) : reject(new Error(`psql exited ${code}: ${lastLines(stderr)}`)),
    );
  });
}

const copyOut: Workload = {
  name: "copy-out",
  title: "COPY 2M rows out (psql), MB/s",
  unit: "MB/s",
  per: "MB",
  /** Repeats the COPY until `durationS` has passed (at least once); MB/s over all of them. */
  async run(binDir, target, durationS) {
    const start = process.hrtime.bigint();
    const elapsed = () => Number(process.hrtime.bigint() - start) / 1e9;
    let bytes = 0;
    let copies = 0;
    try {
      do {
        bytes += await copyOnce(binDir, target.env);
        copies++;
      } while (elapsed() < durationS);
    } catch (err) {
      return { value: NaN, units: bytes / 1e6, seconds: elapsed(), error: (err as Error).message };
    }
    const seconds = elapsed();
    return {
      value: bytes / 1e6 / seconds,
      units: bytes / 1e6,
      seconds,
      note: `${copies} ${copies === 1 ? "copy" : "copies"}`,
    };
  },
};

export const WORKLOADS: Workload[] = [
  pgbench("select-c8", "pgbench -S -c 8 -j 2 (select-only), TPS", [
    "-n",
    "-S",
    "-c",
    "8",
    "-j",
    "2",
  ]),
  pgbench("select-c1", "pgbench -S -c 1 (one client), TPS", ["-n", "-S", "-c", "1"]),
  pgbench("select-connect-c4", "pgbench -S -C -c 4 (connect per txn), TPS", [
    "-n",
    "-S",
    "-C",
    "-c",
    "4",
  ]),
  pgbench("tpcb-c8", "pgbench -c 8 -j 2 (tpcb-like), TPS", ["-c", "8", "-j", "2"]),
  copyOut,
];
