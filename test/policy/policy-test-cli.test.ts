/**
 * `gw policy test`: offline, from the config alone. The decision, the rule that matched (index
 * and match text), each statement as the parser read it, the masking profile; --json for
 * scripts; exit 0 whatever the decision unless --exit-code (10 block, 11 hold); usage and
 * config mistakes with their usual exit codes. Runs the built CLI (npm run build first).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runGw } from "../helpers/cli.js";

let dir: string;
let config: string;

const CONFIG = `
listen: 127.0.0.1:8443
identity:
  issuer: https://login.example.com/tenant/v2.0
  audience: api://gw
store: { memory: true }
connections:
  db-prod:
    type: postgres
    target: { host: db.internal, database: app, user: gw }
    allow: ["group:everyone"]
    policy: prod
  db-ro:
    type: postgres
    target: { host: db.internal, database: app, user: gw }
    allow: ["group:everyone"]
    readOnly: true
policies:
  prod:
    approvers: ["group:dba"]
    rules:
      - name: no-file-access
        match: { functions: [pg_read_file, "lo_*"] }
        action: block
        reason: server file access is not allowed
      - name: dba-anything
        match: { identity: { groups: [dba] } }
        action: allow
      - name: unbounded-writes
        match: { kind: [update, delete], where: absent }
        action: hold
        minApprovals: 2
        timeout: 30m
      - name: gui-writes
        match: { application: ["DBeaver*"], kind: [insert, update, delete] }
        action: hold
    mask:
      columns: [public.customers.email]
      detectors: [email]
      strategy: last4
`;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "gw-policy-test-"));
  config = join(dir, "broker.yaml");
  writeFileSync(config, CONFIG);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const base = () => ["policy", "test", "--config", config];

interface PolicyJson {
  connection: string;
  policy: string;
  decision: {
    action: string;
    reason: string;
    source: string;
    rule: { index: number; name?: string; matchText: string } | null;
    approvers: string[];
    minApprovals: number;
    timeoutMs: number;
    kinds: string[];
    readOnly: boolean;
    statements: { index: number; kind: string; action: string }[];
  };
  classification: {
    statements: { kind: string; kinds: string[]; tables: string[]; functions: string[] }[];
    parseError?: string;
  };
  mask: { columns: string[]; detectors: string[]; strategy: string } | null;
}

describe("gw policy test", () => {
  it("prints the decision, the rule with its match text, the statements and the masking", async () => {
    const r = await runGw([
      ...base(),
      "--connection",
      "db-prod",
      "--sql",
      "SELECT 1; /* x */ DELETE FROM orders",
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^decision: +HOLD$/m);
    expect(r.stdout).toMatch(
      /^rule: +rules\[2\] \(unbounded-writes\): kind: \[update, delete\], where: absent$/m,
    );
    expect(r.stdout).toMatch(/^approval: +2 approvals from group:dba, within 30m$/m);
    expect(r.stdout).toMatch(/^statement 1: select -> allow$/m);
    expect(r.stdout).toMatch(/^statement 2: delete -> hold$/m);
    expect(r.stdout).toMatch(/^ {2}tables: +\*\.orders$/m);
    expect(r.stdout).toMatch(/^ {2}flags: +no WHERE$/m);
    expect(r.stdout).toMatch(
      /^masking: +strategy last4; columns public\.customers\.email; detectors email$/m,
    );
  });

  it("--json: decision, classification and mask, for scripts", async () => {
    const r = await runGw([
      ...base(),
      "--connection",
      "db-prod",
      "--sql",
      "SELECT * FROM t WHERE id IN (SELECT pg_read_file('/etc/passwd'))",
      "--json",
    ]);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as PolicyJson;
    expect(j.connection).toBe("db-prod");
    expect(j.policy).toBe("prod");
    expect(j.decision).toMatchObject({
      action: "block",
      reason: "server file access is not allowed",
      source: "rule",
      rule: { index: 0, name: "no-file-access", matchText: "functions: [pg_read_file, lo_*]" },
      kinds: ["select"],
      readOnly: false,
    });
    expect(j.classification.statements[0]).toMatchObject({
      kind: "select",
      tables: ["*.t"],
      functions: ["pg_read_file"],
    });
    expect(j.mask).toEqual({
      columns: ["public.customers.email"],
      detectors: ["email"],
      strategy: "last4",
    });
  });

  it("--exit-code: 0 allow, 10 block, 11 hold; without it, 0 always", async () => {
    const run = (sql: string, ...extra: string[]) =>
      runGw([...base(), "--connection", "db-prod", "--sql", sql, "--exit-code", ...extra]);
    expect((await run("SELECT 1")).code).toBe(0);
    expect((await run("SELECT lo_import('/etc/passwd')")).code).toBe(10);
    expect((await run("DELETE FROM orders")).code).toBe(11);
    const plain = await runGw([...base(), "--connection", "db-prod", "--sql", "DELETE FROM t"]);
    expect(plain.code).toBe(0);
  });

  it("--as, --type, --application and --agent shape the context", async () => {
    const json = async (...extra: string[]) => {
      const r = await runGw([
        ...base(),
        "--connection",
        "db-prod",
        "--sql",
        "UPDATE orders SET a = 1",
        "--json",
        ...extra,
      ]);
      expect(r.code, r.stderr).toBe(0);
      return (JSON.parse(r.stdout) as PolicyJson).decision;
    };
    expect((await json()).action).toBe("hold");
    expect(await json("--as", "group:dba", "--as", "user:oid-1")).toMatchObject({
      action: "allow",
      rule: { name: "dba-anything" },
    });
    const gui = await runGw([
      ...base(),
      "--connection",
      "db-prod",
      "--sql",
      "INSERT INTO t VALUES (1)",
      "--application",
      "DBeaver 24",
      "--json",
    ]);
    expect((JSON.parse(gui.stdout) as PolicyJson).decision.rule?.index).toBe(3);
  });

  it("a connection without a policy but read-only: escapes are blocked", async () => {
    const r = await runGw([
      ...base(),
      "--connection",
      "db-ro",
      "--sql",
      "SELECT set_config('default_transaction_read_only', 'off', false)",
      "--json",
    ]);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as PolicyJson;
    expect(j.policy).toBe("(none)");
    expect(j.decision).toMatchObject({ action: "block", source: "read-only", readOnly: true });
    expect(j.mask).toBeNull();
  });

  it("unparseable SQL shows the parse error and onUnparseable's decision", async () => {
    const r = await runGw([...base(), "--connection", "db-prod", "--sql", "SELEC 1"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^decision: +BLOCK$/m);
    expect(r.stdout).toMatch(/^parse error: syntax error at or near "SELEC"/m);
  });

  it("mistakes: unknown connection (2), bad --as (2), broken config (3)", async () => {
    const unknown = await runGw([...base(), "--connection", "nope", "--sql", "SELECT 1"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/no connection named "nope"/);
    expect(unknown.stderr).toMatch(/db-prod, db-ro/);

    const badAs = await runGw([
      ...base(),
      "--connection",
      "db-prod",
      "--sql",
      "SELECT 1",
      "--as",
      "team:dba",
    ]);
    expect(badAs.code).toBe(2);
    expect(badAs.stderr).toMatch(/--as team:dba: expected group:<id>/);

    const broken = join(dir, "broken.yaml");
    writeFileSync(broken, CONFIG.replace("policy: prod", "policy: missing"));
    const r = await runGw([
      "policy",
      "test",
      "--config",
      broken,
      "--connection",
      "db-prod",
      "--sql",
      "SELECT 1",
    ]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/connections\.db-prod\.policy: no policy named "missing"/);
  });
});
