import type { Identity } from "../identity/principal.js";

export type SessionEndReason =
  | "client_closed"
  | "upstream_closed"
  | "upstream_error"
  | "protocol_error"
  | "auth_expired"
  | "broker_shutdown"
  | "recording_failed";

export interface SessionRecord {
  id: string;
  identity: Pick<Identity, "oid" | "name" | "type"> & { upn?: string | undefined };
  connection: string;
  protocol: "postgres";
  applicationName: string | null;
  clientAddress: string | null;
  startedAt: number; // epoch ms
  endedAt: number | null;
  endReason: SessionEndReason | null;
  endDetail: string | null;
  bytesIn: number; // client → target
  bytesOut: number; // target → client
  statementCount: number;
}

export interface StatementEvent {
  sessionId: string;
  seq: number; // 1-based, in order of completion within the session
  at: number; // epoch ms when the statement was sent upstream
  durationMs: number;
  sql: string;
  /** "simple" for a Query message, "extended" for Parse/Bind/Execute. */
  protocol: "simple" | "extended";
  commandTag: string | null;
  rows: number | null;
  /** SQLSTATE when the statement failed. */
  errorCode: string | null;
  errorMessage: string | null;
  /** What policy decided; "allowed" when no policy applies. */
  decision?: StatementDecision;
}

export type StatementDecision = "allowed" | "blocked" | "approved" | "denied";

export interface SessionQuery {
  /** Only sessions of this identity oid; omitted for auditors. */
  oid?: string;
  connection?: string;
  /** At most this many, newest first: default DEFAULT_SESSION_LIMIT, capped at MAX_SESSION_LIMIT. */
  limit?: number;
}

export const DEFAULT_SESSION_LIMIT = 100;
export const MAX_SESSION_LIMIT = 1000;

/** The limit a store applies for a query: a whole number in 1..MAX_SESSION_LIMIT. */
export function effectiveLimit(limit: number | undefined): number {
  if (limit === undefined || !Number.isFinite(limit)) return DEFAULT_SESSION_LIMIT;
  return Math.min(MAX_SESSION_LIMIT, Math.max(1, Math.floor(limit)));
}

/**
 * Where sessions and statements are kept. SQLite is the embedded default; a PostgreSQL
 * implementation for several broker replicas implements the same interface.
 *
 * Writes are asynchronous so implementations can batch them (one transaction per tick);
 * a rejected write means the recording is not durable and the session must fail closed.
 * Every write rejection is a GwError with code `store_write_failed` (`store_closed` after
 * close()). A write is rejected, without affecting other writes, when it:
 *   - creates a session whose id already exists;
 *   - ends a session that does not exist or has already ended;
 *   - adds a statement to a session that does not exist, or a (sessionId, seq) already recorded.
 * When the batch's transaction fails (disk full, database locked, I/O error), every write in
 * it is rejected and none of them is kept.
 *
 * Reads see every write made before them (including writes still waiting for their batch).
 * listSessions returns newest first (startedAt descending, then most recently created);
 * listStatements returns a session's statements in seq order ([] for an unknown session).
 * close() commits pending writes, then releases the store; it is safe to call twice.
 *
 * The same object keeps approval requests (ApprovalStore, below).
 */
export interface SessionStore extends ApprovalStore {
  createSession(rec: SessionRecord): Promise<void>;
  endSession(
    id: string,
    end: Pick<
      SessionRecord,
      "endedAt" | "endReason" | "endDetail" | "bytesIn" | "bytesOut" | "statementCount"
    >,
  ): Promise<void>;
  addStatement(ev: StatementEvent): Promise<void>;
  listSessions(q: SessionQuery): Promise<SessionRecord[]>;
  getSession(id: string): Promise<SessionRecord | null>;
  listStatements(sessionId: string): Promise<StatementEvent[]>;
  close(): Promise<void>;
}

// --- approvals ------------------------------------------------------------------------------

/**
 * pending until decided; approved / denied by decisions; expired when nobody decided in time;
 * cancelled when the statement stopped waiting (client gone, broker shutting down, restart).
 */
export type ApprovalStatus = "pending" | "approved" | "denied" | "expired" | "cancelled";

export const APPROVAL_STATUSES: readonly ApprovalStatus[] = [
  "pending",
  "approved",
  "denied",
  "expired",
  "cancelled",
];

export interface ApprovalDecision {
  by: { oid: string; name: string };
  decision: "approve" | "deny";
  reason: string | null;
  at: number; // epoch ms
}

/** A held statement waiting for (or past) a human decision. */
export interface ApprovalRequest {
  /** Short and human-friendly (8 lowercase hex characters), unique in the store. */
  id: string;
  sessionId: string;
  connection: string;
  requester: { oid: string; name: string; type: "user" | "app" };
  applicationName: string | null;
  /** What the client says it is (an AI agent's label, say); null when it says nothing. */
  agentLabel: string | null;
  /** The exact statement text that is held. */
  sql: string;
  /** sha256 of sql (UTF-8), lowercase hex: a decision is bound to exactly this statement. */
  statementHash: string;
  matchedRule: { index: number; description: string };
  /** Why the rule holds it, for the approver. */
  reason: string;
  /** Principal strings that may decide: user:<oid>, group:<id>, role:<name>, app:<oid>. */
  approvers: string[];
  /** Distinct approvers needed (N of M). */
  minApprovals: number;
  createdAt: number; // epoch ms
  expiresAt: number; // epoch ms; no decision is accepted at or after it
  status: ApprovalStatus;
  /** Every decision, in the order it was recorded. */
  decisions: ApprovalDecision[];
  /** When the status left pending (for any reason); null while pending. */
  decidedAt: number | null;
  /** Why it expired or was cancelled ("client disconnected"); null otherwise. */
  statusDetail: string | null;
  /** The session's previous few statements, oldest first, for the approver's detail pane. */
  contextStatements?: string[];
}

export interface ApprovalQuery {
  /** Only requests in this status; omitted for every status. */
  status?: ApprovalStatus;
  /** At most this many, newest first (createdAt descending): as effectiveLimit(). */
  limit?: number;
}

/**
 * The status decisions lead to: any deny denies; minApprovals distinct approving oids approve;
 * otherwise still pending. Every store applies this inside the write that records a decision.
 */
export function statusAfterDecisions(
  decisions: readonly ApprovalDecision[],
  minApprovals: number,
): "pending" | "approved" | "denied" {
  if (decisions.some((d) => d.decision === "deny")) return "denied";
  const approvers = new Set(decisions.filter((d) => d.decision === "approve").map((d) => d.by.oid));
  return approvers.size >= Math.max(1, minApprovals) ? "approved" : "pending";
}

/**
 * Where approval requests are kept; the same object as the SessionStore (one store per broker).
 * Writes follow the SessionStore rules (asynchronous, batched, store_write_failed /
 * store_closed), and the state rules are checked inside the write, so two brokers or two
 * approvers racing cannot both win:
 *   - createApproval refuses (store_write_failed) an id that exists, and a request that is not
 *     pending with no decisions and decidedAt null.
 *   - recordDecision appends one decision and sets status (statusAfterDecisions) and, when the
 *     status leaves pending, decidedAt = decision.at. It rejects with a GwError:
 *       approval_not_found   no such id;
 *       approval_not_pending the request is not pending, or decision.at >= expiresAt;
 *       approval_duplicate   this oid has already decided this request.
 *     It resolves to the request as it is after the write.
 *   - setStatus moves a pending request to expired or cancelled (decidedAt = at), rejecting
 *     with approval_not_found / approval_not_pending otherwise, and resolves to the result.
 * A refused write changes nothing and does not affect other writes of its batch.
 * listApprovals returns newest first (createdAt descending, then most recently created).
 */
export interface ApprovalStore {
  createApproval(req: ApprovalRequest): Promise<void>;
  getApproval(id: string): Promise<ApprovalRequest | null>;
  listApprovals(q: ApprovalQuery): Promise<ApprovalRequest[]>;
  recordDecision(id: string, decision: ApprovalDecision): Promise<ApprovalRequest>;
  setStatus(
    id: string,
    status: "expired" | "cancelled",
    change: { at: number; detail: string | null },
  ): Promise<ApprovalRequest>;
}
