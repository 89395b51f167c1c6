/**
 * Shell completion: the committed scripts (completions/gw.*) are exactly what the generator
 * makes of the current command definitions (regenerate with `npm run completions`), they parse,
 * and in a real bash, completing `gw connect ` offers the connections of the demo broker: first
 * fetched (no cache yet), then from the cache. zsh and fish are checked too where installed.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildProgram } from "../../src/cli/main.js";
import { completionScript, SHELLS } from "../../src/cli/completion/generate.js";
import { commandSpec } from "../../src/cli/completion/model.js";
import { cliEnv, GW_BIN, runGw, type BackgroundGw } from "../helpers/cli.js";
import { engineerEnv, startDemo, type DemoJson } from "../demo/helpers.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const committed = (shell: string) => join(ROOT, "completions", `gw.${shell}`);
const has = (tool: string) => spawnSync("sh", ["-c", `command -v ${tool}`]).status === 0;

describe("committed completion scripts", () => {
  for (const shell of SHELLS) {
    it(`completions/gw.${shell} matches the command definitions`, () => {
      const expected = completionScript(shell, commandSpec(buildProgram()));
      const actual = readFileSync(committed(shell), "utf8");
      // On drift: npm run completions (and commit the result).
      expect(actual, "completions/ drifted from the CLI: run `npm run completions`").toBe(expected);
    });
  }

  it("gw completion SHELL prints the same", async () => {
    for (const shell of SHELLS) {
      const r = await runGw(["completion", shell]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toBe(readFileSync(committed(shell), "utf8"));
    }
    const bad = await runGw(["completion", "tcsh"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("Allowed choices are bash, zsh, fish");
  });

  it("parse in their shells", () => {
    execFileSync("bash", ["-n", committed("bash")]);
    if (has("zsh")) execFileSync("zsh", ["-n", committed("zsh")]);
    if (has("fish")) execFileSync("fish", ["--no-execute", committed("fish")]);
  });

  it("list every visible command and subcommand, and no hidden one", () => {
    const bash = readFileSync(committed("bash"), "utf8");
    const top = buildProgram()
      .commands.filter((c) => !(c as unknown as { _hidden: boolean })._hidden)
      .map((c) => c.name());
    expect(bash).toContain(`    "") echo "${top.join(" ")}" ;;`);
    expect(top).toEqual(expect.arrayContaining(["connect", "ps", "disconnect", "demo", "mcp"]));
    expect(bash).not.toContain('__complete"');
  });
});

describe("completing live connection names", () => {
  let demo: BackgroundGw<DemoJson>;
  let bin: string;

  beforeAll(async () => {
    demo = await startDemo();
    // `gw` on PATH, as an installed one would be.
    bin = mkdtempSync(join(tmpdir(), "gw-completion-bin-"));
    symlinkSync(GW_BIN, join(bin, "gw"));
  });

  afterAll(async () => {
    await demo?.stop("SIGINT");
    if (bin) rmSync(bin, { recursive: true, force: true });
  });

  function env(): NodeJS.ProcessEnv {
    const base = cliEnv(engineerEnv(demo.json));
    return { ...base, PATH: `${bin}:${base["PATH"] ?? ""}` };
  }

  /** Runs bash with the script sourced, COMP_WORDS set, _gw called; returns COMPREPLY. */
  function bashComplete(words: string[]): string[] {
    const script = [
      `source ${JSON.stringify(committed("bash"))}`,
      `COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")})`,
      `COMP_CWORD=${words.length - 1}`,
      "COMPREPLY=()",
      "_gw",
      `printf '%s\\n' "\${COMPREPLY[@]}"`,
    ].join("\n");
    const r = spawnSync("bash", ["--norc", "--noprofile", "-c", script], {
      env: env(),
      encoding: "utf8",
      timeout: 20_000,
    });
    expect(r.status, r.stderr).toBe(0);
    return r.stdout.split("\n").filter((l) => l !== "");
  }

  it("bash: `gw connect <TAB>` offers the demo broker's connections, fetching then caching", () => {
    const cache = join(demo.json.configDir, "cache", "connections.json");
    rmSync(cache, { force: true }); // gw demo wrote one: start from nothing
    expect(bashComplete(["gw", "connect", ""])).toEqual(["demo-db"]);
    expect(JSON.parse(readFileSync(cache, "utf8"))).toMatchObject({
      broker: demo.json.broker,
      names: ["demo-db"],
    });
    // From the cache (the broker is not asked again): a prefix completes, a non-match does not.
    expect(bashComplete(["gw", "connect", "dem"])).toEqual(["demo-db"]);
    expect(bashComplete(["gw", "connect", "x"])).toEqual([]);
    expect(bashComplete(["gw", "connect", "--port", "5433", ""])).toEqual(["demo-db"]);
  });

  it("bash: commands, subcommands, options, choices and files", () => {
    expect(bashComplete(["gw", "disc"])).toEqual(["disconnect"]);
    expect(bashComplete(["gw", "broker", ""]).sort()).toEqual(["check", "start"]);
    expect(bashComplete(["gw", "connect", "--de"])).toEqual(["--detach"]);
    expect(bashComplete(["gw", "completion", "z"])).toEqual(["zsh"]);
    expect(bashComplete(["gw", "mcp", "config", "--client", "c"])).toEqual(["claude", "cursor"]);
    const ca = bashComplete(["gw", "connect", "--ca-file", demo.json.caFile.slice(0, -3)]);
    expect(ca).toEqual([demo.json.caFile]);
  });

  it.runIf(has("fish"))("fish: `gw connect <TAB>` offers the connections", () => {
    const r = spawnSync(
      "fish",
      ["--no-config", "-c", `source ${committed("fish")}; complete -C 'gw connect '`],
      { env: env(), encoding: "utf8", timeout: 20_000 },
    );
    expect(r.stdout.split("\n").map((l) => l.split("\t")[0])).toContain("demo-db");
  });

  it.runIf(has("zsh"))("zsh: `gw connect <TAB>` offers the connections", () => {
    // compadd and friends stubbed: what _gw would add, printed.
    const script = [
      "compdef() { :; }",
      "compadd() { shift; print -rl -- ${(@P)1}; }",
      "_describe() { :; }",
      `source ${committed("zsh")}`,
      "words=(gw connect ''); CURRENT=3; _gw",
    ].join("\n");
    const r = spawnSync("zsh", ["-f", "-c", script], {
      env: env(),
      encoding: "utf8",
      timeout: 20_000,
    });
    expect(r.stdout.trim().split("\n")).toEqual(["demo-db"]);
  });

  it("gw __complete tunnels lists background tunnels (none here)", async () => {
    const r = await runGw(["__complete", "tunnels"], { env: engineerEnv(demo.json) });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("");
    expect(existsSync(join(demo.json.configDir, "tunnels"))).toBe(false);
  });
});
