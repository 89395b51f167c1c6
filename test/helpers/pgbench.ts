/**
 * pgbench for tests: where it is (the server's own bin directory first, as Debian keeps it
 * there), a run of it (or any tool) to completion, and the environment that points it at a
 * tunnel without a password file or TLS.
 */
import { spawn } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { join } from "node:path";

export interface ToolRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function pgbenchPath(binDir: string): string {
  const inBin = join(binDir, "pgbench");
  try {
    accessSync(inBin, constants.X_OK);
    return inBin;
  } catch {
    return "/usr/bin/pgbench";
  }
}

/** Runs `file` to completion with exactly `env`, stdin closed. */
export function runTool(
  file: string,
  args: string[],
  env: Record<string, string>,
): Promise<ToolRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (c: Buffer) => out.push(c));
    child.stderr.on("data", (c: Buffer) => err.push(c));
    child.on("error", reject);
    child.on("close", (code) =>
      resolve({
        code,
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
      }),
    );
  });
}
