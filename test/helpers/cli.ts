/**
 * Runs the real CLI (`bin/gw`, which loads dist/: run `npm run build` first) as a subprocess.
 *
 * `runGw` runs a command to completion and collects stdout, stderr and the exit code.
 * `startGw` starts a long-running command (`gw connect ... --json`) in the background and
 * resolves with the JSON object on its first stdout line; `stop()` sends a signal and
 * resolves with everything the process printed and its exit code.
 *
 * The child's environment is this process's minus every GW_* and AZURE_* variable (so a
 * developer's GW_TOKEN, GW_BROKER, GW_CA_FILE or service principal cannot leak into a test),
 * minus NODE_OPTIONS and NODE_EXTRA_CA_CERTS, plus what the caller passes. GW_CONFIG_DIR
 * defaults to a temp dir, so tests never touch the real ~/.config.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const GW_BIN = fileURLToPath(new URL("../../bin/gw", import.meta.url));
const MAIN_JS = fileURLToPath(new URL("../../dist/src/cli/main.js", import.meta.url));

export interface CliResult {
  /** Exit code, or null when the process died of a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  /** Variables to set; `undefined` removes one. */
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Safety net, not an assertion: the process is killed after this long. Default 30 s. */
  timeoutMs?: number;
}

let defaultConfigDir: string | undefined;
function configDir(): string {
  if (defaultConfigDir === undefined) {
    const dir = mkdtempSync(join(tmpdir(), "gw-cli-config-"));
    defaultConfigDir = dir;
    process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  }
  return defaultConfigDir;
}

export function cliEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (
      k.startsWith("GW_") ||
      k.startsWith("AZURE_") ||
      k === "NODE_OPTIONS" ||
      k === "NODE_EXTRA_CA_CERTS"
    )
      continue;
    env[k] = v;
  }
  env["NO_COLOR"] = "1";
  env["GW_CONFIG_DIR"] = configDir();
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

function assertBuilt(): void {
  if (!existsSync(MAIN_JS))
    throw new Error(`${MAIN_JS} is missing: run \`npm run build\` before the CLI tests`);
}

function spawnGw(args: string[], opts: CliOptions): ChildProcess {
  assertBuilt();
  return spawn(process.execPath, [GW_BIN, ...args], {
    cwd: opts.cwd ?? process.cwd(),
    env: cliEnv(opts.env),
    stdio: ["ignore", "pipe", "pipe"],
  });
}

function collect(child: ChildProcess, timeoutMs: number, what: string) {
  let stdout = "";
  let stderr = "";
  child.stdout!.setEncoding("utf8").on("data", (c: string) => (stdout += c));
  child.stderr!.setEncoding("utf8").on("data", (c: string) => (stderr += c));
  const done = new Promise<CliResult>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(
        new Error(
          `${what} did not finish within ${timeoutMs} ms\n--- stdout ---\n${stdout}\n--- stderr ---\n${stderr}`,
        ),
      );
    }, timeoutMs);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    // 'close' (not 'exit'): every byte of stdout and stderr has been read by then.
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
  return { done, stdout: () => stdout, stderr: () => stderr };
}

/** Runs `gw ...args` to completion. */
export async function runGw(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  const child = spawnGw(args, opts);
  return collect(child, opts.timeoutMs ?? 30_000, `gw ${args.join(" ")}`).done;
}

export interface BackgroundGw<T = unknown> {
  child: ChildProcess;
  pid: number;
  /** The JSON object on the first line of stdout (startGw), or the stderr match (startGwUntil). */
  json: T;
  /** Output so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves when the process has exited, with all its output. */
  exited: Promise<CliResult>;
  /** Sends `signal` (default SIGINT) and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<CliResult>;
}

/** Resolves when `ready(stdout, stderr)` returns a value; rejects if the process exits first. */
function waitFor<R>(
  child: ChildProcess,
  out: ReturnType<typeof collect>,
  what: string,
  ready: (stdout: string, stderr: string) => R | undefined,
): Promise<R> {
  return new Promise<R>((resolve, reject) => {
    const check = () => {
      const r = ready(out.stdout(), out.stderr());
      if (r === undefined) return;
      child.stdout!.off("data", check);
      child.stderr!.off("data", check);
      resolve(r);
    };
    child.stdout!.on("data", check);
    child.stderr!.on("data", check);
    out.done.then(
      (r) =>
        reject(
          new Error(
            `${what} exited (code ${r.code}, signal ${r.signal}) before it was ready\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`,
          ),
        ),
      reject,
    );
  });
}

function background<T>(
  child: ChildProcess,
  out: ReturnType<typeof collect>,
  json: T,
): BackgroundGw<T> {
  // Keep a rejection (the safety-net timeout) from going unhandled when nobody awaits it.
  out.done.catch(() => undefined);
  return {
    child,
    pid: child.pid!,
    json,
    stdout: out.stdout,
    stderr: out.stderr,
    exited: out.done,
    stop: (signal: NodeJS.Signals = "SIGINT") => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return out.done;
    },
  };
}

/**
 * Starts `gw ...args` and resolves once its first stdout line is complete, with that line
 * parsed as JSON. Rejects, with the output, when the process exits first or the line is not
 * a JSON object.
 */
export async function startGw<T = Record<string, unknown>>(
  args: string[],
  opts: CliOptions = {},
): Promise<BackgroundGw<T>> {
  const what = `gw ${args.join(" ")}`;
  const child = spawnGw(args, opts);
  const out = collect(child, opts.timeoutMs ?? 120_000, what);
  const firstLine = await waitFor(child, out, what, (stdout) => {
    const nl = stdout.indexOf("\n");
    return nl >= 0 ? stdout.slice(0, nl) : undefined;
  });
  let json: T;
  try {
    json = JSON.parse(firstLine) as T;
  } catch {
    child.kill("SIGKILL");
    throw new Error(`${what}: the first stdout line is not JSON: ${JSON.stringify(firstLine)}`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    child.kill("SIGKILL");
    throw new Error(`${what}: the first stdout line is not a JSON object: ${firstLine}`);
  }
  return background(child, out, json);
}

/**
 * Starts `gw ...args` (without --json) and resolves once stderr matches `pattern`; `json` is
 * the match.
 */
export async function startGwUntil(
  args: string[],
  pattern: RegExp,
  opts: CliOptions = {},
): Promise<BackgroundGw<RegExpMatchArray>> {
  const what = `gw ${args.join(" ")}`;
  const child = spawnGw(args, opts);
  const out = collect(child, opts.timeoutMs ?? 120_000, what);
  const m = await waitFor(
    child,
    out,
    what,
    (_stdout, stderr) => stderr.match(pattern) ?? undefined,
  );
  return background(child, out, m);
}
