import { ChainBuilder, headerHash, sqlSha256, type EventFields } from "../audit/chain.js";
import { auditUnavailable, auditWriteFailed } from "../audit/errors.js";
import { DEFAULT_PREVIEW, trimPreview } from "../audit/preview.js";
import {
  DEFAULT_ASYNC_BUFFER,
  DEFAULT_AUDIT_MODE,
  WriteGate,
  createSeal,
  type AuditService,
  type RecorderAudit,
} from "../audit/service.js";
import type { Identity } from "../identity/principal.js";
import type { SessionHooks } from "../protocols/postgres/session.js";
import type { CompletedStatement } from "../protocols/postgres/statement-tracker.js";
import {
  zeroCounts,
  type ApprovalStatus,
  type AuditEvent,
  type ResultPreview,
  type SessionProtocol,
  type SessionRecord,
  type SessionStore,
  type StatementDecision,
  type StatementApproval,
  type StatementEvent,
} from "../store/types.js";
import type { Logger } from "./logger.js";

/** What the session tells the recorder before a statement goes to the target. */
export interface StatementStartInfo {
  sql: string;
  protocol: "simple" | "extended";
}

/** A completed statement, with what the session adds for recording (both optional). */
export type RecordedStatement = CompletedStatement & {
  /** The first rows / KiB of the result as the client received it (masked), text form. */
  preview?: ResultPreview;
  /** A held statement's approval request. */
  approvalId?: string;
};

export interface RecordingHooks extends SessionHooks {
  /**
   * A statement is about to be sent to the target. Its start event is written first: with
   * audit strict the returned promise settles once it is on disk; with async it is buffered
   * and nothing is returned (unless an earlier event is still being prepared). Never throws:
   * it rejects (GwError audit_unavailable / audit_write_failed) when the statement cannot be
   * recorded, and the statement must then not run, and the session ends.
   */
  beforeStatement(info: StatementStartInfo): Promise<void> | void;
  onStatement(s: RecordedStatement): Promise<void> | void;
}

/**
 * The hooks that turn a protocol session into a session record and its tamper-evident chain
 * of events (src/audit/chain.ts). The record is written before the first statement may run;
 * a failed write closes the session; when the session ends its chain is sealed and signed.
 */
export function recordingHooks(opts: {
  store: SessionStore;
  sessionId: string;
  identity: Identity;
  connection: string;
  clientAddress: string | null;
  log: Logger;
  onStarted?: () => void;
  /** The client's agent label (`?agent=` on the tunnel URL). */
  agentLabel?: string | null;
  /** The broker's audit settings and key; without it, chains are written but not signed. */
  audit?: AuditService | RecorderAudit;
  /** The connection's type (default postgres). */
  protocol?: SessionProtocol;
}): RecordingHooks {
  const r = openRecorder(opts);
  return {
    onStart: (info) => r.start(info.applicationName),
    beforeStatement: (info) => {
      try {
        return r.beforeStatement(info);
      } catch (err) {
        return Promise.reject(err);
      }
    },
    onStatement: (s) => r.statement(s),
    onEnd: (info) => r.end(info),
    log: (level, msg, fields) => opts.log.log(level, msg, fields),
  };
}

/** The recorder of one session, for protocols that record events rather than statements. */
export function openRecorder(opts: Parameters<typeof recordingHooks>[0]): SessionRecorder {
  const audit: RecorderAudit =
    opts.audit === undefined
      ? {
          mode: DEFAULT_AUDIT_MODE,
          preview: { ...DEFAULT_PREVIEW },
          signer: null,
          gate: new WriteGate(DEFAULT_ASYNC_BUFFER),
          now: Date.now,
        }
      : "forConnection" in opts.audit
        ? opts.audit.forConnection(opts.connection)
        : opts.audit;
  return new SessionRecorder(opts, audit);
}

/** The searchable row of an ssh command or http request (the rest is filled in). */
export type RowOf = Pick<
  StatementEvent,
  "durationMs" | "sql" | "protocol" | "commandTag" | "errorMessage"
> & { decision: StatementDecision };

interface OpenStart {
  seq: number;
  sql: string;
  protocol: "simple" | "extended";
}

/** How one append went: enqueued at once (in call order) or after earlier ones. */
interface Appended {
  sync: boolean;
  /** Settles once the event is linked and handed to the store (never rejects). */
  linked: Promise<void>;
  /** Settles once the store has committed it. */
  committed: Promise<void>;
}

export class SessionRecorder {
  private record: SessionRecord | null = null;
  private chain: ChainBuilder | null = null;
  private statementNo = 0;
  private starting: Promise<void> | null = null;
  private readonly counts = zeroCounts();
  /** Starts not yet matched with a completion, oldest first. */
  private readonly openStarts: OpenStart[] = [];
  /** Appends wait behind this while an earlier one is still being prepared. */
  private ordering: Promise<void> | null = null;
  private failed: unknown = null;

  constructor(
    private readonly opts: Parameters<typeof recordingHooks>[0],
    private readonly audit: RecorderAudit,
  ) {}

  /** Makes the session record; once. */
  start(applicationName: string | null): Promise<void> {
    this.starting ??= this.create(applicationName);
    return this.starting;
  }

  /** Whether start() was called (the record may still be on its way). */
  get started(): boolean {
    return this.starting !== null;
  }

  private async create(applicationName: string | null): Promise<void> {
    const { identity } = this.opts;
    const rec: SessionRecord = {
      id: this.opts.sessionId,
      identity: { oid: identity.oid, name: identity.name, type: identity.type, upn: identity.upn },
      connection: this.opts.connection,
      protocol: this.opts.protocol ?? "postgres",
      applicationName,
      clientAddress: this.opts.clientAddress,
      startedAt: this.audit.now(),
      endedAt: null,
      endReason: null,
      endDetail: null,
      bytesIn: 0,
      bytesOut: 0,
      statementCount: 0,
    };
    if (identity.upn === undefined) delete rec.identity.upn;
    if (this.opts.agentLabel) rec.agentLabel = this.opts.agentLabel;
    if (this.audit.brokerId !== undefined) rec.brokerId = this.audit.brokerId;
    await this.opts.store.createSession(rec);
    this.record = rec;
    this.chain = new ChainBuilder(rec.id, headerHash(rec));
    this.opts.log.log("info", "session started", {
      applicationName,
      ...(rec.agentLabel ? { agent: rec.agentLabel } : {}),
      audit: this.audit.mode,
    });
    this.opts.onStarted?.();
  }

  beforeStatement(info: StatementStartInfo): Promise<void> | void {
    const strict = this.audit.mode === "strict";
    if (this.record === null) throw auditUnavailable("the session has not been recorded yet");
    if (this.failed !== null) {
      throw auditUnavailable("recording this session failed earlier; it must end", this.failed);
    }
    this.audit.gate.check(this.audit.mode);
    const at = this.audit.now();
    const startedAt = this.record.startedAt;
    const a = this.append(
      null,
      () => ({
        type: "statement_start",
        at,
        offsetMs: at - startedAt,
        sql: info.sql,
        protocol: info.protocol,
      }),
      (event) => {
        this.openStarts.push({ seq: event.seq, sql: info.sql, protocol: info.protocol });
        return undefined;
      },
      strict,
    );
    if (strict) return a.committed.catch((err: unknown) => Promise.reject(auditWriteFailed(err)));
    a.committed.catch(() => undefined); // the gate and `failed` carry it
    return a.sync ? undefined : a.linked;
  }

  statement(s: RecordedStatement): Promise<void> {
    if (this.record === null)
      return Promise.reject(auditUnavailable("the session was not recorded"));
    if (this.failed !== null) {
      return Promise.reject(
        auditUnavailable("recording this session failed earlier; it must end", this.failed),
      );
    }
    const n = ++this.statementNo;
    this.counts[s.decision]++;
    const startedAt = this.record.startedAt;
    const preview = trimPreview(s.preview, this.audit.preview);
    const approval = s.approvalId === undefined ? null : this.lookupApproval(s.approvalId);
    const a = this.append(
      approval,
      (found) => {
        // A statement that ran has a start event; one policy refused never reached the target.
        const startSeq =
          s.decision === "allowed" || s.decision === "approved" ? this.matchStart(s) : null;
        return {
          type: "statement",
          at: s.at,
          offsetMs: s.at - startedAt,
          n,
          startSeq,
          sql: startSeq === null ? s.sql : null,
          sqlSha256: sqlSha256(s.sql),
          protocol: s.protocol,
          durationMs: s.durationMs,
          commandTag: s.commandTag,
          rows: s.rows,
          errorCode: s.errorCode,
          errorMessage: s.errorMessage,
          decision: s.decision,
          approval: found,
          preview,
        };
      },
      (event, found) => {
        const row: StatementEvent = {
          sessionId: this.opts.sessionId,
          seq: n,
          at: s.at,
          durationMs: s.durationMs,
          sql: s.sql,
          protocol: s.protocol,
          commandTag: s.commandTag,
          rows: s.rows,
          errorCode: s.errorCode,
          errorMessage: s.errorMessage,
          decision: s.decision,
          eventSeq: event.seq,
        };
        // The preview stays in the event only: the row is the searchable copy, and previews
        // are not searched (they would double the largest part of the record).
        if (found) row.approval = found;
        return row;
      },
      false,
    );
    return a.committed;
  }

  /**
   * Appends an ssh or http event, with the statement row that makes it searchable (an ssh
   * command, an http request) when `row` gives one. `durable`: committed and synced before the
   * promise settles. Rejects when the session was not recorded or recording failed earlier.
   */
  event(
    fields: Extract<EventFields, { type: "ssh" | "http" }>,
    row?: RowOf,
    durable = false,
  ): Promise<void> {
    if (this.record === null)
      return Promise.reject(auditUnavailable("the session was not recorded"));
    if (this.failed !== null) {
      return Promise.reject(
        auditUnavailable("recording this session failed earlier; it must end", this.failed),
      );
    }
    let n = 0;
    if (row) {
      n = ++this.statementNo;
      this.counts[row.decision]++;
    }
    return this.append(
      null,
      () => fields,
      (event) =>
        row
          ? {
              sessionId: this.opts.sessionId,
              seq: n,
              at: fields.at,
              eventSeq: event.seq,
              rows: null,
              errorCode: null,
              ...row,
            }
          : undefined,
      durable,
    ).committed;
  }

  /** When the session started (epoch ms), once it is recorded. */
  get startedAt(): number | null {
    return this.record?.startedAt ?? null;
  }

  /** Statement rows written so far. */
  get statements(): number {
    return this.statementNo;
  }

  now(): number {
    return this.audit.now();
  }

  end(info: {
    reason: SessionRecord["endReason"] & string;
    detail: string | null;
    bytesIn: number;
    bytesOut: number;
    statements: number;
  }): void {
    const { reason, detail, bytesIn, bytesOut, statements } = info;
    this.opts.log.log("info", "session ended", { reason, detail, bytesIn, bytesOut, statements });
    const rec = this.record;
    if (rec === null) {
      // Ended while its record was being made: seal it once it is there.
      if (this.starting !== null)
        void this.starting.then(
          () => this.end(info),
          () => undefined,
        );
      return;
    }
    const seal = () => {
      const end = {
        endedAt: this.audit.now(),
        endReason: reason,
        endDetail: detail,
        bytesIn,
        bytesOut,
        statementCount: statements,
        decisions: { ...this.counts },
      };
      const chain = this.chain!;
      const signed =
        this.audit.signer === null
          ? undefined
          : createSeal(
              this.audit.signer,
              { ...rec, ...end },
              { headHash: chain.headHash, eventCount: chain.length, sealedAt: end.endedAt },
            );
      this.opts.store
        .endSession(rec.id, signed ? { ...end, seal: signed } : end)
        .catch((err: unknown) =>
          this.opts.log.log("error", "could not record the end of a session", {
            error: String(err),
          }),
        );
    };
    // After every event: the seal covers the whole chain.
    if (this.ordering === null) seal();
    else void this.ordering.then(seal);
  }

  // --- internals -----------------------------------------------------------------------

  /**
   * Links the next event and hands it to the store, in call order. `prep` (an approval
   * lookup) delays this append, and every later one, until it settles; `fields` and `row`
   * run when the event is linked, so they see the session as it was at that point.
   */
  private append<T>(
    prep: Promise<T> | null,
    fields: (prepared: T | null) => EventFields,
    row: (event: AuditEvent, prepared: T | null) => StatementEvent | undefined,
    durable: boolean,
  ): Appended {
    const write = (prepared: T | null): Promise<void> => {
      const { event } = this.chain!.next(fields(prepared));
      const statement = row(event, prepared);
      const p = this.opts.store.appendEvent(event, {
        ...(statement ? { statement } : {}),
        durable,
      });
      this.audit.gate.track(p);
      p.catch((err: unknown) => {
        if (this.failed === null) {
          this.failed = err;
          this.opts.log.log("error", "recording an event failed; the session must end", {
            seq: event.seq,
            error: String(err),
          });
        }
      });
      return p;
    };
    if (this.ordering === null && prep === null) {
      return { sync: true, linked: Promise.resolve(), committed: write(null) };
    }
    const before = this.ordering ?? Promise.resolve();
    let linkedNow!: () => void;
    const linked = new Promise<void>((resolve) => (linkedNow = resolve));
    // Neither `before` (an earlier `linked`) nor `prep` (an approval lookup) rejects.
    const committed = Promise.all([before, prep]).then(([, prepared]) => {
      try {
        return write(prepared ?? null);
      } finally {
        linkedNow();
      }
    });
    this.ordering = linked;
    void linked.then(() => {
      if (this.ordering === linked) this.ordering = null;
    });
    return { sync: false, linked, committed };
  }

  /** The oldest start with this text; starts before it never completed (skipped after an error). */
  private matchStart(s: RecordedStatement): number | null {
    const i = this.openStarts.findIndex((o) => o.sql === s.sql && o.protocol === s.protocol);
    if (i < 0) return null;
    const seq = this.openStarts[i]!.seq;
    this.openStarts.splice(0, i + 1);
    return seq;
  }

  private lookupApproval(id: string): Promise<StatementApproval> {
    return this.opts.store.getApproval(id).then(
      (a) =>
        a === null
          ? { id, status: "unknown" as const, decisions: [] }
          : {
              id,
              status: a.status as ApprovalStatus,
              decisions: a.decisions.map((d) => ({
                by: { oid: d.by.oid, name: d.by.name },
                decision: d.decision,
                reason: d.reason,
                at: d.at,
              })),
            },
      () => ({ id, status: "unknown" as const, decisions: [] }),
    );
  }
}
