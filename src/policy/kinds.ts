/**
 * The vocabularies the policy config and the classifier share. Kept free of imports so the
 * config schema (src/config/schema.ts) can use them without an import cycle.
 */

/** What a statement does, as the policy sees it (see docs/policy.md, "Statement kinds"). */
export const STATEMENT_KINDS = [
  "select",
  "insert",
  "update",
  "delete",
  "merge",
  "copy-from",
  "copy-to",
  "create",
  "alter",
  "drop",
  "truncate",
  "grant",
  "revoke",
  "set",
  "transaction",
  "call",
  "do",
  "explain",
  "prepare",
  "execute",
  "other",
  "unknown",
] as const;
export type StatementKind = (typeof STATEMENT_KINDS)[number];

export const POLICY_ACTIONS = ["allow", "block", "hold"] as const;
export type PolicyAction = (typeof POLICY_ACTIONS)[number];

/** Value detectors a masking profile may name (the masking engine implements them). */
export const MASK_DETECTORS = [
  "email",
  "credit_card",
  "iban",
  "us_ssn",
  "phone",
  "jwt",
  "aws_access_key",
  "private_key",
  "bearer_token",
] as const;
export type MaskDetector = (typeof MASK_DETECTORS)[number];

/** How a masked value is replaced: `null` replaces it with SQL NULL. */
export const MASK_STRATEGIES = ["redact", "last4", "hash", "null"] as const;
export type MaskStrategy = (typeof MASK_STRATEGIES)[number];
