import type { LogLevel } from "../broker/logger.js";
import type { AgentEvent } from "./agent.js";

export interface AgentLogLine {
  level: LogLevel;
  msg: string;
  fields: Record<string, unknown>;
  /** The same for a person at a terminal. */
  text: string;
}

const seconds = (ms: number) => `${Math.max(1, Math.round(ms / 1000))}s`;
const where = (e: { connection: string | null; host: string; port: number; stream: string }) =>
  `${e.connection ?? "?"} → ${e.host}:${e.port} (stream ${e.stream})`;

/**
 * An agent event as a log line. Events carry no secrets (no tokens, no target credentials, none
 * of the bytes relayed); the writer scrubs token-shaped text as well.
 */
export function agentLogLine(e: AgentEvent): AgentLogLine | null {
  switch (e.type) {
    case "connecting":
      return e.attempt === 1
        ? { level: "info", msg: "connecting", fields: {}, text: "connecting to the broker" }
        : null;
    case "connected": {
      const routes = e.connections.map((c) => `${c.name} → ${c.host}:${c.port}`).join(", ");
      const refused = e.connections.filter((c) => !c.allowed);
      return {
        level: refused.length > 0 ? "warn" : "info",
        msg: "connected",
        fields: { connections: e.connections },
        text:
          `connected; the broker routes through this agent: ${routes || "no connections yet"}` +
          (refused.length > 0
            ? `\n  not on --allow, so their sessions will be refused: ${refused.map((c) => `${c.host}:${c.port}`).join(", ")}`
            : ""),
      };
    }
    case "connect_failed":
      return {
        level: "warn",
        msg: "connect failed",
        fields: { attempt: e.attempt, retryInMs: e.retryInMs, error: e.error.toJSON() },
        text: `cannot connect (attempt ${e.attempt}): ${e.error.message}; retrying in ${seconds(e.retryInMs)}`,
      };
    case "disconnected":
      return {
        level: "warn",
        msg: "disconnected",
        fields: {
          code: e.code,
          reason: e.reason,
          streamsEnded: e.streamsEnded,
          retryInMs: e.retryInMs,
        },
        text: `disconnected from the broker (${e.code}${e.reason ? ` ${e.reason}` : ""}); ${e.streamsEnded} session(s) ended; reconnecting in ${seconds(e.retryInMs)}`,
      };
    case "stream_open":
      return {
        level: "info",
        msg: "stream open",
        fields: { stream: e.stream, connection: e.connection, host: e.host, port: e.port },
        text: `stream open: ${where(e)}`,
      };
    case "stream_refused":
      return {
        level: "warn",
        msg: "stream refused",
        fields: {
          stream: e.stream,
          connection: e.connection,
          host: e.host,
          port: e.port,
          code: e.code,
          reason: e.reason,
        },
        text: `stream refused: ${where(e)}: ${e.reason}`,
      };
    case "stream_closed":
      return {
        level: "info",
        msg: "stream closed",
        fields: {
          stream: e.stream,
          connection: e.connection,
          host: e.host,
          port: e.port,
          bytesToTarget: e.bytesToTarget,
          bytesFromTarget: e.bytesFromTarget,
        },
        text: `stream closed: ${where(e)}, ${e.bytesToTarget} B to the target, ${e.bytesFromTarget} B back`,
      };
    case "token_refreshed":
      return {
        level: "info",
        msg: "token refreshed",
        fields: { expiresAt: e.expiresAt },
        text: `token refreshed${e.expiresAt ? ` (valid until ${new Date(e.expiresAt).toISOString()})` : ""}`,
      };
    case "token_refresh_failed": {
      const error = e.error instanceof Error ? e.error.message : String(e.error);
      return {
        level: "warn",
        msg: "token refresh failed",
        fields: { error, expiresAt: e.expiresAt },
        text: `could not refresh the agent's token (${error}); the broker drops the agent when the current one expires, and it reconnects with a new one`,
      };
    }
    case "token_rejected":
      return {
        level: "warn",
        msg: "token rejected",
        fields: { code: e.code, message: e.message },
        text: `the broker refused the refreshed token: ${e.message}`,
      };
  }
}
