import type { HttpEvent, HttpSessionHooks } from "../protocols/http/session.js";
import type { SshEvent, SshSessionHooks } from "../protocols/ssh/session.js";
import type { SessionEndInfo } from "../protocols/tcp/stream.js";
import type { TcpSessionHooks } from "../protocols/tcp/session.js";
import type { SessionRecorder } from "./recorder.js";

/*
 * Recording for the connection types that are not statement protocols. Every ssh and http
 * event is a link in the session's hash chain (kind "ssh" / "http"); the ones a person
 * searches for (an ssh command with its exit status, an http request with its status) also
 * get a statement row, so `gw sessions --grep`, approvals and replay treat them like SQL.
 */

function ended(r: SessionRecorder, info: SessionEndInfo): void {
  r.end({
    reason: info.reason,
    detail: info.detail,
    bytesIn: info.bytesIn,
    bytesOut: info.bytesOut,
    statements: r.statements,
  });
}

/**
 * A session whose target could not be opened (a changed host key, a refused credential, a port
 * nobody listens on) never started: it is recorded anyway, started and ended at once with the
 * reason, so an auditor sees who tried to reach what and why it failed.
 */
function recordRefused(r: SessionRecorder, info: SessionEndInfo): void {
  if (info.reason !== "upstream_error") return;
  r.start(null).then(
    () => ended(r, info),
    () => undefined, // the session has logged why it ended; this record is the extra
  );
}

function offset(r: SessionRecorder, at: number): number {
  return at - (r.startedAt ?? at);
}

/** An exec command waits for its exit (or refusal) before its row is written. */
interface OpenCommand {
  command: string;
  decision: "allowed" | "approved";
}

export function sshRecording(
  r: SessionRecorder,
  opts: { strict: boolean; onStarted?: () => void; onCommand?: (command: string) => void },
): SshSessionHooks {
  const open = new Map<number, OpenCommand>();
  return {
    onStart: async (info) => {
      // The client's software ("OpenSSH_9.2p1") is what application_name is to postgres.
      await r.start(info.clientSoftware);
      opts.onStarted?.();
    },
    onEvent: (e: SshEvent) => {
      const at = r.now();
      const fields = { type: "ssh" as const, at, offsetMs: offset(r, at), event: e };
      if (e.kind === "exec") {
        opts.onCommand?.(e.command);
        if (e.decision === "blocked" || e.decision === "denied") {
          // Refused by policy: it never ran, so its row is written now.
          open.delete(e.channel);
          return r.event(
            fields,
            {
              sql: e.command,
              protocol: "exec",
              durationMs: 0,
              commandTag: null,
              errorMessage: e.reason ?? null,
              decision: e.decision,
            },
            opts.strict,
          );
        }
        open.set(e.channel, { command: e.command, decision: e.decision });
        return r.event(fields, undefined, opts.strict);
      }
      if (e.kind === "refused" && e.what === "exec" && open.has(e.channel)) {
        // On record as starting, then the target would not run it.
        const cmd = open.get(e.channel)!;
        open.delete(e.channel);
        return r.event(fields, {
          sql: cmd.command,
          protocol: "exec",
          durationMs: 0,
          commandTag: null,
          errorMessage: e.reason,
          decision: cmd.decision,
        });
      }
      if (e.kind === "exit") {
        const cmd = open.get(e.channel);
        if (cmd) {
          open.delete(e.channel);
          return r.event(fields, {
            sql: cmd.command,
            protocol: "exec",
            durationMs: e.durationMs,
            commandTag:
              e.code !== null ? `exit ${e.code}` : e.signal !== null ? `signal ${e.signal}` : null,
            errorMessage: null,
            decision: cmd.decision,
          });
        }
      }
      return r.event(fields);
    },
    onEnd: (info) => {
      if (!r.started) return recordRefused(r, info);
      // Commands still running when the session ended: their rows say so.
      for (const [channel, cmd] of open)
        void r
          .event(
            {
              type: "ssh",
              at: r.now(),
              offsetMs: offset(r, r.now()),
              event: {
                kind: "exit",
                t: offset(r, r.now()) / 1000,
                channel,
                code: null,
                signal: null,
                durationMs: 0,
              },
            },
            {
              sql: cmd.command,
              protocol: "exec",
              durationMs: 0,
              commandTag: null,
              errorMessage: "the session ended before the command did",
              decision: cmd.decision,
            },
          )
          .catch(() => undefined);
      open.clear();
      ended(r, info);
    },
  };
}

/** "GET /path?query", the text a request is searched and approved by. */
export function requestLine(e: Pick<HttpEvent, "path" | "query"> & { method?: string }): string {
  return `${e.method ?? "GET"} ${e.path}${e.query ? `?${e.query}` : ""}`;
}

export function httpRecording(
  r: SessionRecorder,
  opts: { strict: boolean; onStarted?: () => void; onRequest?: (line: string) => void },
): HttpSessionHooks {
  return {
    onStart: async () => {
      await r.start(null);
      opts.onStarted?.();
    },
    beforeForward: (e) => {
      const p = r.event(
        { type: "http", at: e.at, offsetMs: offset(r, e.at), event: e },
        undefined,
        opts.strict,
      );
      if (opts.strict) return p;
      // async audit: buffered; a failure ends the session at its next event.
      p.catch(() => undefined);
    },
    onEvent: (e: HttpEvent) => {
      const fields = { type: "http" as const, at: e.at, offsetMs: offset(r, e.at), event: e };
      if (e.kind === "request_start") return r.event(fields);
      // For approvers: completed requests (a request's start and end are one request).
      if (e.kind === "request") opts.onRequest?.(`${e.method} ${e.path}`);
      const row = {
        sql: e.kind === "websocket" ? `${requestLine(e)} (websocket)` : requestLine(e),
        protocol: "http" as const,
        durationMs: e.durationMs,
        commandTag: e.status === null ? null : String(e.status),
        errorMessage: e.error ?? e.reason ?? null,
        decision: e.decision,
      };
      return r.event(fields, row, opts.strict);
    },
    onEnd: (info) => ended(r, info),
  };
}

export function tcpRecording(
  r: SessionRecorder,
  opts: { onStarted?: () => void },
): TcpSessionHooks {
  return {
    onStart: async () => {
      await r.start(null);
      opts.onStarted?.();
    },
    onEnd: (info) => (r.started ? ended(r, info) : recordRefused(r, info)),
  };
}
