/**
 * `gw demo --json` for tests: the real CLI in a subprocess, its JSON line, and the tools to
 * look at what it left behind (processes, files) once it is stopped.
 */
import { execFileSync, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { startGw, type BackgroundGw } from "../helpers/cli.js";

export interface DemoJson {
  broker: string;
  caFile: string;
  identityServer: string;
  connection: string;
  database: string;
  tunnel: { host: string; port: number };
  psqlUrl: string;
  approverTokenFile: string;
  envFile: string;
  agentEnvFile: string;
  configDir: string;
  dir: string;
  brokerLog: string;
  postgres: { kind: string; version: string; port: number };
  pid: number;
}

export const PSQL = "/usr/bin/psql";

export async function startDemo(
  args: string[] = [],
  env: Record<string, string | undefined> = {},
): Promise<BackgroundGw<DemoJson>> {
  return startGw<DemoJson>(["demo", "--json", "--port", "0", ...args], {
    env,
    timeoutMs: 300_000,
  });
}

/** Environment for gw commands that act as the demo's signed-in engineer. */
export function engineerEnv(d: DemoJson): Record<string, string> {
  return {
    GW_BROKER: d.broker,
    GW_CA_FILE: d.caFile,
    GW_CONFIG_DIR: d.configDir,
    GW_TOKEN_STORE: "file",
  };
}

export interface PsqlResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cleanEnv(extra: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env))
    if (v !== undefined && !k.startsWith("PG") && !k.startsWith("GW_")) env[k] = v;
  return { ...env, LC_ALL: "C", LANG: "C", PGPASSFILE: "/nonexistent/pgpass", ...extra };
}

/** psql -X -A -t -c SQL against `url`. */
export function psql(
  url: string,
  sql: string,
  env: Record<string, string> = {},
  timeoutMs = 30_000,
): Promise<PsqlResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(PSQL, [url, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql], {
      env: cleanEnv(env),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c));
    child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Every process whose command line mentions `text` (pid and command line). */
export function processesMentioning(text: string): string[] {
  const out = execFileSync("ps", ["-eo", "pid=,args="], { encoding: "utf8" });
  return out
    .split("\n")
    .filter((l) => l.includes(text) && !l.includes("ps -eo"))
    .map((l) => l.trim());
}

/** Whether `pid` is alive (a zombie is not: in a container nobody may reap it). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 20_000,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
