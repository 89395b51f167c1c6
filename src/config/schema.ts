import { z } from "zod";

/** A secret is never written in the config itself: it names where to read it from. */
export const secretRef = z.union(
  [z.object({ env: z.string().min(1) }).strict(), z.object({ file: z.string().min(1) }).strict()],
  { error: "expected { env: VAR } or { file: PATH }; secrets are never written inline" },
);
export type SecretRef = z.infer<typeof secretRef>;

const principal = z
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

export const postgresConnection = z
  .object({
    type: z.literal("postgres"),
    description: z.string().optional(),
    target: postgresTarget,
    allow: z.array(principal).min(1, "a connection must allow someone"),
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
  })
  .strict();
export type BrokerConfig = z.infer<typeof brokerConfig>;
