/**
 * `gw disconnect`: stops background tunnels by name or all of them, cleans their state, and says
 * clearly when there is nothing to stop. A background tunnel survives the end of the terminal
 * session that started it (SIGHUP to that session's process group).
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cliEnv, GW_BIN, runGw } from "../helpers/cli.js";
import { startStack, type Stack } from "../helpers/stack.js";
import { alive, psql, waitFor } from "../demo/helpers.js";

let stack: Stack;
let configDir: string;
let env: Record<string, string>;
const pids: number[] = [];

beforeAll(async () => {
  stack = await startStack({
    mutate: (raw) => {
      const conns = raw["connections"] as Record<string, Record<string, unknown>>;
      conns["db-other"] = { ...conns["db-test"], description: "Another database" };
    },
  });
  configDir = mkdtempSync(join(tmpdir(), "gw-disconnect-test-"));
  env = {
    GW_TOKEN: stack.tokens.dba,
    GW_BROKER: stack.broker.url,
    GW_CA_FILE: stack.ca.caCert,
    GW_CONFIG_DIR: configDir,
  };
});

afterAll(async () => {
  if (configDir) await runGw(["disconnect", "--all"], { env: { GW_CONFIG_DIR: configDir } });
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
  }
  await stack?.stop();
  rmSync(configDir, { recursive: true, force: true });
});

async function detach(name: string): Promise<{ pid: number; url: string }> {
  const r = await runGw(["connect", name, "--detach", "--port", "0", "--json"], { env });
  expect(r.code, r.stderr).toBe(0);
  const t = JSON.parse(r.stdout) as { pid: number; url: string };
  pids.push(t.pid);
  return t;
}

describe("gw disconnect", () => {
  it("asks which tunnel when given none, and says so when one is not running", async () => {
    const none = await runGw(["disconnect"], { env });
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("which tunnel? give its name, or --all");
    const missing = await runGw(["disconnect", "db-nope"], { env });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("no background tunnel for db-nope");
    expect(missing.stderr).toContain("hint: None is running (gw ps)");
  });

  it("a background tunnel survives its terminal session's hangup", async () => {
    // A shell as the session leader of its own session, like a terminal's: it starts the
    // tunnel, then the whole session gets SIGHUP.
    const sh = spawn(
      "/bin/sh",
      [
        "-c",
        `"${process.execPath}" "${GW_BIN}" connect db-test --detach --port 0 --json; sleep 30`,
      ],
      { env: cliEnv(env), detached: true, stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    sh.stdout!.setEncoding("utf8").on("data", (c: string) => (out += c));
    const t = await waitFor("the tunnel's JSON", () =>
      out.includes("\n")
        ? (JSON.parse(out.split("\n")[0]!) as { pid: number; url: string })
        : undefined,
    );
    pids.push(t.pid);
    process.kill(-sh.pid!, "SIGHUP");
    await new Promise((r) => setTimeout(r, 300));
    expect(alive(t.pid)).toBe(true);
    const r = await psql(`${t.url}?sslmode=disable`, "select 'still here'");
    expect(r.stdout.trim()).toBe("still here");
  });

  it("stops one tunnel by name and leaves the others", async () => {
    const other = await detach("db-other");
    const test = (await runGw(["ps", "--json"], { env })).stdout;
    const testPid = (JSON.parse(test) as Array<{ connection: string; pid: number }>).find(
      (x) => x.connection === "db-test",
    )!.pid;
    const r = await runGw(["disconnect", "db-other", "--json"], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual([
      { connection: "db-other", pid: other.pid, result: "stopped" },
    ]);
    expect(alive(other.pid)).toBe(false);
    expect(alive(testPid)).toBe(true);
    expect(existsSync(join(configDir, "tunnels", "db-other.json"))).toBe(false);
    expect(existsSync(join(configDir, "tunnels", "db-other.status.json"))).toBe(false);
  });

  it("--all stops every background tunnel and cleans the state dir", async () => {
    const other = await detach("db-other");
    const r = await runGw(["disconnect", "--all"], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/disconnected db-other \(pid \d+\)/);
    expect(r.stderr).toMatch(/disconnected db-test \(pid \d+\)/);
    for (const pid of pids) expect(alive(pid)).toBe(false);
    expect(alive(other.pid)).toBe(false);
    expect(readdirSync(join(configDir, "tunnels"))).toEqual([]);
    const again = await runGw(["disconnect", "--all"], { env });
    expect(again.code).toBe(0);
    expect(again.stderr).toContain("no tunnels running in the background");
  });

  it("a stale state file (the tunnel was killed) is cleaned, not obeyed", async () => {
    const t = await detach("db-test");
    process.kill(t.pid, "SIGKILL");
    await waitFor("the kill", () => (alive(t.pid) ? undefined : true));
    const ps = await runGw(["ps", "--json"], { env });
    expect(JSON.parse(ps.stdout)).toEqual([]);
    expect(existsSync(join(configDir, "tunnels", "db-test.json"))).toBe(false);
  });
});
