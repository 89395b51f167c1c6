import { readFileSync } from "node:fs";
import { ExitCode, GwError } from "../errors.js";
import type { SecretRef } from "./schema.js";

/**
 * Reads a secret from where the config points. The error names the place, never the value.
 */
export function readSecret(ref: SecretRef, what: string): string {
  if ("env" in ref) {
    const v = process.env[ref.env];
    if (v === undefined || v === "") {
      throw new GwError("secret_missing", `${what}: environment variable ${ref.env} is not set`, {
        exitCode: ExitCode.config,
        hint: `Export ${ref.env} in the broker's environment.`,
      });
    }
    return v;
  }
  try {
    return readFileSync(ref.file, "utf8").replace(/\r?\n$/, "");
  } catch (err) {
    throw new GwError(
      "secret_unreadable",
      `${what}: cannot read ${ref.file} (${(err as NodeJS.ErrnoException).code ?? "error"})`,
      {
        exitCode: ExitCode.config,
      },
    );
  }
}
