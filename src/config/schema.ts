import { z } from "zod";
import { notificationsConfig } from "../notify/config.js";
import { parseDuration } from "../policy/duration.js";
import {
  MASK_DETECTORS,
  MASK_STRATEGIES,
  POLICY_ACTIONS,
  STATEMENT_KINDS,
} from "../policy/kinds.js";

/** A secret is never written in the config itself: it names where to read it from. */
export const secretRef = z.union(
  [z.object({ env: z.string().min(1) }).strict(), z.object({ file: z.string().min(1) }).strict()],
  { error: "expected { env: VAR } or { file: PATH }; secrets are never written inline" },
);
export type SecretRef = z.infer<typeof secretRef>;

export const principal = z
  .string()
  .regex(
    /^(group|role|user|app):.+$/,
    "expected group:<id>, role:<app role>, user:<oid> or app:<oid>",
  );

const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:]+\]|[^:\s]+):\d{1,5}$/, "expected host:port, e.g. 127.0.0.1:8443");

export const postgresTarget = z
  .object({
    host: z.string().min(1),
    port: z.number().int().min(1).max(65535).default(5432),
    database: z.string().min(1),
    user: z.string().min(1),
    password: secretRef.optional(),
    tls: z.enum(["disable", "prefer", "require", "verify-full"]).default("prefer"),
    ca: z.string().optional(),
    connectTimeout: z.number().positive().default(10),
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
    /** The first rows of each result as the client got them (masked); false records none. */
    preview: z
      .union([
        z.literal(false),
        z
          .object({
            rows: z.number().int().min(0).max(1000).default(20),
            kib: z.number().positive().max(1024).default(16),
          })
          .strict(),
      ])
      .optional(),
  })
  .strict();
export type RecordingConfig = z.infer<typeof recordingConfig>;

export const postgresConnection = z
  .object({
    type: z.literal("postgres"),
    description: z.string().optional(),
    target: postgresTarget,
    allow: z.array(principal).min(1, "a connection must allow someone"),
    /** The policy (a key of `policies`) every statement on this connection is checked against. */
    policy: policyName.optional(),
    /** Sessions run read-only, and every statement that could leave read-only mode is blocked. */
    readOnly: z.boolean().default(false),
    /**
     * strict: a statement runs only once its start is on disk; async: starts are buffered
     * (bounded), and a full buffer or a failing store refuses statements. docs/recording.md
     */
    audit: z.enum(["strict", "async"], { error: "expected strict or async" }).optional(),
    /** Overrides the policy's recording settings. */
    recording: recordingConfig.optional(),
  })
  .strict();

export const connection = z.discriminatedUnion("type", [postgresConnection], {
  error: "type must be one of: postgres",
});
export type ConnectionConfig = z.infer<typeof connection>;

export const identityConfig = z
  .object({
    issuer: z.url({ protocol: /^https?$/ }),
    audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
    jwksUri: z.url().optional(),
    algorithms: z.array(z.enum(["RS256", "RS384", "RS512", "PS256", "ES256"])).default(["RS256"]),
    clockToleranceSeconds: z.number().int().min(0).max(300).default(30),
    /** How long a live session outlives its token when no fresh one arrives. */
    expiryGraceSeconds: z.number().int().min(0).max(3600).default(30),
    /** A private CA for the issuer's endpoints (the local identity server in tests and demo). */
    ca: z.string().optional(),
    /** Published at /.well-known/gw-configuration for `gw login`. */
    login: z
      .object({
        authority: z.url(),
        clientId: z.string().min(1),
        scopes: z.array(z.string()).min(1),
      })
      .strict()
      .optional(),
  })
  .strict();
export type IdentityConfig = z.infer<typeof identityConfig>;

export const storeConfig = z.union([
  z.object({ sqlite: z.string().min(1) }).strict(),
  z.object({ memory: z.literal(true) }).strict(),
]);
export type StoreConfig = z.infer<typeof storeConfig>;

// ---------------------------------------------------------------------------------------------
// Policies (docs/policy.md)

const duration = z.string().refine((s) => parseDuration(s) !== undefined, {
  message: 'expected a duration such as "30s", "10m", "1h" or "1h30m"',
});

const listOf = <T extends z.ZodType>(item: T) => z.array(item).min(1, "must not be empty");

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
    /** Statement kinds; a statement matches when one of the kinds it executes is listed. */
    kind: listOf(kindName).optional(),
    /** schema.table globs; matches when any table the statement names matches one. */
    tables: listOf(tableGlob).optional(),
    /** schema.table globs; matches when the statement names tables and every one matches. */
    onlyTables: listOf(tableGlob).optional(),
    /** `absent`: an UPDATE or DELETE without a WHERE (or with one that names no column). */
    where: z.literal("absent", { error: 'the only where matcher is "absent"' }).optional(),
    /** Function-name globs; matches when the statement calls one of them anywhere. */
    functions: listOf(functionGlob).optional(),
    /** Who is connected: any listed principal, and the type when given. */
    identity: z
      .object({
        groups: principalIds("group").optional(),
        roles: principalIds("role").optional(),
        users: principalIds("user").optional(),
        apps: principalIds("app").optional(),
        type: z.enum(["user", "app"]).optional(),
      })
      .strict()
      .optional(),
    /** application_name globs (client-declared: a convenience, never a security boundary). */
    application: listOf(z.string().min(1)).optional(),
    /** Agent-label globs; matches only sessions that carry an agent label. */
    agent: listOf(z.string().min(1)).optional(),
  })
  .strict();
export type RuleMatch = z.infer<typeof ruleMatch>;

export const policyRule = z
  .object({
    name: z.string().min(1).optional(),
    /** All given matchers must match; no matchers match every statement. */
    match: ruleMatch.default({}),
    action: z.enum(POLICY_ACTIONS, { error: "expected allow, block or hold" }),
    reason: z.string().min(1).optional(),
    /** hold: who may approve (default: the policy's approvers). */
    approvers: listOf(principal).optional(),
    /** hold: how many distinct approvals are needed (default: the policy's, else 1). */
    minApprovals: z.number().int().min(1).optional(),
    /** hold: how long to wait for approval (default: the policy's, else 10m). */
    timeout: duration.optional(),
    /** Sessions of whoever this rule's identity/application/agent matchers match run read-only. */
    readOnly: z.boolean().optional(),
  })
  .strict();
export type PolicyRule = z.infer<typeof policyRule>;

export const maskProfile = z
  .object({
    /** schema.table.column globs whose values are always masked. */
    columns: z.array(columnGlob).default([]),
    /** Value detectors applied to every text value. */
    detectors: z
      .array(z.enum(MASK_DETECTORS, { error: `expected one of: ${MASK_DETECTORS.join(", ")}` }))
      .default([]),
    /** `null` (YAML null or the string) replaces a value with SQL NULL. */
    strategy: z
      .preprocess(
        (v) => (v === null ? "null" : v),
        z.enum(MASK_STRATEGIES, { error: `expected one of: ${MASK_STRATEGIES.join(", ")}` }),
      )
      .default("redact"),
    /** The HMAC key for strategy hash. */
    hashKey: secretRef.optional(),
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
    description: z.string().optional(),
    /** The action when no rule matches. */
    default: z.enum(POLICY_ACTIONS, { error: "expected allow, block or hold" }).default("allow"),
    /** The action for SQL that does not parse. */
    onUnparseable: z
      .enum(POLICY_ACTIONS, { error: "expected allow, block or hold" })
      .default("block"),
    /** Every session on a connection using this policy runs read-only. */
    readOnly: z.boolean().default(false),
    /** Default approvers, approval count and timeout for every hold of this policy. */
    approvers: listOf(principal).optional(),
    minApprovals: z.number().int().min(1).optional(),
    timeout: duration.optional(),
    rules: z.array(policyRule).default([]),
    /** The masking profile for result values (see the masking engine). */
    mask: maskProfile.optional(),
    /** What sessions under this policy record besides statements (a connection's wins). */
    recording: recordingConfig.optional(),
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

export const brokerConfig = z
  .object({
    listen: hostPort.default("127.0.0.1:8443"),
    /** Public URL clients use, when it differs from listen (behind a load balancer). */
    publicUrl: z.url().optional(),
    tls: z
      .object({ cert: z.string().min(1), key: z.string().min(1) })
      .strict()
      .optional(),
    identity: identityConfig,
    store: storeConfig.default({ sqlite: "./data/gw.db" }),
    auditors: z.array(principal).default([]),
    limits: z
      .object({
        /** Largest single protocol message accepted from a client, in bytes. */
        maxMessageBytes: z
          .number()
          .int()
          .min(1024)
          .default(64 * 1024 * 1024),
        /** Startup packets are small; anything bigger is garbage or an attack. */
        maxStartupBytes: z.number().int().min(64).default(10_000),
      })
      .strict()
      .default({ maxMessageBytes: 64 * 1024 * 1024, maxStartupBytes: 10_000 }),
    connections: z.record(
      z.string().regex(/^[a-z0-9][a-z0-9._-]*$/i, "connection names use letters, digits, . _ -"),
      connection,
    ),
    /** Webhooks told when approval requests are created and decided (docs/approvals.md). */
    notifications: notificationsConfig.optional(),
    /** Statement policies, by name; a connection names one with `policy:`. */
    policies: z.record(policyName, policyConfig).default({}),
    /** How long ended sessions keep their events and statements ("90d"); their seals stay. */
    retention: duration.optional(),
    /** The broker's Ed25519 audit key (made on first start); default: beside the SQLite store. */
    signingKey: z
      .object({ file: z.string().min(1) })
      .strict()
      .optional(),
  })
  .strict();
export type BrokerConfig = z.infer<typeof brokerConfig>;
