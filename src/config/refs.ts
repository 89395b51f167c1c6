import { z } from "zod";

/*
 * The config's shared leaves, in a module with no imports of its own: the broker schema, the
 * notification settings and the ssh/http/tcp connection types all use them, and none of those
 * can import another without an import cycle.
 */

/** A secret is never written in the config itself: it names where to read it from. */
export const secretRef = z.union(
  [
    z
      .object({
        env: z
          .string()
          .min(1)
          .describe("An environment variable of the broker holding the secret."),
      })
      .strict(),
    z
      .object({
        file: z.string().min(1).describe("A file holding the secret (a final newline is dropped)."),
      })
      .strict(),
  ],
  { error: "expected { env: VAR } or { file: PATH }; secrets are never written inline" },
);
export type SecretRef = z.infer<typeof secretRef>;

export const principal = z
  .string()
  .regex(
    /^(group|role|user|app):.+$/,
    "expected group:<id>, role:<app role>, user:<oid> or app:<oid>",
  );

/** Agent names, as keys of `agents` and values of a connection's `via`. */
export const agentName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._-]*$/i, "agent names use letters, digits, . _ -");

/** A connection's `via` (postgres, ssh and tcp connections; the broker checks the agent exists). */
export const viaAgent = agentName
  .optional()
  .describe(
    "The outbound agent (a key of `agents`) the broker reaches this target through, for a target in a private network; the agent only relays bytes, and policy, masking and recording stay in the broker (docs/agent.md). Without it, the broker connects directly.",
  );
