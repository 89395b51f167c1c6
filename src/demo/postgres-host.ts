/**
 * Finding and running this machine's PostgreSQL server binaries: shared by `gw demo`
 * (src/demo/postgres.ts) and the test suite's servers (test/helpers/postgres.ts).
 *
 * PostgreSQL refuses to run as root; as root its binaries run through runuser as the
 * `postgres` user (made by the Debian package), else as a system user created on first use.
 */
import { execFileSync } from "node:child_process";
import { accessSync, constants, readdirSync } from "node:fs";
import { createServer } from "node:net";
import { delimiter, join } from "node:path";
import { ExitCode, GwError } from "../errors.js";

export interface RunAs {
  name: string;
  uid: number;
  gid: number;
}

export const isRoot = (): boolean => process.getuid?.() === 0;

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

let binDirCache: string | null | undefined;

/** The bin dir of the newest installed server (/usr/lib/postgresql/N/bin on Debian, else PATH), or null. */
export function findPostgresBinDir(): string | null {
  if (binDirCache !== undefined) return binDirCache;
  const candidates: string[] = [];
  for (const root of ["/usr/lib/postgresql", "/usr/local/pgsql"]) {
    try {
      const versions = readdirSync(root)
        .filter((v) => /^\d+(\.\d+)?$/.test(v))
        .sort((a, b) => Number(b) - Number(a));
      for (const v of versions) candidates.push(join(root, v, "bin"));
    } catch {
      // not this layout
    }
  }
  candidates.push("/usr/local/pgsql/bin", "/opt/homebrew/bin", "/usr/local/bin");
  candidates.push(...(process.env["PATH"] ?? "").split(delimiter).filter((d) => d !== ""));
  for (const dir of candidates) {
    if (isExecutable(join(dir, "initdb")) && isExecutable(join(dir, "pg_ctl"))) {
      return (binDirCache = dir);
    }
  }
  return (binDirCache = null);
}

function lookupUser(name: string): RunAs | undefined {
  try {
    const id = (flag: string) =>
      Number(
        execFileSync("id", [flag, name], { stdio: ["ignore", "pipe", "ignore"] })
          .toString()
          .trim(),
      );
    return { name, uid: id("-u"), gid: id("-g") };
  } catch {
    return undefined;
  }
}

const runAsCache = new Map<string, RunAs>();

/** As root: the user the server runs as — `postgres`, else `fallback`, created if missing. */
export function serverUser(fallback: string): RunAs {
  const cached = runAsCache.get(fallback);
  if (cached) return cached;
  let user = lookupUser("postgres") ?? lookupUser(fallback);
  if (user === undefined) {
    try {
      execFileSync(
        "useradd",
        [
          "--system",
          "--no-create-home",
          "--home-dir",
          "/nonexistent",
          "--shell",
          "/usr/sbin/nologin",
          fallback,
        ],
        { stdio: ["ignore", "ignore", "pipe"] },
      );
    } catch (err) {
      // Another process may have created it at the same moment; only fail if it is still missing.
      if (lookupUser(fallback) === undefined) {
        throw new GwError(
          "pg_user",
          `cannot create the system user ${fallback} to run PostgreSQL as`,
          {
            exitCode: ExitCode.failure,
            hint: "PostgreSQL refuses to run as root: run as a normal user.",
            cause: err,
          },
        );
      }
    }
    user = lookupUser(fallback);
  }
  if (user === undefined) throw new Error("no user to run PostgreSQL as");
  runAsCache.set(fallback, user);
  return user;
}

/** The command line of a server binary: as root, through runuser as the server user. */
export function serverCommand(
  binDir: string,
  tool: string,
  args: string[],
  fallbackUser: string,
): [string, ...string[]] {
  const exe = join(binDir, tool);
  return isRoot()
    ? ["runuser", "-u", serverUser(fallbackUser).name, "--", exe, ...args]
    : [exe, ...args];
}

/** A port free on 127.0.0.1 right now (the caller retries if another process takes it first). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}
