import type {
  AuditEvent,
  ResultPreview,
  SessionRecord,
  StatementApproval,
  StatementDecision,
  StatementEvent,
  StatementProtocol,
} from "../store/types.js";
import type { EventBody, StatementBody, StatementStartBody } from "./chain.js";

/**
 * A session as `gw replay` plays it: its statements in the order they started, each with its
 * time offset, duration, outcome, decision and result preview. Built from the chain's events
 * (what was signed); a session recorded before events existed falls back to its statements.
 */
export interface ReplayStatement {
  /** The statement's number in the session; null for one that started but never completed. */
  n: number | null;
  /** The chain event that records it (its completion, else its start). */
  eventSeq: number | null;
  /** Its statement_start event, when it went to the target. */
  startSeq: number | null;
  /** ms since the session started. */
  offsetMs: number;
  at: number;
  durationMs: number | null;
  sql: string;
  protocol: StatementProtocol;
  /** completed; error (the target refused); refused (policy); unfinished (no result recorded). */
  outcome: "completed" | "error" | "refused" | "unfinished";
  decision: StatementDecision | null;
  commandTag: string | null;
  rows: number | null;
  errorCode: string | null;
  errorMessage: string | null;
  approval: StatementApproval | null;
  preview: ResultPreview | null;
}

export interface Replay {
  session: SessionRecord;
  statements: ReplayStatement[];
  /** ms from the session's start to its end (or its last statement's end while open). */
  durationMs: number;
}

export function buildReplay(
  session: SessionRecord,
  events: AuditEvent[],
  statements: StatementEvent[],
): Replay {
  const out = events.length > 0 ? fromEvents(session, events) : fromStatements(session, statements);
  const order = (s: ReplayStatement) => s.startSeq ?? s.eventSeq ?? 0;
  out.sort((a, b) => a.offsetMs - b.offsetMs || order(a) - order(b));
  const lastEnd = out.reduce((m, s) => Math.max(m, s.offsetMs + (s.durationMs ?? 0)), 0);
  const durationMs =
    session.endedAt !== null ? Math.max(session.endedAt - session.startedAt, lastEnd) : lastEnd;
  return { session, statements: out, durationMs };
}

function fromEvents(session: SessionRecord, events: AuditEvent[]): ReplayStatement[] {
  const starts = new Map<number, StatementStartBody>();
  const done: StatementBody[] = [];
  for (const e of events) {
    let body: EventBody;
    try {
      body = JSON.parse(e.body) as EventBody;
    } catch {
      continue;
    }
    if (body.type === "statement_start") starts.set(body.seq, body);
    else if (body.type === "statement") done.push(body);
  }
  const out: ReplayStatement[] = [];
  for (const b of done) {
    const start = b.startSeq === null ? undefined : starts.get(b.startSeq);
    if (b.startSeq !== null) starts.delete(b.startSeq);
    const refused = b.decision === "blocked" || b.decision === "denied";
    // Placed where it started (the start event's time, else the completion's own).
    const at = start?.at ?? b.at;
    out.push({
      n: b.n,
      eventSeq: b.seq,
      startSeq: b.startSeq,
      offsetMs: at - session.startedAt,
      at,
      durationMs: b.durationMs,
      sql: b.sql ?? start?.sql ?? "",
      protocol: b.protocol,
      outcome: refused ? "refused" : b.errorCode !== null ? "error" : "completed",
      decision: b.decision,
      commandTag: b.commandTag,
      rows: b.rows,
      errorCode: b.errorCode,
      errorMessage: b.errorMessage,
      approval: b.approval,
      preview: b.preview,
    });
  }
  for (const s of starts.values()) {
    out.push({
      n: null,
      eventSeq: s.seq,
      startSeq: s.seq,
      offsetMs: s.at - session.startedAt,
      at: s.at,
      durationMs: null,
      sql: s.sql,
      protocol: s.protocol,
      outcome: "unfinished",
      decision: null,
      commandTag: null,
      rows: null,
      errorCode: null,
      errorMessage: null,
      approval: null,
      preview: null,
    });
  }
  return out;
}

function fromStatements(session: SessionRecord, statements: StatementEvent[]): ReplayStatement[] {
  return statements.map((st) => {
    const decision = st.decision ?? "allowed";
    const refused = decision === "blocked" || decision === "denied";
    return {
      n: st.seq,
      eventSeq: st.eventSeq ?? null,
      startSeq: null,
      offsetMs: st.at - session.startedAt,
      at: st.at,
      durationMs: st.durationMs,
      sql: st.sql,
      protocol: st.protocol,
      outcome: refused ? "refused" : st.errorCode !== null ? "error" : "completed",
      decision,
      commandTag: st.commandTag,
      rows: st.rows,
      errorCode: st.errorCode,
      errorMessage: st.errorMessage,
      approval: st.approval ?? null,
      preview: st.preview ?? null,
    };
  });
}

/** "approved by Carol", "denied by Dan: not now", "blocked", "allowed", "no result". */
export function decisionLabel(s: ReplayStatement): string {
  if (s.decision === null) return "no result";
  if (s.decision === "approved" || s.decision === "denied") {
    const deciders = (s.approval?.decisions ?? []).filter(
      (d) => d.decision === (s.decision === "approved" ? "approve" : "deny"),
    );
    const who = deciders.map((d) => d.by.name).join(", ");
    const reason = s.decision === "denied" ? deciders.find((d) => d.reason)?.reason : undefined;
    const status =
      s.decision === "denied" && s.approval && s.approval.status !== "denied"
        ? ` (${s.approval.status})`
        : "";
    return `${s.decision}${who ? ` by ${who}` : ""}${reason ? `: ${reason}` : ""}${status}`;
  }
  return s.decision;
}
