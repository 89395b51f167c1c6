import { createHash } from "node:crypto";
import type { GwError } from "../errors.js";
import { principalsOf, type Identity } from "../identity/principal.js";
import type { ApprovalRequest } from "../store/types.js";
import { approvalDuplicate, approvalError, approvalExpired, approvalNotPending } from "./errors.js";

/**
 * Who may decide an approval request. Pure functions of the identity, the request and the
 * clock, shared by the service (which enforces them) and the API (which shows what a caller
 * may do):
 *
 * - The requester never approves their own statement (approval_self). The requester may deny
 *   it: that is a withdrawal, recorded as an ordinary deny by the requester (any deny denies),
 *   and it needs no approver rights since it can only stop their own statement.
 * - Anyone else must match one of the request's approver principals (principalsOf):
 *   approval_not_approver otherwise.
 * - An app identity (service principal) decides, approve or deny, only when the approvers name
 *   it explicitly as app:<oid>; matching through a group or role is not enough
 *   (approval_app_not_allowed). Automation holding a group membership must not be able to
 *   approve statements that the rule meant people to look at.
 * - Only pending requests, before expiresAt, are decided (approval_not_pending), and each
 *   person decides once (approval_duplicate): N of M counts distinct oids.
 */

/** sha256 of the statement text (UTF-8), lowercase hex. */
export function statementHash(sql: string): string {
  return createHash("sha256").update(sql, "utf8").digest("hex");
}

export function isRequester(identity: Identity, approval: ApprovalRequest): boolean {
  return identity.oid === approval.requester.oid;
}

/** The identity matches one of the approvers (apps only by an explicit app:<oid>). */
export function isEligibleApprover(identity: Identity, approval: ApprovalRequest): boolean {
  if (identity.type === "app") return approval.approvers.includes(`app:${identity.oid}`);
  const mine = principalsOf(identity);
  return approval.approvers.some((p) => mine.has(p));
}

/** Requesters, eligible approvers and auditors see a request; to anyone else it does not exist. */
export function canSee(identity: Identity, approval: ApprovalRequest, isAuditor: boolean): boolean {
  return isAuditor || isRequester(identity, approval) || isEligibleApprover(identity, approval);
}

/** Why this identity may not make this decision now, or null when it may. */
export function decisionRefusal(
  identity: Identity,
  approval: ApprovalRequest,
  decision: "approve" | "deny",
  now: number,
): GwError | null {
  const id = approval.id;
  if (isRequester(identity, approval)) {
    if (decision === "approve") {
      return approvalError(
        "approval_self",
        `you cannot approve your own statement (request ${id})`,
        {
          hint: `Ask one of its approvers: ${approval.approvers.join(", ")}. You may deny it to withdraw it.`,
        },
      );
    }
  } else {
    const mine = principalsOf(identity);
    if (!approval.approvers.some((p) => mine.has(p))) {
      return approvalError(
        "approval_not_approver",
        `${identity.name} is not one of the approvers of request ${id}`,
        { hint: `Its approvers are: ${approval.approvers.join(", ")}.` },
      );
    }
    if (identity.type === "app" && !approval.approvers.includes(`app:${identity.oid}`)) {
      return approvalError(
        "approval_app_not_allowed",
        `the app ${identity.name} may not decide request ${id}: apps decide only when the rule names them`,
        { hint: `Add app:${identity.oid} to the rule's approvers to let this app decide.` },
      );
    }
  }
  if (approval.status !== "pending") return approvalNotPending(id, approval.status);
  if (now >= approval.expiresAt) return approvalExpired(id);
  if (approval.decisions.some((d) => d.by.oid === identity.oid))
    return approvalDuplicate(id, identity.name);
  return null;
}

export interface ViewerRights {
  /** The caller asked for this statement to run. */
  requester: boolean;
  /** The caller may approve it now. */
  canApprove: boolean;
  /** The caller may deny it now (for the requester: withdraw it). */
  canDeny: boolean;
}

export function viewerRights(
  identity: Identity,
  approval: ApprovalRequest,
  now: number,
): ViewerRights {
  return {
    requester: isRequester(identity, approval),
    canApprove: decisionRefusal(identity, approval, "approve", now) === null,
    canDeny: decisionRefusal(identity, approval, "deny", now) === null,
  };
}
