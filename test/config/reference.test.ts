/**
 * The generated configuration reference: docs/configuration.md's reference section and
 * schema/broker-config.schema.json are exactly what the generator makes of the current schema
 * (regenerate with `npm run docs:config`), every field has a description, the JSON Schema that
 * editors use agrees with `gw broker check` on a full config and on broken ones, and the docs'
 * links lead somewhere.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Ajv } from "ajv";
import * as prettier from "prettier";
import { beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { ConfigError, parseConfig } from "../../src/config/load.js";
import {
  configDocsFiles,
  configJsonSchema,
  DOC_FILE,
  SCHEMA_FILE,
  slug,
  undescribedFields,
  type Formatter,
} from "../../src/config/reference.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const read = (file: string) => readFileSync(join(ROOT, file), "utf8");

/** As scripts/gen-config-docs.mjs formats. */
const format: Formatter = async (text, file) =>
  prettier.format(text, { ...(await prettier.resolveConfig(file)), filepath: file });

describe("committed reference", () => {
  let generated: { file: string; content: string }[];
  beforeAll(async () => {
    generated = await configDocsFiles(ROOT, format);
  });

  for (const file of [DOC_FILE, SCHEMA_FILE]) {
    it(`${file} is what npm run docs:config makes of the schema`, () => {
      const expected = generated.find((g) => g.file === file)?.content;
      // On drift: npm run docs:config (and commit the result).
      expect(read(file), `${file} drifted from the schema: run \`npm run docs:config\``).toBe(
        expected,
      );
    });
  }

  it("the committed schema parses and is the generator's", () => {
    expect(JSON.parse(read(SCHEMA_FILE))).toEqual(configJsonSchema());
  });

  it("describes every field", () => {
    // Add .describe("...") to the field in its schema (src/config/schema.ts or where it lives).
    expect(undescribedFields()).toEqual([]);
  });

  it("npm run docs:config runs the generator", () => {
    const pkg = JSON.parse(read("package.json")) as { scripts: Record<string, string> };
    const script = pkg.scripts["docs:config"] ?? "";
    const file = /node (\S+)/.exec(script)?.[1];
    expect(file && existsSync(join(ROOT, file)), script).toBe(true);
  });
});

/** Every field the config has, with values unlike the defaults; checked by both validators. */
const FULL = `
listen: 0.0.0.0:8443
publicUrl: https://gw.example.com
tls: { cert: ./tls/broker.crt, key: ./tls/broker.key }
identity:
  issuer: https://login.microsoftonline.com/7f0c2e4a-1111-4222-8333-944455556666/v2.0
  audience: [api://gw-broker, 0b8e0d2c-aaaa-4bbb-8ccc-dddddddddddd]
  jwksUri: https://login.microsoftonline.com/7f0c2e4a-1111-4222-8333-944455556666/discovery/v2.0/keys
  algorithms: [RS256, PS256]
  clockToleranceSeconds: 60
  expiryGraceSeconds: 120
  ca: ./tls/idp-ca.pem
  login:
    authority: https://login.microsoftonline.com/7f0c2e4a-1111-4222-8333-944455556666
    clientId: 2d3c4b5a-0000-4000-8000-000000000001
    scopes: [api://gw-broker/access]
store: { sqlite: /var/lib/gw/gw.db }
auditors: ["group:auditors", "role:Auditor"]
limits: { maxMessageBytes: 1048576, maxStartupBytes: 4096 }
connections:
  DB-Prod:
    type: postgres
    description: Production orders database
    target:
      host: db.internal
      port: 6432
      database: app
      user: gw_app
      password: { env: DB_PROD_PASSWORD }
      tls: verify-full
      ca: ./tls/db-ca.pem
      connectTimeout: 2.5
    allow: ["group:engineers", "app:0b8e0d2c-aaaa-4bbb-8ccc-000000000002"]
    policy: Prod
    readOnly: false
    audit: strict
    recording: { preview: { rows: 5, kib: 4 } }
  replica:
    type: postgres
    target:
      host: replica.internal
      database: app
      user: gw_ro
      password: { file: /run/secrets/replica }
    allow: ["user:1c2d3e4f-0000-4000-8000-000000000003"]
    readOnly: true
    recording: { preview: false }
notifications:
  webhooks:
    - name: ops-teams
      url: { env: GW_TEAMS_WEBHOOK }
      format: teams
      events: [created, decided]
    - url: https://relay.internal/gw
      format: generic
      headers: { Authorization: { env: GW_RELAY_AUTH } }
      includeSql: false
      ca: ./tls/internal-ca.pem
      timeoutMs: 5000
policies:
  Prod:
    description: Production
    default: allow
    onUnparseable: hold
    readOnly: false
    approvers: ["group:dba"]
    minApprovals: 1
    timeout: 15m
    rules:
      - name: no-file-access
        match: { functions: [pg_read_file, "dblink*"] }
        action: block
        reason: server file access is not allowed
      - name: unbounded-writes
        match: { kind: [update, delete], where: absent, tables: ["public.*"] }
        action: hold
        approvers: ["group:dba", "group:leads"]
        minApprovals: 2
        timeout: 1h30m
      - match:
          onlyTables: [public.orders]
          identity: { groups: [engineers, "group:leads"], roles: [Reader], users: [u1], apps: [a1], type: user }
          application: ["psql*"]
        action: allow
      - match: { agent: ["*"] }
        action: allow
        readOnly: true
    mask:
      columns: [public.customers.email, "*.*.ssn"]
      detectors: [email, credit_card, iban]
      strategy: null
    recording: { preview: false }
  hashed:
    mask: { strategy: hash, hashKey: { file: /run/secrets/mask-key } }
retention: 90d
signingKey: { file: /var/lib/gw/audit-key.pem }
`;

describe("schema/broker-config.schema.json", () => {
  const ajv = new Ajv({ allErrors: true, strict: true });
  ajv.addFormat("uri", (s: string) => URL.canParse(s));
  const validate = ajv.compile(JSON.parse(read(SCHEMA_FILE)) as object);

  const problems = (yaml: string) => {
    validate(parse(yaml));
    return (validate.errors ?? []).map(
      (e) => `${e.instancePath} ${e.message ?? ""} ${JSON.stringify(e.params)}`,
    );
  };
  const gwProblems = (yaml: string): string[] => {
    try {
      parseConfig(yaml);
      return [];
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      return err.problems.map((p) => `${p.path}: ${p.message}`);
    }
  };

  it("accepts a full config, as gw broker check does", () => {
    expect(gwProblems(FULL)).toEqual([]);
    expect(problems(FULL)).toEqual([]);
  });

  it("accepts the minimal config: defaults are optional", () => {
    const minimal = `
identity: { issuer: "https://idp.example.com/", audience: gw }
connections:
  db: { type: postgres, target: { host: db, database: app, user: gw }, allow: ["group:g"] }
`;
    expect(gwProblems(minimal)).toEqual([]);
    expect(problems(minimal)).toEqual([]);
  });

  it("accepts the example of docs/configuration.md, as gw broker check does", () => {
    const example = /```yaml\n([\s\S]*?)```/.exec(read(DOC_FILE))?.[1] ?? "";
    expect(example).toContain("connections:");
    expect(gwProblems(example)).toEqual([]);
    // Its placeholders (<tenant-id>) are no URI to a strict format check; the rest is sound.
    expect(problems(example).filter((p) => !p.includes('format "uri"'))).toEqual([]);
  });

  const broken: [string, (yaml: string) => string, string][] = [
    ["a port given as a string", (y) => y.replace("port: 6432", 'port: "6432"'), "/port"],
    [
      "a boolean given as a string",
      (y) => y.replace("readOnly: true\n", "readOnly: yes\n"),
      "/readOnly",
    ],
    [
      "a list given as a string",
      (y) =>
        y.replace('auditors: ["group:auditors", "role:Auditor"]', 'auditors: "group:auditors"'),
      "/auditors",
    ],
    ["an object given as a number", (y) => y.replace(/^limits: .*$/m, "limits: 5"), "/limits"],
    ["a value outside the enum", (y) => y.replace("tls: verify-full", "tls: always"), "/tls"],
    ["a misspelt field", (y) => y.replace("retention: 90d", "retension: 90d"), "retension"],
    [
      "a secret written inline",
      (y) => y.replace("password: { env: DB_PROD_PASSWORD }", "password: hunter2"),
      "/password",
    ],
    [
      "a principal without its kind",
      (y) => y.replace('"group:dba"]\n    minApprovals', '"dba"]\n    minApprovals'),
      "/approvers",
    ],
    ["a number out of range", (y) => y.replace("timeoutMs: 5000", "timeoutMs: 5"), "/timeoutMs"],
  ];
  for (const [what, breakIt, where] of broken) {
    it(`rejects ${what}, as gw broker check does`, () => {
      const yaml = breakIt(FULL);
      expect(yaml).not.toBe(FULL);
      expect(gwProblems(yaml)).not.toEqual([]);
      const found = problems(yaml);
      expect(found.length, "accepted").toBeGreaterThan(0);
      expect(found.join("\n")).toContain(where);
    });
  }

  it("treats names as gw does: case-insensitive, letters, digits, . _ -", () => {
    const renamed = FULL.replace("  DB-Prod:", "  db/prod:");
    expect(gwProblems(renamed)).not.toEqual([]);
    expect(problems(renamed).join("\n")).toContain("property name");
  });
});

describe("links", () => {
  /** Relative link targets of a markdown file, without code blocks. */
  const links = (file: string) =>
    [
      ...read(file)
        .replace(/```[\s\S]*?```/g, "")
        .matchAll(/\]\(([^)\s]+)\)/g),
    ]
      .map((m) => m[1]!)
      .filter((l) => !/^[a-z]+:/.test(l));

  it(`${DOC_FILE}: every #anchor is a heading`, () => {
    const doc = read(DOC_FILE);
    const headings = [...doc.replace(/```[\s\S]*?```/g, "").matchAll(/^#+ (.+)$/gm)].map((m) =>
      slug(m[1]!.replace(/`/g, "")),
    );
    expect(new Set(headings).size).toBe(headings.length);
    const anchors = links(DOC_FILE).filter((l) => l.startsWith("#"));
    expect(anchors.length).toBeGreaterThan(10);
    for (const a of anchors) expect(headings, a).toContain(a.slice(1));
  });

  for (const file of ["README.md", DOC_FILE]) {
    it(`${file}: every relative link leads to a file`, () => {
      for (const link of links(file).filter((l) => !l.startsWith("#"))) {
        const target = resolve(dirname(join(ROOT, file)), link.replace(/#.*$/, ""));
        expect(existsSync(target), `${file} links to ${link}`).toBe(true);
      }
    });
  }
});
