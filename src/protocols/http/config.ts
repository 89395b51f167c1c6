import { z } from "zod";
import { MASK_DETECTORS, MASK_STRATEGIES } from "../../policy/kinds.js";
import {
  allowDeny,
  checkHoldRules,
  holdDefaultFields,
  holdRuleFields,
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
    url: z
      .url({ protocol: /^https?$/, error: "expected an http:// or https:// URL" })
      .describe(
        "The base URL request paths are appended to, `http://` or `https://`: `https://api.example.com/v1`.",
      ),
    headers: z
      .record(headerName, secretRef)
      .optional()
      .describe(
        "Headers the broker adds to every request (API keys), by name; the values are secrets.",
      ),
    bearer: secretRef
      .optional()
      .describe("A token the broker sends as `Authorization: Bearer <token>`."),
    basic: z
      .object({
        user: z.string().min(1).describe("The user name."),
        password: secretRef.describe("The password."),
      })
      .strict()
      .optional()
      .describe(
        "A user and password the broker sends as `Authorization: Basic` (not with `bearer`).",
      ),
    clientCert: z
      .object({
        cert: z.string().min(1).describe("PEM file of the certificate (and its chain)."),
        key: z.string().min(1).describe("PEM file of its private key."),
      })
      .strict()
      .optional()
      .describe("The broker's client certificate for mutual TLS with the target."),
    ca: z
      .string()
      .min(1)
      .optional()
      .describe(
        "PEM file of a private CA the target's certificate is checked against, instead of the public CAs.",
      ),
    connectTimeout: z
      .number()
      .positive()
      .default(10)
      .describe("Seconds to wait for the target to accept a connection."),
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
    name: z.string().min(1).optional().describe("A label shown in decisions and logs."),
    match: z
      .object({
        method: z
          .union([method, listOf(method)])
          .optional()
          .describe("HTTP methods (case-insensitive); matches when the request's method is one."),
        path: z
          .union([pathGlob, listOf(pathGlob)])
          .optional()
          .describe(
            "Path globs (`*` within one segment, `**` across segments, `?` one character), case-sensitive, over the normalised path without the query; matches when any does.",
          ),
      })
      .strict()
      .default({})
      .describe("All given matchers must match; no matchers match every request."),
    action: policyAction.describe(
      "What a matching request gets: `allow`, `block`, or `hold` for approval.",
    ),
    ...holdRuleFields,
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
    json: z
      .array(jsonPath)
      .default([])
      .describe(
        "JSON fields masked in response bodies, JSONPath-style: `$.owner.email`, `$.items[*].card`, `$..ssn` (at any depth).",
      ),
    detectors: z
      .array(z.enum(MASK_DETECTORS, { error: `expected one of: ${MASK_DETECTORS.join(", ")}` }))
      .default([])
      .describe("Value detectors run over every other JSON string value and over text bodies."),
    strategy: z
      .enum(MASK_STRATEGIES.filter((s) => s !== "null") as ["redact", "last4", "hash"], {
        error: "expected redact, last4 or hash",
      })
      .default("redact")
      .describe("How a masked value is replaced."),
    hashKey: secretRef.optional().describe("The HMAC key of strategy `hash` (which needs one)."),
    maxBodyBytes: z
      .number()
      .int()
      .min(1024)
      .default(10 * 1024 * 1024)
      .describe(
        "JSON bodies are buffered to be masked, up to this many bytes; a bigger one is refused (502), never sent unmasked.",
      ),
  })
  .strict()
  .refine((m) => m.strategy !== "hash" || m.hashKey !== undefined, {
    message: "strategy hash needs a hashKey ({ env: VAR } or { file: PATH })",
    path: ["hashKey"],
  });
export type HttpMaskConfig = z.infer<typeof httpMask>;

export const httpPolicyConfig = z
  .object({
    description: z.string().optional().describe("Free text for the people reading the config."),
    default: policyAction.default("allow").describe("The action for requests no rule matches."),
    ...holdDefaultFields,
    rules: z
      .array(httpRule)
      .default([])
      .describe(
        "The rules over requests (method and path), in order: the first that matches decides.",
      ),
    mask: httpMask.optional().describe("Masking of response bodies."),
    websocket: allowDeny
      .optional()
      .describe(
        "WebSocket upgrades, relayed as opaque streams (recorded as metadata, never masked); default: `allow`, unless the policy masks (then `deny`).",
      ),
    recordBodyBytes: z
      .number()
      .int()
      .min(0)
      .default(64 * 1024)
      .describe(
        "How many bytes of each request's and response's body are recorded (text only, masked); 0 records none.",
      ),
  })
  .strict()
  .superRefine(checkHoldRules);
export type HttpPolicyConfig = z.infer<typeof httpPolicyConfig>;

export const httpConnection = z
  .object({
    type: z.literal("http"),
    description: z
      .string()
      .optional()
      .describe("Shown with the name where users list the connections they may use."),
    target: httpTarget.describe(
      "The HTTP(S) service, and the credential the broker adds to each request.",
    ),
    allow: z
      .array(principal)
      .min(1, "a connection must allow someone")
      .describe("Who may connect: a caller matching any of these principals."),
    policy: httpPolicyConfig
      .optional()
      .describe(
        "The connection's policy, written inline (it speaks of methods and paths, not statements); without one, every request is allowed and nothing is masked.",
      ),
    audit: z
      .enum(["strict", "async"], { error: "expected strict or async" })
      .optional()
      .describe(
        "`strict`: a request goes to the target only once its start is on disk (synced); `async` (the default): the start is written first but not waited for on disk. See docs/recording.md.",
      ),
  })
  .strict();
export type HttpConnectionConfig = z.infer<typeof httpConnection>;
