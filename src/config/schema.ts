import { z } from "zod";
import { agentName, principal, secretRef, viaAgent } from "./refs.js";
import { duration, holdDefaultFields, holdRuleFields, listOf } from "./policy-fields.js";
import { notificationsConfig } from "../notify/config.js";
import { httpConnection } from "../protocols/http/config.js";
import { sshConnection } from "../protocols/ssh/config.js";
import { tcpConnection } from "../protocols/tcp/config.js";
import {
  MASK_DETECTORS,
  MASK_STRATEGIES,
  POLICY_ACTIONS,
  STATEMENT_KINDS,
} from "../policy/kinds.js";

export { principal, secretRef, type SecretRef } from "./refs.js";

const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:]+\]|[^:\s]+):\d{1,5}$/, "expected host:port, e.g. 127.0.0.1:8443");

export const postgresTarget = z
  .object({
    host: z.string().min(1).describe("Host name or IP address of the PostgreSQL server."),
    port: z
      .number()
      .int()
      .min(1)
      .max(65535)
      .default(5432)
      .describe("TCP port of the PostgreSQL server."),
    database: z.string().min(1).describe("The database sessions connect to."),
    user: z
      .string()
      .min(1)
      .describe("The role the broker signs in as (users never see its credentials)."),
    password: secretRef.optional().describe("The password of `user`."),
    tls: z
      .enum(["disable", "prefer", "require", "verify-full"])
      .default("prefer")
      .describe(
        "TLS to the server: `prefer` uses it when the server offers it; `require` insists (and checks the chain when `ca` is given); `verify-full` also checks the chain and host name against `ca`.",
      ),
    ca: z
      .string()
      .optional()
      .describe(
        "PEM file of the CA of the server's certificate: required by `verify-full`; with `require` it checks the chain.",
      ),
    connectTimeout: z
      .number()
      .positive()
      .default(10)
      .describe("Seconds to wait for the server to connect and sign the broker in."),
  })
  .strict()
  .refine((t) => t.tls !== "verify-full" || t.ca !== undefined, {
    message: "tls: verify-full needs a ca file",
    path: ["ca"],
  });
export type PostgresTarget = z.infer<typeof postgresTarget>;

const policyName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._-]*$/i, "policy names use letters, digits, . _ -");

/** What is recorded besides each statement (docs/recording.md). */
export const recordingConfig = z
  .object({
    preview: z
      .union([
        z.literal(false),
        z
          .object({
            rows: z.number().int().min(0).max(1000).default(20).describe("Most rows per result."),
            kib: z
              .number()
              .positive()
              .max(1024)
              .default(16)
              .describe(
                "Most KiB per result (UTF-8 bytes of column names and values); a value that would overflow it is cut.",
              ),
          })
          .strict(),
      ])
      .optional()
      .describe(
        "The first rows of each result as the client got them (masked); `false` records none. Default: `{ rows: 20, kib: 16 }`.",
      ),
  })
  .strict();
export type RecordingConfig = z.infer<typeof recordingConfig>;

export const postgresConnection = z
  .object({
    type: z.literal("postgres"),
    description: z
      .string()
      .optional()
      .describe("Shown with the name where users list the connections they may use."),
    target: postgresTarget.describe("The PostgreSQL server, and how the broker signs in to it."),
    allow: z
      .array(principal)
      .min(1, "a connection must allow someone")
      .describe("Who may connect: a caller matching any of these principals."),
    policy: policyName
      .optional()
      .describe(
        "The policy (a key of `policies`) every statement is checked against; without one, every statement is allowed.",
      ),
    readOnly: z
      .boolean()
      .default(false)
      .describe(
        "Sessions run read-only, and every statement that could leave read-only mode is blocked.",
      ),
    audit: z
      .enum(["strict", "async"], { error: "expected strict or async" })
      .optional()
      .describe(
        "`strict`: a statement runs only once its start is on disk; `async` (the default): starts are buffered (bounded), and a full buffer or a failing store refuses statements. See docs/recording.md.",
      ),
    recording: recordingConfig
      .optional()
      .describe("What sessions record besides statements; overrides the policy's `recording`."),
    via: viaAgent,
  })
  .strict();

export const connection = z.discriminatedUnion(
  "type",
  [postgresConnection, sshConnection, httpConnection, tcpConnection],
  { error: "type must be one of: postgres, ssh, http, tcp" },
);
export type ConnectionConfig = z.infer<typeof connection>;
export type PostgresConnectionConfig = z.infer<typeof postgresConnection>;

export const identityConfig = z
  .object({
    issuer: z
      .url({ protocol: /^https?$/ })
      .describe(
        "The tokens' issuer (`iss`), exactly: `https://login.microsoftonline.com/<tenant-id>/v2.0` for Entra ID.",
      ),
    audience: z
      .union([z.string().min(1), z.array(z.string().min(1)).min(1)])
      .describe("The accepted audience (`aud`): the broker API's application ID, or a list."),
    jwksUri: z
      .url()
      .optional()
      .describe(
        "Where the signing keys are; default: discovered from `<issuer>/.well-known/openid-configuration`.",
      ),
    algorithms: z
      .array(z.enum(["RS256", "RS384", "RS512", "PS256", "ES256"]))
      .default(["RS256"])
      .describe("The token signature algorithms accepted (never `none` or `HS*`)."),
    clockToleranceSeconds: z
      .number()
      .int()
      .min(0)
      .max(300)
      .default(30)
      .describe("Clock skew allowed when checking a token's times, in seconds."),
    expiryGraceSeconds: z
      .number()
      .int()
      .min(0)
      .max(3600)
      .default(30)
      .describe(
        "How long a live session outlives its token when no fresh one arrives, in seconds.",
      ),
    ca: z
      .string()
      .optional()
      .describe(
        "PEM file of a private CA for the issuer's endpoints (the local identity server of tests and `gw demo`).",
      ),
    login: z
      .object({
        authority: z
          .url()
          .describe(
            "The authority users sign in at: `https://login.microsoftonline.com/<tenant-id>`.",
          ),
        clientId: z
          .string()
          .min(1)
          .describe("The application (client) ID of the CLI's app registration."),
        scopes: z
          .array(z.string())
          .min(1)
          .describe("The scopes `gw login` asks for: `api://<broker API app id>/access`."),
      })
      .strict()
      .optional()
      .describe(
        "The sign-in settings `gw login` fetches from the broker (at `/.well-known/gw-configuration`).",
      ),
  })
  .strict();
export type IdentityConfig = z.infer<typeof identityConfig>;

export const storeConfig = z.union([
  z.object({ sqlite: z.string().min(1).describe("The SQLite database file.") }).strict(),
  z
    .object({
      memory: z
        .literal(true)
        .describe("Keep everything in memory, gone when the broker stops (throwaway brokers)."),
    })
    .strict(),
  z
    .object({
      postgres: z
        .union([
          z
            .string()
            .min(1)
            .refine((url) => !urlHasPassword(url), {
              message:
                "this URL holds a password: give it as { env: VAR } or { file: PATH } instead",
            })
            .describe(
              "A postgres:// URL without a password (the server trusts this host, or PGPASSWORD / ~/.pgpass has it).",
            ),
          secretRef,
        ])
        .describe(
          "PostgreSQL, for broker replicas sharing one store (docs/store-postgres.md): a postgres:// URL, or { env: VAR } / { file: PATH } holding one with its password. Needs `signingKey`, the same file on every replica.",
        ),
    })
    .strict(),
]);

/** Whether a postgres:// URL carries a password (which belongs in a secret, not the config). */
function urlHasPassword(url: string): boolean {
  try {
    const u = new URL(url);
    return u.password !== "" || u.searchParams.has("password");
  } catch {
    return false;
  }
}

export type StoreConfig = z.infer<typeof storeConfig>;

// ---------------------------------------------------------------------------------------------
// Policies (docs/policy.md)

/** `unknown` is what unparseable SQL is; onUnparseable decides it, never a rule. */
const RULE_KINDS = STATEMENT_KINDS.filter((k) => k !== "unknown");
const kindName = z.enum(RULE_KINDS, {
  error: `expected one of: ${RULE_KINDS.join(", ")} (unparseable SQL is onUnparseable's)`,
});

const tableGlob = z
  .string()
  .regex(
    /^[^.\s]+\.[^.\s]+$/,
    "expected schema.table (globs allowed), e.g. public.customers, billing.* or *.secrets",
  );

const functionGlob = z
  .string()
  .regex(
    /^[^.\s()]+$/,
    "expected a function name without schema or parentheses (globs allowed), e.g. pg_read_file or dblink*",
  );

const columnGlob = z
  .string()
  .regex(
    /^[^.\s]+\.[^.\s]+\.[^.\s]+$/,
    "expected schema.table.column (globs allowed), e.g. public.customers.email or *.*.ssn",
  );

/** Bare ids, or the principal form of the same list (group:<id> under groups, ...). */
const principalIds = (prefix: string) =>
  listOf(
    z
      .string()
      .min(1)
      .refine((s) => !/^(group|role|user|app):/.test(s) || s.startsWith(`${prefix}:`), {
        message: `expected an id, or ${prefix}:<id>`,
      })
      .transform((s) => (s.startsWith(`${prefix}:`) ? s.slice(prefix.length + 1) : s)),
  );

export const ruleMatch = z
  .object({
    kind: listOf(kindName)
      .optional()
      .describe(
        "Statement kinds; a statement matches when one of the kinds it executes is listed.",
      ),
    tables: listOf(tableGlob)
      .optional()
      .describe("`schema.table` globs; matches when any table the statement names matches one."),
    onlyTables: listOf(tableGlob)
      .optional()
      .describe(
        "`schema.table` globs; matches when the statement names tables and every one matches.",
      ),
    where: z
      .literal("absent", { error: 'the only where matcher is "absent"' })
      .optional()
      .describe(
        "`absent`: an UPDATE or DELETE without a WHERE (or with one that names no column).",
      ),
    functions: listOf(functionGlob)
      .optional()
      .describe("Function-name globs; matches when the statement calls one of them anywhere."),
    identity: z
      .object({
        groups: principalIds("group").optional().describe("Group object ids (or `group:<id>`)."),
        roles: principalIds("role").optional().describe("App roles (or `role:<role>`)."),
        users: principalIds("user").optional().describe("User object ids (or `user:<oid>`)."),
        apps: principalIds("app")
          .optional()
          .describe("Service principal object ids (or `app:<oid>`)."),
        type: z
          .enum(["user", "app"])
          .optional()
          .describe("Only people (`user`) or only service principals (`app`)."),
      })
      .strict()
      .optional()
      .describe("Who is connected: any listed principal, and the type when given."),
    application: listOf(z.string().min(1))
      .optional()
      .describe(
        "`application_name` globs (declared by the client: a convenience, never a security boundary).",
      ),
    agent: listOf(z.string().min(1))
      .optional()
      .describe("Agent-label globs; matches only sessions that carry an agent label."),
  })
  .strict();
export type RuleMatch = z.infer<typeof ruleMatch>;

export const policyRule = z
  .object({
    name: z.string().min(1).optional().describe("A label shown in decisions and logs."),
    match: ruleMatch
      .default({})
      .describe("All given matchers must match; no matchers match every statement."),
    action: z
      .enum(POLICY_ACTIONS, { error: "expected allow, block or hold" })
      .describe("What a matching statement gets: `allow`, `block`, or `hold` for approval."),
    ...holdRuleFields,
    readOnly: z
      .boolean()
      .optional()
      .describe(
        "Sessions of whoever this rule's identity, application or agent matchers match run read-only.",
      ),
  })
  .strict();
export type PolicyRule = z.infer<typeof policyRule>;

export const maskProfile = z
  .object({
    columns: z
      .array(columnGlob)
      .default([])
      .describe("`schema.table.column` globs whose values are always masked."),
    detectors: z
      .array(z.enum(MASK_DETECTORS, { error: `expected one of: ${MASK_DETECTORS.join(", ")}` }))
      .default([])
      .describe("Value detectors applied to every text value."),
    strategy: z
      .preprocess(
        (v) => (v === null ? "null" : v),
        z.enum(MASK_STRATEGIES, { error: `expected one of: ${MASK_STRATEGIES.join(", ")}` }),
      )
      .default("redact")
      .describe(
        "How a masked value is replaced; `null` (YAML null or the string) replaces it with SQL NULL.",
      ),
    hashKey: secretRef.optional().describe("The HMAC key of strategy `hash` (which needs one)."),
  })
  .strict()
  .refine((m) => m.strategy !== "hash" || m.hashKey !== undefined, {
    message: "strategy hash needs a hashKey ({ env: VAR } or { file: PATH })",
    path: ["hashKey"],
  });
export type MaskProfile = z.infer<typeof maskProfile>;

const STATEMENT_MATCHERS = ["kind", "tables", "onlyTables", "where", "functions"] as const;

export const policyConfig = z
  .object({
    description: z.string().optional().describe("Free text for the people reading the config."),
    default: z
      .enum(POLICY_ACTIONS, { error: "expected allow, block or hold" })
      .default("allow")
      .describe("The action when no rule matches."),
    onUnparseable: z
      .enum(POLICY_ACTIONS, { error: "expected allow, block or hold" })
      .default("block")
      .describe("The action for SQL that does not parse."),
    readOnly: z
      .boolean()
      .default(false)
      .describe("Every session on a connection using this policy runs read-only."),
    ...holdDefaultFields,
    rules: z
      .array(policyRule)
      .default([])
      .describe("The rules, in order: the first that matches decides."),
    mask: maskProfile.optional().describe("The masking profile for result values."),
    recording: recordingConfig
      .optional()
      .describe("What sessions under this policy record besides statements (a connection's wins)."),
  })
  .strict()
  .superRefine((p, ctx) => {
    const needApprovers = (path: PropertyKey[], what: string) =>
      ctx.addIssue({
        code: "custom",
        path,
        message: `${what} needs approvers: give approvers here or on the policy`,
      });
    if (p.default === "hold" && !p.approvers) needApprovers(["default"], "default: hold");
    if (p.onUnparseable === "hold" && !p.approvers) {
      needApprovers(["onUnparseable"], "onUnparseable: hold");
    }
    p.rules.forEach((r, i) => {
      if (r.action === "hold" && !r.approvers && !p.approvers) {
        needApprovers(["rules", i, "approvers"], "a hold rule");
      }
      if (r.action !== "hold") {
        for (const f of ["approvers", "minApprovals", "timeout"] as const) {
          if (r[f] !== undefined) {
            ctx.addIssue({
              code: "custom",
              path: ["rules", i, f],
              message: `only a hold rule takes ${f} (this rule's action is ${r.action})`,
            });
          }
        }
      }
      if (r.readOnly) {
        const statementMatchers = STATEMENT_MATCHERS.filter((m) => r.match[m] !== undefined);
        if (statementMatchers.length > 0) {
          ctx.addIssue({
            code: "custom",
            path: ["rules", i, "readOnly"],
            message: `readOnly applies to whole sessions, so the rule may only match identity, application or agent (not ${statementMatchers.join(", ")})`,
          });
        }
      }
    });
  });
export type PolicyConfig = z.infer<typeof policyConfig>;

/** An outbound agent (`gw agent start`, docs/agent.md): who may register under its name. */
export const agentConfig = z
  .object({
    identity: z
      .array(principal)
      .min(1, "an agent must name the identity it signs in as")
      .describe(
        "The service principals that may register as this agent: `app:<object id>` (or a group or app role only agents hold). People cannot: an agent signs in with a non-human identity.",
      ),
    description: z.string().optional().describe("Free text for the people reading the config."),
  })
  .strict();
export type AgentConfig = z.infer<typeof agentConfig>;

export const brokerConfig = z
  .object({
    listen: hostPort
      .default("127.0.0.1:8443")
      .describe("The address the broker listens on (plain HTTP only on a loopback address)."),
    publicUrl: z
      .url()
      .optional()
      .describe("The URL clients use, when it differs from `listen` (behind a load balancer)."),
    tls: z
      .object({
        cert: z.string().min(1).describe("PEM file of the certificate (and its chain)."),
        key: z.string().min(1).describe("PEM file of its private key."),
      })
      .strict()
      .optional()
      .describe("The broker's HTTPS certificate: required unless `listen` is a loopback address."),
    identity: identityConfig.describe(
      "How callers' Entra ID access tokens are verified (docs/entra.md).",
    ),
    store: storeConfig
      .default({ sqlite: "./data/gw.db" })
      .describe("Where sessions, statements, approvals and audit events are kept."),
    auditors: z
      .array(principal)
      .default([])
      .describe("Who sees (and may verify) every session; everyone else sees only their own."),
    limits: z
      .object({
        maxMessageBytes: z
          .number()
          .int()
          .min(1024)
          .default(64 * 1024 * 1024)
          .describe("The largest single protocol message accepted from a client, in bytes."),
        maxStartupBytes: z
          .number()
          .int()
          .min(64)
          .default(10_000)
          .describe(
            "The largest startup packet accepted, in bytes (they are small: bigger is garbage or an attack).",
          ),
      })
      .strict()
      .default({ maxMessageBytes: 64 * 1024 * 1024, maxStartupBytes: 10_000 })
      .describe("Sizes the broker accepts from clients."),
    connections: z
      .record(
        z.string().regex(/^[a-z0-9][a-z0-9._-]*$/i, "connection names use letters, digits, . _ -"),
        connection,
      )
      .describe("The connections users open with `gw connect NAME`, by name."),
    agents: z
      .record(agentName, agentConfig)
      .default({})
      .describe(
        "Outbound agents, by name: processes in private networks that dial out to the broker and relay bytes to the targets of connections with `via: <name>` (docs/agent.md).",
      ),
    notifications: notificationsConfig
      .optional()
      .describe(
        "Webhooks told when approval requests are created and decided (docs/approvals.md).",
      ),
    policies: z
      .record(policyName, policyConfig)
      .default({})
      .describe(
        "Statement policies, by name: a postgres (or tcp) connection names one with `policy:`; ssh and http connections write theirs inline.",
      ),
    retention: duration
      .optional()
      .describe(
        'How long ended sessions keep their events and statements, a duration such as "90d" (default: forever); their seals stay.',
      ),
    signingKey: z
      .object({
        file: z.string().min(1).describe("The PEM file of the key (made there if missing)."),
      })
      .strict()
      .optional()
      .describe(
        "The broker's Ed25519 audit key, made on first start; default: beside the SQLite store.",
      ),
    sshHostKey: z
      .object({
        file: z
          .string()
          .min(1)
          .describe("The OpenSSH private key file (ed25519 made there, mode 0600, if missing)."),
      })
      .strict()
      .optional()
      .describe(
        "The broker's own SSH host key, which `gw connect` pins for ssh connections; default: beside the SQLite store. Replicas must share one.",
      ),
  })
  .strict()
  .superRefine((cfg, ctx) => {
    // Every connection type may go through an agent; the agent must exist.
    for (const [name, conn] of Object.entries(cfg.connections)) {
      const via = (conn as { via?: unknown }).via;
      if (typeof via !== "string" || Object.hasOwn(cfg.agents, via)) continue;
      const names = Object.keys(cfg.agents);
      ctx.addIssue({
        code: "custom",
        path: ["connections", name, "via"],
        message:
          names.length === 0
            ? `no agent named "${via}": the config has no agents section`
            : `no agent named "${via}"; the agents are: ${names.join(", ")}`,
      });
    }
  });
export type BrokerConfig = z.infer<typeof brokerConfig>;
