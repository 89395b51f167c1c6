/**
 * `gw connect --local-password` against the demo broker: the tunnel asks local clients for its
 * own random password before anything reaches the broker. Right password: through (with the
 * SSLRequest psql sends first); none or a wrong one: refused with 28P01 locally, and no session
 * exists at the broker; a CancelRequest (which carries the session's secret key) needs none.
 */
import { spawn } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runGw, startGw, type BackgroundGw } from "../helpers/cli.js";
import { engineerEnv, psql, PSQL, startDemo, waitFor, type DemoJson } from "./helpers.js";

interface ConnectJson {
  url: string;
  localPassword: string;
  listen: { host: string; port: number };
}

let demo: BackgroundGw<DemoJson>;
let tunnel: BackgroundGw<ConnectJson>;

beforeAll(async () => {
  demo = await startDemo();
  tunnel = await startGw<ConnectJson>(
    ["connect", "demo-db", "--local-password", "--port", "0", "--json"],
    { env: engineerEnv(demo.json) },
  );
});

afterAll(async () => {
  await tunnel?.stop("SIGINT");
  await demo?.stop("SIGINT");
});

async function sessionCount(): Promise<number> {
  const r = await runGw(["sessions", "--json"], { env: engineerEnv(demo.json) });
  return (JSON.parse(r.stdout) as { sessions: unknown[] }).sessions.length;
}

describe("gw connect --local-password", () => {
  it("prints a URL that carries the tunnel's random password", () => {
    const t = tunnel.json;
    expect(t.localPassword).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(t.url).toBe(`postgresql://gw:${t.localPassword}@127.0.0.1:${t.listen.port}/demo`);
  });

  it("lets a client with the password through (psql's SSLRequest first, as by default)", async () => {
    const r = await psql(tunnel.json.url, "SELECT email FROM customers WHERE id = 1");
    expect(r.stderr).toBe("");
    expect(r.stdout.trim()).toBe("[redacted:email]");
  });

  it("refuses a client without it, or with a wrong one, before the broker sees anything", async () => {
    const before = await sessionCount();
    const bare = `postgresql://127.0.0.1:${tunnel.json.listen.port}/demo`;
    const none = await psql(bare, "select 1", { PGCONNECT_TIMEOUT: "5" });
    expect(none.code).not.toBe(0);
    expect(none.stderr).toMatch(/no password supplied/);
    const wrong = await psql(bare, "select 1", { PGPASSWORD: "guess" });
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toContain("wrong local password for this tunnel");
    const plain = await psql(`${bare}?sslmode=disable`, "select 1", { PGPASSWORD: "guess" });
    expect(plain.stderr).toContain("wrong local password");
    expect(await sessionCount()).toBe(before);
    expect(tunnel.stderr()).toMatch(/refused a local client: wrong local password/);
  });

  it("passes a cancel request through without a password", async () => {
    const child = spawn(PSQL, [tunnel.json.url, "-X", "-c", "select pg_sleep(30)"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
    const done = new Promise<number | null>((r) => child.on("close", r));
    await waitFor("the query to start", async () => {
      const r = await runGw(["sessions", "--json"], { env: engineerEnv(demo.json) });
      const s = (JSON.parse(r.stdout) as { sessions: Array<{ endedAt: number | null }> }).sessions;
      return s.some((x) => x.endedAt === null) ? true : undefined;
    });
    await new Promise((r) => setTimeout(r, 300));
    child.kill("SIGINT"); // psql sends a CancelRequest on a new connection
    const code = await done;
    expect(code).not.toBe(0);
    expect(stderr).toContain("canceling statement due to user request");
  });
});
