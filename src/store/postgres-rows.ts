import type { ApprovalRequest, SessionRecord, StatementEvent } from "./types.js";
import { APPROVAL_COLUMNS, type ApprovalRow, type DecisionFields } from "./rows.js";

/**
 * What the PostgreSQL store writes and reads beyond the columns both SQL stores share
 * (src/store/rows.ts): values in column order for $n parameters, and approvals with their
 * decisions in one query.
 */

/** An approvals query's select list: the columns and the decisions, in order, as JSON. */
export const APPROVAL_SELECT =
  APPROVAL_COLUMNS.split(", ")
    .map((c) => `a.${c}`)
    .join(", ") +
  ", (SELECT coalesce(json_agg(json_build_object('oid', d.oid, 'name', d.name, " +
  "'decision', d.decision, 'reason', d.reason, 'at', d.at) ORDER BY d.seq), '[]'::json) " +
  "FROM approval_decisions d WHERE d.approval_id = a.id) AS decisions";

/** An approval row with its decisions, as APPROVAL_SELECT reads it. */
export type PgApprovalRow = ApprovalRow & { decisions: DecisionFields[] };

/** The values of SESSION_COLUMNS, in order. */
export function sessionValues(rec: SessionRecord): unknown[] {
  return [
    rec.id,
    rec.identity.oid,
    rec.identity.name,
    rec.identity.upn ?? null,
    rec.identity.type,
    rec.connection,
    rec.protocol,
    rec.applicationName,
    rec.clientAddress,
    rec.startedAt,
    rec.endedAt,
    rec.endReason,
    rec.endDetail,
    rec.bytesIn,
    rec.bytesOut,
    rec.statementCount,
    rec.agentLabel ?? null,
    rec.decisions === undefined ? null : JSON.stringify(rec.decisions),
    rec.seal === undefined ? null : JSON.stringify(rec.seal),
    rec.prunedAt ?? null,
    rec.brokerId ?? null,
  ];
}

/** The values of STATEMENT_COLUMNS, in order. */
export function statementValues(ev: StatementEvent): unknown[] {
  return [
    ev.sessionId,
    ev.seq,
    ev.at,
    ev.durationMs,
    ev.sql,
    ev.protocol,
    ev.commandTag,
    ev.rows,
    ev.errorCode,
    ev.errorMessage,
    ev.decision ?? "allowed",
    ev.eventSeq ?? null,
    ev.approval === undefined ? null : JSON.stringify(ev.approval),
    ev.preview === undefined ? null : JSON.stringify(ev.preview),
  ];
}

/** The values of APPROVAL_COLUMNS, in order. */
export function approvalValues(req: ApprovalRequest): unknown[] {
  return [
    req.id,
    req.sessionId,
    req.connection,
    req.requester.oid,
    req.requester.name,
    req.requester.type,
    req.applicationName,
    req.agentLabel,
    req.sql,
    req.statementHash,
    req.matchedRule.index,
    req.matchedRule.description,
    req.reason,
    JSON.stringify(req.approvers),
    req.minApprovals,
    req.createdAt,
    req.expiresAt,
    req.status,
    req.decidedAt,
    req.statusDetail,
    req.contextStatements === undefined ? null : JSON.stringify(req.contextStatements),
    req.brokerId ?? null,
  ];
}

/** "$1, $2, ... $n" from `from`. */
export function placeholders(n: number, from = 1): string {
  return Array.from({ length: n }, (_, i) => `$${i + from}`).join(", ");
}
