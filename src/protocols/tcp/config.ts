import { z } from "zod";

/* Config pieces the ssh, http and tcp connection types share, and the `type: tcp` connection. */

import { principal, viaAgent } from "../../config/refs.js";

export { principal, secretRef } from "../../config/refs.js";

export {
  allowDeny,
  duration,
  holdDefaultFields,
  holdRuleFields,
  listOf,
  policyAction,
} from "../../config/policy-fields.js";

/** What every hold needs: approvers (here or on the policy), how many, how long. */
export interface HoldSettings {
  approvers?: string[] | undefined;
  minApprovals?: number | undefined;
  timeout?: string | undefined;
}

/**
 * Rules that hold need approvers, on the rule or on the policy; only hold rules take hold
 * settings. Shared by the ssh and http policy schemas.
 */
export function checkHoldRules(
  p: HoldSettings & {
    default: "allow" | "block" | "hold";
    rules: (HoldSettings & { action: "allow" | "block" | "hold" })[];
  },
  ctx: z.RefinementCtx,
): void {
  if (p.default === "hold" && !p.approvers) {
    ctx.addIssue({
      code: "custom",
      path: ["default"],
      message: "default: hold needs approvers: give approvers on the policy",
    });
  }
  p.rules.forEach((r, i) => {
    if (r.action === "hold" && !r.approvers && !p.approvers) {
      ctx.addIssue({
        code: "custom",
        path: ["rules", i, "approvers"],
        message: "a hold rule needs approvers: give approvers here or on the policy",
      });
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
  });
}

export const connectionName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._-]*$/i, "policy names use letters, digits, . _ -");

// --- type: tcp ---------------------------------------------------------------------------------

export const tcpTarget = z
  .object({
    host: z.string().min(1).describe("Host name or IP address of the target."),
    port: z.number().int().min(1).max(65535).describe("TCP port of the target."),
    connectTimeout: z
      .number()
      .positive()
      .default(10)
      .describe("Seconds to wait for the target to accept the connection."),
  })
  .strict();
export type TcpTarget = z.infer<typeof tcpTarget>;

/**
 * A raw TCP connection: the broker relays bytes and records the session (who, when, how many
 * bytes), nothing more. It cannot understand what flows, so a policy with rules, masking or
 * read-only mode cannot apply: `validateTcpPolicy` says so, for `gw broker check`.
 */
export const tcpConnection = z
  .object({
    type: z.literal("tcp"),
    description: z
      .string()
      .optional()
      .describe("Shown with the name where users list the connections they may use."),
    target: tcpTarget.describe("The TCP server the broker relays bytes to."),
    allow: z
      .array(principal)
      .min(1, "a connection must allow someone")
      .describe("Who may connect: a caller matching any of these principals."),
    policy: connectionName
      .optional()
      .describe(
        "A policy (a key of `policies`); the bytes are not understood, so only a policy that allows everything fits (no rules, masking or read-only mode), else the config is refused.",
      ),
    via: viaAgent,
  })
  .strict();
export type TcpConnectionConfig = z.infer<typeof tcpConnection>;

/**
 * What a policy would ask of a raw TCP connection. The shape is the broker's statement policy
 * (src/config/schema.ts PolicyConfig) or any inline policy object; only what matters is read.
 */
export interface PolicyLike {
  default?: unknown;
  readOnly?: unknown;
  rules?: readonly unknown[] | undefined;
  mask?: unknown;
}

/**
 * Returns why `policy` cannot apply to a `type: tcp` connection (it needs to understand the
 * protocol: rules that block or hold, masking, read-only mode, a default other than allow),
 * or null when it fits (or there is none).
 */
export function validateTcpPolicy(policy: PolicyLike | null | undefined): string | null {
  if (policy === null || policy === undefined) return null;
  const problems: string[] = [];
  if (Array.isArray(policy.rules) && policy.rules.length > 0)
    problems.push(`it has ${policy.rules.length} rule(s)`);
  if (policy.mask !== undefined && policy.mask !== null) problems.push("it masks values");
  if (policy.readOnly === true) problems.push("it makes sessions read-only");
  if (policy.default !== undefined && policy.default !== "allow")
    problems.push(`its default is ${String(policy.default)}`);
  if (problems.length === 0) return null;
  return (
    `a tcp connection relays bytes it does not understand, so its policy can only allow: ` +
    `${problems.join(", ")}. Use a protocol-aware type (postgres, ssh, http) or drop the policy`
  );
}
