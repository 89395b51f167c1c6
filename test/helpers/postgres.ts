/**
 * A real, throwaway PostgreSQL server for tests.
 *
 * Each call runs initdb into a fresh temp dir and starts a postmaster on a free port on
 * 127.0.0.1, with the auth method under test in pg_hba. Mocks of the wire protocol would only
 * test our own understanding of it; the point of these tests is the real server's behaviour.
 *
 * PostgreSQL refuses to run as root, and CI runs as root: there the server binaries run as the
 * `postgres` user (made by the Debian package) or, failing that, a system user `gwtest` that we
 * create. Client work (createdb, tests' own connections) stays in this process as whoever we are.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
  appendFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import {
  findPostgresBinDir as findBinDir,
  freePort,
  isRoot,
  serverCommand as hostServerCommand,
  serverUser as hostServerUser,
} from "../../src/demo/postgres-host.js";

const execFileP = promisify(execFile);

export type PgAuthMethod = "scram-sha-256" | "md5" | "password";

export interface StartPostgresOptions {
  authMethod?: PgAuthMethod;
  /** Serve TLS with this certificate and key (paths). Plain connections stay allowed unless `require`. */
  ssl?: { cert: string; key: string; require?: boolean };
  /** log_statement = all, so tests can read what reached the server in `logFile`. */
  logStatements?: boolean;
  /** Extra postgresql.conf settings, written as `name = 'value'`. */
  settings?: Record<string, string>;
}

export interface PgServer {
  host: "127.0.0.1";
  port: number;
  /** A superuser. */
  user: string;
  password: string;
  /** `app`, created empty. */
  database: string;
  /** postgres://user:password@127.0.0.1:port/app */
  url: string;
  dataDir: string;
  logFile: string;
  authMethod: PgAuthMethod;
  binDir: string;
  /** PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, PGSSLMODE for psql, pgbench and friends. */
  psqlEnv(): Record<string, string>;
  /** Immediate shutdown and removal of the temp dir. Safe to call twice. */
  stop(): Promise<void>;
}

const USER = "gw_test";
const DATABASE = "app";

/** The bin dir of the newest installed server: /usr/lib/postgresql/N/bin (Debian), else PATH. */
export function findPostgresBinDir(): string {
  const dir = findBinDir();
  if (dir !== null) return dir;
  throw new Error(
    "PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin or PATH. " +
      "Install the Debian package `postgresql` (apt-get install postgresql), or run `npm test`, which does it as root.",
  );
}

/** The test servers' user, when there is no `postgres` user to run them as. */
const FALLBACK_USER = "gwtest";
const serverUser = () => hostServerUser(FALLBACK_USER);
const serverCommand = (binDir: string, tool: string, args: string[]) =>
  hostServerCommand(binDir, tool, args, FALLBACK_USER);

/** Runs a server binary. cwd is the temp dir: as another user our cwd may be unreadable, and initdb fails on that. */
async function runServerTool(
  binDir: string,
  tool: string,
  args: string[],
  cwd: string,
): Promise<void> {
  const [file, ...argv] = serverCommand(binDir, tool, args);
  try {
    await execFileP(file, argv, {
      cwd,
      env: { ...process.env, LC_ALL: "C", LANG: "C" },
      maxBuffer: 16 * 1024 * 1024,
    });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    throw new Error(
      `${tool} failed: ${(e.stderr ?? "").trim() || (e.stdout ?? "").trim() || String(err)}`,
      { cause: err },
    );
  }
}

const quote = (v: string): string => `'${v.replace(/'/g, "''")}'`;

/**
 * A server must not outlive the test process that started it, even when that process is
 * killed (vitest ends workers with signals, so no "exit" handler runs). A detached shell polls
 * our pid and, once we are gone, stops the server and removes its dir. stop() kills the watchdog.
 */
function startWatchdog(binDir: string, dataDir: string, base: string): ChildProcess {
  const script =
    'while kill -0 "$0" 2>/dev/null; do sleep 1; done; "$@" >/dev/null 2>&1; rm -rf "$GW_PG_BASE"';
  const child = spawn(
    "/bin/sh",
    [
      "-c",
      script,
      String(process.pid),
      ...serverCommand(binDir, "pg_ctl", ["-D", dataDir, "-m", "immediate", "-w", "stop"]),
    ],
    {
      cwd: base,
      detached: true,
      stdio: "ignore",
      env: { ...process.env, GW_PG_BASE: base },
    },
  );
  child.unref();
  return child;
}

export async function startPostgres(opts: StartPostgresOptions = {}): Promise<PgServer> {
  const binDir = findPostgresBinDir();
  const authMethod = opts.authMethod ?? "scram-sha-256";
  const password = randomBytes(18).toString("base64url");

  // /tmp rather than $TMPDIR: as root the server user must be able to reach the dir, and /tmp
  // (1777) is traversable by everyone. The dir itself is 0700 and owned by the server user.
  const base = mkdtempSync(join(isRoot() ? "/tmp" : tmpdir(), "gw-pg-"));
  const dataDir = join(base, "data");
  const logFile = join(base, "postgres.log");
  const pwFile = join(base, "pwfile");
  const owner = isRoot() ? serverUser() : undefined;
  let watchdog: ChildProcess | undefined;
  const killWatchdog = (): void => {
    if (watchdog?.pid !== undefined && watchdog.exitCode === null) watchdog.kill();
  };
  const own = (path: string): void => {
    if (owner !== undefined) chownSync(path, owner.uid, owner.gid);
  };

  try {
    chmodSync(base, 0o700);
    own(base);

    // For md5 the stored password must be an md5 hash: with a SCRAM verifier stored, the server
    // silently upgrades an md5 pg_hba line to SCRAM, and the md5 path would go untested. initdb
    // (15) cannot set password_encryption, but a pre-hashed password is stored as given.
    const md5 = createHash("md5")
      .update(password + USER)
      .digest("hex");
    const stored = authMethod === "md5" ? `md5${md5}` : password;
    writeFileSync(pwFile, `${stored}\n`, { mode: 0o600 });
    own(pwFile);
    await runServerTool(
      binDir,
      "initdb",
      [
        "-D",
        dataDir,
        "-U",
        USER,
        `--pwfile=${pwFile}`,
        `--auth-host=${authMethod}`,
        `--auth-local=${authMethod}`,
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
      password_encryption: authMethod === "md5" ? "md5" : "scram-sha-256",
      // A test database is disposable: durability only costs time.
      fsync: "off",
      synchronous_commit: "off",
      full_page_writes: "off",
      logging_collector: "off",
      ...(opts.logStatements ? { log_statement: "all" } : {}),
    };
    const hba = [`local all all ${authMethod}`];
    if (opts.ssl) {
      for (const [src, name] of [
        [opts.ssl.cert, "server.crt"],
        [opts.ssl.key, "server.key"],
      ] as const) {
        const dst = join(dataDir, name);
        copyFileSync(src, dst);
        chmodSync(dst, 0o600);
        own(dst);
      }
      conf.ssl = "on";
      conf.ssl_cert_file = "server.crt";
      conf.ssl_key_file = "server.key";
      hba.push(`hostssl all all 127.0.0.1/32 ${authMethod}`);
      if (opts.ssl.require) hba.push("hostnossl all all 127.0.0.1/32 reject");
      else hba.push(`host all all 127.0.0.1/32 ${authMethod}`);
    } else {
      hba.push(`host all all 127.0.0.1/32 ${authMethod}`);
    }
    Object.assign(conf, opts.settings);
    // Files initdb made stay owned by the server user; writing to them keeps owner and mode.
    writeFileSync(join(dataDir, "pg_hba.conf"), hba.join("\n") + "\n");
    appendFileSync(
      join(dataDir, "postgresql.conf"),
      "\n# gw test settings\n" +
        Object.entries(conf)
          .map(([k, v]) => `${k} = ${quote(v)}\n`)
          .join(""),
    );

    // The port is free when we look but another worker can take it before the postmaster binds;
    // retry on that race with a new port (later lines in postgresql.conf win).
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
        watchdog = startWatchdog(binDir, dataDir, base);
        break;
      } catch (err) {
        const log = existsSync(logFile) ? readFileSync(logFile, "utf8") : "";
        if (attempt < 3 && /could not bind|already in use/i.test(log)) continue;
        throw new Error(`${(err as Error).message}\n--- ${logFile} ---\n${log}`, { cause: err });
      }
    }

    const sslmode = opts.ssl ? "require" : "disable";
    const admin = new pg.Client({
      host: "127.0.0.1",
      port,
      user: USER,
      password,
      database: "postgres",
      ssl: opts.ssl ? { rejectUnauthorized: false } : false,
    });
    await admin.connect();
    try {
      await admin.query(`CREATE DATABASE ${DATABASE}`);
    } finally {
      await admin.end();
    }

    let stopped = false;
    return {
      host: "127.0.0.1",
      port,
      user: USER,
      password,
      database: DATABASE,
      url: `postgres://${USER}:${encodeURIComponent(password)}@127.0.0.1:${port}/${DATABASE}`,
      dataDir,
      logFile,
      authMethod,
      binDir,
      psqlEnv: () => ({
        PGHOST: "127.0.0.1",
        PGPORT: String(port),
        PGUSER: USER,
        PGPASSWORD: password,
        PGDATABASE: DATABASE,
        PGSSLMODE: sslmode,
      }),
      stop: async () => {
        if (stopped) return;
        stopped = true;
        try {
          await runServerTool(
            binDir,
            "pg_ctl",
            ["-D", dataDir, "-m", "immediate", "-w", "stop"],
            base,
          );
        } finally {
          killWatchdog();
          rmSync(base, { recursive: true, force: true });
        }
      },
    };
  } catch (err) {
    // Leave nothing behind from a half-made server.
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

/** Starts a server, runs `fn`, and stops the server whatever happens. */
export async function withPostgres<T>(
  opts: StartPostgresOptions,
  fn: (server: PgServer) => Promise<T>,
): Promise<T> {
  const server = await startPostgres(opts);
  try {
    return await fn(server);
  } finally {
    await server.stop();
  }
}
