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
