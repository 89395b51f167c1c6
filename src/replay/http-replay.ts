import type { HttpEvent } from "../protocols/http/session.js";
import type { AuditEvent, SessionRecord } from "../store/types.js";
import { bodiesOf } from "./recorded-events.js";

/**
 * An http session as `gw replay` shows it: its requests (and WebSockets) in the order they
 * arrived, each with its time in the session and everything recorded about it.
 */
export type HttpRecord = Exclude<HttpEvent, { kind: "request_start" }>;

export interface HttpEntry {
  /** The chain event's seq (the request_start's, for one that never completed). */
  seq: number;
  /** ms since the session started, when the request arrived. */
  ms: number;
  event: HttpRecord;
  /** Sent to the target, but no outcome was recorded (the session or broker ended first). */
  unfinished: boolean;
}

export interface HttpReplay {
  session: SessionRecord;
  requests: HttpEntry[];
  durationMs: number;
}

export function buildHttpReplay(session: SessionRecord, events: readonly AuditEvent[]): HttpReplay {
  const starts = new Map<
    number,
    { seq: number; ms: number; event: Extract<HttpEvent, { kind: "request_start" }> }
  >();
  const requests: HttpEntry[] = [];
  for (const b of bodiesOf(events, "http")) {
    // A request is recorded when it completes; it is placed where it arrived.
    const ms =
      typeof b.event.t === "number"
        ? Math.round(b.event.t * 1000)
        : typeof b.event.at === "number"
          ? b.event.at - session.startedAt
          : b.offsetMs;
    if (b.event.kind === "request_start")
      starts.set(b.event.seq, { seq: b.seq, ms, event: b.event });
    else {
      if (b.event.kind === "request") starts.delete(b.event.seq);
      requests.push({ seq: b.seq, ms, event: b.event, unfinished: false });
    }
  }
  // Started but never completed: what was sent is known, its outcome is not.
  for (const s of starts.values()) {
    const e = s.event;
    requests.push({
      seq: s.seq,
      ms: s.ms,
      unfinished: true,
      event: {
        kind: "request",
        t: e.t,
        seq: e.seq,
        method: e.method,
        path: e.path,
        query: e.query,
        status: null,
        decision: e.decision,
        at: e.at,
        ttfbMs: null,
        durationMs: 0,
        requestBytes: 0,
        responseBytes: 0,
        requestContentType: null,
        responseContentType: null,
        masked: false,
      },
    });
  }
  requests.sort((a, b) => a.ms - b.ms || a.event.seq - b.event.seq || a.seq - b.seq);
  const lastEnd = requests.reduce((m, r) => Math.max(m, r.ms + r.event.durationMs), 0);
  const durationMs =
    session.endedAt !== null ? Math.max(session.endedAt - session.startedAt, lastEnd) : lastEnd;
  return { session, requests, durationMs };
}
