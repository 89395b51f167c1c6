/**
 * The policies section of the broker config: every mistake reported with its dotted path
 * (unknown kinds, bad durations, bad globs, holds without approvers, action fields on the wrong
 * action, readOnly rules that look at statements, masking profiles, a connection naming a
 * policy that does not exist), and a valid policy parsed with its defaults.
 */
import { describe, expect, it } from "vitest";
import { ConfigError, parseConfig, type ConfigProblem } from "../../src/config/load.js";

const HEADER = `
listen: 127.0.0.1:8443
identity:
  issuer: https://login.example.com/tenant/v2.0
  audience: api://gw
store: { memory: true }
connections:
  db:
    type: postgres
    target: { host: db.internal, database: app, user: gw }
    allow: ["group:everyone"]
    policy: p
`;

function problems(policies: string, header = HEADER): ConfigProblem[] {
  try {
    parseConfig(`${header}policies:\n${policies}`, "/etc/gw/broker.yaml");
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error("the config was accepted");
}

function problemAt(list: ConfigProblem[], path: string): string {
  const p = list.find((x) => x.path === path);
  if (!p) throw new Error(`no problem at ${path}; got ${JSON.stringify(list)}`);
  return p.message;
}

describe("policy config validation", () => {
  it("a rule with an unknown kind", () => {
    const list = problems(`
  p:
    rules:
      - match: { kind: [select, destroy] }
        action: block
`);
    expect(list).toHaveLength(1);
    expect(problemAt(list, "policies.p.rules.0.match.kind.1")).toMatch(
      /expected one of: select, insert, update, delete/,
    );
  });

  it("a bad duration, on a rule and on the policy", () => {
    const list = problems(`
  p:
    approvers: ["group:dba"]
    timeout: soon
    rules:
      - action: allow
      - match: { kind: [delete] }
        action: hold
        timeout: 10 minutes
`);
    expect(problemAt(list, "policies.p.timeout")).toMatch(/duration such as "30s", "10m"/);
    expect(problemAt(list, "policies.p.rules.1.timeout")).toMatch(/duration/);
  });

  it("a connection naming a policy that does not exist", () => {
    const list = problems(
      `
  other:
    rules: []
`,
      HEADER.replace("policy: p", "policy: nope"),
    );
    expect(list).toEqual([
      { path: "connections.db.policy", message: 'no policy named "nope"; the policies are: other' },
    ]);
  });

  it("a connection naming a policy when there is no policies section", () => {
    expect(() => parseConfig(HEADER)).toThrow(ConfigError);
    try {
      parseConfig(HEADER);
    } catch (err) {
      expect((err as ConfigError).problems).toEqual([
        {
          path: "connections.db.policy",
          message: 'no policy named "p": the config has no policies section',
        },
      ]);
    }
  });

  it("holds need approvers; only holds take approvers, minApprovals and timeout", () => {
    const list = problems(`
  p:
    default: hold
    rules:
      - match: { kind: [delete] }
        action: hold
      - match: { kind: [drop] }
        action: block
        approvers: ["group:dba"]
        timeout: 5m
      - match: { kind: [update] }
        action: hold
        approvers: ["dba"]
        minApprovals: 0
`);
    expect(problemAt(list, "policies.p.default")).toMatch(/needs approvers/);
    expect(problemAt(list, "policies.p.rules.0.approvers")).toMatch(/a hold rule needs approvers/);
    expect(problemAt(list, "policies.p.rules.1.approvers")).toMatch(/only a hold rule/);
    expect(problemAt(list, "policies.p.rules.1.timeout")).toMatch(/only a hold rule/);
    expect(problemAt(list, "policies.p.rules.2.approvers.0")).toMatch(/group:<id>/);
    expect(problemAt(list, "policies.p.rules.2.minApprovals")).toMatch(/>=1|at least|too small/i);
  });

  it("bad globs, matchers and actions, each with its path", () => {
    const list = problems(`
  p:
    rules:
      - match:
          tables: [customers, "public.customers"]
          functions: ["pg_catalog.pg_read_file"]
          where: present
          identity: { groups: ["role:dba"], type: robot }
        action: deny
      - match: { kinds: [select] }
        action: allow
`);
    expect(problemAt(list, "policies.p.rules.0.match.tables.0")).toMatch(/expected schema.table/);
    expect(problemAt(list, "policies.p.rules.0.match.functions.0")).toMatch(/without schema/);
    expect(problemAt(list, "policies.p.rules.0.match.where")).toMatch(/absent/);
    expect(problemAt(list, "policies.p.rules.0.match.identity.groups.0")).toMatch(/group:<id>/);
    expect(problemAt(list, "policies.p.rules.0.match.identity.type")).toBeTruthy();
    expect(problemAt(list, "policies.p.rules.0.action")).toMatch(/allow, block or hold/);
    expect(problemAt(list, "policies.p.rules.1.match")).toMatch(/kinds/);
  });

  it("readOnly on a rule only with identity/application/agent matchers", () => {
    const list = problems(`
  p:
    rules:
      - match: { identity: { groups: [analysts] }, kind: [select] }
        action: allow
        readOnly: true
`);
    expect(problemAt(list, "policies.p.rules.0.readOnly")).toMatch(/not kind/);
  });

  it("masking profiles: detectors, strategy, hashKey, column globs", () => {
    const list = problems(`
  p:
    mask:
      columns: ["customers.email"]
      detectors: [email, passport]
      strategy: hash
`);
    expect(problemAt(list, "policies.p.mask.columns.0")).toMatch(/schema.table.column/);
    expect(problemAt(list, "policies.p.mask.detectors.1")).toMatch(/email, credit_card, iban/);
    // hashKey is checked once the rest of the profile is valid.
    const hash = problems(`
  p:
    mask: { strategy: hash }
`);
    expect(problemAt(hash, "policies.p.mask.hashKey")).toMatch(/needs a hashKey/);
  });
});

describe("a valid policy", () => {
  it("parses, with defaults filled in and relative hashKey files resolved", () => {
    const cfg = parseConfig(
      `${HEADER.replace("policy: p", "policy: p\n    readOnly: true")}policies:
  p:
    approvers: ["group:dba"]
    rules:
      - name: holds
        match: { kind: [delete], where: absent, identity: { groups: ["group:analysts", devs] } }
        action: hold
    mask:
      columns: ["public.customers.email", "*.*.ssn"]
      detectors: [email, us_ssn]
      strategy: null
  q:
    mask: { strategy: hash, hashKey: { file: ./keys/mask.key } }
`,
      "/etc/gw/broker.yaml",
    );
    const p = cfg.policies["p"]!;
    expect(p.default).toBe("allow");
    expect(p.onUnparseable).toBe("block");
    expect(p.readOnly).toBe(false);
    expect(p.rules[0]!.match.identity?.groups).toEqual(["analysts", "devs"]);
    expect(p.mask?.strategy).toBe("null");
    expect(cfg.policies["q"]!.mask?.hashKey).toEqual({ file: "/etc/gw/keys/mask.key" });
    expect(cfg.connections["db"]).toMatchObject({ type: "postgres", readOnly: true });
    expect(cfg.connections["db"]!.policy).toBe("p");
  });

  it("configs without policies still parse (connections default to readOnly false)", () => {
    const cfg = parseConfig(HEADER.replace("    policy: p\n", ""));
    expect(cfg.policies).toEqual({});
    expect(cfg.connections["db"]).toMatchObject({ type: "postgres", readOnly: false });
  });
});
