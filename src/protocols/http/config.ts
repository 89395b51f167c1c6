import { z } from "zod";
import { MASK_DETECTORS, MASK_STRATEGIES } from "../../policy/kinds.js";
import {
  allowDeny,
  checkHoldRules,
  duration,
  listOf,
  policyAction,
  principal,
  secretRef,
} from "../tcp/config.js";
import { compileJsonPath } from "./json-mask.js";

/**
 * `type: http` connections (docs/ssh-http.md). The broker serves HTTP/1.1 on the tunnel and
 * proxies each request to the target's base URL with the stored credential injected; the
 * client's own Authorization header is dropped, and the client never sees the credential.
 */
const headerName = z
  .string()
  .regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, "not a valid HTTP header name")
  .refine(
    (h) => !["host", "content-length", "transfer-encoding", "connection"].includes(h.toLowerCase()),
    { message: "the broker sets this header itself" },
  );

export const httpTarget = z
  .object({
    /** The base URL requests are relative to: https://api.example.com/v1 */
    url: z.url({ protocol: /^https?$/, error: "expected an http:// or https:// URL" }),
    /** Headers added to every request (API keys): name → secret. */
    headers: z.record(headerName, secretRef).optional(),
    /** Authorization: Bearer <secret>. */
    bearer: secretRef.optional(),
    /** Authorization: Basic, with the password from a secret. */
    basic: z
      .object({ user: z.string().min(1), password: secretRef })
      .strict()
      .optional(),
    /** A client certificate for mutual TLS (PEM files). */
    clientCert: z
      .object({ cert: z.string().min(1), key: z.string().min(1) })
      .strict()
      .optional(),
    /** A private CA (PEM file) the target's certificate is checked against. */
    ca: z.string().min(1).optional(),
    /** Seconds to wait for the target to accept a connection. */
    connectTimeout: z.number().positive().default(10),
  })
  .strict()
  .refine((t) => !(t.bearer && t.basic), {
    message: "give bearer or basic, not both: both set Authorization",
    path: ["basic"],
  })
  .refine(
    (t) =>
      !(
        (t.bearer || t.basic) &&
        Object.keys(t.headers ?? {}).some((h) => h.toLowerCase() === "authorization")
      ),
    {
      message: "Authorization is set by bearer/basic; do not also list it in headers",
      path: ["headers"],
    },
  );
export type HttpTargetConfig = z.infer<typeof httpTarget>;

const METHOD = /^[A-Z]+$/;
const method = z
  .string()
  .transform((m) => m.toUpperCase())
  .refine((m) => METHOD.test(m), { message: "expected an HTTP method such as GET or DELETE" });

/**
 * Path globs: `*` matches within one segment, `**` across segments ("/admin/**" also matches
 * "/admin"), `?` one character. Matching is case-sensitive, on the path the target receives
 * (dot segments resolved, percent-escapes decoded), without the query string.
 */
const pathGlob = z.string().regex(/^\//, "a path glob starts with /, e.g. /users/*");

export const httpRule = z
  .object({
    name: z.string().min(1).optional(),
    /** All given matchers must match; no matchers match every request. */
    match: z
      .object({
        method: z.union([method, listOf(method)]).optional(),
        path: z.union([pathGlob, listOf(pathGlob)]).optional(),
      })
      .strict()
      .default({}),
    action: policyAction,
    reason: z.string().min(1).optional(),
    approvers: listOf(principal).optional(),
    minApprovals: z.number().int().min(1).optional(),
    timeout: duration.optional(),
  })
  .strict();
export type HttpRule = z.infer<typeof httpRule>;

const jsonPath = z.string().superRefine((p, ctx) => {
  try {
    compileJsonPath(p);
  } catch (err) {
    ctx.addIssue({ code: "custom", message: (err as Error).message });
  }
});

export const httpMask = z
  .object({
    /**
     * JSON fields masked in response bodies, JSONPath-style: "$.owner.email",
     * "$.items[*].card", "$..ssn" (at any depth), "$.data[0].token".
     */
    json: z.array(jsonPath).default([]),
    /** Detectors run over every JSON string value and over text bodies. */
    detectors: z
      .array(z.enum(MASK_DETECTORS, { error: `expected one of: ${MASK_DETECTORS.join(", ")}` }))
      .default([]),
    strategy: z
      .enum(MASK_STRATEGIES.filter((s) => s !== "null") as ["redact", "last4", "hash"], {
        error: "expected redact, last4 or hash",
      })
      .default("redact"),
    hashKey: secretRef.optional(),
    /** JSON bodies are buffered to be masked; bigger ones are refused (502), never sent unmasked. */
    maxBodyBytes: z
      .number()
      .int()
      .min(1024)
      .default(10 * 1024 * 1024),
  })
  .strict()
  .refine((m) => m.strategy !== "hash" || m.hashKey !== undefined, {
    message: "strategy hash needs a hashKey ({ env: VAR } or { file: PATH })",
    path: ["hashKey"],
  });
export type HttpMaskConfig = z.infer<typeof httpMask>;

export const httpPolicyConfig = z
  .object({
    description: z.string().optional(),
    /** The action for requests no rule matches. */
    default: policyAction.default("allow"),
    approvers: listOf(principal).optional(),
    minApprovals: z.number().int().min(1).optional(),
    timeout: duration.optional(),
    rules: z.array(httpRule).default([]),
    mask: httpMask.optional(),
    /**
     * WebSocket upgrades are relayed as opaque streams (recorded as metadata, never masked).
     * Default: allow, unless the policy masks (then deny, since their content cannot be).
     */
    websocket: allowDeny.optional(),
    /** Request and response bodies recorded per request, masked, up to this many bytes. */
    recordBodyBytes: z
      .number()
      .int()
      .min(0)
      .default(64 * 1024),
  })
  .strict()
  .superRefine(checkHoldRules);
export type HttpPolicyConfig = z.infer<typeof httpPolicyConfig>;

export const httpConnection = z
  .object({
    type: z.literal("http"),
    description: z.string().optional(),
    target: httpTarget,
    allow: z.array(principal).min(1, "a connection must allow someone"),
    /** Inline: http policies speak of methods and paths, not statements. */
    policy: httpPolicyConfig.optional(),
  })
  .strict();
export type HttpConnectionConfig = z.infer<typeof httpConnection>;
