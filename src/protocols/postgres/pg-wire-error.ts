import { SqlState } from "./codes.js";
import { errorResponse } from "./wire.js";

/**
 * An error meant for the PostgreSQL client: it goes on the wire as an ErrorResponse with a
 * SQLSTATE. Its text must be safe to show (no credentials, no internals). Any other error in a
 * session is logged and the client gets a generic internal error instead.
 */
export class PgWireError extends Error {
  override name = "PgWireError";
  constructor(
    readonly sqlstate: string,
    message: string,
    readonly opts: { detail?: string; hint?: string; fatal?: boolean } = {},
  ) {
    super(message);
  }

  toBuffer(): Buffer {
    return errorResponse({
      severity: this.opts.fatal === false ? "ERROR" : "FATAL",
      code: this.sqlstate,
      message: this.message,
      detail: this.opts.detail,
      hint: this.opts.hint,
    });
  }
}

export const internalWireError = () =>
  new PgWireError(SqlState.internalError, "gw: internal broker error; the session was closed", {
    hint: "The broker logged the details. Reconnect to start a new session.",
  });
