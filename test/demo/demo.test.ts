/**
 * `gw demo` as a person (or a script) runs it: the built CLI in a subprocess. Its JSON line
 * points at a working tunnel whose results are masked, whose DROP is blocked and whose
 * unbounded DELETE waits for the approver the demo made; the engineer's sessions are recorded;
 * and Ctrl-C (SIGINT) leaves no process and no file behind.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runGw, type BackgroundGw } from "../helpers/cli.js";
import {
  alive,
  engineerEnv,
  processesMentioning,
  psql,
  startDemo,
  waitFor,
  type DemoJson,
} from "./helpers.js";

let demo: BackgroundGw<DemoJson>;
let d: DemoJson;

beforeAll(async () => {
  demo = await startDemo();
  d = demo.json;
});

afterAll(async () => {
  if (demo && demo.child.exitCode === null) await demo.stop("SIGKILL");
});

describe("gw demo --json", () => {
  it("prints one JSON line with the endpoints and prints the identity server's banner", () => {
    expect(d.broker).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(d.identityServer).toMatch(/^https:\/\/localhost:\d+$/);
    expect(d.connection).toBe("demo-db");
    expect(d.psqlUrl).toBe(`postgresql://127.0.0.1:${d.tunnel.port}/demo`);
    expect(d.postgres.kind).toBe("postgresql");
    for (const f of [d.caFile, d.approverTokenFile, d.envFile, d.agentEnvFile])
      expect(existsSync(f)).toBe(true);
    expect(statSync(d.approverTokenFile).mode & 0o077).toBe(0);
    expect(demo.stdout().trim().split("\n")).toHaveLength(1);
    expect(demo.stderr()).toContain("LOCAL TEST IDENTITY SERVER — NOT MICROSOFT ENTRA ID");
  });

  it("signed the engineer in through the device code into its own config dir", () => {
    const signin = JSON.parse(readFileSync(`${d.configDir}/signin.json`, "utf8")) as {
      kind: string;
      username: string;
      broker: string;
    };
    expect(signin).toMatchObject({ kind: "user", username: "erin@demo.gw.test" });
  });

  it("masks personal data by column rule and by detector", async () => {
    const r = await psql(
      d.psqlUrl,
      "SELECT full_name, email, phone, card_number FROM customers ORDER BY id LIMIT 3",
    );
    expect(r.stderr).toBe("");
    const rows = r.stdout.trim().split("\n");
    expect(rows).toHaveLength(3);
    for (const row of rows) {
      const [name, email, phone, card] = row.split("|");
      expect(name).toMatch(/^[A-Z][a-z]+ [A-Z][a-z]+$/);
      expect(email).toBe("[redacted:email]");
      expect(phone).toBe("[redacted:phone]");
      expect(card).toBe("[redacted]");
    }
    expect(r.stdout).not.toMatch(/@example\.(com|org|net)|4111111111111111/);
    const notes = await psql(d.psqlUrl, "SELECT note FROM orders WHERE note LIKE 'Refund%'");
    expect(notes.stdout).toContain("Refund to [redacted:iban] requested by [redacted:email]");
  });

  it("blocks DROP, and the table is still there", async () => {
    const r = await psql(d.psqlUrl, "DROP TABLE orders");
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("blocked by rule no-destruction");
    const count = await psql(d.psqlUrl, "SELECT count(*) FROM orders");
    expect(count.stdout.trim()).toBe("60");
  });

  it("holds an UPDATE without WHERE until the demo's approver approves it", async () => {
    const held = psql(d.psqlUrl, "UPDATE orders SET status = 'audited'", {}, 60_000);
    const approver = {
      GW_BROKER: d.broker,
      GW_CA_FILE: d.caFile,
      GW_TOKEN: readFileSync(d.approverTokenFile, "utf8").trim(),
    };
    const id = await waitFor("the held statement", async () => {
      const r = await runGw(["approvals", "list", "--json"], { env: approver });
      const { approvals } = JSON.parse(r.stdout) as {
        approvals: Array<{ id: string; status: string }>;
      };
      return approvals.find((x) => x.status === "pending")?.id;
    });
    const ok = await runGw(["approvals", "approve", id], { env: approver });
    expect(ok.code, ok.stderr).toBe(0);
    const r = await held;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("UPDATE 60");
    expect(demo.stderr()).toMatch(/held:.*waits for approval/);
  });

  it("recorded the engineer's sessions (gw sessions with the demo's env)", async () => {
    const r = await runGw(["sessions", "--json"], { env: engineerEnv(d) });
    expect(r.code, r.stderr).toBe(0);
    const body = JSON.parse(r.stdout) as { sessions: Array<{ identity: { name: string } }> };
    expect(body.sessions.length).toBeGreaterThanOrEqual(4);
    expect(body.sessions[0]!.identity.name).toBe("Erin Engineer");
  });

  it("stops on SIGINT, leaving no process and no temp dir", async () => {
    expect(processesMentioning(d.dir).length).toBeGreaterThan(0); // the postmaster, the watchdog
    const r = await demo.stop("SIGINT");
    expect(r.code).toBe(0);
    expect(alive(d.pid)).toBe(false);
    expect(existsSync(d.dir)).toBe(false);
    // postgres (and its watchdog) ran with the demo dir on their command lines.
    await waitFor("the demo's processes to go", () =>
      processesMentioning(d.dir).length === 0 ? true : undefined,
    );
    expect(processesMentioning(`-D ${d.dir}`)).toEqual([]);
  });
});
