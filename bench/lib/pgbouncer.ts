/**
 * pgbouncer in session mode in front of the benchmark server: the usual baseline for "a
 * proxy on the data path". It refuses to run as root, so as root it runs as `postgres`.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { accessSync, chownSync, constants, mkdirSync, writeFileSync } from "node:fs";
import { delimiter, join } from "node:path";
import { cleanEnv, freePort, isRoot, serverUser, waitForQuery, type PgServer } from "./postgres.js";
import { runOk, startService, type Service } from "./proc.js";

export interface Pgbouncer {
  port: number;
  version: string;
  service: Service;
}

function findPgbouncer(): string | undefined {
  const dirs = ["/usr/sbin", "/usr/bin", ...(process.env.PATH ?? "").split(delimiter)];
  for (const d of dirs.filter((x) => x !== "")) {
    try {
      accessSync(join(d, "pgbouncer"), constants.X_OK);
      return join(d, "pgbouncer");
    } catch {
      // Next.
    }
  }
  return undefined;
}

/** The pgbouncer binary; as root, installs the Debian package when it is missing. */
export function ensurePgbouncer(): string {
  const found = findPgbouncer();
  if (found) return found;
  if (!isRoot())
    throw new Error(
      "pgbouncer is not installed. Install the Debian package: sudo apt-get install -y pgbouncer (or run the benchmark as root, which installs it).",
    );
  const apt = (args: string[]) =>
    spawnSync("apt-get", ["-o", "DPkg::Lock::Timeout=300", ...args], {
      stdio: ["ignore", 2, 2],
      env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
    }).status === 0;
  process.stderr.write("bench: pgbouncer is missing; apt-get install -y pgbouncer\n");
  const install = ["install", "-y", "--no-install-recommends", "pgbouncer"];
  if (!apt(install) && !(apt(["update"]) && apt(install)))
    throw new Error("apt-get install pgbouncer failed (see above)");
  const installed = findPgbouncer();
  if (!installed) throw new Error("pgbouncer is still missing after apt-get install pgbouncer");
  return installed;
}

export async function startPgbouncer(
  base: string,
  pg: PgServer,
  poolSize: number,
): Promise<Pgbouncer> {
  const exe = ensurePgbouncer();
  const version = execFileSync(exe, ["--version"]).toString().split("\n")[0]!.trim();
  const runAs = serverUser();
  const dir = join(base, "pgbouncer");
  mkdirSync(dir, { mode: 0o700 });
  if (runAs) chownSync(dir, runAs.uid, runAs.gid);
  // The server's own SCRAM verifier, as pgbouncer deployments usually have it (auth_query or a
  // generated userlist): pgbouncer checks clients against it without a PBKDF2 per connection,
  // and signs in to the server with the client's SCRAM keys (pass-through).
  const verifier = (
    await runOk(
      join(pg.binDir, "psql"),
      ["-X", "-At", "-c", "select rolpassword from pg_authid where rolname = current_user"],
      { env: { ...pg.clientEnv(), PGPASSWORD: pg.password } },
    )
  ).trim();
  if (!verifier.startsWith("SCRAM-SHA-256$"))
    throw new Error("no SCRAM verifier for the bench user");
  const authFile = join(dir, "userlist.txt");
  writeFileSync(authFile, `"${pg.user}" "${verifier}"\n`, { mode: 0o600 });
  if (runAs) chownSync(authFile, runAs.uid, runAs.gid);

  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const ini = join(dir, "pgbouncer.ini");
    writeFileSync(
      ini,
      [
        "[databases]",
        `${pg.database} = host=127.0.0.1 port=${pg.port} dbname=${pg.database}`,
        "[pgbouncer]",
        "listen_addr = 127.0.0.1",
        `listen_port = ${port}`,
        "unix_socket_dir =",
        "auth_type = scram-sha-256",
        `auth_file = ${authFile}`,
        "pool_mode = session",
        `max_client_conn = ${poolSize * 4}`,
        `default_pool_size = ${poolSize}`,
        "ignore_startup_parameters = extra_float_digits",
        "",
      ].join("\n"),
    );
    if (runAs) chownSync(ini, runAs.uid, runAs.gid);
    const service = startService("pgbouncer", exe, [ini], { env: cleanEnv(), cwd: dir, runAs });
    try {
      await waitForQuery(pg.binDir, { ...pg.clientEnv(port), PGPASSWORD: pg.password }, service);
    } catch (err) {
      await service.stop();
      if (attempt < 3 && /in use/i.test(service.tail())) continue;
      throw err;
    }
    return { port, version, service };
  }
}
