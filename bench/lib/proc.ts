/**
 * Child processes for the benchmark, and making sure none outlive it.
 *
 * Long-running servers (postgres, pgbouncer, the gw broker and tunnel) are spawned directly,
 * never through a shell, so the pid we hold is the server's own: we can stop it, and read its
 * CPU time from /proc. As root, servers that refuse root run with `uid`/`gid` set (libuv drops
 * the supplementary groups too). They get their own process group, so a Ctrl-C reaches only
 * us and we shut things down in order; a watchdog covers the case where we are killed outright.
 */
import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { appendFileSync, readFileSync, rmSync } from "node:fs";

export interface RunAs {
  uid: number;
  gid: number;
}

// --- cleanup ------------------------------------------------------------------------------

const cleanups: { label: string; fn: () => unknown }[] = [];
let cleaning: Promise<void> | undefined;
/** Short-lived clients (pgbench, psql) still running: stopped first when we clean up. */
const clients = new Set<ChildProcess>();

/** Tracks a client process until it exits, so cleanup can stop it. */
export function track<T extends ChildProcess>(proc: T): T {
  clients.add(proc);
  proc.once("exit", () => clients.delete(proc));
  return proc;
}

/** Registers work for the end of the run; cleanups run last-in first-out, once. */
export function onCleanup(label: string, fn: () => unknown): void {
  cleanups.push({ label, fn });
}

export function cleanup(): Promise<void> {
  return (cleaning ??= (async () => {
    for (const c of clients) c.kill("SIGTERM");
    while (cleanups.length > 0) {
      const c = cleanups.pop()!;
      try {
        await c.fn();
      } catch (err) {
        process.stderr.write(`bench: cleanup of ${c.label} failed: ${String(err)}\n`);
      }
    }
  })());
}

export const isStopping = (): boolean => cleaning !== undefined;

/** Ctrl-C and SIGTERM: clean up, then exit 130. */
export function cleanupOnSignals(): void {
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(sig, () => {
      if (cleaning) return;
      process.stderr.write(`\nbench: ${sig}, cleaning up...\n`);
      void cleanup().finally(() => process.exit(130));
    });
  }
}

// --- watchdog -----------------------------------------------------------------------------

let pidFile: string | undefined;

/**
 * If we die without cleaning up (SIGKILL, OOM), a detached shell notices within a second,
 * signals every server listed in `<dir>/pids` ("TERM 1234" lines) and removes `dir`.
 */
export function startWatchdog(dir: string): void {
  pidFile = `${dir}/pids`;
  appendFileSync(pidFile, "");
  const script =
    'while kill -0 "$0" 2>/dev/null; do sleep 1; done; ' +
    'while read -r sig pid; do kill -s "$sig" "$pid" 2>/dev/null; done < "$1/pids"; ' +
    'sleep 2; rm -rf "$1"';
  const dog = spawn("/bin/sh", ["-c", script, String(process.pid), dir], {
    detached: true,
    stdio: "ignore",
    cwd: "/",
  });
  dog.unref();
  // Cleanups run in reverse: this one is registered first, so it runs last.
  onCleanup("temp dir", () => {
    if (dog.exitCode === null && dog.pid !== undefined) process.kill(dog.pid, "SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });
}

// --- services -----------------------------------------------------------------------------

export interface Service {
  name: string;
  pid: number;
  proc: ChildProcess;
  /** Resolves with the exit code (or signal name) once the process is gone. */
  exited: Promise<number | string>;
  /** The last few KB of stdout and stderr, for error messages. */
  tail(): string;
  /** Sends `signal`, escalating to SIGKILL after `graceMs`; resolves once it has exited. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
}

const TAIL_BYTES = 16 * 1024;

export interface ServiceOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  runAs?: RunAs | undefined;
  /** What stop() sends first (default SIGTERM), and how long it waits before SIGKILL. */
  stopSignal?: NodeJS.Signals;
  stopGraceMs?: number;
  /** Signal the watchdog sends if we die (postgres: SIGQUIT is its immediate shutdown). */
  crashSignal?: NodeJS.Signals;
  /** Called with every stdout chunk (the output is also kept in the tail). */
  onStdout?: (chunk: Buffer) => void;
}

export function startService(
  name: string,
  file: string,
  args: string[],
  opts: ServiceOptions = {},
): Service {
  const spawnOpts: SpawnOptions = {
    cwd: opts.cwd ?? "/",
    env: opts.env ?? process.env,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    ...(opts.runAs ? { uid: opts.runAs.uid, gid: opts.runAs.gid } : {}),
  };
  const proc = spawn(file, args, spawnOpts);
  if (proc.pid === undefined) throw new Error(`${name}: could not start ${file}`);
  const pid = proc.pid;
  // dash's kill wants signal names without the SIG prefix.
  if (pidFile) appendFileSync(pidFile, `${(opts.crashSignal ?? "SIGTERM").slice(3)} ${pid}\n`);
  let tail = "";
  const keep = (c: Buffer) => {
    tail = (tail + c.toString("utf8")).slice(-TAIL_BYTES);
  };
  // Always drained: a server blocked on a full stdout/stderr pipe would stall the benchmark.
  proc.stdout!.on("data", (c: Buffer) => {
    keep(c);
    opts.onStdout?.(c);
  });
  proc.stderr!.on("data", keep);
  const exited = new Promise<number | string>((resolve) => {
    proc.once("exit", (code, signal) => resolve(code ?? signal ?? "unknown"));
    proc.once("error", (err) => {
      keep(Buffer.from(`\n${err.message}\n`));
      resolve("spawn error");
    });
  });
  const service: Service = {
    name,
    pid,
    proc,
    exited,
    tail: () => tail,
    async stop(signal = opts.stopSignal ?? "SIGTERM", graceMs = opts.stopGraceMs ?? 10_000) {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill(signal);
      const timer = setTimeout(() => proc.kill("SIGKILL"), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
  onCleanup(name, () => service.stop());
  return service;
}

/** Reads JSON a service prints on stdout (pretty-printed or not), failing if it exits first. */
export function readJsonFromService<T>(service: Service, timeoutMs = 30_000): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let text = "";
    const done = (err?: Error, value?: T) => {
      clearTimeout(timer);
      service.proc.stdout!.off("data", onData);
      if (err) reject(err);
      else resolve(value as T);
    };
    const onData = (c: Buffer) => {
      text += c.toString("utf8");
      const start = text.indexOf("{");
      if (start < 0) return;
      try {
        done(undefined, JSON.parse(text.slice(start)) as T);
      } catch {
        // Not complete yet.
      }
    };
    const timer = setTimeout(
      () =>
        done(new Error(`${service.name} printed no JSON in ${timeoutMs} ms:\n${service.tail()}`)),
      timeoutMs,
    );
    service.proc.stdout!.on("data", onData);
    void service.exited.then((code) =>
      done(new Error(`${service.name} exited (${code}) before it was ready:\n${service.tail()}`)),
    );
  });
}

// --- short commands -----------------------------------------------------------------------

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion, collecting its output. Killed (SIGTERM) if we clean up first. */
export function run(
  file: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; runAs?: RunAs | undefined } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const proc = track(
      spawn(file, args, {
        cwd: opts.cwd ?? "/",
        env: opts.env ?? process.env,
        stdio: ["ignore", "pipe", "pipe"],
        ...(opts.runAs ? { uid: opts.runAs.uid, gid: opts.runAs.gid } : {}),
      }),
    );
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    proc.stdout.on("data", (c: Buffer) => out.push(c));
    proc.stderr.on("data", (c: Buffer) => err.push(c));
    proc.once("error", reject);
    proc.once("close", (code) =>
      resolve({
        code,
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
      }),
    );
  });
}

/** Like run(), but throws with the command's stderr when it fails. */
export async function runOk(
  file: string,
  args: string[],
  opts: Parameters<typeof run>[2] = {},
): Promise<string> {
  const r = await run(file, args, opts);
  if (r.code !== 0) {
    const name = file.split("/").pop();
    throw new Error(
      `${name} ${args.join(" ")} failed (${r.code}): ${r.stderr.trim() || r.stdout.trim()}`,
    );
  }
  return r.stdout;
}

/** utime + stime of a process in seconds, from /proc; undefined if it is gone. */
export function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name, which is in parentheses and may contain spaces.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}

/** USER_HZ: 100 on every Linux architecture Node runs on. */
const CLOCK_TICKS = 100;

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
