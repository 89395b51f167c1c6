/**
 * Detached tunnels: `gw connect NAME --detach` starts a background tunnel and returns, `gw ps`
 * lists it with its traffic, a second --detach finds it running, and the tunnel outlives a broker
 * restart: a connection made while the broker is down waits (the log says it retries) and goes
 * through once the broker is back; so does a new one.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Broker } from "../../src/broker/broker.js";
import { createLogger } from "../../src/broker/logger.js";
import { runGw } from "../helpers/cli.js";
import { startStack, type Stack } from "../helpers/stack.js";
import { alive, psql, waitFor } from "../demo/helpers.js";

let stack: Stack;
let configDir: string;
let env: Record<string, string>;
const pids: number[] = [];
let restarted: Broker | undefined;

beforeAll(async () => {
  stack = await startStack();
  configDir = mkdtempSync(join(tmpdir(), "gw-ps-test-"));
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
  await restarted?.close();
  await stack?.stop();
  rmSync(configDir, { recursive: true, force: true });
});

interface Detached {
  connection: string;
  listen: { host: string; port: number };
  url: string;
  pid: number;
  logFile: string;
  detached: boolean;
  alreadyRunning?: boolean;
}

interface PsRow {
  connection: string;
  port: number;
  pid: number;
  identity: string;
  agent: string | null;
  startedAt: string;
  bytesIn: number;
  bytesOut: number;
  streamsTotal: number;
  logFile: string;
}

async function ps(): Promise<PsRow[]> {
  const r = await runGw(["ps", "--json"], { env });
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as PsRow[];
}

describe("gw connect --detach and gw ps", () => {
  let t: Detached;

  it("starts the tunnel in the background and returns with its description", async () => {
    const started = Date.now();
    const r = await runGw(
      ["connect", "db-test", "--detach", "--port", "0", "--json", "--agent", "ci-bot"],
      {
        env,
      },
    );
    expect(r.code, r.stderr).toBe(0);
    t = JSON.parse(r.stdout) as Detached;
    pids.push(t.pid);
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(t).toMatchObject({ connection: "db-test", detached: true });
    expect(t.listen.port).toBeGreaterThan(0);
    expect(t.logFile).toBe(join(configDir, "logs", "db-test.log"));
    expect(alive(t.pid)).toBe(true);
    // Its own session: the terminal's hangup or Ctrl-C does not reach it.
    const sid = readFileSync(`/proc/${t.pid}/stat`, "utf8").split(") ")[1]!.split(" ")[3];
    expect(Number(sid)).toBe(t.pid);
  });

  it("serves psql", async () => {
    const r = await psql(`${t.url}?sslmode=disable`, "select 40 + 2");
    expect(r.stderr).toBe("");
    expect(r.stdout.trim()).toBe("42");
  });

  it("is listed by gw ps with its identity and traffic", async () => {
    const row = await waitFor("traffic in the status file", async () => {
      const rows = await ps();
      const x = rows.find((r) => r.connection === "db-test");
      return x && x.bytesIn > 0 && x.bytesOut > 0 ? x : undefined;
    });
    expect(row).toMatchObject({
      port: t.listen.port,
      pid: t.pid,
      identity: "dana@example.com",
      agent: "ci-bot",
      streamsTotal: 1,
    });
    const table = await runGw(["ps"], { env });
    expect(table.stdout).toMatch(/^NAME\s+PORT\s+PID\s+IDENTITY\s+SINCE\s+TRAFFIC IN\/OUT/);
    expect(table.stdout).toContain(`db-test  ${t.listen.port}`);
    expect(table.stdout).toContain("dana@example.com (agent ci-bot)");
  });

  it("is not started twice: --detach again reports the running one", async () => {
    const r = await runGw(["connect", "db-test", "--detach", "--json"], { env });
    expect(r.code, r.stderr).toBe(0);
    const again = JSON.parse(r.stdout) as Detached;
    expect(again).toMatchObject({ pid: t.pid, alreadyRunning: true });
    expect(JSON.stringify(again)).not.toContain('localPassword":"');
  });

  it("keeps serving across a broker restart, retrying with backoff while it is down", async () => {
    const url = `${t.url}?sslmode=disable`;
    const port = stack.broker.port;
    await stack.broker.close();
    // A client that arrives while the broker is down waits for it.
    const waiting = psql(url, "select 'waited'", {}, 60_000);
    await waitFor(
      "the retry in the log",
      () =>
        /broker unreachable, retrying in \d+s/.test(readFileSync(t.logFile, "utf8"))
          ? true
          : undefined,
      15_000,
    );
    restarted = await Broker.start({
      config: stack.config,
      store: stack.store,
      listen: { host: "127.0.0.1", port },
      logger: createLogger({ level: "error", write: () => undefined }),
    });
    const r = await waiting;
    expect(r.stderr).toBe("");
    expect(r.stdout.trim()).toBe("waited");
    // And a new connection after the restart.
    const fresh = await psql(url, "select 'after restart'");
    expect(fresh.stdout.trim()).toBe("after restart");
    expect(alive(t.pid)).toBe(true);
  });

  it("gw disconnect stops it and gw ps forgets it", async () => {
    const r = await runGw(["disconnect", "db-test"], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`disconnected db-test (pid ${t.pid})`);
    expect(alive(t.pid)).toBe(false);
    expect(await ps()).toEqual([]);
    expect(existsSync(join(configDir, "tunnels", "db-test.json"))).toBe(false);
    expect(readFileSync(t.logFile, "utf8")).toMatch(/tunnel closed\n$/);
  });
});
