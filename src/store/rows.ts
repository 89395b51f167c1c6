import type {
  ApprovalDecision,
  ApprovalRequest,
  ApprovalStatus,
  AuditEvent,
  AuditEventKind,
  DecisionCounts,
  SessionEndReason,
  SessionRecord,
  SessionSeal,
  StatementDecision,
  StatementEvent,
} from "./types.js";

/*
 * The tables both SQL stores have (SQLite and PostgreSQL): their columns, their rows, and the
 * records they read back as (optional fields absent, not null), so both stores return exactly
 * what was written.
 */

export const SESSION_COLUMNS =
  "id, oid, name, upn, type, connection, protocol, application_name, client_address, " +
  "started_at, ended_at, end_reason, end_detail, bytes_in, bytes_out, statement_count, " +
  "agent_label, decisions, seal, pruned_at, broker_id";

export const STATEMENT_COLUMNS =
  "session_id, seq, at, duration_ms, sql, protocol, command_tag, row_count, error_code, " +
  "error_message, decision, event_seq, approval, preview";

export const EVENT_COLUMNS = "session_id, seq, kind, at, body, prev_hash, hash";

export const APPROVAL_COLUMNS =
  "id, session_id, connection, requester_oid, requester_name, requester_type, " +
  "application_name, agent_label, sql, statement_hash, rule_index, rule_description, reason, " +
  "approvers, min_approvals, created_at, expires_at, status, decided_at, status_detail, " +
  "context_statements, broker_id";

export interface SessionRow {
  id: string;
  oid: string;
  name: string;
  upn: string | null;
  type: string;
  connection: string;
  protocol: string;
  application_name: string | null;
  client_address: string | null;
  started_at: number;
  ended_at: number | null;
  end_reason: string | null;
  end_detail: string | null;
  bytes_in: number;
  bytes_out: number;
  statement_count: number;
  agent_label: string | null;
  decisions: string | null;
  seal: string | null;
  pruned_at: number | null;
  broker_id: string | null;
}

export interface StatementRow {
  session_id: string;
  seq: number;
  at: number;
  duration_ms: number;
  sql: string;
  protocol: string;
  command_tag: string | null;
  row_count: number | null;
  error_code: string | null;
  error_message: string | null;
  decision: string;
  event_seq: number | null;
  approval: string | null;
  preview: string | null;
}

export interface EventRow {
  session_id: string;
  seq: number;
  kind: string;
  at: number;
  body: string;
  prev_hash: string;
  hash: string;
}

export interface ApprovalRow {
  id: string;
  session_id: string;
  connection: string;
  requester_oid: string;
  requester_name: string;
  requester_type: string;
  application_name: string | null;
  agent_label: string | null;
  sql: string;
  statement_hash: string;
  rule_index: number;
  rule_description: string;
  reason: string;
  approvers: string;
  min_approvals: number;
  created_at: number;
  expires_at: number;
  status: string;
  decided_at: number | null;
  status_detail: string | null;
  context_statements: string | null;
  broker_id: string | null;
}

/** One decision on an approval request, as both stores read it back (in order). */
export interface DecisionFields {
  oid: string;
  name: string;
  decision: string;
  reason: string | null;
  at: number;
}

export function toSession(r: SessionRow): SessionRecord {
  const identity: SessionRecord["identity"] = {
    oid: r.oid,
    name: r.name,
    type: r.type as SessionRecord["identity"]["type"],
  };
  if (r.upn !== null) identity.upn = r.upn;
  const rec: SessionRecord = {
    id: r.id,
    identity,
    connection: r.connection,
    protocol: r.protocol as SessionRecord["protocol"],
    applicationName: r.application_name,
    clientAddress: r.client_address,
    startedAt: r.started_at,
    endedAt: r.ended_at,
    endReason: r.end_reason as SessionEndReason | null,
    endDetail: r.end_detail,
    bytesIn: r.bytes_in,
    bytesOut: r.bytes_out,
    statementCount: r.statement_count,
  };
  if (r.agent_label !== null) rec.agentLabel = r.agent_label;
  if (r.decisions !== null) rec.decisions = JSON.parse(r.decisions) as DecisionCounts;
  if (r.seal !== null) rec.seal = JSON.parse(r.seal) as SessionSeal;
  if (r.pruned_at !== null) rec.prunedAt = r.pruned_at;
  if (r.broker_id !== null) rec.brokerId = r.broker_id;
  return rec;
}

export function toStatement(r: StatementRow): StatementEvent {
  const ev: StatementEvent = {
    sessionId: r.session_id,
    seq: r.seq,
    at: r.at,
    durationMs: r.duration_ms,
    sql: r.sql,
    protocol: r.protocol as StatementEvent["protocol"],
    commandTag: r.command_tag,
    rows: r.row_count,
    errorCode: r.error_code,
    errorMessage: r.error_message,
    // Rows from before policy decisions were recorded have none: they were allowed.
    decision: (r.decision ?? "allowed") as StatementDecision,
  };
  if (r.event_seq !== null) ev.eventSeq = r.event_seq;
  if (r.approval !== null) ev.approval = JSON.parse(r.approval) as StatementEvent["approval"];
  if (r.preview !== null) ev.preview = JSON.parse(r.preview) as StatementEvent["preview"];
  return ev;
}

export function toEvent(r: EventRow): AuditEvent {
  return {
    sessionId: r.session_id,
    seq: r.seq,
    kind: r.kind as AuditEventKind,
    at: r.at,
    body: r.body,
    prevHash: r.prev_hash,
    hash: r.hash,
  };
}

export function toApproval(r: ApprovalRow, decisions: DecisionFields[]): ApprovalRequest {
  const a: ApprovalRequest = {
    id: r.id,
    sessionId: r.session_id,
    connection: r.connection,
    requester: {
      oid: r.requester_oid,
      name: r.requester_name,
      type: r.requester_type as ApprovalRequest["requester"]["type"],
    },
    applicationName: r.application_name,
    agentLabel: r.agent_label,
    sql: r.sql,
    statementHash: r.statement_hash,
    matchedRule: { index: r.rule_index, description: r.rule_description },
    reason: r.reason,
    approvers: JSON.parse(r.approvers) as string[],
    minApprovals: r.min_approvals,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    status: r.status as ApprovalStatus,
    decisions: decisions.map((d): ApprovalDecision => ({
      by: { oid: d.oid, name: d.name },
      decision: d.decision as ApprovalDecision["decision"],
      reason: d.reason,
      at: d.at,
    })),
    decidedAt: r.decided_at,
    statusDetail: r.status_detail,
  };
  if (r.context_statements !== null)
    a.contextStatements = JSON.parse(r.context_statements) as string[];
  if (r.broker_id !== null) a.brokerId = r.broker_id;
  return a;
}

export function escapeLike(s: string): string {
  return s.replace(/[\\%_]/g, (c) => "\\" + c);
}
