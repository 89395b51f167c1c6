import { fmtMs, fmtOffset, painter } from "../audit/transcript.js";
import { sessionEndLine, sessionHeaderLines } from "./header.js";
import { oneLine } from "./printable.js";
import { screenText } from "./screen.js";
import {
  channelLabel,
  exitText,
  fmtBytes,
  sftpText,
  terminalOf,
  type SshChannel,
  type SshReplay,
  type TimedSshEvent,
} from "./ssh-replay.js";
import { TerminalReplayer } from "./terminal-replayer.js";

/**
 * An ssh session as text, for pipes and CI (`gw replay --no-tui`): each channel's final
 * screen (a shell, through the terminal emulator) or whole output (a command without a pty),
 * then the log of what happened: commands with decisions and exit codes, file transfers,
 * refusals, forwards.
 */
export interface SshTranscriptOptions {
  color?: boolean;
  /** Only this channel's screen (the event log stays whole). */
  channel?: number;
}

/** Lines of output a command's transcript keeps (the terminal's scrollback). */
const OUTPUT_LINES = 50_000;

export async function sshTranscript(
  r: SshReplay,
  opts: SshTranscriptOptions = {},
): Promise<string> {
  const paint = painter(opts.color === true);
  const lines = sessionHeaderLines(r.session, summary(r), opts);
  const shown = r.channels.filter(
    (c) =>
      (opts.channel === undefined || c.channel === opts.channel) &&
      (c.outputEvents > 0 || c.kind === "shell" || c.kind === "exec"),
  );
  for (const c of shown) {
    lines.push("", paint("bold", channelHeading(c)));
    lines.push(...(await channelText(r, c)));
  }
  lines.push("", paint("dim", "-- events"));
  lines.push(...eventLog(r, { color: opts.color === true }));
  if (r.truncatedAtMs !== null) {
    lines.push(
      paint(
        "dim",
        `-- output after ${fmtOffset(r.truncatedAtMs)} was relayed but not recorded (the recording limit)`,
      ),
    );
  }
  lines.push("", sessionEndLine(r.session, opts));
  return lines.join("\n") + "\n";
}

function summary(r: SshReplay): string {
  const n = r.channels.length;
  const count = (k: string) => r.markers.filter((m) => m.kind === k).length;
  const parts = [`${n} channel${n === 1 ? "" : "s"}`];
  const execs = r.channels.filter((c) => c.kind === "exec" || c.kind === "scp").length;
  if (execs > 0) parts.push(`${execs} command${execs === 1 ? "" : "s"}`);
  const sftp = r.events.filter((e) => e.event.kind === "sftp").length;
  if (sftp > 0) parts.push(`${sftp} file operation${sftp === 1 ? "" : "s"}`);
  const refused = count("refused");
  if (refused > 0) parts.push(`${refused} refused`);
  return parts.join(", ");
}

/** "== channel 0 · shell xterm-256color 80×24 · +0.100s–+14.000s · exit 0" */
export function channelHeading(c: SshChannel): string {
  const parts = [`== channel ${c.channel}`, channelLabel(c)];
  if (c.decision !== null && c.decision !== "allowed") parts.push(c.decision);
  parts.push(`${fmtOffset(c.startMs)}–${fmtOffset(c.endMs)}`);
  const exit = exitText(c);
  if (exit) parts.push(exit);
  if (c.outputBytes > 0) parts.push(`${fmtBytes(c.outputBytes)} of output`);
  return parts.join(" · ");
}

async function channelText(r: SshReplay, c: SshChannel): Promise<string[]> {
  if (c.outputEvents === 0) {
    return [
      c.decision === "blocked" || c.decision === "denied"
        ? "(it never ran)"
        : "(no output recorded)",
    ];
  }
  const spec = terminalOf(r, c.channel);
  if (spec.convertEol) {
    // No pty: the command's whole output, as `ssh host cmd` would have printed it.
    const term = new TerminalReplayer(spec, { scrollback: OUTPUT_LINES });
    try {
      return (await term.textAt(Number.POSITIVE_INFINITY)) ?? [];
    } finally {
      term.dispose();
    }
  }
  const term = new TerminalReplayer(spec);
  try {
    const screen = await term.screenAt(Number.POSITIVE_INFINITY);
    if (!screen) return [];
    const text = screenText(screen);
    while (text.length > 0 && text[text.length - 1] === "") text.pop();
    return [`-- the final screen (${screen.cols}×${screen.rows}):`, ...text];
  } finally {
    term.dispose();
  }
}

/**
 * One line per thing that happened, in order; output and resizes are left out. `channel`
 * keeps one channel's events, `untilMs` those up to a moment (the player's position).
 */
export function eventLog(
  r: SshReplay,
  opts: { color?: boolean; channel?: number; untilMs?: number } = {},
): string[] {
  const paint = painter(opts.color === true);
  const width = fmtOffset(r.durationMs).length;
  const exits = new Map<number, Extract<TimedSshEvent["event"], { kind: "exit" }>>();
  for (const { event: e } of r.events) if (e.kind === "exit") exits.set(e.channel, e);
  const kinds = new Map(r.channels.map((c) => [c.channel, c.kind]));
  const decision = (d: string, reason?: string) => {
    const loud = d === "blocked" || d === "denied";
    const text = `[${loud ? d.toUpperCase() : d}${reason ? `: ${oneLine(reason)}` : ""}]`;
    return paint(loud ? "red" : d === "approved" ? "yellow" : "green", text);
  };
  const out: string[] = [];
  for (const { ms, event: e } of r.events) {
    if (opts.untilMs !== undefined && ms > opts.untilMs) break;
    if (opts.channel !== undefined && !("channel" in e && e.channel === opts.channel)) continue;
    const ch = "channel" in e ? `[${e.channel}]` : "   ";
    let text: string | null;
    switch (e.kind) {
      case "shell":
        text =
          `shell ${e.pty ? `${oneLine(e.pty.term)} ${e.pty.cols}×${e.pty.rows}` : "(no pty)"} ` +
          decision(e.decision, e.reason);
        break;
      case "exec": {
        // A refused command's exit status is the broker's refusal, already said by the badge.
        const refused = e.decision === "blocked" || e.decision === "denied";
        const exit = refused ? undefined : exits.get(e.channel);
        text =
          `${e.transfer ? `scp ${e.transfer}: ` : "exec "}${oneLine(e.command)} ` +
          decision(e.decision, e.reason) +
          (exit ? ` → ${exitLabel(exit)}` : "");
        break;
      }
      case "exit":
        // A command's exit is on its exec line.
        text =
          kinds.get(e.channel) === "exec" || kinds.get(e.channel) === "scp"
            ? null
            : `${kinds.get(e.channel) ?? "channel"} ${exitLabel(e)}`;
        break;
      case "subsystem":
        text = `subsystem ${oneLine(e.name)} ${decision(e.decision, e.reason)}`;
        break;
      case "sftp":
        text = e.ok ? `sftp ${sftpText(e)}` : paint("red", `sftp ${sftpText(e)}`);
        break;
      case "forward":
        text =
          `forward ${e.direction} ${oneLine(e.host)}:${e.port} ${decision(e.decision)}` +
          (e.bytesIn !== undefined || e.bytesOut !== undefined
            ? ` · ${fmtBytes(e.bytesIn ?? 0)} in, ${fmtBytes(e.bytesOut ?? 0)} out`
            : "");
        break;
      case "agent":
        text = `agent forwarding ${decision(e.decision)}`;
        break;
      case "env":
        text = `env ${oneLine(e.name)}`;
        break;
      case "refused":
        text = paint("red", `refused ${oneLine(e.what)}: ${oneLine(e.reason)}`);
        break;
      case "output_truncated":
        text = `output recording stopped at its limit (${fmtBytes(e.recordedBytes)} recorded)`;
        break;
      case "output":
      case "resize":
        text = null;
        break;
    }
    if (text !== null) out.push(`${paint("dim", fmtOffset(ms).padStart(width))}  ${ch} ${text}`);
  }
  if (out.length === 0 && opts.untilMs === undefined && opts.channel === undefined) {
    out.push(
      paint(
        "dim",
        r.events.length === 0 ? "(no events recorded)" : "(nothing but terminal output)",
      ),
    );
  }
  return out;
}

function exitLabel(e: { code: number | null; signal: string | null; durationMs: number }): string {
  const what =
    e.signal !== null ? `signal ${e.signal}` : e.code === null ? "ended" : `exit ${e.code}`;
  return `${what} after ${fmtMs(e.durationMs)}`;
}
