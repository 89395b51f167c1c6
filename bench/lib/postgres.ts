/**
 * A throwaway PostgreSQL server for the benchmark: initdb in a temp dir, SCRAM auth on
 * 127.0.0.1, a free port, run in the foreground as our child. As root the server binaries run
 * as the `postgres` user (PostgreSQL refuses root).
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  accessSync,
  appendFileSync,
  chownSync,
  constants,
  mkdirSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import { delimiter, join } from "node:path";
import { run, runOk, sleep, startService, type RunAs, type Service } from "./proc.js";

export const isRoot = (): boolean => process.getuid?.() === 0;

const USER = "bench";
const DATABASE = "bench";

export interface PgServer {
  port: number;
  user: string;
  password: string;
  database: string;
  binDir: string;
  /** e.g. "15.18" */
  version: string;
  service: Service;
  /** Environment for libpq clients (psql, pgbench), without the password. */
  clientEnv(port?: number): NodeJS.ProcessEnv;
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The newest /usr/lib/postgresql/N/bin (Debian), else the first PATH dir with initdb. */
export function findPgBinDir(): string {
  const dirs: string[] = [];
  try {
    const versions = readdirSync("/usr/lib/postgresql").filter((v) => /^\d+$/.test(v));
    versions.sort((a, b) => Number(b) - Number(a));
    dirs.push(...versions.map((v) => join("/usr/lib/postgresql", v, "bin")));
  } catch {
    // Not Debian-style.
  }
  dirs.push(...(process.env.PATH ?? "").split(delimiter).filter((d) => d !== ""));
  const found = dirs.find((d) =>
    ["initdb", "postgres", "pgbench", "psql"].every((t) => isExecutable(join(d, t))),
  );
  if (!found)
    throw new Error(
      "PostgreSQL server and client binaries (initdb, postgres, pgbench, psql) not found. " +
        "Install the Debian packages postgresql and postgresql-client (apt-get install postgresql postgresql-client).",
    );
  return found;
}

/** As root, the user to run servers as: `postgres` (made by the Debian package). */
export function serverUser(): RunAs | undefined {
  if (!isRoot()) return undefined;
  try {
    const id = (flag: string) =>
      Number(
        execFileSync("id", [flag, "postgres"], { stdio: ["ignore", "pipe", "ignore"] }).toString(),
      );
    return { uid: id("-u"), gid: id("-g") };
  } catch {
    throw new Error(
      "running as root, but there is no `postgres` user to run PostgreSQL and pgbouncer as",
    );
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Base environment for clients: ours minus any PG* variables that could redirect them. */
export function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("PG")) env[k] = v;
  return { ...env, LC_ALL: "C", PGCONNECT_TIMEOUT: "30" };
}

/** Waits until `psql` can run a query on `port` with `env`; fails early if `service` dies. */
export async function waitForQuery(
  binDir: string,
  env: NodeJS.ProcessEnv,
  service: Service,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  let dead = false;
  void service.exited.then(() => (dead = true));
  while (Date.now() < deadline) {
    if (dead) throw new Error(`${service.name} exited before it was ready:\n${service.tail()}`);
    const r = await run(join(binDir, "psql"), ["-X", "-At", "-c", "select 1"], { env });
    if (r.code === 0) return;
    last = r.stderr.trim();
    await sleep(200);
  }
  throw new Error(`${service.name} not ready after ${timeoutMs} ms: ${last}\n${service.tail()}`);
}

export async function startPostgres(
  base: string,
  opts: { maxConnections: number },
): Promise<PgServer> {
  const binDir = findPgBinDir();
  const runAs = serverUser();
  const dir = join(base, "pg");
  const dataDir = join(dir, "data");
  mkdirSync(dir, { mode: 0o700 });
  if (runAs) chownSync(dir, runAs.uid, runAs.gid);
  const password = randomBytes(18).toString("base64url");
  const pwFile = join(dir, "pwfile");
  writeFileSync(pwFile, `${password}\n`, { mode: 0o600 });
  if (runAs) chownSync(pwFile, runAs.uid, runAs.gid);
  const env = { ...cleanEnv(), LANG: "C" };
  await runOk(
    join(binDir, "initdb"),
    ["-D", dataDir, "-U", USER, `--pwfile=${pwFile}`, "--auth=scram-sha-256", "-E", "UTF8"].concat([
      "--locale=C",
      "--no-sync",
    ]),
    { env, cwd: dir, runAs },
  );
  rmSync(pwFile);
  const conf: Record<string, string | number> = {
    listen_addresses: "127.0.0.1",
    unix_socket_directories: dir,
    password_encryption: "scram-sha-256",
    max_connections: opts.maxConnections,
    // A disposable database: durability only costs time, and we measure the path, not the disk.
    fsync: "off",
    synchronous_commit: "off",
    full_page_writes: "off",
    logging_collector: "off",
  };
  writeFileSync(
    join(dataDir, "pg_hba.conf"),
    "local all all scram-sha-256\nhost all all 127.0.0.1/32 scram-sha-256\n",
  );
  const lines = Object.entries(conf).map(([k, v]) => `${k} = '${v}'\n`);
  appendFileSync(join(dataDir, "postgresql.conf"), "\n# gw bench\n" + lines.join(""));

  const versionText = execFileSync(join(binDir, "postgres"), ["--version"]).toString();
  const version = /\d+(\.\d+)+/.exec(versionText)?.[0] ?? versionText.trim();
  const clientEnv = (port: number): NodeJS.ProcessEnv => ({
    ...cleanEnv(),
    PGHOST: "127.0.0.1",
    PGPORT: String(port),
    PGUSER: USER,
    PGDATABASE: DATABASE,
    PGSSLMODE: "disable",
  });

  // A port free now can be taken before the postmaster binds it: retry with another.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const service = startService(
      "postgres",
      join(binDir, "postgres"),
      ["-D", dataDir, "-p", String(port)],
      {
        env,
        cwd: dir,
        runAs,
        // SIGINT is PostgreSQL's fast shutdown: disconnect clients, stop cleanly.
        stopSignal: "SIGINT",
        stopGraceMs: 15_000,
        crashSignal: "SIGQUIT",
      },
    );
    try {
      await waitForQuery(
        binDir,
        { ...clientEnv(port), PGDATABASE: "postgres", PGPASSWORD: password },
        service,
      );
    } catch (err) {
      await service.stop();
      if (attempt < 3 && /could not bind|already in use/i.test(service.tail())) continue;
      throw err;
    }
    await runOk(join(binDir, "psql"), ["-X", "-q", "-c", `CREATE DATABASE ${DATABASE}`], {
      env: { ...clientEnv(port), PGDATABASE: "postgres", PGPASSWORD: password },
    });
    return {
      port,
      user: USER,
      password,
      database: DATABASE,
      binDir,
      version,
      service,
      clientEnv: (p = port) => clientEnv(p),
    };
  }
}
