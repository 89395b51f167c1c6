/**
 * install.sh from this checkout into a temp prefix: `PREFIX/bin/gw --version` works, the
 * package holds production dependencies only, completions land where each shell looks, a
 * second run updates in place, --uninstall removes exactly what it installed, and a missing or
 * old Node.js is explained. --no-build: the suite has built dist/ already (npm test does).
 */
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cliEnv } from "../helpers/cli.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const INSTALL = join(ROOT, "install.sh");
const VERSION = (
  JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }
).version;

let home: string;
let prefix: string;

beforeAll(() => {
  home = mkdtempSync(join(tmpdir(), "gw-install-home-"));
  prefix = join(home, "prefix with space");
});

afterAll(() => {
  rmSync(home, { recursive: true, force: true });
});

function run(args: string[], env: Record<string, string | undefined> = {}) {
  const r = spawnSync("bash", [INSTALL, ...args], {
    env: cliEnv({ HOME: home, SHELL: "/bin/bash", ...env }),
    encoding: "utf8",
    timeout: 120_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const gw = (args: string[]) =>
  spawnSync(join(prefix, "bin", "gw"), args, { encoding: "utf8", env: cliEnv({ HOME: home }) });

describe("install.sh", () => {
  it("installs gw, its production dependencies and the completions into the prefix", () => {
    const r = run(["--prefix", prefix, "--no-build"]);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.stdout).toContain(`installed gw ${VERSION}`);
    const v = gw(["--version"]);
    expect(v.status, v.stderr).toBe(0);
    expect(v.stdout.trim()).toBe(VERSION);
    const modules = readdirSync(join(prefix, "lib", "gw", "node_modules"));
    expect(modules).toEqual(expect.arrayContaining(["commander", "better-sqlite3", "ws", "pg"]));
    for (const dev of ["vitest", "typescript", "eslint", "prettier", "kubernetes-models"])
      expect(modules, dev).not.toContain(dev);
    const completions: Array<[string, string]> = [
      ["share/bash-completion/completions/gw", "gw.bash"],
      ["share/zsh/site-functions/_gw", "gw.zsh"],
      ["share/fish/vendor_completions.d/gw.fish", "gw.fish"],
    ];
    for (const [installed, source] of completions)
      expect(readFileSync(join(prefix, installed), "utf8")).toBe(
        readFileSync(join(ROOT, "completions", source), "utf8"),
      );
    expect(r.stdout).toContain(`Add ${join(prefix, "bin")} to your PATH`);
    expect(r.stdout).toContain("gw demo");
  });

  it("runs without the checkout's node_modules: a real command works", () => {
    const r = gw(["completion", "bash"]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe(readFileSync(join(ROOT, "completions", "gw.bash"), "utf8"));
    const check = gw(["policy", "test", "--help"]);
    expect(check.status, check.stderr).toBe(0);
  });

  it("is idempotent: a second run updates in place and leaves nothing behind", () => {
    const launcher = readFileSync(join(prefix, "bin", "gw"), "utf8");
    const r = run(["--prefix", prefix, "--no-build"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`updated gw ${VERSION}`);
    expect(readFileSync(join(prefix, "bin", "gw"), "utf8")).toBe(launcher);
    expect(readdirSync(join(prefix, "lib"))).toEqual(["gw"]);
    expect(readdirSync(join(prefix, "bin"))).toEqual(["gw"]);
    expect(gw(["--version"]).stdout.trim()).toBe(VERSION);
  });

  it("takes the prefix from GW_PREFIX too", () => {
    const other = join(home, "env-prefix");
    const r = run(["--no-build"], { GW_PREFIX: other });
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(join(other, "bin", "gw"))).toBe(true);
    expect(run(["--uninstall"], { GW_PREFIX: other }).code).toBe(0);
    expect(existsSync(join(other, "bin", "gw"))).toBe(false);
  });

  it("--uninstall removes what it installed, and only that", () => {
    writeFileSync(join(prefix, "bin", "other-tool"), "#!/bin/sh\n");
    const r = run(["--prefix", prefix, "--uninstall"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`removed ${join(prefix, "bin", "gw")}`);
    expect(existsSync(join(prefix, "bin", "gw"))).toBe(false);
    expect(existsSync(join(prefix, "lib", "gw"))).toBe(false);
    expect(existsSync(join(prefix, "share/bash-completion/completions/gw"))).toBe(false);
    expect(existsSync(join(prefix, "share/zsh/site-functions/_gw"))).toBe(false);
    expect(existsSync(join(prefix, "bin", "other-tool"))).toBe(true);
    const again = run(["--prefix", prefix, "--uninstall"]);
    expect(again.stdout).toContain("gw is not installed in");
    // A `gw` that install.sh did not write stays.
    writeFileSync(join(prefix, "bin", "gw"), "#!/bin/sh\necho mine\n");
    run(["--prefix", prefix, "--uninstall"]);
    expect(readFileSync(join(prefix, "bin", "gw"), "utf8")).toContain("mine");
  });

  it("explains a Node.js that is too old, or missing, and how to get one", () => {
    const fake = join(home, "old-node");
    mkdirSync(fake, { recursive: true });
    writeFileSync(
      join(fake, "node"),
      '#!/bin/sh\ncase "$1" in -p) echo 18 ;; --version) echo v18.19.0 ;; esac\n',
    );
    chmodSync(join(fake, "node"), 0o755);
    const old = run(["--prefix", join(home, "p2")], { PATH: `${fake}:${process.env["PATH"]}` });
    expect(old.code).toBe(1);
    expect(old.stderr).toContain("Node.js v18.19.0 is too old; gw needs Node.js 20 or newer");
    expect(old.stderr).toContain("nvm install 22");
    // Only the tools the script needs before its Node check, and no node at all.
    const bare = join(home, "no-node");
    mkdirSync(bare, { recursive: true });
    for (const tool of ["dirname", "id", "mkdir", "sed", "cat"]) {
      const found = spawnSync("sh", ["-c", `command -v ${tool}`], {
        encoding: "utf8",
      }).stdout.trim();
      symlinkSync(found, join(bare, tool));
    }
    const none = spawnSync("/bin/bash", [INSTALL, "--prefix", join(home, "p3")], {
      env: { HOME: home, PATH: bare },
      encoding: "utf8",
    });
    expect(none.status).toBe(1);
    expect(none.stderr).toContain("gw needs Node.js 20 or newer, and node was not found on PATH");
    expect(none.stderr).toContain("brew install node");
  });

  it("says how to use it", () => {
    const r = spawnSync("bash", [INSTALL, "--help"], { encoding: "utf8" });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("./install.sh --prefix DIR");
    expect(r.stdout).toContain("--uninstall");
    const bad = spawnSync("bash", [INSTALL, "--frobnicate"], { encoding: "utf8" });
    expect(bad.status).toBe(2);
  });
});
