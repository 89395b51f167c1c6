import { ExitCode, GwError } from "../errors.js";

/**
 * The stable codes of approval errors, with the HTTP status the API answers them with and the
 * exit code the CLI uses. The store raises the state ones (not_found, not_pending, duplicate)
 * inside its writes; the service raises the rest before it writes.
 */
export const APPROVAL_ERRORS = {
  /** No such request (or, over the API, none that the caller may see). */
  approval_not_found: { status: 404, exitCode: ExitCode.failure },
  /** The request was already approved, denied, expired or cancelled. */
  approval_not_pending: { status: 409, exitCode: ExitCode.conflict },
  /** The requester tried to approve their own statement. */
  approval_self: { status: 403, exitCode: ExitCode.forbidden },
  /** The caller matches none of the request's approvers. */
  approval_not_approver: { status: 403, exitCode: ExitCode.forbidden },
  /** An app identity matched only through a group or role, not by an explicit app:<oid>. */
  approval_app_not_allowed: { status: 403, exitCode: ExitCode.forbidden },
  /** The caller has already decided this request. */
  approval_duplicate: { status: 409, exitCode: ExitCode.conflict },
  /** The decision named a statement hash that is not the held statement's. */
  approval_statement_mismatch: { status: 409, exitCode: ExitCode.conflict },
  /** A deny needs a reason. */
  approval_reason_required: { status: 400, exitCode: ExitCode.usage },
  /** A reason longer than MAX_REASON_LENGTH characters. */
  approval_reason_too_long: { status: 400, exitCode: ExitCode.usage },
  /** The approval service has been closed (the broker is shutting down). */
  approval_unavailable: { status: 503, exitCode: ExitCode.unavailable },
  /** request() was called with parameters no request can be made of (a bug or bad policy). */
  approval_invalid: { status: 500, exitCode: ExitCode.internal },
} as const;

export type ApprovalErrorCode = keyof typeof APPROVAL_ERRORS;

export function approvalError(
  code: ApprovalErrorCode,
  message: string,
  opts: { hint?: string; cause?: unknown } = {},
): GwError {
  return new GwError(code, message, { exitCode: APPROVAL_ERRORS[code].exitCode, ...opts });
}

export function isApprovalErrorCode(code: string): code is ApprovalErrorCode {
  return Object.hasOwn(APPROVAL_ERRORS, code);
}

// The state errors both stores raise, worded the same way.

export function approvalNotFound(id: string): GwError {
  return approvalError("approval_not_found", `no approval request ${id}`);
}

export function approvalNotPending(id: string, status: string): GwError {
  return approvalError("approval_not_pending", `approval request ${id} is already ${status}`, {
    hint: "A decided, expired or cancelled request cannot be decided again; the statement has to be run again to ask anew.",
  });
}

export function approvalExpired(id: string): GwError {
  return approvalError("approval_not_pending", `approval request ${id} has expired`, {
    hint: "The statement's wait is over; it has to be run again to ask anew.",
  });
}

export function approvalDuplicate(id: string, name: string): GwError {
  return approvalError(
    "approval_duplicate",
    `${name} has already decided approval request ${id}; one person counts once`,
  );
}
