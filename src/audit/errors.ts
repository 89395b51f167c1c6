import { ExitCode, GwError } from "../errors.js";

/** The recording cannot take another statement now (store failing, buffer full): refuse it. */
export function auditUnavailable(message: string, cause?: unknown): GwError {
  return new GwError("audit_unavailable", message, {
    exitCode: ExitCode.unavailable,
    hint: "Nothing runs unrecorded: the statement was refused. Tell the broker's operators if it persists.",
    ...(cause === undefined ? {} : { cause }),
  });
}

/** A statement's start could not be made durable (audit: strict), so it did not run. */
export function auditWriteFailed(cause: unknown): GwError {
  const why = cause instanceof Error ? cause.message : String(cause);
  return new GwError(
    "audit_write_failed",
    `the broker could not record this statement before running it: ${why}`,
    {
      exitCode: ExitCode.unavailable,
      hint: "Nothing runs unrecorded: the statement was refused. Tell the broker's operators if it persists.",
      cause,
    },
  );
}

export function sessionNotFound(id: string): GwError {
  return new GwError("session_not_found", `no session ${id} that you may see`, {
    exitCode: ExitCode.failure,
    hint: "List sessions with `gw sessions` (ids may be shortened to their first 8 characters).",
  });
}
