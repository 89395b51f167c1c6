import pg from "pg";
import {
  approvalDuplicate,
  approvalExpired,
  approvalNotFound,
  approvalNotPending,
} from "../approvals/errors.js";
import { isGwError, type GwError } from "../errors.js";
import { storeClosed, storeUnavailable, storeWriteFailed } from "./errors.js";
import { ChannelListener, type ListenerLog } from "./postgres-listener.js";
import { migratePostgres } from "./postgres-migrations.js";
import {
  APPROVAL_SELECT,
  approvalValues,
  placeholders,
  sessionValues,
  statementValues,
  type PgApprovalRow,
} from "./postgres-rows.js";
import {
  APPROVAL_COLUMNS,
  EVENT_COLUMNS,
  SESSION_COLUMNS,
  STATEMENT_COLUMNS,
  escapeLike,
  toApproval,
  toEvent,
  toSession,
  toStatement,
  type EventRow,
  type SessionRow,
  type StatementRow,
} from "./rows.js";
import {
  connectFailed,
  errMessage,
  postgresTarget,
  scrubSecrets,
  storeTypes,
  type PostgresTarget,
} from "./postgres-target.js";
import { GroupCommitter, type GroupCommitStats, type WriteRun } from "./postgres-writer.js";
import type { ReplicaInfo, ReplicaRegistry } from "./replica-registry.js";
import {
  effectiveLimit,
  statusAfterDecisions,
  type ApprovalDecision,
  type ApprovalQuery,
  type ApprovalRequest,
  type AppendOptions,
  type AuditEvent,
  type SessionEnd,
  type SessionQuery,
  type SessionRecord,
  type SessionStore,
  type StatementEvent,
  type StatementQuery,
} from "./types.js";

export interface PostgresStoreOptions {
  /**
   * Group commit: statement events wait up to this long for company before their transaction
   * commits. Session starts, approvals and durable appends commit on the next tick. Default 10.
   */
  commitWindowMs?: number;
  /** Connections in the pool (one writes at a time; the rest read). Default 10. */
  poolSize?: number;
  /** How long opening a connection may take, in ms. Default 10000. */
  connectTimeoutMs?: number;
  /** Where the store reports what nobody awaits (the notification connection). */
  log?: ListenerLog;
  /** Reconnect backoff of the notification connection, in ms. Default 100 .. 5000. */
  listenBackoffMs?: { min: number; max: number };
}

/** Every store on a database shares this channel; its payload is a request id. */
export const APPROVALS_CHANNEL = "gw_approvals";

/**
 * The session store on PostgreSQL, for several broker replicas sharing one database.
 *
 * Same contract as the SQLite store (SessionStore in ./types.ts): writes queue up and commit
 * together (GroupCommitter), each settling once its transaction has; reads first wait for the
 * writes made before them. Rules that decide whether a write may happen (a pending approval,
 * an open session) are checked inside the write's transaction, under row locks where two
 * replicas could race. Approval writes NOTIFY the gw_approvals channel in their transaction,
 * so other replicas (watchApprovals) hear of a decision once it has committed. It is also the
 * replicas' registry (ReplicaRegistry), with heartbeats timed by the database's clock.
 */
export class PostgresStore implements SessionStore, ReplicaRegistry {
  readonly target: PostgresTarget;
  private readonly writer: GroupCommitter;
  private closed = false;
  private listener: ChannelListener | null = null;
  private readonly watchers = new Set<(id: string | null) => void>();
  private readonly log: ListenerLog;

  /**
   * Connects, and creates or migrates the schema (under an advisory lock, so replicas starting
   * together do not race). Throws GwError store_unavailable naming the host and database,
   * never the password.
   */
  static async open(url: string, opts: PostgresStoreOptions = {}): Promise<PostgresStore> {
    const target = postgresTarget(url);
    const pool = new pg.Pool({
      connectionString: url,
      max: opts.poolSize ?? 10,
      connectionTimeoutMillis: opts.connectTimeoutMs ?? 10_000,
      application_name: "gw broker",
      keepAlive: true,
      types: storeTypes,
    });
    const log = opts.log ?? (() => undefined);
    // An idle connection that breaks is dropped by the pool; the next query opens another.
    pool.on("error", (err) =>
      log("warn", "store: a pooled connection failed", {
        error: scrubSecrets(errMessage(err), target),
      }),
    );
    // A checked-out connection that breaks between queries must not crash the process: the
    // query that next uses it fails instead.
    pool.on("connect", (c) => c.on("error", () => undefined));
    let client: pg.PoolClient;
    try {
      client = await pool.connect();
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw connectFailed(err, target);
    }
    try {
      await migratePostgres(client, target.where);
      client.release();
    } catch (err) {
      client.release(true);
      await pool.end().catch(() => undefined);
      if (isGwError(err)) throw err;
      throw connectFailed(err, target);
    }
    return new PostgresStore(pool, url, target, opts, log);
  }

  private constructor(
    private readonly pool: pg.Pool,
    private readonly url: string,
    target: PostgresTarget,
    private readonly opts: PostgresStoreOptions,
    log: ListenerLog,
  ) {
    this.target = target;
    this.log = log;
    this.writer = new GroupCommitter(pool, opts.commitWindowMs ?? 10, (err, n) =>
      storeWriteFailed(
        `could not record ${n} write${n === 1 ? "" : "s"} to the session store (${target.where}): ${scrubSecrets(errMessage(err), target)}`,
        {
          hint: `Check that PostgreSQL at ${target.host}:${target.port} is up and accepts writes (disk space, read-only standby).`,
          cause: err,
        },
      ),
    );
  }

  get stats(): GroupCommitStats {
    return { ...this.writer.stats };
  }

  // --- sessions --------------------------------------------------------------------------

  createSession(rec: SessionRecord): Promise<void> {
    const values = sessionValues(rec);
    const id = rec.id;
    // Urgent: the client waits for its session record before its first statement.
    return this.write(true, true, async (c) => {
      const r = await c.query(
        `INSERT INTO sessions (${SESSION_COLUMNS}) VALUES (${placeholders(values.length)}) ` +
          "ON CONFLICT (id) DO NOTHING",
        values,
      );
      if (r.rowCount === 0) throw storeWriteFailed(`session ${id} already exists`);
    });
  }

  endSession(id: string, end: SessionEnd): Promise<void> {
    const values = [
      id,
      end.endedAt,
      end.endReason,
      end.endDetail,
      end.bytesIn,
      end.bytesOut,
      end.statementCount,
      end.decisions === undefined ? null : JSON.stringify(end.decisions),
      end.seal === undefined ? null : JSON.stringify(end.seal),
    ];
    return this.write(false, true, async (c) => {
      const r = await c.query(
        "UPDATE sessions SET ended_at = $2, end_reason = $3, end_detail = $4, bytes_in = $5, " +
          "bytes_out = $6, statement_count = $7, decisions = coalesce($8, decisions), " +
          "seal = coalesce($9, seal) WHERE id = $1 AND ended_at IS NULL",
        values,
      );
      if (r.rowCount !== 0) return;
      const found = await c.query("SELECT 1 FROM sessions WHERE id = $1", [id]);
      throw storeWriteFailed(
        found.rowCount === 0
          ? `cannot end session ${id}: it does not exist`
          : `session ${id} has already ended`,
      );
    });
  }

  addStatement(ev: StatementEvent): Promise<void> {
    const values = statementValues(ev);
    const { sessionId, seq } = ev;
    return this.write(false, false, async (c) => {
      const r = await c.query(
        `INSERT INTO statements (${STATEMENT_COLUMNS}) SELECT ${STATEMENT_CASTS} ` +
          "WHERE EXISTS (SELECT 1 FROM sessions WHERE id = $1) " +
          "ON CONFLICT (session_id, seq) DO NOTHING",
        values,
      );
      if (r.rowCount !== 0) return;
      const found = await c.query("SELECT 1 FROM sessions WHERE id = $1", [sessionId]);
      throw storeWriteFailed(
        found.rowCount === 0
          ? `cannot record a statement for session ${sessionId}: it does not exist`
          : `statement ${seq} of session ${sessionId} is already recorded`,
      );
    });
  }

  appendEvent(ev: AuditEvent, opts: AppendOptions = {}): Promise<void> {
    const st = opts.statement;
    const values = [
      ev.sessionId,
      ev.seq,
      ev.kind,
      ev.at,
      ev.body,
      ev.prevHash,
      ev.hash,
      ...(st === undefined ? Array<null>(14).fill(null) : statementValues(st)),
      st !== undefined,
    ];
    const durable = opts.durable === true;
    const { sessionId, seq } = ev;
    return this.write(durable, durable, async (c) => {
      const r = await c.query<{
        open: boolean | null;
        ev_taken: boolean | null;
        st_taken: boolean | null;
        st_orphan: boolean | null;
        n: number;
      }>(APPEND_EVENT_SQL, values);
      const row = r.rows[0];
      if (row?.n === 1) return;
      if (row?.open === null || row?.open === undefined) {
        throw storeWriteFailed(
          `cannot record an event for session ${sessionId}: it does not exist`,
        );
      }
      if (!row.open)
        throw storeWriteFailed(`cannot record an event for session ${sessionId}: it has ended`);
      if (row.ev_taken)
        throw storeWriteFailed(`event ${seq} of session ${sessionId} is already recorded`);
      if (row.st_orphan) {
        throw storeWriteFailed(
          `cannot record a statement for session ${st?.sessionId}: it does not exist`,
        );
      }
      throw storeWriteFailed(
        `statement ${st?.seq} of session ${st?.sessionId} is already recorded`,
      );
    });
  }

  async listEvents(sessionId: string): Promise<AuditEvent[]> {
    const rows = await this.read<EventRow>(
      `SELECT ${EVENT_COLUMNS} FROM events WHERE session_id = $1 ORDER BY seq`,
      [sessionId],
    );
    return rows.map(toEvent);
  }

  pruneSessions(endedBefore: number, opts: { now: number; limit: number }): Promise<number> {
    const limit = Math.max(1, Math.floor(opts.limit));
    return this.write(false, true, async (c) => {
      // SKIP LOCKED: replicas pruning at the same moment take different sessions.
      const r = await c.query<{ n: number }>(
        "WITH due AS (SELECT id FROM sessions WHERE ended_at IS NOT NULL AND ended_at < $1 " +
          "AND pruned_at IS NULL ORDER BY ended_at LIMIT $2 FOR UPDATE SKIP LOCKED), " +
          "e AS (DELETE FROM events WHERE session_id IN (SELECT id FROM due)), " +
          "s AS (DELETE FROM statements WHERE session_id IN (SELECT id FROM due)), " +
          "u AS (UPDATE sessions SET pruned_at = $3 WHERE id IN (SELECT id FROM due) RETURNING 1) " +
          "SELECT count(*) AS n FROM u",
        [endedBefore, limit, opts.now],
      );
      return r.rows[0]?.n ?? 0;
    });
  }

  async listSessions(q: SessionQuery): Promise<SessionRecord[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    const p = (v: unknown) => {
      params.push(v);
      return `$${params.length}`;
    };
    if (q.oid !== undefined) where.push(`oid = ${p(q.oid)}`);
    if (q.connection !== undefined) where.push(`connection = ${p(q.connection)}`);
    if (q.user !== undefined) {
      const u = p(q.user);
      where.push(
        `(oid = ${u} OR lower(upn) = lower(${u}) OR lower(name) = lower(${u}) ` +
          `OR lower(upn) LIKE ${p(escapeLike(q.user.toLowerCase()) + "@%")} ESCAPE '\\')`,
      );
    }
    if (q.agent !== undefined) where.push(`agent_label = ${p(q.agent)}`);
    if (q.application !== undefined) where.push(`application_name = ${p(q.application)}`);
    if (q.since !== undefined) where.push(`started_at >= ${p(q.since)}`);
    if (q.until !== undefined) where.push(`started_at < ${p(q.until)}`);
    if (q.open !== undefined) where.push(q.open ? "ended_at IS NULL" : "ended_at IS NOT NULL");
    if (q.brokerId !== undefined) where.push(`broker_id = ${p(q.brokerId)}`);
    if (q.idPrefix !== undefined)
      where.push(`id LIKE ${p(escapeLike(q.idPrefix) + "%")} ESCAPE '\\'`);
    if (q.grep !== undefined && q.grep !== "") {
      where.push(
        "id IN (SELECT session_id FROM statements " +
          `WHERE sql ILIKE ${p(`%${escapeLike(q.grep)}%`)} ESCAPE '\\')`,
      );
    }
    const sql =
      `SELECT ${SESSION_COLUMNS} FROM sessions` +
      (where.length > 0 ? ` WHERE ${where.join(" AND ")}` : "") +
      ` ORDER BY started_at DESC, created DESC LIMIT ${p(effectiveLimit(q.limit))}`;
    return (await this.read<SessionRow>(sql, params)).map(toSession);
  }

  async getSession(id: string): Promise<SessionRecord | null> {
    const rows = await this.read<SessionRow>(
      `SELECT ${SESSION_COLUMNS} FROM sessions WHERE id = $1`,
      [id],
    );
    return rows[0] === undefined ? null : toSession(rows[0]);
  }

  async listStatements(sessionId: string, q: StatementQuery = {}): Promise<StatementEvent[]> {
    const params: unknown[] = [sessionId];
    let cond = "";
    if (q.grep !== undefined && q.grep !== "") {
      params.push(`%${escapeLike(q.grep)}%`);
      cond = ` AND sql ILIKE $2 ESCAPE '\\'`;
    }
    params.push(q.limit === undefined ? null : Math.max(0, Math.floor(q.limit)));
    const rows = await this.read<StatementRow>(
      `SELECT ${STATEMENT_COLUMNS} FROM statements WHERE session_id = $1${cond} ` +
        `ORDER BY seq LIMIT $${params.length}`,
      params,
    );
    return rows.map(toStatement);
  }

  // --- approvals -------------------------------------------------------------------------

  createApproval(req: ApprovalRequest): Promise<void> {
    const fresh = req.status === "pending" && req.decisions.length === 0 && req.decidedAt === null;
    const values = approvalValues(req);
    const id = req.id;
    // Urgent: a statement (and its client) waits until the request is visible to approvers.
    return this.write(true, true, async (c) => {
      if (!fresh) {
        throw storeWriteFailed(`approval request ${id} must be created pending, with no decisions`);
      }
      const r = await c.query(
        `WITH ins AS (INSERT INTO approvals (${APPROVAL_COLUMNS}) ` +
          `VALUES (${placeholders(values.length)}) ON CONFLICT (id) DO NOTHING RETURNING id) ` +
          `SELECT pg_notify('${APPROVALS_CHANNEL}', id) FROM ins`,
        values,
      );
      if (r.rowCount === 0) throw storeWriteFailed(`approval request ${id} already exists`);
    });
  }

  async getApproval(id: string): Promise<ApprovalRequest | null> {
    const rows = await this.read<PgApprovalRow>(
      `SELECT ${APPROVAL_SELECT} FROM approvals a WHERE a.id = $1`,
      [id],
    );
    return rows[0] === undefined ? null : toApproval(rows[0], rows[0].decisions);
  }

  async listApprovals(q: ApprovalQuery): Promise<ApprovalRequest[]> {
    const params: unknown[] = [];
    let where = "";
    if (q.status !== undefined) {
      params.push(q.status);
      where = " WHERE a.status = $1";
    }
    params.push(effectiveLimit(q.limit));
    const rows = await this.read<PgApprovalRow>(
      `SELECT ${APPROVAL_SELECT} FROM approvals a${where} ` +
        `ORDER BY a.created_at DESC, a.created DESC LIMIT $${params.length}`,
      params,
    );
    return rows.map((r) => toApproval(r, r.decisions));
  }

  recordDecision(id: string, decision: ApprovalDecision): Promise<ApprovalRequest> {
    const d: ApprovalDecision = {
      by: { oid: decision.by.oid, name: decision.by.name },
      decision: decision.decision,
      reason: decision.reason,
      at: decision.at,
    };
    // Urgent: the held statement runs (or fails) once this has committed.
    return this.write(true, true, async (c) => {
      const a = await pendingApproval(c, id, d.at);
      if (a.decisions.some((x) => x.by.oid === d.by.oid)) throw approvalDuplicate(id, d.by.name);
      a.decisions.push(d);
      a.status = statusAfterDecisions(a.decisions, a.minApprovals);
      if (a.status !== "pending") a.decidedAt = d.at;
      await c.query(
        "WITH ins AS (INSERT INTO approval_decisions (approval_id, seq, oid, name, decision, " +
          "reason, at) VALUES ($1, $2, $3, $4, $5, $6, $7)), " +
          "upd AS (UPDATE approvals SET status = $8, decided_at = $9 WHERE id = $1) " +
          `SELECT pg_notify('${APPROVALS_CHANNEL}', $1)`,
        [
          id,
          a.decisions.length,
          d.by.oid,
          d.by.name,
          d.decision,
          d.reason,
          d.at,
          a.status,
          a.decidedAt,
        ],
      );
      return a;
    });
  }

  setStatus(
    id: string,
    status: "expired" | "cancelled",
    change: { at: number; detail: string | null },
  ): Promise<ApprovalRequest> {
    return this.write(true, true, async (c) => {
      const a = await pendingApproval(c, id);
      await c.query(
        "WITH upd AS (UPDATE approvals SET status = $2, decided_at = $3, status_detail = $4 " +
          `WHERE id = $1) SELECT pg_notify('${APPROVALS_CHANNEL}', $1)`,
        [id, status, change.at, change.detail],
      );
      return { ...a, status, decidedAt: change.at, statusDetail: change.detail };
    });
  }

  /**
   * LISTEN/NOTIFY on a connection of its own, opened with the first listener and closed with
   * the last. Each time that connection starts listening (the first time too), listeners get
   * null: writes made before it did were not notified.
   */
  watchApprovals(listener: (id: string | null) => void): () => void {
    if (this.closed) return () => undefined;
    this.watchers.add(listener);
    if (this.listener === null) {
      this.listener = new ChannelListener({
        url: this.url,
        target: this.target,
        channel: APPROVALS_CHANNEL,
        log: this.log,
        onNotify: (payload) => this.notifyWatchers(payload === "" ? null : payload),
        onListening: () => this.notifyWatchers(null),
        ...(this.opts.listenBackoffMs ? { backoffMs: this.opts.listenBackoffMs } : {}),
      });
      void this.listener.start();
    }
    return () => {
      this.watchers.delete(listener);
      if (this.watchers.size === 0 && this.listener !== null) {
        void this.listener.stop();
        this.listener = null;
      }
    };
  }

  /** Resolves once the notification connection is listening (tests; start-up ordering). */
  async approvalsWatchReady(timeoutMs = 10_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.listener?.listening === true) return true;
      await new Promise((r) => setTimeout(r, 10));
    }
    return false;
  }

  private notifyWatchers(id: string | null): void {
    for (const w of [...this.watchers]) {
      try {
        w(id);
      } catch (err) {
        this.log("error", "store: an approvals watcher failed", { error: errMessage(err) });
      }
    }
  }

  // --- replicas --------------------------------------------------------------------------

  async heartbeatReplica(r: Omit<ReplicaInfo, "heartbeatAgeMs">): Promise<boolean> {
    const rows = await this.direct<{ inserted: boolean }>(
      "INSERT INTO gw_replicas (id, url, key_id, started_at, heartbeat_at) " +
        "VALUES ($1, $2, $3, $4, clock_timestamp()) ON CONFLICT (id) DO UPDATE SET " +
        "url = EXCLUDED.url, key_id = EXCLUDED.key_id, heartbeat_at = clock_timestamp() " +
        "RETURNING (xmax = 0) AS inserted",
      [r.id, r.url, r.keyId, r.startedAt],
    );
    return rows[0]?.inserted === true;
  }

  async listReplicas(): Promise<ReplicaInfo[]> {
    const rows = await this.direct<{
      id: string;
      url: string | null;
      key_id: string | null;
      started_at: number;
      age_ms: number;
    }>(
      "SELECT id, url, key_id, started_at, " +
        "(extract(epoch FROM clock_timestamp() - heartbeat_at) * 1000)::float8 AS age_ms " +
        "FROM gw_replicas ORDER BY started_at, id",
    );
    return rows.map((r) => ({
      id: r.id,
      url: r.url,
      keyId: r.key_id,
      startedAt: r.started_at,
      heartbeatAgeMs: Math.max(0, r.age_ms),
    }));
  }

  async removeReplica(id: string, opts: { ifOlderThanMs?: number } = {}): Promise<boolean> {
    const rows = await this.direct<{ id: string }>(
      "DELETE FROM gw_replicas WHERE id = $1 AND ($2::float8 IS NULL OR " +
        "heartbeat_at < clock_timestamp() - make_interval(secs => $2::float8 / 1000)) RETURNING id",
      [id, opts.ifOlderThanMs ?? null],
    );
    return rows.length > 0;
  }

  // --- lifecycle -------------------------------------------------------------------------

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.writer.close();
    const l = this.listener;
    this.listener = null;
    this.watchers.clear();
    await l?.stop();
    await this.pool.end().catch(() => undefined);
  }

  private write<T>(urgent: boolean, sync: boolean, run: WriteRun<T>): Promise<T> {
    if (this.closed) return Promise.reject(storeClosed());
    return this.writer.enqueue(run, { urgent, sync });
  }

  /** A read, after every write made before it. */
  private async read<R extends pg.QueryResultRow>(sql: string, params: unknown[]): Promise<R[]> {
    if (this.closed) throw storeClosed();
    await this.writer.settled();
    return this.direct<R>(sql, params);
  }

  /** A query outside the write queue (reads, replica heartbeats). */
  private async direct<R extends pg.QueryResultRow>(
    sql: string,
    params: unknown[] = [],
  ): Promise<R[]> {
    if (this.closed) throw storeClosed();
    try {
      return (await this.pool.query<R>(sql, params)).rows;
    } catch (err) {
      throw this.readFailed(err);
    }
  }

  private readFailed(err: unknown): GwError {
    if (this.closed) return storeClosed();
    return storeUnavailable(
      `cannot read the session store (${this.target.where}): ${scrubSecrets(errMessage(err), this.target)}`,
      {
        hint: `Check that PostgreSQL at ${this.target.host}:${this.target.port} is up and reachable.`,
        cause: err,
      },
    );
  }
}

/** STATEMENT_COLUMNS' values as $1..$14 with their types (INSERT ... SELECT needs them). */
const STATEMENT_CASTS =
  "$1::text, $2::integer, $3::bigint, $4::float8, $5::text, $6::text, $7::text, $8::bigint, " +
  "$9::text, $10::text, $11::text, $12::integer, $13::text, $14::text";

/**
 * An event and (when $22) its statement row, in one statement: both or neither. The checks
 * say why nothing was written; a duplicate another replica inserts concurrently still fails on
 * the primary key (and the write queue refuses just this write).
 */
const APPEND_EVENT_SQL =
  "WITH chk AS (SELECT s.ended_at IS NULL AND s.pruned_at IS NULL AS open, " +
  "EXISTS (SELECT 1 FROM events e WHERE e.session_id = $1 AND e.seq = $2) AS ev_taken, " +
  "($22::boolean AND EXISTS (SELECT 1 FROM statements t WHERE t.session_id = $8 " +
  "AND t.seq = $9::integer)) AS st_taken, " +
  "($22::boolean AND NOT EXISTS (SELECT 1 FROM sessions s2 WHERE s2.id = $8)) AS st_orphan " +
  "FROM sessions s WHERE s.id = $1), " +
  "ok AS (SELECT 1 FROM chk WHERE open AND NOT ev_taken AND NOT st_taken AND NOT st_orphan), " +
  `ev AS (INSERT INTO events (${EVENT_COLUMNS}) SELECT $1::text, $2::integer, $3::text, ` +
  "$4::bigint, $5::text, $6::text, $7::text FROM ok RETURNING 1), " +
  `st AS (INSERT INTO statements (${STATEMENT_COLUMNS}) SELECT ` +
  "$8::text, $9::integer, $10::bigint, $11::float8, $12::text, $13::text, $14::text, " +
  "$15::bigint, $16::text, $17::text, $18::text, $19::integer, $20::text, $21::text " +
  "FROM ok WHERE $22::boolean RETURNING 1) " +
  "SELECT chk.open, chk.ev_taken, chk.st_taken, chk.st_orphan, " +
  "(SELECT count(*) FROM ev)::integer AS n FROM (SELECT 1) AS one LEFT JOIN chk ON true";

/**
 * Inside a write: locks the request and reads it as committed after the lock (a decision
 * another replica committed while we waited included), if it is still pending (at `at`).
 */
async function pendingApproval(
  c: pg.ClientBase,
  id: string,
  at?: number,
): Promise<ApprovalRequest> {
  // Two statements: the lock waits for a racing replica's transaction, and only a statement
  // started after it sees that transaction's decisions.
  const locked = await c.query("SELECT 1 FROM approvals WHERE id = $1 FOR UPDATE", [id]);
  if (locked.rowCount === 0) throw approvalNotFound(id);
  const r = await c.query<PgApprovalRow>(
    `SELECT ${APPROVAL_SELECT} FROM approvals a WHERE a.id = $1`,
    [id],
  );
  const row = r.rows[0]!;
  const a = toApproval(row, row.decisions);
  if (a.status !== "pending") throw approvalNotPending(id, a.status);
  if (at !== undefined && at >= a.expiresAt) throw approvalExpired(id);
  return a;
}
