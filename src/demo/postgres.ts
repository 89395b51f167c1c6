/**
 * A throwaway local PostgreSQL server: initdb into a directory, a postmaster on a free loopback
 * port with SCRAM authentication, stopped and removed on stop().
 *
 * The product's counterpart of test/helpers/postgres.ts (product code cannot import test/): used
 * by `gw demo`. PostgreSQL refuses to run as root; as root the server binaries run as the
 * `postgres` user (made by the Debian package), else a system user `gwdemo` created on first use.
 * A watchdog (a detached shell polling our pid) stops the server and removes its directory if
 * this process dies without stop(): a killed demo leaves nothing running.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  appendFileSync,
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { ExitCode, GwError } from "../errors.js";
import {
  findPostgresBinDir,
  freePort,
  isRoot,
  serverCommand as hostServerCommand,
  serverUser,
} from "./postgres-host.js";

export { findPostgresBinDir } from "./postgres-host.js";

export interface LocalPostgres {
  host: "127.0.0.1";
  port: number;
  user: string;
  password: string;
  database: string;
  binDir: string;
  dataDir: string;
  logFile: string;
  /** PostgreSQL's major version (e.g. "15"). */
  version: string;
  /** Fast shutdown, then the directory is removed. Safe to call twice. */
  stop(): Promise<void>;
}

export interface StartLocalPostgresOptions {
  /** The server's directory (created; removed by stop()). Must be reachable by the server user. */
  dir: string;
  /** The superuser's name; default gw_demo. */
  user?: string;
  /** A database created empty for the caller; default demo. */
  database?: string;
  /** What else the watchdog removes if this process dies (the demo's whole temp dir). */
  watchdogRemoves?: string;
}

/** The demo's server user, when there is no `postgres` user to run it as. */
const FALLBACK_USER = "gwdemo";
const serverCommand = (binDir: string, tool: string, args: string[]) =>
  hostServerCommand(binDir, tool, args, FALLBACK_USER);

async function runServerTool(
  binDir: string,
  tool: string,
  args: string[],
  cwd: string,
): Promise<void> {
  const [file, ...argv] = serverCommand(binDir, tool, args);
  const out = await new Promise<{ code: number | null; text: string }>((resolve, reject) => {
    const child = spawn(file, argv, {
      cwd,
      env: { ...process.env, LC_ALL: "C", LANG: "C" },
      // Its own process group: a Ctrl-C at the terminal reaches gw, which stops the server in
      // order, instead of reaching the postmaster too.
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let text = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (text += c));
    child.stderr.setEncoding("utf8").on("data", (c: string) => (text += c));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, text }));
  });
  if (out.code !== 0) {
    throw new GwError(
      "demo_pg_failed",
      `${tool} failed: ${out.text.trim() || `exit ${out.code}`}`,
      {
        exitCode: ExitCode.failure,
      },
    );
  }
}

const quote = (v: string): string => `'${v.replace(/'/g, "''")}'`;

function startWatchdog(binDir: string, dataDir: string, remove: string): ChildProcess {
  const script =
    'while kill -0 "$0" 2>/dev/null; do sleep 1; done; "$@" >/dev/null 2>&1; rm -rf "$GW_PG_REMOVE"';
  const child = spawn(
    "/bin/sh",
    [
      "-c",
      script,
      String(process.pid),
      ...serverCommand(binDir, "pg_ctl", ["-D", dataDir, "-m", "immediate", "-w", "stop"]),
    ],
    { cwd: "/", detached: true, stdio: "ignore", env: { ...process.env, GW_PG_REMOVE: remove } },
  );
  child.unref();
  return child;
}

export async function startLocalPostgres(opts: StartLocalPostgresOptions): Promise<LocalPostgres> {
  const binDir = findPostgresBinDir();
  if (binDir === null) {
    throw new GwError("postgres_not_found", "no PostgreSQL server (initdb, pg_ctl) is installed", {
      exitCode: ExitCode.unavailable,
      hint: "Debian/Ubuntu: sudo apt-get install postgresql; macOS: brew install postgresql.",
    });
  }
  const user = opts.user ?? "gw_demo";
  const database = opts.database ?? "demo";
  const password = randomBytes(18).toString("base64url");
  const base = opts.dir;
  const dataDir = join(base, "data");
  const logFile = join(base, "postgres.log");
  const pwFile = join(base, "pwfile");
  const owner = isRoot() ? serverUser(FALLBACK_USER) : undefined;
  const own = (path: string) => {
    if (owner !== undefined) chownSync(path, owner.uid, owner.gid);
  };
  let watchdog: ChildProcess | undefined;
  const killWatchdog = () => {
    if (watchdog?.pid !== undefined && watchdog.exitCode === null) watchdog.kill();
  };
  const version = (() => {
    try {
      const v = execFileSync(join(binDir, "pg_ctl"), ["--version"]).toString();
      return /(\d+)(\.\d+)?/.exec(v)?.[1] ?? "?";
    } catch {
      return "?";
    }
  })();

  mkdirSync(base, { recursive: true, mode: 0o700 });
  try {
    chmodSync(base, 0o700);
    own(base);
    writeFileSync(pwFile, `${password}\n`, { mode: 0o600 });
    own(pwFile);
    await runServerTool(
      binDir,
      "initdb",
      [
        "-D",
        dataDir,
        "-U",
        user,
        `--pwfile=${pwFile}`,
        "--auth-host=scram-sha-256",
        "--auth-local=scram-sha-256",
        "-E",
        "UTF8",
        "--locale=C",
        "--no-sync",
      ],
      base,
    );
    rmSync(pwFile, { force: true });
    const conf: Record<string, string> = {
      listen_addresses: "127.0.0.1",
      unix_socket_directories: base,
      password_encryption: "scram-sha-256",
      // A demo database is disposable: durability only costs time.
      fsync: "off",
      synchronous_commit: "off",
      full_page_writes: "off",
      logging_collector: "off",
    };
    writeFileSync(
      join(dataDir, "pg_hba.conf"),
      "local all all scram-sha-256\nhost all all 127.0.0.1/32 scram-sha-256\n",
    );
    appendFileSync(
      join(dataDir, "postgresql.conf"),
      "\n# gw demo\n" +
        Object.entries(conf)
          .map(([k, v]) => `${k} = ${quote(v)}\n`)
          .join(""),
    );
    let port = 0;
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      appendFileSync(join(dataDir, "postgresql.conf"), `port = ${port}\n`);
      try {
        await runServerTool(
          binDir,
          "pg_ctl",
          ["-D", dataDir, "-l", logFile, "-w", "-t", "60", "start"],
          base,
        );
        watchdog = startWatchdog(binDir, dataDir, opts.watchdogRemoves ?? base);
        break;
      } catch (err) {
        const log = existsSync(logFile) ? readFileSync(logFile, "utf8") : "";
        if (attempt < 3 && /could not bind|already in use/i.test(log)) continue;
        throw new GwError("demo_pg_failed", `PostgreSQL did not start:\n${log.trim()}`, {
          exitCode: ExitCode.failure,
          cause: err,
        });
      }
    }
    const { simpleQuery } = await import("./pg-client.js");
    await simpleQuery(
      { host: "127.0.0.1", port, user, password, database: "postgres" },
      `CREATE DATABASE ${database}`,
    );
    let stopped = false;
    return {
      host: "127.0.0.1",
      port,
      user,
      password,
      database,
      binDir,
      dataDir,
      logFile,
      version,
      stop: async () => {
        if (stopped) return;
        stopped = true;
        try {
          await runServerTool(
            binDir,
            "pg_ctl",
            ["-D", dataDir, "-m", "fast", "-w", "-t", "20", "stop"],
            base,
          ).catch(() =>
            runServerTool(binDir, "pg_ctl", ["-D", dataDir, "-m", "immediate", "-w", "stop"], base),
          );
        } finally {
          killWatchdog();
          rmSync(base, { recursive: true, force: true });
        }
      },
    };
  } catch (err) {
    if (existsSync(join(dataDir, "postmaster.pid"))) {
      await runServerTool(
        binDir,
        "pg_ctl",
        ["-D", dataDir, "-m", "immediate", "-w", "stop"],
        base,
      ).catch(() => undefined);
    }
    killWatchdog();
    rmSync(base, { recursive: true, force: true });
    throw err;
  }
}
