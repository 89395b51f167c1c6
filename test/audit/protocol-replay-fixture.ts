/**
 * Synthetic ssh, http and tcp recordings in the format the broker writes them: a session
 * record and its events, chained by ChainBuilder (so the chains are valid), for the replay,
 * transcript, asciicast and player tests.
 */
import { ChainBuilder, eventHash, headerHash } from "../../src/audit/chain.js";
import type { HttpEvent } from "../../src/protocols/http/session.js";
import type { SshEvent } from "../../src/protocols/ssh/events.js";
import type { AuditEvent, SessionProtocol, SessionRecord } from "../../src/store/types.js";

export const T0 = Date.UTC(2026, 0, 15, 9, 30, 0);

export function sessionRecord(
  protocol: SessionProtocol,
  over: Partial<SessionRecord> = {},
): SessionRecord {
  return {
    id: `${protocol === "ssh" ? "5511" : protocol === "http" ? "4477" : "7c90"}a1e2-7b4d-4c1a-9e2f-0a1b2c3d4e5f`,
    identity: { oid: "oid-dana", name: "Dana DBA", type: "user", upn: "dana@example.com" },
    connection: protocol === "ssh" ? "build-box" : protocol === "http" ? "billing-api" : "cache",
    protocol,
    applicationName: protocol === "ssh" ? "OpenSSH_9.6" : null,
    clientAddress: "127.0.0.1:50000",
    startedAt: T0,
    endedAt: T0 + 15_000,
    endReason: "client_closed",
    endDetail: null,
    bytesIn: 1234,
    bytesOut: 5_678_901,
    statementCount: 0,
    ...over,
  };
}

/** The events as the broker chains them: one body per protocol event, `at` from its clock. */
export function chainOf(
  session: SessionRecord,
  type: "ssh" | "http",
  events: readonly (SshEvent | HttpEvent)[],
): AuditEvent[] {
  const chain = new ChainBuilder(session.id, headerHash(session));
  return events.map((event) => {
    const offsetMs = Math.round(event.t * 1000);
    const fields =
      type === "ssh"
        ? { type, at: session.startedAt + offsetMs, offsetMs, event: event as SshEvent }
        : { type, at: session.startedAt + offsetMs, offsetMs, event: event as HttpEvent };
    return chain.next(fields).event;
  });
}

/** Whether `events` link from the session's header hash, each hash covering its body. */
export function chainIsValid(session: SessionRecord, events: AuditEvent[]): boolean {
  let prev = headerHash(session);
  return events.every((e, i) => {
    const ok = e.seq === i + 1 && e.prevHash === prev && eventHash(prev, e.body) === e.hash;
    prev = e.hash;
    return ok;
  });
}

export const CLEAR = "\x1b[2J\x1b[H";

/**
 * A shell on channel 0 (40×6): "A" and an ls, then at 6 s a clear and "B", at 7 s a cursor
 * move and "C", at 9 s a resize to 30×4 and a red "red"; a command on channel 1 (no pty); a
 * blocked command on channel 2; sftp on channel 3 with one write and one failed open; a
 * denied forward; a refused x11 request. The session lasts 15 s.
 */
export function sshEvents(): SshEvent[] {
  const out = (t: number, data: string, channel = 0): SshEvent => ({
    kind: "output",
    t,
    channel,
    stream: "stdout",
    data,
  });
  return [
    {
      kind: "shell",
      t: 0.1,
      channel: 0,
      pty: { term: "xterm-256color", cols: 40, rows: 6 },
      decision: "allowed",
    },
    out(0.2, "A\r\n$ "),
    out(2, "ls\r\nfile-1  file-2\r\n$ "),
    out(6, `${CLEAR}B`),
    // Cursor to row 3, column 10, then "C".
    out(7, "\x1b[3;10HC"),
    { kind: "resize", t: 9, channel: 0, cols: 30, rows: 4 },
    out(9.5, "\r\n\x1b[31mred\x1b[0m"),
    { kind: "exec", t: 10, channel: 1, command: "make test", pty: false, decision: "allowed" },
    out(10.2, "running 3 tests\nok\n", 1),
    { kind: "exit", t: 11, channel: 1, code: 0, signal: null, durationMs: 1000 },
    {
      kind: "exec",
      t: 11.5,
      channel: 2,
      command: "sudo reboot",
      pty: false,
      decision: "blocked",
      reason: "sudo needs a second pair of eyes",
    },
    { kind: "exit", t: 11.5, channel: 2, code: 1, signal: null, durationMs: 0 },
    { kind: "subsystem", t: 12, channel: 3, name: "sftp", decision: "allowed" },
    {
      kind: "sftp",
      t: 12.5,
      channel: 3,
      op: "write",
      path: "/srv/dist.tgz",
      bytes: 1_572_864,
      ok: true,
    },
    {
      kind: "sftp",
      t: 13,
      channel: 3,
      op: "open",
      path: "/etc/shadow",
      mode: "read",
      ok: false,
      error: "Permission denied",
    },
    {
      kind: "forward",
      t: 13.5,
      direction: "local",
      host: "db.internal",
      port: 5432,
      decision: "denied",
    },
    { kind: "refused", t: 14, channel: 0, what: "x11", reason: "X11 forwarding is not relayed" },
    { kind: "exit", t: 14.5, channel: 0, code: 0, signal: null, durationMs: 14_400 },
  ];
}

export function sshFixture(): { session: SessionRecord; events: AuditEvent[] } {
  const session = sessionRecord("ssh");
  return { session, events: chainOf(session, "ssh", sshEvents()) };
}

export function request(
  over: Partial<Extract<HttpEvent, { kind: "request" }>> & { t: number; seq: number },
): HttpEvent {
  return {
    kind: "request",
    method: "GET",
    path: "/",
    query: "",
    status: 200,
    decision: "allowed",
    at: T0 + Math.round(over.t * 1000),
    ttfbMs: 8,
    durationMs: 12,
    requestBytes: 0,
    responseBytes: 0,
    requestContentType: null,
    responseContentType: null,
    masked: false,
    ...over,
  };
}

export function httpEvents(): HttpEvent[] {
  return [
    request({
      t: 0.5,
      seq: 1,
      path: "/invoices/42",
      query: "expand=lines",
      responseBytes: 61,
      responseContentType: "application/json",
      responseBody:
        '{"id":42,"total":12345678901234567890,"customer":{"email":"[redacted]"},"lines":[]}',
      masked: true,
    }),
    request({
      t: 2,
      seq: 2,
      method: "POST",
      path: "/invoices",
      status: 201,
      requestBytes: 17,
      requestContentType: "application/json",
      requestBody: '{"amount":"9.99"}',
      responseBytes: 9,
      responseContentType: "text/plain",
      responseBody: "created\x1b[2J",
      durationMs: 48,
      ttfbMs: 40,
    }),
    request({
      t: 4,
      seq: 3,
      method: "DELETE",
      path: "/invoices/locked/7",
      status: 403,
      decision: "blocked",
      reason: "gw: blocked by rule 1 of billing-api: locked invoices stay",
      ttfbMs: null,
      durationMs: 0,
    }),
    request({
      t: 6,
      seq: 4,
      path: "/reports/slow",
      status: 502,
      error: "the target did not answer in 10 s",
      ttfbMs: null,
      durationMs: 10_000,
    }),
    {
      kind: "websocket",
      t: 8,
      seq: 5,
      path: "/live",
      query: "",
      status: 101,
      decision: "allowed",
      at: T0 + 8000,
      durationMs: 3000,
      bytesIn: 300,
      bytesOut: 4096,
    },
  ];
}

export function httpFixture(): { session: SessionRecord; events: AuditEvent[] } {
  const session = sessionRecord("http", { applicationName: "curl/8.5.0" });
  return { session, events: chainOf(session, "http", httpEvents()) };
}
