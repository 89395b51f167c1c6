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
  type SessionQuery,
  type SessionRecord,
  type SessionStore,
  type StatementEvent,
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
  private readonly approvals = new Map<string, ApprovalRequest>(); // in creation order
  private closed = false;

  async createSession(rec: SessionRecord): Promise<void> {
    this.ensureOpen();
    if (this.sessions.has(rec.id)) throw storeWriteFailed(`session ${rec.id} already exists`);
    this.sessions.set(rec.id, copySession(rec));
    this.statements.set(rec.id, new Map());
  }

  async endSession(
    id: string,
    end: Pick<
      SessionRecord,
      "endedAt" | "endReason" | "endDetail" | "bytesIn" | "bytesOut" | "statementCount"
    >,
  ): Promise<void> {
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
  }

  async addStatement(ev: StatementEvent): Promise<void> {
    this.ensureOpen();
    const list = this.statements.get(ev.sessionId);
    if (list === undefined) {
      throw storeWriteFailed(
        `cannot record a statement for session ${ev.sessionId}: it does not exist`,
      );
    }
    if (list.has(ev.seq))
      throw storeWriteFailed(`statement ${ev.seq} of session ${ev.sessionId} is already recorded`);
    list.set(ev.seq, { ...ev, decision: ev.decision ?? "allowed" });
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

  async listStatements(sessionId: string): Promise<StatementEvent[]> {
    this.ensureOpen();
    const list = this.statements.get(sessionId);
    if (list === undefined) return [];
    return [...list.values()].sort((a, b) => a.seq - b.seq).map((ev) => ({ ...ev }));
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
  return { ...rec, identity };
}
