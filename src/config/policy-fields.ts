import { z } from "zod";
import { parseDuration } from "../policy/duration.js";
import { principal } from "./refs.js";

/*
 * The fields every kind of policy has alike: statement policies (schema.ts) and the ssh and
 * http ones (src/protocols/{ssh,http}/config.ts). One definition, so a rule holds the same way
 * and reads the same in the reference whatever it matches.
 */

export const duration = z.string().refine((s) => parseDuration(s) !== undefined, {
  message: 'expected a duration such as "30s", "10m", "1h" or "1h30m"',
});

export const listOf = <T extends z.ZodType>(item: T) => z.array(item).min(1, "must not be empty");

export const policyAction = z.enum(["allow", "block", "hold"], {
  error: "expected allow, block or hold",
});

export const allowDeny = z.enum(["allow", "deny"], { error: "expected allow or deny" });

/** A rule's reason and, for a hold, its own approvers, count and timeout. */
export const holdRuleFields = {
  reason: z.string().min(1).optional().describe("Text for the user; the default names the rule."),
  approvers: listOf(principal)
    .optional()
    .describe("Hold only: who may approve (default: the policy's approvers)."),
  minApprovals: z
    .number()
    .int()
    .min(1)
    .optional()
    .describe("Hold only: how many distinct approvals are needed (default: the policy's, else 1)."),
  timeout: duration
    .optional()
    .describe("Hold only: how long to wait for approval (default: the policy's, else `10m`)."),
};

/** A policy's defaults for the holds of its rules. */
export const holdDefaultFields = {
  approvers: listOf(principal)
    .optional()
    .describe("The default approvers of every hold of this policy."),
  minApprovals: z
    .number()
    .int()
    .min(1)
    .optional()
    .describe("The default number of distinct approvals a hold needs (else 1)."),
  timeout: duration
    .optional()
    .describe(
      'How long a hold waits by default: a duration such as "30s", "10m" or "1h30m" (else `10m`).',
    ),
};
