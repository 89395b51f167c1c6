import {
  approvalDuplicate,
  approvalExpired,
  approvalNotFound,
  approvalNotPending,
} from "../approvals/errors.js";
import { storeClosed, storeWriteFailed } from "./errors.js";
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

/**
 * A SessionStore that keeps everything in this process, for `store: { memory: true }` and
 * tests. It follows the same contract as the SQLite store (the shared store suite checks
 * both): writes apply at once and resolve on the next microtask; records are copied in and
 * out, so callers cannot change what was recorded.
 */
export class MemoryStore implements SessionStore {
  private readonly sessions = new Map<string, SessionRecord>(); // in creation order
  private readonly statements = new Map<string, Map<number, StatementEvent>>();
  private readonly events = new Map<string, Map<number, AuditEvent>>();
  private readonly approvals = new Map<string, ApprovalRequest>(); // in creation order
  private closed = false;

  async createSession(rec: SessionRecord): Promise<void> {
    this.ensureOpen();
    if (this.sessions.has(rec.id)) throw storeWriteFailed(`session ${rec.id} already exists`);
    this.sessions.set(rec.id, copySession(rec));
    this.statements.set(rec.id, new Map());
    this.events.set(rec.id, new Map());
  }

  async endSession(id: string, end: SessionEnd): Promise<void> {
    this.ensureOpen();
    const s = this.sessions.get(id);
    if (s === undefined) throw storeWriteFailed(`cannot end session ${id}: it does not exist`);
    if (s.endedAt !== null) throw storeWriteFailed(`session ${id} has already ended`);
    s.endedAt = end.endedAt;
    s.endReason = end.endReason;
    s.endDetail = end.endDetail;
    s.bytesIn = end.bytesIn;
    s.bytesOut = end.bytesOut;
    s.statementCount = end.statementCount;
    if (end.decisions !== undefined) s.decisions = { ...end.decisions };
    if (end.seal !== undefined) s.seal = { ...end.seal };
  }

  async addStatement(ev: StatementEvent): Promise<void> {
    this.ensureOpen();
    this.statementList(ev).set(ev.seq, copyStatement(ev));
  }

  async appendEvent(ev: AuditEvent, opts: AppendOptions = {}): Promise<void> {
    this.ensureOpen();
    const s = this.sessions.get(ev.sessionId);
    const list = this.events.get(ev.sessionId);
    if (s === undefined || list === undefined) {
      throw storeWriteFailed(
        `cannot record an event for session ${ev.sessionId}: it does not exist`,
      );
    }
    if (s.endedAt !== null || s.prunedAt !== undefined) {
      throw storeWriteFailed(`cannot record an event for session ${ev.sessionId}: it has ended`);
    }
    if (list.has(ev.seq))
      throw storeWriteFailed(`event ${ev.seq} of session ${ev.sessionId} is already recorded`);
    const statements =
      opts.statement === undefined ? undefined : this.statementList(opts.statement);
    list.set(ev.seq, { ...ev });
    if (opts.statement !== undefined)
      statements!.set(opts.statement.seq, copyStatement(opts.statement));
  }

  async listEvents(sessionId: string): Promise<AuditEvent[]> {
    this.ensureOpen();
    const list = this.events.get(sessionId);
    if (list === undefined) return [];
    return [...list.values()].sort((a, b) => a.seq - b.seq).map((e) => ({ ...e }));
  }

  async pruneSessions(endedBefore: number, opts: { now: number; limit: number }): Promise<number> {
    this.ensureOpen();
    const due = [...this.sessions.values()]
      .filter((s) => s.endedAt !== null && s.endedAt < endedBefore && s.prunedAt === undefined)
      .sort((a, b) => a.endedAt! - b.endedAt!)
      .slice(0, Math.max(1, Math.floor(opts.limit)));
    for (const s of due) {
      s.prunedAt = opts.now;
      this.statements.set(s.id, new Map());
      this.events.set(s.id, new Map());
    }
    return due.length;
  }

  /** The session's statements, checked to have room for this one. */
  private statementList(ev: StatementEvent): Map<number, StatementEvent> {
    const list = this.statements.get(ev.sessionId);
    if (list === undefined) {
      throw storeWriteFailed(
        `cannot record a statement for session ${ev.sessionId}: it does not exist`,
      );
    }
    if (list.has(ev.seq))
      throw storeWriteFailed(`statement ${ev.seq} of session ${ev.sessionId} is already recorded`);
    return list;
  }

  async listSessions(q: SessionQuery): Promise<SessionRecord[]> {
    this.ensureOpen();
    const all = [...this.sessions.values()];
    const out: SessionRecord[] = [];
    // Newest first; among equal start times the most recently created first (as in SQLite).
    for (let i = all.length - 1; i >= 0; i--) {
      const s = all[i]!;
      if (q.oid !== undefined && s.identity.oid !== q.oid) continue;
      if (q.connection !== undefined && s.connection !== q.connection) continue;
      if (q.user !== undefined && !userMatches(s, q.user)) continue;
      if (q.agent !== undefined && s.agentLabel !== q.agent) continue;
      if (q.application !== undefined && s.applicationName !== q.application) continue;
      if (q.since !== undefined && s.startedAt < q.since) continue;
      if (q.until !== undefined && s.startedAt >= q.until) continue;
      if (q.open !== undefined && (s.endedAt === null) !== q.open) continue;
      if (q.idPrefix !== undefined && !s.id.startsWith(q.idPrefix)) continue;
      if (q.brokerId !== undefined && s.brokerId !== q.brokerId) continue;
      if (q.grep !== undefined && q.grep !== "") {
        const list = this.statements.get(s.id);
        if (!list || ![...list.values()].some((st) => contains(st.sql, q.grep!))) continue;
      }
      out.push(s);
    }
    out.sort((a, b) => b.startedAt - a.startedAt); // stable: keeps the creation order of ties
    return out.slice(0, effectiveLimit(q.limit)).map(copySession);
  }

  async getSession(id: string): Promise<SessionRecord | null> {
    this.ensureOpen();
    const s = this.sessions.get(id);
    return s === undefined ? null : copySession(s);
  }

  async listStatements(sessionId: string, q: StatementQuery = {}): Promise<StatementEvent[]> {
    this.ensureOpen();
    const list = this.statements.get(sessionId);
    if (list === undefined) return [];
    let out = [...list.values()].sort((a, b) => a.seq - b.seq);
    if (q.grep !== undefined && q.grep !== "") out = out.filter((st) => contains(st.sql, q.grep!));
    if (q.limit !== undefined) out = out.slice(0, Math.max(0, Math.floor(q.limit)));
    return out.map(copyStatement);
  }

  async createApproval(req: ApprovalRequest): Promise<void> {
    this.ensureOpen();
    if (this.approvals.has(req.id))
      throw storeWriteFailed(`approval request ${req.id} already exists`);
    if (req.status !== "pending" || req.decisions.length > 0 || req.decidedAt !== null) {
      throw storeWriteFailed(
        `approval request ${req.id} must be created pending, with no decisions`,
      );
    }
    this.approvals.set(req.id, structuredClone(req));
  }

  async getApproval(id: string): Promise<ApprovalRequest | null> {
    this.ensureOpen();
    const a = this.approvals.get(id);
    return a === undefined ? null : structuredClone(a);
  }

  async listApprovals(q: ApprovalQuery): Promise<ApprovalRequest[]> {
    this.ensureOpen();
    const out = [...this.approvals.values()]
      .reverse()
      .filter((a) => q.status === undefined || a.status === q.status);
    out.sort((a, b) => b.createdAt - a.createdAt); // stable: newest created first among ties
    return out.slice(0, effectiveLimit(q.limit)).map((a) => structuredClone(a));
  }

  async recordDecision(id: string, decision: ApprovalDecision): Promise<ApprovalRequest> {
    this.ensureOpen();
    const a = this.pendingApproval(id, decision.at);
    if (a.decisions.some((d) => d.by.oid === decision.by.oid)) {
      throw approvalDuplicate(id, decision.by.name);
    }
    a.decisions.push(structuredClone(decision));
    a.status = statusAfterDecisions(a.decisions, a.minApprovals);
    if (a.status !== "pending") a.decidedAt = decision.at;
    return structuredClone(a);
  }

  async setStatus(
    id: string,
    status: "expired" | "cancelled",
    change: { at: number; detail: string | null },
  ): Promise<ApprovalRequest> {
    this.ensureOpen();
    const a = this.pendingApproval(id);
    a.status = status;
    a.decidedAt = change.at;
    a.statusDetail = change.detail;
    return structuredClone(a);
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  /** The stored request, if it exists and is still pending (at `at`, when given). */
  private pendingApproval(id: string, at?: number): ApprovalRequest {
    const a = this.approvals.get(id);
    if (a === undefined) throw approvalNotFound(id);
    if (a.status !== "pending") throw approvalNotPending(id, a.status);
    if (at !== undefined && at >= a.expiresAt) throw approvalExpired(id);
    return a;
  }

  private ensureOpen(): void {
    if (this.closed) throw storeClosed();
  }
}

function copySession(rec: SessionRecord): SessionRecord {
  const identity: SessionRecord["identity"] = {
    oid: rec.identity.oid,
    name: rec.identity.name,
    type: rec.identity.type,
  };
  if (rec.identity.upn !== undefined) identity.upn = rec.identity.upn;
  const out: SessionRecord = { ...rec, identity };
  // As SQLite: optional fields are absent, not null or undefined, when unset.
  for (const k of ["agentLabel", "decisions", "seal", "prunedAt", "brokerId"] as const) {
    if (out[k] === undefined || out[k] === null) delete out[k];
  }
  if (out.decisions) out.decisions = { ...out.decisions };
  if (out.seal) out.seal = { ...out.seal };
  return out;
}

function copyStatement(ev: StatementEvent): StatementEvent {
  const out: StatementEvent = structuredClone({ ...ev, decision: ev.decision ?? "allowed" });
  for (const k of ["eventSeq", "approval", "preview"] as const) {
    if (out[k] === undefined || out[k] === null) delete out[k];
  }
  return out;
}

/** Case-insensitive substring, as SQLite's LIKE and trigram index (ASCII). */
function contains(text: string, part: string): boolean {
  return text.toLowerCase().includes(part.toLowerCase());
}

function userMatches(s: SessionRecord, user: string): boolean {
  const u = user.toLowerCase();
  const upn = s.identity.upn?.toLowerCase();
  return (
    s.identity.oid === user ||
    upn === u ||
    s.identity.name.toLowerCase() === u ||
    (upn !== undefined && upn.startsWith(u + "@"))
  );
}
