import { asciicast } from "../audit/asciicast.js";
import type { SessionEvents } from "../audit/client.js";
import { buildReplay, type Replay } from "../audit/replay.js";
import { transcript } from "../audit/transcript.js";
import { ExitCode, GwError } from "../errors.js";
import type { SessionRecord } from "../store/types.js";
import { buildHttpReplay, type HttpReplay } from "./http-replay.js";
import { httpTranscript } from "./http-transcript.js";
import { sshAsciicast } from "./ssh-asciicast.js";
import { buildSshReplay, channelLabel, defaultChannel, type SshReplay } from "./ssh-replay.js";
import { sshTranscript } from "./ssh-transcript.js";
import { tcpSummary } from "./tcp-summary.js";

/**
 * What `gw replay` does with a recorded session, by the session's protocol: PostgreSQL
 * statements, an ssh terminal, http requests, or (tcp) only a summary. The CLI command only
 * fetches the data and picks the output.
 */
export type SessionReplay =
  | { protocol: "postgres"; replay: Replay }
  | { protocol: "ssh"; replay: SshReplay }
  | { protocol: "http"; replay: HttpReplay }
  | { protocol: "tcp"; session: SessionRecord };

export function buildSessionReplay(data: SessionEvents): SessionReplay {
  switch (data.session.protocol) {
    case "ssh":
      return { protocol: "ssh", replay: buildSshReplay(data.session, data.events) };
    case "http":
      return { protocol: "http", replay: buildHttpReplay(data.session, data.events) };
    case "tcp":
      return { protocol: "tcp", session: data.session };
    default:
      return {
        protocol: "postgres",
        replay: buildReplay(data.session, data.events, data.statements),
      };
  }
}

/** `--channel N` applies to ssh sessions, and must name one of the session's channels. */
export function checkChannel(r: SessionReplay, channel: number | undefined): void {
  if (channel === undefined) return;
  if (r.protocol !== "ssh") {
    throw new GwError("usage", `--channel is for ssh sessions; this session is ${r.protocol}`, {
      exitCode: ExitCode.usage,
    });
  }
  if (!r.replay.channels.some((c) => c.channel === channel)) {
    const list = r.replay.channels.map((c) => `${c.channel} (${channelLabel(c)})`).join(", ");
    throw new GwError("usage", `session ${r.replay.session.id} has no channel ${channel}`, {
      exitCode: ExitCode.usage,
      hint: list ? `Its channels: ${list}.` : "It opened no channels.",
    });
  }
}

/** The session as text (`--no-tui`, or when not on a terminal). */
export async function replayText(
  r: SessionReplay,
  opts: { color?: boolean; channel?: number } = {},
): Promise<string> {
  const color = opts.color === true;
  switch (r.protocol) {
    case "postgres":
      return transcript(r.replay, { color });
    case "ssh":
      return sshTranscript(r.replay, {
        color,
        ...(opts.channel !== undefined ? { channel: opts.channel } : {}),
      });
    case "http":
      return httpTranscript(r.replay, { color });
    case "tcp":
      return tcpSummary(r.session, { color });
  }
}

/** The session as an asciicast v2 file, and one line saying what was written. */
export function replayAsciicast(
  r: SessionReplay,
  opts: { channel?: number } = {},
): { text: string; what: string } {
  switch (r.protocol) {
    case "postgres": {
      const n = r.replay.statements.length;
      return {
        text: asciicast(r.replay),
        what: `${n} statement${n === 1 ? "" : "s"} of session ${r.replay.session.id}`,
      };
    }
    case "ssh": {
      const ch = opts.channel ?? defaultChannel(r.replay);
      const text = ch === null ? null : sshAsciicast(r.replay, ch);
      if (text === null || ch === null) {
        const terminals = r.replay.channels
          .filter((c) => c.kind === "shell" || c.kind === "exec")
          .map((c) => String(c.channel));
        throw new GwError(
          "replay_no_terminal",
          ch === null
            ? `session ${r.replay.session.id} has no terminal to export`
            : `channel ${ch} of session ${r.replay.session.id} has no terminal to export (it ran no shell or command)`,
          {
            exitCode: ExitCode.usage,
            hint:
              terminals.length > 0
                ? `Channels with a terminal: ${terminals.join(", ")} (--channel N).`
                : "Use --no-tui to see what the session did.",
          },
        );
      }
      const c = r.replay.channels.find((x) => x.channel === ch);
      return {
        text,
        what: `channel ${ch}${c ? ` (${channelLabel(c)})` : ""} of session ${r.replay.session.id}`,
      };
    }
    case "http":
    case "tcp":
      throw new GwError(
        "usage",
        `asciicast export is for PostgreSQL and ssh sessions; this session is ${r.protocol}`,
        {
          exitCode: ExitCode.usage,
          hint:
            r.protocol === "http"
              ? "Use --no-tui for a text transcript, or --json for the recorded requests."
              : "A tcp session records no content: gw replay shows its summary.",
        },
      );
  }
}
