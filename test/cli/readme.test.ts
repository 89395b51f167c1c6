/**
 * The README's quick start, run as written: its two commands are read from README.md (so the
 * test follows the text). `./install.sh && gw demo` runs in bash from the checkout (with the
 * prefix in a temp dir via GW_PREFIX and a temp HOME, so the machine is not touched), the demo's
 * tunnel serves masked data, and Ctrl-C (SIGINT to the whole foreground process group, as a
 * terminal sends it) leaves nothing behind. `npm ci && npm test` cannot run inside `npm test`;
 * it is checked to name what package.json provides.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { cliEnv } from "../helpers/cli.js";
import { processesMentioning, psql, waitFor } from "../demo/helpers.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const README = readFileSync(join(ROOT, "README.md"), "utf8");

/** The shell commands of the README's "Quick start" section, one per line. */
function quickStart(): string[] {
  const section = /^## Quick start\n([\s\S]*?)^## /m.exec(README)?.[1];
  if (!section) throw new Error("README.md has no ## Quick start section");
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].flatMap((m) =>
    m[1]!.split("\n").filter((l) => l.trim() !== "" && !l.trim().startsWith("#")),
  );
}

const home = mkdtempSync(join(tmpdir(), "gw-readme-"));
afterAll(() => rmSync(home, { recursive: true, force: true }));

describe("README quick start", () => {
  it("has the two commands", () => {
    expect(quickStart()).toEqual(["./install.sh && gw demo", "npm ci && npm test"]);
  });

  it("`npm ci && npm test` names a lockfile and a test script that exist", () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
      scripts: Record<string, string>;
    };
    expect(existsSync(join(ROOT, "package-lock.json"))).toBe(true);
    expect(pkg.scripts["test"]).toBeDefined();
  });

  // install.sh runs `npm ci` when node_modules is older than the lockfile: that would replace
  // node_modules under the tests running beside this one. A tree in that state is not tested.
  const lock = statSync(join(ROOT, "package-lock.json")).mtimeMs;
  const installed = existsSync(join(ROOT, "node_modules/.package-lock.json"))
    ? statSync(join(ROOT, "node_modules/.package-lock.json")).mtimeMs
    : 0;

  it.skipIf(installed < lock)(
    "`./install.sh && gw demo` runs as written and Ctrl-C leaves nothing behind",
    async () => {
      const [command] = quickStart();
      const prefix = join(home, "prefix");
      const env = cliEnv({
        HOME: home,
        GW_PREFIX: prefix,
        PATH: `${join(prefix, "bin")}:${process.env["PATH"]}`,
      });
      // bash -c in its own process group, like a terminal's foreground job.
      const job = spawn("bash", ["-c", command!], {
        cwd: ROOT,
        env,
        detached: true,
        stdio: ["ignore", "pipe", "pipe"],
      });
      let out = "";
      job.stdout!.setEncoding("utf8").on("data", (c: string) => (out += c));
      job.stderr!.setEncoding("utf8").on("data", (c: string) => (out += c));
      const exited = new Promise<number | null>((r) => job.on("close", r));
      try {
        await waitFor(
          "the demo's tour",
          () => (out.includes("Press Ctrl-C") ? true : undefined),
          240_000,
        );
        expect(out).toContain(`installed gw`);
        expect(out).toContain("LOCAL TEST IDENTITY SERVER — NOT MICROSOFT ENTRA ID");
        const url = /psql "(postgresql:\/\/127\.0\.0\.1:\d+\/demo)"/.exec(out)![1]!;
        const dir = /Everything is on this machine and in (\S+)\./.exec(out)![1]!;
        const r = await psql(url, "SELECT email FROM customers ORDER BY id LIMIT 1");
        expect(r.stdout.trim()).toBe("[redacted:email]");
        // Ctrl-C.
        process.kill(-job.pid!, "SIGINT");
        const code = await exited;
        expect(code).toBe(0);
        expect(out).toContain(`demo stopped; ${dir} removed`);
        expect(existsSync(dir)).toBe(false);
        expect(processesMentioning(dir)).toEqual([]);
      } finally {
        if (job.exitCode === null) process.kill(-job.pid!, "SIGKILL");
      }
    },
    300_000,
  );
});
