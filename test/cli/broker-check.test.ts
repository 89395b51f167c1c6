/**
 * `gw broker check`: every problem of a config at once, each with its dotted path, exit 3;
 * the same as JSON with --json; YAML syntax errors with their line; plain HTTP off loopback
 * refused; an unreadable file said plainly.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runGw } from "../helpers/cli.js";

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "gw-check-test-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

const VALID = `
listen: 127.0.0.1:8443
identity:
  issuer: https://login.microsoftonline.com/00000000-0000-0000-0000-000000000001/v2.0
  audience: api://gw-broker
store: { memory: true }
auditors: ["group:22222222-2222-2222-2222-222222222222"]
connections:
  db-prod:
    type: postgres
    description: Production
    target:
      host: db.internal
      port: 5432
      database: app
      user: gw_app
      password: { env: GW_CHECK_TEST_DB_PASSWORD }
      tls: disable
    allow: ["group:11111111-1111-1111-1111-111111111111", "app:33333333-3333-3333-3333-333333333333"]
  db-stage:
    type: postgres
    target: { host: stage.internal, database: app, user: gw_app }
    allow: ["role:gw.connect"]
`;

// Four mistakes: identity.audience missing, a port that is a string, an allow entry that is
// not a principal, and a connection type gw does not know.
const BROKEN = `
listen: 127.0.0.1:8443
identity:
  issuer: https://login.microsoftonline.com/00000000-0000-0000-0000-000000000001/v2.0
connections:
  db-prod:
    type: postgres
    target:
      host: db.internal
      port: "5432"
      database: app
      user: gw_app
    allow: ["group:11111111-1111-1111-1111-111111111111", "team:dba"]
  db-legacy:
    type: mysql
    target: { host: legacy.internal }
    allow: ["group:11111111-1111-1111-1111-111111111111"]
`;

interface CheckJson {
  ok: boolean;
  file: string;
  problems?: { path: string; message: string }[];
  connections?: number;
  warnings?: { path: string; message: string }[];
}

describe("gw broker check", () => {
  it("a valid config: exit 0, says it is valid and how many connections", async () => {
    const f = file("valid.yaml", VALID);
    const r = await runGw(["broker", "check", "--config", f], {
      env: { GW_CHECK_TEST_DB_PASSWORD: "set-in-the-environment" },
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`${f} is valid (2 connections)`);
    expect(r.stderr).not.toMatch(/warning/);

    const j = await runGw(["broker", "check", "--config", f, "--json"], {
      env: { GW_CHECK_TEST_DB_PASSWORD: "set-in-the-environment" },
    });
    expect(j.code).toBe(0);
    expect(JSON.parse(j.stdout)).toEqual({ ok: true, file: f, connections: 2, warnings: [] });
  });

  it("a valid config whose password variable is unset: still exit 0, with a warning naming it", async () => {
    const f = file("valid-nopw.yaml", VALID);
    const r = await runGw(["broker", "check", "--config", f, "--json"]);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout) as CheckJson;
    expect(j.ok).toBe(true);
    expect(j.warnings).toEqual([
      {
        path: "connections.db-prod.target.password",
        message: expect.stringContaining("GW_CHECK_TEST_DB_PASSWORD") as unknown as string,
      },
    ]);
  });

  it("every mistake at once, each with its dotted path; exit 3", async () => {
    const f = file("broken.yaml", BROKEN);
    const r = await runGw(["broker", "check", "--config", f]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`${f} has 4 problems`);
    const lines = r.stderr.split("\n");
    const line = (path: string) => lines.find((l) => l.trim().startsWith(`${path}:`));
    expect(line("identity.audience")).toMatch(/required/);
    expect(line("connections.db-prod.target.port")).toMatch(/expected number, received string/);
    expect(line("connections.db-prod.allow.1")).toMatch(/group:<id>, role:.*user:.*app:/);
    expect(line("connections.db-legacy.type")).toMatch(/postgres/);
    expect(r.stdout).toBe("");
  });

  it("--json: {ok:false, problems:[{path,message}]} and exit 3", async () => {
    const f = file("broken-json.yaml", BROKEN);
    const r = await runGw(["broker", "check", "--config", f, "--json"]);
    expect(r.code).toBe(3);
    const j = JSON.parse(r.stdout) as CheckJson;
    expect(j.ok).toBe(false);
    expect(j.file).toBe(f);
    expect(j.problems!.map((p) => p.path).sort()).toEqual([
      "connections.db-legacy.type",
      "connections.db-prod.allow.1",
      "connections.db-prod.target.port",
      "identity.audience",
    ]);
    for (const p of j.problems!) {
      expect(Object.keys(p).sort()).toEqual(["message", "path"]);
      expect(p.message.length).toBeGreaterThan(0);
    }
  });

  it("invalid YAML: the problem names its line", async () => {
    const f = file(
      "bad-syntax.yaml",
      "listen: 127.0.0.1:8443\nidentity:\n  issuer: https://x.example/v2.0\n  audience: [api://gw\nconnections: {}\n",
    );
    const r = await runGw(["broker", "check", "--config", f, "--json"]);
    expect(r.code).toBe(3);
    const j = JSON.parse(r.stdout) as CheckJson;
    expect(j.ok).toBe(false);
    expect(j.problems!.length).toBeGreaterThan(0);
    expect(j.problems![0]!.path).toMatch(/^line [45]$/);

    const plain = await runGw(["broker", "check", "--config", f]);
    expect(plain.code).toBe(3);
    expect(plain.stderr).toMatch(/line [45]:/);
  });

  it("plain HTTP on a non-loopback address without tls is refused; with tls it is accepted", async () => {
    const open = VALID.replace("listen: 127.0.0.1:8443", "listen: 0.0.0.0:8080");
    const r = await runGw(["broker", "check", "--config", file("public.yaml", open), "--json"]);
    expect(r.code).toBe(3);
    const j = JSON.parse(r.stdout) as CheckJson;
    expect(j.problems).toHaveLength(1);
    expect(j.problems![0]!.path).toBe("tls");
    expect(j.problems![0]!.message).toMatch(/plain HTTP is only allowed on loopback/);
    expect(j.problems![0]!.message).toContain("0.0.0.0:8080");

    const withTls = open.replace(
      "store:",
      "tls: { cert: ./tls/broker.crt, key: ./tls/broker.key }\nstore:",
    );
    const ok = await runGw(["broker", "check", "--config", file("public-tls.yaml", withTls)], {
      env: { GW_CHECK_TEST_DB_PASSWORD: "x1234" },
    });
    expect(ok.code, ok.stderr).toBe(0);
  });

  it("a file that cannot be read: exit 3, says which and why", async () => {
    const missing = join(dir, "does-not-exist.yaml");
    const r = await runGw(["broker", "check", "--config", missing]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/cannot read the broker config/i);
    expect(r.stderr).toContain(missing);
    expect(r.stderr).toContain("ENOENT");

    const j = await runGw(["broker", "check", "--config", dir, "--json"]);
    expect(j.code).toBe(3);
    const body = JSON.parse(j.stdout) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("config_unreadable");
    expect(body.error.message).toContain(dir);
  });

  it("an empty file is reported as missing the required sections, not as a crash", async () => {
    const r = await runGw(["broker", "check", "--config", file("empty.yaml", ""), "--json"]);
    expect(r.code).toBe(3);
    const j = JSON.parse(r.stdout) as CheckJson;
    expect(j.problems!.map((p) => p.path).sort()).toEqual(["connections", "identity"]);
    for (const p of j.problems!) expect(p.message).toMatch(/required/);
  });
});
