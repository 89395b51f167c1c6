import type { Identity } from "../identity/principal.js";

export type SessionEndReason =
  | "client_closed"
  | "upstream_closed"
  | "upstream_error"
  | "protocol_error"
  | "auth_expired"
  | "broker_shutdown"
  | "recording_failed"
  /** Its broker replica stopped sending heartbeats; another replica sealed the session. */
  | "broker_lost";

export interface SessionRecord {
  id: string;
  identity: Pick<Identity, "oid" | "name" | "type"> & { upn?: string | undefined };
  connection: string;
  /** The connection's type. */
  protocol: SessionProtocol;
  applicationName: string | null;
  clientAddress: string | null;
  startedAt: number; // epoch ms
  endedAt: number | null;
  endReason: SessionEndReason | null;
  endDetail: string | null;
  bytesIn: number; // client → target
  bytesOut: number; // target → client
  statementCount: number;
  /** What the client says it is (`?agent=` on the tunnel URL); absent when it says nothing. */
  agentLabel?: string;
  /** Statements per policy decision; set when the session ends (with statementCount). */
  decisions?: DecisionCounts;
  /** The signed digest of the session's event chain; set when the session ends (audit). */
  seal?: SessionSeal;
  /** When retention removed the session's events and statements (epoch ms); the seal stays. */
  prunedAt?: number;
  /** The broker replica that serves the session (src/broker/replicas.ts); absent when unknown. */
  brokerId?: string;
}

export type SessionProtocol = "postgres" | "ssh" | "http" | "tcp";

export type DecisionCounts = Record<StatementDecision, number>;

/**
 * What `endSession` closes a session with: the chain's last hash and length and the end of the
 * session, digested and signed with the broker's Ed25519 key (src/audit/chain.ts says how).
 */
export interface SessionSeal {
  v: 1;
  algorithm: "ed25519";
  /** Which key signed: the first 16 hex digits of sha256 over the public key (SPKI DER). */
  keyId: string;
  /** Events in the chain when it was sealed. */
  eventCount: number;
  /** The hash of the last event (the session header's hash when there is none). */
  headHash: string;
  /** sha256, lowercase hex, over the canonical seal body. */
  digest: string;
  /** Ed25519 over the 32 digest bytes, base64. */
  signature: string;
  sealedAt: number; // epoch ms
  /** Sealed by a later broker start, for a session its broker left open (a crash). */
  recovered?: boolean;
}

/**
 * One link of a session's tamper-evident chain. `body` is the canonical JSON (RFC 8785) of the
 * event, and `hash` = sha256 over a fixed prefix, `prevHash` and `body` (src/audit/chain.ts).
 * The columns beside body (seq, kind, at) are copies for queries; verification trusts body.
 */
export interface AuditEvent {
  sessionId: string;
  /** 1-based position in the session's chain. */
  seq: number;
  kind: AuditEventKind;
  at: number; // epoch ms
  body: string;
  prevHash: string;
  hash: string;
}

/**
 * statement_start: a statement is about to be sent to the target (written before it runs);
 * statement: a statement completed, or policy refused it (it never reached the target);
 * ssh / http: something an ssh or http session did (terminal output, a command, a request).
 */
export type AuditEventKind = "statement_start" | "statement" | "ssh" | "http";

/** The first rows of a result as the client received them (masked), in text form. */
export interface ResultPreview {
  columns: string[];
  rows: (string | null)[][];
  /** More rows (or bytes) came than the preview keeps. */
  truncated: boolean;
}

/** A held statement's approval request, as it stood when the statement completed. */
export interface StatementApproval {
  id: string;
  status: ApprovalStatus | "unknown";
  decisions: ApprovalDecision[];
}

export interface StatementEvent {
  sessionId: string;
  seq: number; // 1-based, in order of completion within the session
  at: number; // epoch ms when the statement was sent upstream
  durationMs: number;
  sql: string;
  /**
   * "simple" for a Query message, "extended" for Parse/Bind/Execute; "exec" for an ssh
   * command (sql is the command line), "http" for a request (sql is "METHOD /path?query").
   */
  protocol: StatementProtocol;
  commandTag: string | null;
  rows: number | null;
  /** SQLSTATE when the statement failed. */
  errorCode: string | null;
  errorMessage: string | null;
  /** What policy decided; "allowed" when no policy applies. */
  decision?: StatementDecision;
  /** The chain event (AuditEvent.seq) that records this statement; absent before audit. */
  eventSeq?: number;
  /** For a held statement: its approval request and who decided. */
  approval?: StatementApproval;
  /** The first rows of the result, when previews are recorded. */
  preview?: ResultPreview;
}

export type StatementProtocol = "simple" | "extended" | "exec" | "http";

export type StatementDecision = "allowed" | "blocked" | "approved" | "denied";

export interface SessionQuery {
  /** Only sessions of this identity oid; omitted for auditors. */
  oid?: string;
  connection?: string;
  /** An identity: its oid, or its upn or name (case-insensitive), or the upn's part before @. */
  user?: string;
  /** Exactly this agent label. */
  agent?: string;
  /** Exactly this application_name. */
  application?: string;
  /** Started at or after this (epoch ms). */
  since?: number;
  /** Started before this (epoch ms). */
  until?: number;
  /** Some statement's SQL contains this text (case-insensitive for ASCII). */
  grep?: string;
  /** Only sessions that have not ended (true) or that have (false). */
  open?: boolean;
  /** Session ids that start with this (at least 4 characters). */
  idPrefix?: string;
  /** Only sessions served by this broker replica. */
  brokerId?: string;
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
  endSession(id: string, end: SessionEnd): Promise<void>;
  addStatement(ev: StatementEvent): Promise<void>;
  listSessions(q: SessionQuery): Promise<SessionRecord[]>;
  getSession(id: string): Promise<SessionRecord | null>;
  listStatements(sessionId: string, q?: StatementQuery): Promise<StatementEvent[]>;
  /**
   * Appends one event to its session's chain, with the statement row it records (both or
   * neither). Refused (store_write_failed) when the session does not exist, has been pruned,
   * or already has an event with this seq, or the statement's (sessionId, seq) is recorded.
   * `durable`: commit promptly and synced to disk (SQLite: synchronous=FULL for its batch);
   * the caller waits for it before a statement may run.
   */
  appendEvent(ev: AuditEvent, opts?: AppendOptions): Promise<void>;
  /** A session's events in seq order ([] for an unknown or pruned session). */
  listEvents(sessionId: string): Promise<AuditEvent[]>;
  /**
   * Retention: removes the events and statements of up to `limit` sessions that ended before
   * `endedBefore` and are not pruned yet, and sets their prunedAt; the session rows (and seals)
   * stay. Resolves to how many sessions it pruned (0: nothing left to prune).
   */
  pruneSessions(endedBefore: number, opts: { now: number; limit: number }): Promise<number>;
  close(): Promise<void>;
}

export type SessionEnd = Pick<
  SessionRecord,
  "endedAt" | "endReason" | "endDetail" | "bytesIn" | "bytesOut" | "statementCount"
> & { decisions?: DecisionCounts; seal?: SessionSeal };

export interface AppendOptions {
  statement?: StatementEvent;
  durable?: boolean;
}

export interface StatementQuery {
  /** Only statements whose SQL contains this (case-insensitive for ASCII). */
  grep?: string;
  /** At most this many, in seq order. */
  limit?: number;
}

export const STATEMENT_DECISIONS: readonly StatementDecision[] = [
  "allowed",
  "blocked",
  "approved",
  "denied",
];

export function zeroCounts(): DecisionCounts {
  return { allowed: 0, blocked: 0, approved: 0, denied: 0 };
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
  /** The broker replica whose session holds the statement; absent when unknown. */
  brokerId?: string;
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
  /**
   * Optional, for a store several broker processes share: calls `listener` with a request's id
   * after any process commits a write to it (created, decided, expired, cancelled), this one
   * included. Notifications may come late, twice, or (while the store's connection is being
   * re-established) not at all for a write: listeners re-read the request, and treat a call
   * with id null as "anything may have changed". Returns the unsubscribe function.
   */
  watchApprovals?(listener: (id: string | null) => void): () => void;
}
