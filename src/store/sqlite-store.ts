import {
  chmodSync,
  closeSync,
  constants as fsc,
  existsSync,
  mkdirSync,
  openSync,
  statSync,
} from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import {
  APPROVAL_COLUMNS,
  SESSION_COLUMNS,
  STATEMENT_COLUMNS,
  escapeLike,
  toApproval,
  toEvent,
  toSession,
  toStatement,
  type ApprovalRow,
  type DecisionFields,
  type EventRow,
  type SessionRow,
  type StatementRow,
} from "./rows.js";
import { SqliteCheckpointer } from "./sqlite-checkpointer.js";
import {
  approvalDuplicate,
  approvalExpired,
  approvalNotFound,
  approvalNotPending,
} from "../approvals/errors.js";
import { GwError, isGwError } from "../errors.js";
import { storeClosed, storeUnavailable, storeWriteFailed } from "./errors.js";
import { GW_APPLICATION_ID, SCHEMA_VERSION, migrate } from "./sqlite-migrations.js";
import {
  effectiveLimit,
  statusAfterDecisions,
  type ApprovalDecision,
  type ApprovalQuery,
  type ApprovalRequest,
  type ApprovalStatus,
  type AppendOptions,
  type AuditEvent,
  type SessionEnd,
  type SessionQuery,
  type SessionRecord,
  type SessionStore,
  type StatementEvent,
  type StatementQuery,
} from "./types.js";

export interface SqliteStoreOptions {
  /**
   * How long a write (or the open) waits for another process's lock before failing, in ms.
   * better-sqlite3 is synchronous, so this blocks the event loop while it waits. Default 5000.
   */
  busyTimeoutMs?: number;
  /**
   * Group commit: statement events wait up to this long for company before their transaction
   * commits (or until 512 are queued). Session starts commit on the next tick regardless,
   * since a client waits for them. Default 10 ms.
   */
  commitWindowMs?: number;
}

const GROUP_COMMIT_MAX = 512;

export interface SqliteStoreStats {
  /** Writes accepted (enqueued). */
  writes: number;
  /** Transactions attempted: one per tick with writes, plus one per read that found writes pending. */
  batches: number;
  /** Transactions that failed as a whole (every write in them rejected). */
  failedBatches: number;
  /** Transactions committed with synchronous=FULL because a durable write was in them. */
  durableBatches: number;
}

interface PendingWrite {
  apply(): unknown;
  resolve(value: unknown): void;
  reject(err: unknown): void;
  /** What apply() returned, handed to resolve() once the batch has committed. */
  result?: unknown;
  /** Set when this write alone was refused (a constraint); the rest of the batch goes on. */
  refused?: GwError;
  /** Its batch commits with synchronous=FULL. */
  durable?: boolean;
}

interface DecisionRow extends DecisionFields {
  approval_id: string;
  seq: number;
}

const OPEN_HINT =
  "Check that the directory exists and is writable by the user running gw, or set store.sqlite " +
  "in the broker config to another path (store: { memory: true } keeps nothing on disk).";

/**
 * The embedded session store: one SQLite file in WAL mode.
 *
 * Writes are queued and committed together in one transaction on the next setImmediate, so a
 * busy broker does one commit per tick rather than one per statement; each write's promise
 * settles when that transaction has committed (or failed). Reads first commit pending writes,
 * so a caller always reads what it wrote.
 */
export class SqliteStore implements SessionStore {
  readonly path: string;
  private readonly db: Database.Database;
  private queue: PendingWrite[] = [];
  private timer: NodeJS.Immediate | undefined;
  private windowTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private checkpointer: SqliteCheckpointer | null = null;
  private readonly counters: SqliteStoreStats = {
    writes: 0,
    batches: 0,
    failedBatches: 0,
    durableBatches: 0,
  };
  private readonly stmt: {
    begin: Database.Statement;
    commit: Database.Statement;
    rollback: Database.Statement;
    insertSession: Database.Statement;
    endSession: Database.Statement;
    sessionEnded: Database.Statement;
    sessionState: Database.Statement;
    insertStatement: Database.Statement;
    insertEvent: Database.Statement;
    listEvents: Database.Statement;
    prunable: Database.Statement;
    pruneEvents: Database.Statement;
    pruneStatements: Database.Statement;
    markPruned: Database.Statement;
    syncFull: Database.Statement;
    syncNormal: Database.Statement;
    getSession: Database.Statement;
    listStatements: Database.Statement;
    insertApproval: Database.Statement;
    getApproval: Database.Statement;
    listDecisions: Database.Statement;
    insertDecision: Database.Statement;
    updateApprovalStatus: Database.Statement;
    listApprovals: Database.Statement;
    listApprovalsByStatus: Database.Statement;
  };
  /** Multi-statement writes run in a savepoint, so a refused one leaves nothing behind. */
  private readonly tx: {
    recordDecision: Database.Transaction<(id: string, d: ApprovalDecision) => ApprovalRequest>;
    setStatus: Database.Transaction<
      (id: string, status: ApprovalStatus, at: number, detail: string | null) => ApprovalRequest
    >;
    appendEvent: Database.Transaction<(ev: EventRow, st: StatementRow | null) => void>;
    prune: Database.Transaction<(endedBefore: number, now: number, limit: number) => number>;
  };
  /** Whether the statements_fts index exists (SQLite built with FTS5). */
  private readonly fts: boolean;
  private readonly listQueries = new Map<string, Database.Statement>();

  /** Opens (creating if needed) and migrates the database; throws GwError store_unavailable. */
  static open(path: string, opts: SqliteStoreOptions = {}): SqliteStore {
    const onDisk = path !== ":memory:" && path !== "";
    if (onDisk) prepareFile(path);
    let db: Database.Database | undefined;
    try {
      db = new Database(path);
      db.pragma(`busy_timeout = ${Math.max(0, Math.floor(opts.busyTimeoutMs ?? 5000))}`);
      // Not every file system supports WAL (some network mounts); SQLite then keeps its
      // rollback journal, which is slower but still correct, so the result is not enforced.
      db.pragma("journal_mode = WAL");
      db.pragma("synchronous = NORMAL");
      db.pragma("foreign_keys = ON");
      migrate(db, path);
      const store = new SqliteStore(db, path, opts.commitWindowMs ?? 10);
      if (onDisk) store.checkpointElsewhere();
      return store;
    } catch (err) {
      try {
        db?.close();
      } catch {
        // already failing; the original error is the one to report
      }
      if (isGwError(err)) throw err;
      throw openFailed(path, err);
    }
  }

  /**
   * Opens an existing gw database for reading only (an auditor's copy): no migration, no
   * change to the file; every write is refused. Throws GwError store_unavailable.
   */
  static openReadOnly(path: string): SqliteStore {
    if (!existsSync(path)) {
      throw storeUnavailable(`${path} does not exist`, {
        hint: "Give the broker's SQLite file (store.sqlite in its config), or a copy of it.",
      });
    }
    let db: Database.Database | undefined;
    try {
      db = new Database(path, { readonly: true, fileMustExist: true });
      const appId = db.pragma("application_id", { simple: true }) as number;
      if (appId !== GW_APPLICATION_ID) {
        throw storeUnavailable(`${path} is not a gw session store`, {
          hint: "Give the SQLite file the broker's store.sqlite points at (or a copy of it).",
        });
      }
      const version = db.pragma("user_version", { simple: true }) as number;
      if (version !== SCHEMA_VERSION) {
        throw storeUnavailable(
          `${path} has session store schema version ${version}; this gw reads version ${SCHEMA_VERSION}`,
          {
            hint:
              version < SCHEMA_VERSION
                ? "Start the broker (of this gw version) on it once to migrate it, or use the gw that wrote it."
                : "Use the gw version that wrote this database.",
          },
        );
      }
      return new SqliteStore(db, path, 0);
    } catch (err) {
      try {
        db?.close();
      } catch {
        // already failing
      }
      if (isGwError(err)) throw err;
      throw openFailed(path, err);
    }
  }

  private constructor(
    db: Database.Database,
    path: string,
    private readonly commitWindowMs: number,
  ) {
    this.db = db;
    this.path = path;
    this.stmt = {
      begin: db.prepare("BEGIN IMMEDIATE"),
      commit: db.prepare("COMMIT"),
      rollback: db.prepare("ROLLBACK"),
      insertSession: db.prepare(
        `INSERT INTO sessions (${SESSION_COLUMNS}) VALUES (@id, @oid, @name, @upn, @type, @connection, ` +
          "@protocol, @application_name, @client_address, @started_at, @ended_at, @end_reason, " +
          "@end_detail, @bytes_in, @bytes_out, @statement_count, @agent_label, @decisions, @seal, " +
          "@pruned_at, @broker_id)",
      ),
      endSession: db.prepare(
        "UPDATE sessions SET ended_at = @ended_at, end_reason = @end_reason, end_detail = @end_detail, " +
          "bytes_in = @bytes_in, bytes_out = @bytes_out, statement_count = @statement_count, " +
          "decisions = coalesce(@decisions, decisions), seal = coalesce(@seal, seal) " +
          "WHERE id = @id AND ended_at IS NULL",
      ),
      sessionEnded: db.prepare("SELECT ended_at FROM sessions WHERE id = ?"),
      sessionState: db.prepare("SELECT ended_at, pruned_at FROM sessions WHERE id = ?"),
      insertStatement: db.prepare(
        `INSERT INTO statements (${STATEMENT_COLUMNS}) VALUES (@session_id, @seq, @at, @duration_ms, ` +
          "@sql, @protocol, @command_tag, @row_count, @error_code, @error_message, @decision, " +
          "@event_seq, @approval, @preview)",
      ),
      insertEvent: db.prepare(
        "INSERT INTO events (session_id, seq, kind, at, body, prev_hash, hash) VALUES " +
          "(@session_id, @seq, @kind, @at, @body, @prev_hash, @hash)",
      ),
      listEvents: db.prepare(
        "SELECT session_id, seq, kind, at, body, prev_hash, hash FROM events WHERE session_id = ? " +
          "ORDER BY seq",
      ),
      prunable: db.prepare(
        "SELECT id FROM sessions WHERE ended_at IS NOT NULL AND ended_at < ? AND pruned_at IS NULL " +
          "ORDER BY ended_at LIMIT ?",
      ),
      pruneEvents: db.prepare("DELETE FROM events WHERE session_id = ?"),
      pruneStatements: db.prepare("DELETE FROM statements WHERE session_id = ?"),
      markPruned: db.prepare("UPDATE sessions SET pruned_at = ? WHERE id = ?"),
      syncFull: db.prepare("PRAGMA synchronous = FULL"),
      syncNormal: db.prepare("PRAGMA synchronous = NORMAL"),
      getSession: db.prepare(`SELECT ${SESSION_COLUMNS} FROM sessions WHERE id = ?`),
      listStatements: db.prepare(
        `SELECT ${STATEMENT_COLUMNS} FROM statements WHERE session_id = ? ORDER BY seq`,
      ),
      insertApproval: db.prepare(
        `INSERT INTO approvals (${APPROVAL_COLUMNS}) VALUES (@id, @session_id, @connection, ` +
          "@requester_oid, @requester_name, @requester_type, @application_name, @agent_label, @sql, " +
          "@statement_hash, @rule_index, @rule_description, @reason, @approvers, @min_approvals, " +
          "@created_at, @expires_at, @status, @decided_at, @status_detail, @context_statements, " +
          "@broker_id)",
      ),
      getApproval: db.prepare(`SELECT ${APPROVAL_COLUMNS} FROM approvals WHERE id = ?`),
      listDecisions: db.prepare(
        "SELECT approval_id, seq, oid, name, decision, reason, at FROM approval_decisions " +
          "WHERE approval_id = ? ORDER BY seq",
      ),
      insertDecision: db.prepare(
        "INSERT INTO approval_decisions (approval_id, seq, oid, name, decision, reason, at) " +
          "VALUES (@approval_id, @seq, @oid, @name, @decision, @reason, @at)",
      ),
      updateApprovalStatus: db.prepare(
        "UPDATE approvals SET status = @status, decided_at = @decided_at, " +
          "status_detail = @status_detail WHERE id = @id AND status = 'pending'",
      ),
      listApprovals: db.prepare(
        `SELECT ${APPROVAL_COLUMNS} FROM approvals ORDER BY created_at DESC, rowid DESC LIMIT ?`,
      ),
      listApprovalsByStatus: db.prepare(
        `SELECT ${APPROVAL_COLUMNS} FROM approvals WHERE status = ? ` +
          "ORDER BY created_at DESC, rowid DESC LIMIT ?",
      ),
    };
    this.tx = {
      recordDecision: db.transaction((id: string, d: ApprovalDecision): ApprovalRequest => {
        const a = this.pendingApproval(id, d.at);
        if (a.decisions.some((x) => x.by.oid === d.by.oid)) throw approvalDuplicate(id, d.by.name);
        this.stmt.insertDecision.run({
          approval_id: id,
          seq: a.decisions.length + 1,
          oid: d.by.oid,
          name: d.by.name,
          decision: d.decision,
          reason: d.reason,
          at: d.at,
        });
        a.decisions.push({ by: { ...d.by }, decision: d.decision, reason: d.reason, at: d.at });
        a.status = statusAfterDecisions(a.decisions, a.minApprovals);
        if (a.status !== "pending") {
          a.decidedAt = d.at;
          this.stmt.updateApprovalStatus.run({
            id,
            status: a.status,
            decided_at: d.at,
            status_detail: null,
          });
        }
        return a;
      }),
      setStatus: db.transaction(
        (id: string, status: ApprovalStatus, at: number, detail: string | null) => {
          const a = this.pendingApproval(id);
          this.stmt.updateApprovalStatus.run({
            id,
            status,
            decided_at: at,
            status_detail: detail,
          });
          return { ...a, status, decidedAt: at, statusDetail: detail };
        },
      ),
      appendEvent: db.transaction((ev: EventRow, st: StatementRow | null) => {
        const state = this.stmt.sessionState.get(ev.session_id) as
          { ended_at: number | null; pruned_at: number | null } | undefined;
        if (state === undefined) {
          throw storeWriteFailed(
            `cannot record an event for session ${ev.session_id}: it does not exist`,
          );
        }
        if (state.ended_at !== null || state.pruned_at !== null) {
          throw storeWriteFailed(
            `cannot record an event for session ${ev.session_id}: it has ended`,
          );
        }
        try {
          this.stmt.insertEvent.run(ev);
        } catch (err) {
          if (sqliteCode(err) === "SQLITE_CONSTRAINT_PRIMARYKEY") {
            throw storeWriteFailed(
              `event ${ev.seq} of session ${ev.session_id} is already recorded`,
              { cause: err },
            );
          }
          throw err;
        }
        if (st !== null) this.insertStatementRow(st);
      }),
      prune: db.transaction((endedBefore: number, now: number, limit: number) => {
        const ids = (this.stmt.prunable.all(endedBefore, limit) as { id: string }[]).map(
          (r) => r.id,
        );
        for (const id of ids) {
          this.stmt.pruneEvents.run(id);
          this.stmt.pruneStatements.run(id);
          this.stmt.markPruned.run(now, id);
        }
        return ids.length;
      }),
    };
    this.fts =
      db
        .prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'statements_fts'")
        .get() !== undefined;
  }

  get stats(): SqliteStoreStats {
    return { ...this.counters };
  }

  createSession(rec: SessionRecord): Promise<void> {
    const row: SessionRow = {
      agent_label: rec.agentLabel ?? null,
      decisions: rec.decisions === undefined ? null : JSON.stringify(rec.decisions),
      seal: rec.seal === undefined ? null : JSON.stringify(rec.seal),
      pruned_at: rec.prunedAt ?? null,
      broker_id: rec.brokerId ?? null,
      id: rec.id,
      oid: rec.identity.oid,
      name: rec.identity.name,
      upn: rec.identity.upn ?? null,
      type: rec.identity.type,
      connection: rec.connection,
      protocol: rec.protocol,
      application_name: rec.applicationName,
      client_address: rec.clientAddress,
      started_at: rec.startedAt,
      ended_at: rec.endedAt,
      end_reason: rec.endReason,
      end_detail: rec.endDetail,
      bytes_in: rec.bytesIn,
      bytes_out: rec.bytesOut,
      statement_count: rec.statementCount,
    };
    return this.enqueue(true, () => {
      try {
        this.stmt.insertSession.run(row);
      } catch (err) {
        if (sqliteCode(err) === "SQLITE_CONSTRAINT_PRIMARYKEY") {
          throw storeWriteFailed(`session ${rec.id} already exists`, { cause: err });
        }
        throw err;
      }
    });
  }

  endSession(id: string, end: SessionEnd): Promise<void> {
    const params = {
      decisions: end.decisions === undefined ? null : JSON.stringify(end.decisions),
      seal: end.seal === undefined ? null : JSON.stringify(end.seal),
      id,
      ended_at: end.endedAt,
      end_reason: end.endReason,
      end_detail: end.endDetail,
      bytes_in: end.bytesIn,
      bytes_out: end.bytesOut,
      statement_count: end.statementCount,
    };
    return this.enqueue(false, () => {
      if (this.stmt.endSession.run(params).changes > 0) return;
      const found = this.stmt.sessionEnded.get(id);
      throw storeWriteFailed(
        found === undefined
          ? `cannot end session ${id}: it does not exist`
          : `session ${id} has already ended`,
      );
    });
  }

  addStatement(ev: StatementEvent): Promise<void> {
    const row = statementRow(ev);
    return this.enqueue(false, () => this.insertStatementRow(row));
  }

  appendEvent(ev: AuditEvent, opts: AppendOptions = {}): Promise<void> {
    const row: EventRow = {
      session_id: ev.sessionId,
      seq: ev.seq,
      kind: ev.kind,
      at: ev.at,
      body: ev.body,
      prev_hash: ev.prevHash,
      hash: ev.hash,
    };
    const st = opts.statement === undefined ? null : statementRow(opts.statement);
    return this.enqueue(
      opts.durable === true,
      () => this.tx.appendEvent(row, st),
      opts.durable === true,
    );
  }

  async listEvents(sessionId: string): Promise<AuditEvent[]> {
    this.beforeRead();
    return (this.stmt.listEvents.all(sessionId) as EventRow[]).map(toEvent);
  }

  pruneSessions(endedBefore: number, opts: { now: number; limit: number }): Promise<number> {
    const limit = Math.max(1, Math.floor(opts.limit));
    return this.enqueue(false, () => this.tx.prune(endedBefore, opts.now, limit));
  }

  private insertStatementRow(row: StatementRow): void {
    try {
      this.stmt.insertStatement.run(row);
    } catch (err) {
      const code = sqliteCode(err);
      if (code === "SQLITE_CONSTRAINT_PRIMARYKEY") {
        throw storeWriteFailed(
          `statement ${row.seq} of session ${row.session_id} is already recorded`,
          { cause: err },
        );
      }
      if (code === "SQLITE_CONSTRAINT_FOREIGNKEY") {
        throw storeWriteFailed(
          `cannot record a statement for session ${row.session_id}: it does not exist`,
          { cause: err },
        );
      }
      throw err;
    }
  }

  async listSessions(q: SessionQuery): Promise<SessionRecord[]> {
    this.beforeRead();
    const where: string[] = [];
    const params: Record<string, string | number> = { limit: effectiveLimit(q.limit) };
    if (q.oid !== undefined) {
      where.push("oid = @oid");
      params.oid = q.oid;
    }
    if (q.connection !== undefined) {
      where.push("connection = @connection");
      params.connection = q.connection;
    }
    if (q.user !== undefined) {
      where.push(
        "(oid = @user OR lower(upn) = lower(@user) OR lower(name) = lower(@user) " +
          "OR lower(upn) LIKE @user_at ESCAPE '\\')",
      );
      params.user = q.user;
      params.user_at = escapeLike(q.user.toLowerCase()) + "@%";
    }
    if (q.agent !== undefined) {
      where.push("agent_label = @agent");
      params.agent = q.agent;
    }
    if (q.application !== undefined) {
      where.push("application_name = @application");
      params.application = q.application;
    }
    if (q.since !== undefined) {
      where.push("started_at >= @since");
      params.since = q.since;
    }
    if (q.until !== undefined) {
      where.push("started_at < @until");
      params.until = q.until;
    }
    if (q.open !== undefined) where.push(q.open ? "ended_at IS NULL" : "ended_at IS NOT NULL");
    if (q.brokerId !== undefined) {
      where.push("broker_id = @broker_id");
      params.broker_id = q.brokerId;
    }
    if (q.idPrefix !== undefined) {
      where.push("id LIKE @id_prefix ESCAPE '\\'");
      params.id_prefix = escapeLike(q.idPrefix) + "%";
    }
    if (q.grep !== undefined && q.grep !== "") {
      where.push(
        `id IN (SELECT session_id FROM statements WHERE ${this.grepCondition(q.grep, params)})`,
      );
    }
    const sql =
      `SELECT ${SESSION_COLUMNS} FROM sessions` +
      (where.length > 0 ? ` WHERE ${where.join(" AND ")}` : "") +
      " ORDER BY started_at DESC, rowid DESC LIMIT @limit";
    let stmt = this.listQueries.get(sql);
    if (stmt === undefined) {
      stmt = this.db.prepare(sql);
      this.listQueries.set(sql, stmt);
    }
    return (stmt.all(params) as SessionRow[]).map(toSession);
  }

  async getSession(id: string): Promise<SessionRecord | null> {
    this.beforeRead();
    const row = this.stmt.getSession.get(id) as SessionRow | undefined;
    return row === undefined ? null : toSession(row);
  }

  async listStatements(sessionId: string, q: StatementQuery = {}): Promise<StatementEvent[]> {
    this.beforeRead();
    if ((q.grep === undefined || q.grep === "") && q.limit === undefined) {
      return (this.stmt.listStatements.all(sessionId) as StatementRow[]).map(toStatement);
    }
    const params: Record<string, string | number> = {
      session_id: sessionId,
      limit: q.limit === undefined ? -1 : Math.max(0, Math.floor(q.limit)),
    };
    const cond =
      q.grep === undefined || q.grep === "" ? "" : ` AND ${this.grepCondition(q.grep, params)}`;
    const sql =
      `SELECT ${STATEMENT_COLUMNS} FROM statements WHERE session_id = @session_id${cond} ` +
      "ORDER BY seq LIMIT @limit";
    return (this.cachedQuery(sql).all(params) as StatementRow[]).map(toStatement);
  }

  /**
   * A condition on statements (in a query over the statements table) that its SQL contains
   * `text`: from the trigram index when there is one and the text is long enough for it
   * (3 characters), else a scan with LIKE. Both are case-insensitive for ASCII.
   */
  private grepCondition(text: string, params: Record<string, string | number>): string {
    if (this.fts && [...text].length >= 3) {
      params.grep_fts = `"${text.replace(/"/g, '""')}"`;
      return "rowid IN (SELECT rowid FROM statements_fts WHERE statements_fts MATCH @grep_fts)";
    }
    params.grep_like = `%${escapeLike(text)}%`;
    return "sql LIKE @grep_like ESCAPE '\\'";
  }

  private cachedQuery(sql: string): Database.Statement {
    let stmt = this.listQueries.get(sql);
    if (stmt === undefined) {
      stmt = this.db.prepare(sql);
      this.listQueries.set(sql, stmt);
    }
    return stmt;
  }

  createApproval(req: ApprovalRequest): Promise<void> {
    const fresh = req.status === "pending" && req.decisions.length === 0 && req.decidedAt === null;
    const row: ApprovalRow = {
      id: req.id,
      session_id: req.sessionId,
      connection: req.connection,
      requester_oid: req.requester.oid,
      requester_name: req.requester.name,
      requester_type: req.requester.type,
      application_name: req.applicationName,
      agent_label: req.agentLabel,
      sql: req.sql,
      statement_hash: req.statementHash,
      rule_index: req.matchedRule.index,
      rule_description: req.matchedRule.description,
      reason: req.reason,
      approvers: JSON.stringify(req.approvers),
      min_approvals: req.minApprovals,
      created_at: req.createdAt,
      expires_at: req.expiresAt,
      status: req.status,
      decided_at: req.decidedAt,
      status_detail: req.statusDetail,
      context_statements:
        req.contextStatements === undefined ? null : JSON.stringify(req.contextStatements),
      broker_id: req.brokerId ?? null,
    };
    // Urgent: a statement (and its client) waits until the request is visible to approvers.
    return this.enqueue(true, () => {
      if (!fresh) {
        throw storeWriteFailed(
          `approval request ${req.id} must be created pending, with no decisions`,
        );
      }
      try {
        this.stmt.insertApproval.run(row);
      } catch (err) {
        if (sqliteCode(err) === "SQLITE_CONSTRAINT_PRIMARYKEY") {
          throw storeWriteFailed(`approval request ${req.id} already exists`, { cause: err });
        }
        throw err;
      }
    });
  }

  async getApproval(id: string): Promise<ApprovalRequest | null> {
    this.beforeRead();
    return this.readApproval(id);
  }

  async listApprovals(q: ApprovalQuery): Promise<ApprovalRequest[]> {
    this.beforeRead();
    const limit = effectiveLimit(q.limit);
    const rows = (
      q.status === undefined
        ? this.stmt.listApprovals.all(limit)
        : this.stmt.listApprovalsByStatus.all(q.status, limit)
    ) as ApprovalRow[];
    return rows.map((r) => toApproval(r, this.stmt.listDecisions.all(r.id) as DecisionRow[]));
  }

  recordDecision(id: string, decision: ApprovalDecision): Promise<ApprovalRequest> {
    const d: ApprovalDecision = {
      by: { oid: decision.by.oid, name: decision.by.name },
      decision: decision.decision,
      reason: decision.reason,
      at: decision.at,
    };
    // Urgent: the held statement runs (or fails) once this has committed.
    return this.enqueue(true, () => this.tx.recordDecision(id, d));
  }

  setStatus(
    id: string,
    status: "expired" | "cancelled",
    change: { at: number; detail: string | null },
  ): Promise<ApprovalRequest> {
    return this.enqueue(true, () => this.tx.setStatus(id, status, change.at, change.detail));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.flush();
    await this.checkpointer?.stop();
    this.db.close();
  }

  /**
   * Checkpoints from a worker thread instead of inside this connection's commits (see
   * sqlite-checkpointer.ts); SQLite's own come back if that thread fails.
   */
  private checkpointElsewhere(): void {
    this.db.pragma("wal_autocheckpoint = 0");
    this.checkpointer = SqliteCheckpointer.start(this.path, () => {
      this.checkpointer = null;
      if (!this.closed) this.db.pragma("wal_autocheckpoint = 1000");
    });
  }

  private readApproval(id: string): ApprovalRequest | null {
    const row = this.stmt.getApproval.get(id) as ApprovalRow | undefined;
    if (row === undefined) return null;
    return toApproval(row, this.stmt.listDecisions.all(id) as DecisionRow[]);
  }

  /** Inside a write: the request, if it exists and is still pending (at `at`, when given). */
  private pendingApproval(id: string, at?: number): ApprovalRequest {
    const a = this.readApproval(id);
    if (a === null) throw approvalNotFound(id);
    if (a.status !== "pending") throw approvalNotPending(id, a.status);
    if (at !== undefined && at >= a.expiresAt) throw approvalExpired(id);
    return a;
  }

  private enqueue<T>(urgent: boolean, apply: () => T, durable = false): Promise<T> {
    if (this.closed) return Promise.reject(storeClosed());
    this.counters.writes++;
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ apply, resolve: resolve as (value: unknown) => void, reject, durable });
      if (urgent || this.commitWindowMs <= 0 || this.queue.length >= GROUP_COMMIT_MAX) {
        this.timer ??= setImmediate(() => {
          this.timer = undefined;
          this.flush();
        });
      } else {
        this.windowTimer ??= setTimeout(() => {
          this.windowTimer = undefined;
          this.flush();
        }, this.commitWindowMs);
      }
    });
  }

  private beforeRead(): void {
    if (this.closed) throw storeClosed();
    this.flush();
  }

  /** Commits every pending write in one transaction and settles their promises. Never throws. */
  private flush(): void {
    if (this.timer !== undefined) {
      clearImmediate(this.timer);
      this.timer = undefined;
    }
    if (this.windowTimer !== undefined) {
      clearTimeout(this.windowTimer);
      this.windowTimer = undefined;
    }
    const batch = this.queue;
    if (batch.length === 0) return;
    this.queue = [];
    this.counters.batches++;

    let failure: GwError | undefined;
    // A durable write (strict audit) waits for this batch before its statement may run: the
    // commit syncs the WAL to disk. One sync covers every write of the batch (group commit).
    const durable = batch.some((w) => w.durable === true);
    try {
      if (durable) {
        this.stmt.syncFull.run();
        this.counters.durableBatches++;
      }
      // IMMEDIATE takes the write lock up front: a lock held by another process fails the
      // batch once (after busy_timeout) instead of once per write.
      this.stmt.begin.run();
      for (const w of batch) {
        try {
          w.result = w.apply();
        } catch (err) {
          // A constraint aborts only its own statement; the transaction goes on without it.
          // Anything else (I/O, disk full, a missing table) fails the whole batch.
          if (!this.db.inTransaction || !(isGwError(err) || isConstraint(err))) throw err;
          w.refused = isGwError(err)
            ? err
            : storeWriteFailed(`write refused by the session store: ${errMessage(err)}`, {
                cause: err,
              });
        }
      }
      this.stmt.commit.run();
    } catch (err) {
      failure = this.batchFailed(err, batch.length);
      if (this.db.inTransaction) {
        try {
          this.stmt.rollback.run();
        } catch {
          // The connection is broken; later batches will fail and report it.
        }
      }
    }
    if (durable) {
      try {
        this.stmt.syncNormal.run();
      } catch {
        // Stays FULL: slower, never less safe.
      }
    }
    if (failure !== undefined) this.counters.failedBatches++;
    for (const w of batch) {
      if (failure !== undefined) w.reject(failure);
      else if (w.refused !== undefined) w.reject(w.refused);
      else w.resolve(w.result);
    }
  }

  private batchFailed(err: unknown, n: number): GwError {
    const code = sqliteCode(err);
    const hint =
      code?.startsWith("SQLITE_BUSY") === true
        ? `Another process holds a lock on ${this.path}; stop it, or give gw its own database file.`
        : code?.startsWith("SQLITE_FULL") === true
          ? `The disk holding ${this.path} is full; free space.`
          : code?.startsWith("SQLITE_READONLY") === true
            ? `${this.path} cannot be written; check its permissions and those of its directory.`
            : `Check ${this.path} and the disk it is on.`;
    return storeWriteFailed(
      `could not record ${n} write${n === 1 ? "" : "s"} to the session store at ${this.path}: ${errMessage(err)}`,
      { hint, cause: err },
    );
  }
}

/** Creates the directory (0700) and the file (0600) before SQLite does; the file holds SQL text. */
function prepareFile(path: string): void {
  const dir = dirname(path);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw storeUnavailable(
      `cannot create the directory ${dir} for the session store ${path}: ${errMessage(err)}`,
      {
        hint: OPEN_HINT,
        cause: err,
      },
    );
  }
  try {
    closeSync(openSync(path, fsc.O_CREAT | fsc.O_EXCL | fsc.O_RDWR, 0o600));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") {
      throw storeUnavailable(`cannot create the session store ${path}: ${errMessage(err)}`, {
        hint: OPEN_HINT,
        cause: err,
      });
    }
  }
  let mode: number;
  try {
    const st = statSync(path);
    if (!st.isFile()) {
      throw storeUnavailable(`the session store ${path} is not a regular file`, {
        hint: "Set store.sqlite in the broker config to a file path, not a directory.",
      });
    }
    mode = st.mode;
  } catch (err) {
    if (isGwError(err)) throw err;
    throw storeUnavailable(`cannot open the session store ${path}: ${errMessage(err)}`, {
      hint: OPEN_HINT,
      cause: err,
    });
  }
  // An existing file readable by others leaks recorded SQL: tighten it (SQLite gives its -wal
  // and -shm files the database file's mode), or refuse.
  if ((mode & 0o077) !== 0) {
    for (const f of [path, `${path}-wal`, `${path}-shm`]) {
      try {
        chmodSync(f, 0o600);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT" && f !== path) continue;
        throw storeUnavailable(
          `the session store ${f} is readable by other users and gw cannot change that: ${errMessage(err)}`,
          { hint: `Run: chmod 600 ${f}`, cause: err },
        );
      }
    }
  }
}

function openFailed(path: string, err: unknown): GwError {
  if (!(err instanceof Database.SqliteError)) {
    // The native module did not load (wrong Node ABI, missing build), or something stranger.
    return storeUnavailable(`cannot open the session store ${path}: ${errMessage(err)}`, {
      hint: "If the SQLite driver failed to load, reinstall gw (or run `npm rebuild better-sqlite3`) for this Node version.",
      cause: err,
    });
  }
  const code = err.code;
  if (code === "SQLITE_NOTADB") {
    return storeUnavailable(`${path} is not a SQLite database`, {
      hint: "Point store.sqlite at a new file, or move this file away.",
      cause: err,
    });
  }
  if (code.startsWith("SQLITE_CORRUPT")) {
    return storeUnavailable(`the session store ${path} is corrupt: ${err.message}`, {
      hint: "Restore it from a backup, or move it away and let gw create a new one.",
      cause: err,
    });
  }
  if (code.startsWith("SQLITE_BUSY")) {
    return storeUnavailable(`the session store ${path} is locked by another process`, {
      hint: "Stop the other process, or give this broker its own database file.",
      cause: err,
    });
  }
  return storeUnavailable(`cannot open the session store ${path}: ${err.message}`, {
    hint: OPEN_HINT,
    cause: err,
  });
}

function statementRow(ev: StatementEvent): StatementRow {
  return {
    session_id: ev.sessionId,
    seq: ev.seq,
    at: ev.at,
    duration_ms: ev.durationMs,
    sql: ev.sql,
    protocol: ev.protocol,
    command_tag: ev.commandTag,
    row_count: ev.rows,
    error_code: ev.errorCode,
    error_message: ev.errorMessage,
    decision: ev.decision ?? "allowed",
    event_seq: ev.eventSeq ?? null,
    approval: ev.approval === undefined ? null : JSON.stringify(ev.approval),
    preview: ev.preview === undefined ? null : JSON.stringify(ev.preview),
  };
}

function sqliteCode(err: unknown): string | undefined {
  return err instanceof Database.SqliteError ? err.code : undefined;
}

function isConstraint(err: unknown): boolean {
  return sqliteCode(err)?.startsWith("SQLITE_CONSTRAINT") === true;
}

function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
