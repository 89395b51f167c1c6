/**
 * Medians, ratios, the printed tables and the machine description.
 */
import { execFileSync } from "node:child_process";
import { availableParallelism, cpus, loadavg, release, totalmem } from "node:os";

export function median(values: number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = v.length >> 1;
  return v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

/** The nearest-rank percentile (p in 0..100) of the finite values; NaN when there are none. */
export function percentile(values: number[], p: number): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  return v[Math.min(v.length, Math.max(1, Math.ceil((p / 100) * v.length))) - 1]!;
}

export function fmtValue(v: number): string {
  if (!Number.isFinite(v)) return "n/a";
  if (Math.abs(v) >= 100) return Math.round(v).toLocaleString("en-US");
  return v.toFixed(1);
}

export function fmtRatio(r: number): string {
  return Number.isFinite(r) ? `${r.toFixed(2)}x` : "n/a";
}

/** A plain-text table: first column left-aligned, the rest right-aligned. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

function tryRun(file: string, args: string[], cwd?: string): string | null {
  try {
    return execFileSync(file, args, {
      stdio: ["ignore", "pipe", "ignore"],
      ...(cwd ? { cwd } : {}),
    })
      .toString()
      .trim();
  } catch {
    return null;
  }
}

export interface MachineInfo {
  nproc: number;
  cpuModel: string | null;
  memoryGiB: number;
  kernel: string;
  node: string;
  postgres: string;
  pgbouncer: string;
  gwCommit: string | null;
  gwDirty: boolean | null;
  loadAverageAtStart: number[];
}

export function machineInfo(root: string, postgres: string, pgbouncer: string): MachineInfo {
  const status = tryRun("git", ["status", "--porcelain", "--untracked-files=no"], root);
  return {
    nproc: availableParallelism(),
    cpuModel: cpus()[0]?.model ?? null,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    kernel: release(),
    node: process.version,
    postgres,
    pgbouncer,
    gwCommit: tryRun("git", ["rev-parse", "HEAD"], root),
    gwDirty: status === null ? null : status !== "",
    loadAverageAtStart: loadavg().map((x) => Math.round(x * 100) / 100),
  };
}
