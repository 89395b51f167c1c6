/**
 * How `gw connect NAME --detach` becomes a background process.
 *
 * The parent re-runs the same command line (minus --detach) as a child in a new session
 * (setsid: no controlling terminal, so closing the terminal does not end it) with stdout and
 * stderr appended to the log file, and one extra pipe (fd 3). The child opens the tunnel as
 * usual; once it listens it writes one JSON line to fd 3 (what `gw connect --json` prints) and
 * closes it. The parent prints that and exits; the child runs on until `gw disconnect`
 * (SIGTERM). A child that fails first exits with its error in the log, as a terminal would
 * show it; the parent reports that error and the log's path.
 */
import { spawn } from "node:child_process";
import { closeSync, fstatSync, openSync, readFileSync, writeSync } from "node:fs";
import type { Readable } from "node:stream";
import { ExitCode, GwError, type ExitCode as ExitCodeT } from "../../errors.js";
import { ensureLogDir, logPath } from "./state.js";

export const DETACHED_ENV = "GW_TUNNEL_DETACHED";
const READY_FD = 3;

export function isDetachedChild(): boolean {
  return process.env[DETACHED_ENV] === "1";
}

export interface DetachedStart {
  /** The child's ready line (what `gw connect --json` prints). */
  ready: Record<string, unknown>;
  pid: number;
  logFile: string;
}

/**
 * Starts the detached child for `connection` with `args` (the gw arguments, without --detach)
 * and waits until it listens. A child that fails to start is reported with its own error.
 */
export async function spawnDetached(
  connection: string,
  args: string[],
  opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<DetachedStart> {
  ensureLogDir();
  const logFile = logPath(connection);
  const log = openSync(logFile, "a", 0o600);
  const logStart = fstatSync(log).size;
  const script = process.argv[1];
  if (!script) throw new Error("cannot tell how gw was started");
  let child;
  try {
    child = spawn(process.execPath, [script, ...args], {
      detached: true,
      stdio: ["ignore", log, log, "pipe"],
      env: { ...(opts.env ?? process.env), [DETACHED_ENV]: "1", NO_COLOR: "1" },
    });
  } finally {
    closeSync(log);
  }
  const pipe = child.stdio[READY_FD] as Readable;
  const line = await new Promise<string | null>((resolve, reject) => {
    let text = "";
    const timer = setTimeout(() => {
      child.kill("SIGTERM");
      reject(
        new GwError("detach_timeout", "the background tunnel did not start in time", {
          exitCode: ExitCode.unavailable,
          hint: `See its log: ${logFile}`,
        }),
      );
    }, opts.timeoutMs ?? 90_000);
    pipe.setEncoding("utf8");
    pipe.on("data", (c: string) => {
      text += c;
      const nl = text.indexOf("\n");
      if (nl >= 0) {
        clearTimeout(timer);
        resolve(text.slice(0, nl));
      }
    });
    pipe.on("end", () => {
      clearTimeout(timer);
      resolve(text.length > 0 ? text : null);
    });
    pipe.on("error", () => undefined);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
  pipe.destroy();
  if (line === null) {
    // It failed before listening: its own error message is in the log, as a terminal shows it.
    const code = await new Promise<number | null>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve(child.exitCode);
      else child.once("exit", (c) => resolve(c));
    });
    const said = readFileSync(logFile, "utf8").slice(logStart);
    const error = /error: (.*)/.exec(said)?.[1];
    const hint = /hint: (.*)/.exec(said)?.[1];
    throw new GwError(
      "detach_failed",
      error ?? "the background tunnel exited before it was ready",
      {
        exitCode: (code !== null && code > 0 ? code : ExitCode.failure) as ExitCodeT,
        hint: hint ? `${hint} (log: ${logFile})` : `See its log: ${logFile}`,
      },
    );
  }
  child.unref();
  let msg: Record<string, unknown>;
  try {
    msg = JSON.parse(line) as Record<string, unknown>;
  } catch {
    throw new GwError("detach_failed", "the background tunnel said something unexpected", {
      exitCode: ExitCode.internal,
      hint: `See its log: ${logFile}`,
    });
  }
  const error = msg["error"] as
    { code?: string; message?: string; hint?: string; exitCode?: number } | undefined;
  if (error) {
    throw new GwError(error.code ?? "detach_failed", error.message ?? "the tunnel failed", {
      exitCode: (error.exitCode ?? ExitCode.failure) as ExitCodeT,
      hint: error.hint ?? `See its log: ${logFile}`,
    });
  }
  return { ready: msg, pid: child.pid!, logFile };
}

/** Child: tells the parent the tunnel is ready, then closes the pipe. */
export function reportToParent(msg: Record<string, unknown>): void {
  try {
    writeSync(READY_FD, JSON.stringify(msg) + "\n");
  } catch {
    // the parent is gone (killed while waiting): nobody to tell
  }
  try {
    closeSync(READY_FD);
  } catch {
    // already closed
  }
}

/** Child: every line it writes to stderr (its log) starts with the time. */
export function timestampLog(): void {
  const write = process.stderr.write.bind(process.stderr) as (s: string) => boolean;
  let atLineStart = true;
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    const text = typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8");
    let out = "";
    for (const part of text.split(/(?<=\n)/)) {
      if (part === "") continue;
      if (atLineStart) out += `${new Date().toISOString()} `;
      out += part;
      atLineStart = part.endsWith("\n");
    }
    const cb = rest.find((r) => typeof r === "function") as (() => void) | undefined;
    const ok = write(out);
    cb?.();
    return ok;
  }) as typeof process.stderr.write;
}
