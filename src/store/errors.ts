import { ExitCode, GwError } from "../errors.js";

/** The store is closed: the broker is shutting down, or a bug uses the store after close(). */
export function storeClosed(): GwError {
  return new GwError("store_closed", "the session store is closed; nothing more can be recorded", {
    exitCode: ExitCode.unavailable,
  });
}

/** A write was not recorded; the session it belongs to must fail closed. */
export function storeWriteFailed(
  message: string,
  opts: { hint?: string; cause?: unknown } = {},
): GwError {
  return new GwError("store_write_failed", message, { exitCode: ExitCode.unavailable, ...opts });
}

/** The store cannot be opened at all. */
export function storeUnavailable(
  message: string,
  opts: { hint?: string; cause?: unknown } = {},
): GwError {
  return new GwError("store_unavailable", message, { exitCode: ExitCode.unavailable, ...opts });
}
