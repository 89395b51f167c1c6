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
}

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
 */
export interface SessionStore {
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
