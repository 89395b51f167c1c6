import type { SftpOperation } from "./sftp-recorder.js";

/**
 * What an ssh session records, through the onEvent hook. `t` is seconds since the session
 * started (asciicast's clock); `channel` numbers the client's session channels in the order
 * they opened, so a recording with several (a shell and an scp) stays apart.
 *
 * Terminal output is recorded after masking, exactly as the client received it. Input
 * (keystrokes) is not recorded: it holds passwords typed at prompts.
 */
export type CommandDecision = "allowed" | "blocked" | "approved" | "denied";

export type SshEvent =
  | {
      kind: "output";
      t: number;
      channel: number;
      stream: "stdout" | "stderr";
      /** UTF-8 text (invalid bytes become U+FFFD in the recording only). */
      data: string;
    }
  | { kind: "resize"; t: number; channel: number; cols: number; rows: number }
  | {
      kind: "shell";
      t: number;
      channel: number;
      pty: { term: string; cols: number; rows: number } | null;
      decision: "allowed" | "denied";
      reason?: string;
    }
  | {
      kind: "exec";
      t: number;
      channel: number;
      command: string;
      pty: boolean;
      decision: CommandDecision;
      reason?: string;
      /** Legacy scp: "upload" (scp -t) or "download" (scp -f). */
      transfer?: "upload" | "download";
    }
  | {
      kind: "exit";
      t: number;
      channel: number;
      /** The command's exit status; null when it ended by a signal or without a status. */
      code: number | null;
      signal: string | null;
      durationMs: number;
    }
  | {
      kind: "subsystem";
      t: number;
      channel: number;
      name: string;
      decision: "allowed" | "denied";
      reason?: string;
    }
  | ({ kind: "sftp"; t: number; channel: number } & SftpOperation)
  | {
      kind: "forward";
      t: number;
      /** local: -L (direct-tcpip); remote: -R (tcpip-forward and its connections). */
      direction: "local" | "remote";
      host: string;
      port: number;
      decision: "allowed" | "denied";
      /** When the forwarded connection ended (allowed ones): bytes each way. */
      bytesIn?: number;
      bytesOut?: number;
    }
  | { kind: "agent"; t: number; channel: number; decision: "allowed" | "denied" }
  | { kind: "env"; t: number; channel: number; name: string }
  | { kind: "refused"; t: number; channel: number; what: string; reason: string }
  /** The session's output recording reached its limit: later output is relayed, not recorded. */
  | { kind: "output_truncated"; t: number; channel: number; recordedBytes: number };

/**
 * An asciicast v2 recording (https://docs.asciinema.org/manual/asciicast/v2/) of one channel's
 * terminal: a header line, then `[t, "o", data]` output and `[t, "r", "COLSxROWS"]` resize
 * events, times relative to the channel's start. `channel` defaults to the first shell (else
 * the first exec) in the events; null when there is none.
 */
export function toAsciicast(
  events: readonly SshEvent[],
  opts: { channel?: number; timestamp?: number; title?: string } = {},
): string | null {
  const start = events.find(
    (e) =>
      (e.kind === "shell" || e.kind === "exec") &&
      e.decision !== "denied" &&
      e.decision !== "blocked" &&
      (opts.channel === undefined || e.channel === opts.channel),
  ) as Extract<SshEvent, { kind: "shell" | "exec" }> | undefined;
  if (!start) return null;
  const ch = start.channel;
  const pty = start.kind === "shell" ? start.pty : null;
  const header: Record<string, unknown> = {
    version: 2,
    width: pty?.cols ?? 80,
    height: pty?.rows ?? 24,
  };
  if (opts.timestamp !== undefined) header["timestamp"] = Math.floor(opts.timestamp / 1000);
  if (pty) header["env"] = { TERM: pty.term };
  if (opts.title !== undefined || start.kind === "exec")
    header["title"] = opts.title ?? (start.kind === "exec" ? start.command : undefined);
  const lines = [JSON.stringify(header)];
  const t0 = start.t;
  const rel = (t: number) => Math.max(0, Math.round((t - t0) * 1e6) / 1e6);
  for (const e of events) {
    if (!("channel" in e) || e.channel !== ch) continue;
    if (e.kind === "output") lines.push(JSON.stringify([rel(e.t), "o", e.data]));
    else if (e.kind === "resize")
      lines.push(JSON.stringify([rel(e.t), "r", `${e.cols}x${e.rows}`]));
  }
  return lines.join("\n") + "\n";
}
