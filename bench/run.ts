/**
 * `npm run bench`: gw against PostgreSQL direct and pgbouncer, on one machine.
 *
 * Starts a throwaway PostgreSQL (pgbench scale 10), pgbouncer in session mode, and gw (local
 * Entra issuer, HTTPS broker, tunnel), then runs every workload against the three targets
 * interleaved (direct, pgbouncer, gw, direct, pgbouncer, gw, ...) so that drift in the
 * machine's speed hits them alike. Reports medians and gw's ratios. Then it times approvals:
 * a statement the policy holds, approved by a second identity, until it runs. See
 * bench/README.md.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { measureApprovals, type ApprovalResult } from "./lib/approvals.js";
import { startGw, GW_BIN, POLICY_CONNECTION, REQUESTER_OID } from "./lib/gw.js";
import { startPgbouncer } from "./lib/pgbouncer.js";
import { isRoot, startPostgres } from "./lib/postgres.js";
import {
  cleanup,
  cleanupOnSignals,
  cpuSeconds,
  isStopping,
  runOk,
  sleep,
  startWatchdog,
  type Service,
} from "./lib/proc.js";
import { fmtRatio, fmtValue, machineInfo, median, table } from "./lib/report.js";
import { makeCerts } from "./lib/tls.js";
import { WORKLOADS, type Sample, type Target, type Workload } from "./lib/workloads.js";

const SCALE = 10;
const MAX_CONNECTIONS = 200;
const POOL_SIZE = 20;
const PAUSE_MS = 1000;
const ROOT = resolve(dirname(GW_BIN), "..");
/** --only's name for the approvals measurement. */
const APPROVAL = "approval";
const APPROVAL_GOAL_P50_MS = 100;
/** --only's name for the recording cost (audit strict vs async: bench/audit.ts). */
const AUDIT = "audit";

const USAGE = `Usage: npm run bench -- [options]

  --duration SECONDS   length of each run (default 15)
  --rounds N           runs per workload and target, interleaved (default 3)
  --only NAME,...      what to run: ${[...WORKLOADS.map((w) => w.name), APPROVAL, AUDIT].join(", ")}
  --approvals N        held statements to approve, one at a time (default 30; 0: none)
  --json PATH          also write the results here (they always go to bench/results/)
  --profile DIR        run the gw broker and tunnel with --cpu-prof; .cpuprofile files go to DIR
  -h, --help           this text`;

interface Options {
  duration: number;
  rounds: number;
  workloads: Workload[];
  /** Held statements to approve; 0 when the approvals measurement is not run. */
  approvals: number;
  /** Also measure recording: audit strict vs async (bench/audit.ts), after the rest. */
  audit: boolean;
  json: string | undefined;
  profile: string | undefined;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: "string", default: "15" },
      rounds: { type: "string", default: "3" },
      only: { type: "string" },
      approvals: { type: "string", default: "30" },
      json: { type: "string" },
      profile: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const duration = Number(values.duration);
  const rounds = Number(values.rounds);
  if (!Number.isInteger(duration) || duration < 1)
    throw new Error("--duration must be a whole number of seconds ≥ 1");
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error("--rounds must be an integer ≥ 1");
  let approvals = Number(values.approvals);
  if (!Number.isInteger(approvals) || approvals < 0)
    throw new Error("--approvals must be an integer ≥ 0");
  let workloads = WORKLOADS;
  let audit = true;
  if (values.only) {
    const names = values.only
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s !== "");
    const known = [...WORKLOADS.map((w) => w.name), APPROVAL, AUDIT];
    const unknown = names.filter((n) => !known.includes(n));
    if (unknown.length > 0)
      throw new Error(`unknown workload ${unknown.join(", ")}; known: ${known.join(", ")}`);
    workloads = WORKLOADS.filter((w) => names.includes(w.name));
    if (!names.includes(APPROVAL)) approvals = 0;
    audit = names.includes(AUDIT);
  }
  if (workloads.length === 0 && approvals === 0 && !audit) throw new Error("nothing to run");
  const profile = values.profile === undefined ? undefined : resolve(values.profile);
  return { duration, rounds, workloads, approvals, audit, json: values.json, profile };
}

const say = (msg: string) => process.stderr.write(`bench: ${msg}\n`);

interface WorkloadResult {
  name: string;
  title: string;
  unit: string;
  runs: ({ round: number; target: string } & Sample)[];
  median: Record<string, number>;
  ratios: { gwOverDirect: number; gwOverPgbouncer: number; policyOverGw: number };
  /** Median proxy CPU per transaction (or per MB), in microseconds, by process. */
  proxyCpuUs: Record<string, number>;
}

async function measure(w: Workload, binDir: string, t: Target, duration: number): Promise<Sample> {
  const before = Object.fromEntries(
    Object.entries(t.proxyPids).map(([k, pid]) => [k, cpuSeconds(pid)]),
  );
  const sample = await w.run(binDir, t, duration);
  const cpu: Record<string, number> = {};
  for (const [k, pid] of Object.entries(t.proxyPids)) {
    const a = before[k];
    const b = cpuSeconds(pid);
    if (a !== undefined && b !== undefined) cpu[k] = Math.round((b - a) * 1000) / 1000;
  }
  if (Object.keys(cpu).length > 0) sample.proxyCpu = cpu;
  return sample;
}

function summarize(w: Workload, runs: WorkloadResult["runs"], targets: Target[]): WorkloadResult {
  const med: Record<string, number> = {};
  for (const t of targets)
    med[t.name] = median(runs.filter((r) => r.target === t.name).map((r) => r.value));
  // CPU per unit, per run, then the median: µs per transaction or per MB.
  const cpu: Record<string, number> = {};
  const perUnit = (r: Sample, keys: string[]) =>
    r.proxyCpu && r.units > 0 && !r.error
      ? (keys.reduce((s, k) => s + (r.proxyCpu![k] ?? 0), 0) * 1e6) / r.units
      : NaN;
  for (const t of targets) {
    const keys = Object.keys(t.proxyPids);
    if (keys.length === 0) continue;
    const mine = runs.filter((r) => r.target === t.name);
    cpu[t.name] = median(mine.map((r) => perUnit(r, keys)));
    if (keys.length > 1) for (const k of keys) cpu[k] = median(mine.map((r) => perUnit(r, [k])));
  }
  return {
    name: w.name,
    title: w.title,
    unit: w.unit,
    runs,
    median: med,
    ratios: {
      gwOverDirect: med.gw! / med.direct!,
      gwOverPgbouncer: med.gw! / med.pgbouncer!,
      policyOverGw: med["gw+policy"]! / med.gw!,
    },
    proxyCpuUs: cpu,
  };
}

function printReport(
  results: WorkloadResult[],
  approvals: ApprovalResult | undefined,
  opts: Options,
): void {
  const out: string[] = [];
  if (results.length > 0) printWorkloads(out, results, opts);
  if (approvals) printApprovals(out, approvals);
  console.log(out.join("\n"));
}

function printWorkloads(out: string[], results: WorkloadResult[], opts: Options): void {
  const workloads = opts.workloads;
  out.push(
    `\ngw bench: medians of ${opts.rounds} interleaved run${opts.rounds > 1 ? "s" : ""}, ${opts.duration} s each\n`,
  );
  out.push(
    table(
      [
        "workload",
        "direct",
        "pgbouncer",
        "gw",
        "gw+policy",
        "gw÷direct",
        "gw÷pgbouncer",
        "policy÷gw",
      ],
      results.map((r) => [
        r.title,
        fmtValue(r.median.direct!),
        fmtValue(r.median.pgbouncer!),
        fmtValue(r.median.gw!),
        fmtValue(r.median["gw+policy"]!),
        fmtRatio(r.ratios.gwOverDirect),
        fmtRatio(r.ratios.gwOverPgbouncer),
        fmtRatio(r.ratios.policyOverGw),
      ]),
    ),
  );
  out.push("\nProxy CPU (user + system) per transaction, or per MB for COPY, in µs:\n");
  out.push(
    table(
      ["workload", "per", "pgbouncer", "gw total", "gw broker", "gw connect"],
      results.map((r, i) => {
        const c = (k: string) =>
          Number.isFinite(r.proxyCpuUs[k]) ? fmtValue(r.proxyCpuUs[k]!) : "n/a";
        return [
          r.name,
          workloads[i]!.per,
          c("pgbouncer"),
          c("gw"),
          c("gw broker"),
          c("gw connect"),
        ];
      }),
    ),
  );
  const failures = results.flatMap((r) =>
    r.runs
      .filter((x) => x.error)
      .map((x) => `  ${r.name} round ${x.round} ${x.target}: ${x.error}`),
  );
  if (failures.length > 0)
    out.push(`\nFailed runs (left out of the medians):\n${failures.join("\n")}`);
}

function printApprovals(out: string[], a: ApprovalResult): void {
  out.push(
    `\nApprovals: ${a.iterations} held statement${a.iterations === 1 ? "" : "s"} on ${a.connection}, one at a time, in ms` +
      ` (goal: approve → running p50 ≤ ${APPROVAL_GOAL_P50_MS} ms)\n`,
  );
  const row = (label: string, s: ApprovalResult["holdVisibleMs"]) => [
    label,
    fmtValue(s.p50),
    fmtValue(s.p90),
    fmtValue(s.max),
  ];
  out.push(
    table(
      ["measure", "p50", "p90", "max"],
      [
        row("approve → statement running", a.approveToRunningMs),
        row("approve → POST answered", a.approveAnsweredMs),
        row("hold → visible to approver", a.holdVisibleMs),
      ],
    ),
  );
  if (a.error) out.push(`\nApprovals stopped early: ${a.error}`);
}

async function main(): Promise<number> {
  const opts = parseOptions(process.argv.slice(2));
  cleanupOnSignals();
  const startedAt = new Date();
  // /tmp when root: the postgres user must be able to reach its dirs inside.
  const base = mkdtempSync(join(isRoot() ? "/tmp" : tmpdir(), "gw-bench-"));
  chmodSync(base, 0o755);
  startWatchdog(base);

  say(`PostgreSQL: initdb and start (temp dir ${base})`);
  const pg = await startPostgres(base, { maxConnections: MAX_CONNECTIONS });
  const directEnv = { ...pg.clientEnv(), PGPASSWORD: pg.password };
  // The approvals measurement alone needs no pgbench tables.
  const pgbenchData = opts.workloads.length > 0;
  say(
    `PostgreSQL ${pg.version} on port ${pg.port}${pgbenchData ? `; pgbench -i -s ${SCALE}` : ""}`,
  );
  if (pgbenchData) {
    await runOk(join(pg.binDir, "pgbench"), ["-i", "-q", "-s", String(SCALE)], { env: directEnv });
    await runOk(join(pg.binDir, "psql"), ["-X", "-q", "-c", "VACUUM ANALYZE"], { env: directEnv });
  }

  const bouncer = await startPgbouncer(base, pg, POOL_SIZE);
  say(`${bouncer.version} (session mode) on port ${bouncer.port}`);

  const certs = makeCerts(join(base, "tls"));
  if (opts.profile) mkdirSync(opts.profile, { recursive: true });
  const gw = await startGw(base, pg, certs, opts.profile);
  say(`gw broker at ${gw.brokerUrl}, tunnel on port ${gw.port}`);

  const targets: Target[] = [
    { name: "direct", env: directEnv, proxyPids: {} },
    {
      name: "pgbouncer",
      env: { ...pg.clientEnv(bouncer.port), PGPASSWORD: pg.password },
      proxyPids: { pgbouncer: bouncer.service.pid },
    },
    // No password: the broker signs in to the target with its own credentials.
    {
      name: "gw",
      env: pg.clientEnv(gw.port),
      proxyPids: { "gw broker": gw.broker.pid, "gw connect": gw.tunnel.pid },
    },
    {
      name: "gw+policy",
      env: pg.clientEnv(gw.policyPort),
      proxyPids: { "gw+policy broker": gw.broker.pid, "gw+policy connect": gw.policyTunnel.pid },
    },
  ];
  for (const t of pgbenchData ? targets : []) {
    const n = await runOk(
      join(pg.binDir, "psql"),
      ["-X", "-At", "-c", "select count(*) from pgbench_accounts"],
      {
        env: t.env,
      },
    );
    if (Number(n) !== SCALE * 100_000)
      throw new Error(`${t.name}: pgbench_accounts has ${n.trim()} rows`);
  }
  const services: Service[] = [pg.service, bouncer.service, gw.broker, gw.tunnel, gw.policyTunnel];
  const checkAlive = () => {
    for (const s of services)
      if (s.proc.exitCode !== null || s.proc.signalCode !== null)
        throw new Error(`${s.name} died during the benchmark:\n${s.tail()}`);
  };

  const machine = machineInfo(ROOT, pg.version, bouncer.version);
  const runsTotal = opts.workloads.length * opts.rounds * targets.length;
  const minutes = (runsTotal * (opts.duration + 2)) / 60;
  if (runsTotal > 0)
    say(`${runsTotal} runs of ${opts.duration} s: about ${minutes.toFixed(1)} min`);

  const results: WorkloadResult[] = [];
  for (const w of opts.workloads) {
    const runs: WorkloadResult["runs"] = [];
    for (let round = 1; round <= opts.rounds; round++) {
      for (const t of targets) {
        await sleep(PAUSE_MS);
        const sample = await measure(w, pg.binDir, t, opts.duration);
        if (isStopping()) return 130;
        checkAlive();
        runs.push({ round, target: t.name, ...sample });
        const shown = sample.error
          ? `FAILED: ${sample.error}`
          : `${fmtValue(sample.value)} ${w.unit}`;
        say(`${w.name} round ${round}/${opts.rounds} ${t.name}: ${shown}`);
      }
    }
    results.push(summarize(w, runs, targets));
  }

  let approvals: ApprovalResult | undefined;
  if (opts.approvals > 0) {
    await sleep(PAUSE_MS);
    say(
      `approvals: ${opts.approvals} held statements on ${POLICY_CONNECTION}, approved one at a time`,
    );
    approvals = await measureApprovals({
      brokerUrl: gw.brokerUrl,
      caFile: certs.caCert,
      approverToken: gw.approverToken,
      connection: POLICY_CONNECTION,
      requesterOid: REQUESTER_OID,
      plainEnv: targets.find((t) => t.name === "gw")!.env,
      policyEnv: targets.find((t) => t.name === "gw+policy")!.env,
      iterations: opts.approvals,
    });
    if (isStopping()) return 130;
    checkAlive();
  }

  printReport(results, approvals, opts);
  const report = {
    tool: "gw bench",
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    options: {
      duration: opts.duration,
      rounds: opts.rounds,
      workloads: opts.workloads.map((w) => w.name),
      approvals: opts.approvals,
    },
    machine: { ...machine, loadAverageAtEnd: loadavg().map((x) => Math.round(x * 100) / 100) },
    setup: {
      pgbenchScale: SCALE,
      order: targets.map((t) => t.name),
      postgres: {
        max_connections: MAX_CONNECTIONS,
        fsync: "off",
        synchronous_commit: "off",
        full_page_writes: "off",
      },
      pgbouncer: { pool_mode: "session", default_pool_size: POOL_SIZE, auth_type: "scram-sha-256" },
      gw: {
        broker: "bin/gw broker start (HTTPS, SQLite store)",
        tunnel: "bin/gw connect (WebSocket over TLS)",
      },
    },
    workloads: results,
    ...(approvals ? { approvals } : {}),
  };
  const dir = join(ROOT, "bench", "results");
  mkdirSync(dir, { recursive: true });
  const files = [join(dir, `${startedAt.toISOString().replace(/[:.]/g, "-")}.json`)];
  if (opts.json) files.push(resolve(opts.json));
  for (const f of files) {
    mkdirSync(dirname(f), { recursive: true });
    writeFileSync(f, JSON.stringify(report, null, 2) + "\n");
  }
  say(`results written to ${files.join(" and ")}`);
  if (opts.audit) {
    // Recording needs no database: its own program, on this machine's disk.
    say("recording: audit strict vs async (bench/audit.ts)");
    const r = spawnSync(
      process.execPath,
      [join(ROOT, "dist", "bench", "audit.js"), "--seconds", String(Math.min(opts.duration, 3))],
      { stdio: "inherit", cwd: ROOT },
    );
    if (r.status !== 0) return 1;
  }
  return 0;
}

main()
  .catch((err: unknown) => {
    if (!isStopping())
      process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  })
  .then(async (code) => {
    await cleanup();
    process.exit(code);
  });
