import type { SshEvent } from "../protocols/ssh/events.js";
import type { AuditEvent, SessionRecord } from "../store/types.js";
import { oneLine } from "./printable.js";
import { bodiesOf } from "./recorded-events.js";
import type { TermFrame, TerminalSpec } from "./terminal-replayer.js";

/**
 * An ssh session as `gw replay` plays it: its events on one clock (ms since the session
 * started), its channels (what each one was: a shell, a command, sftp) and the events worth a
 * mark on the timeline. The terminal itself is re-created from the output events on demand
 * (terminal-replayer.ts).
 */
export interface TimedSshEvent {
  /** The chain event's seq. */
  seq: number;
  /** ms since the session started. */
  ms: number;
  event: SshEvent;
}

export type SshChannelKind = "shell" | "exec" | "sftp" | "scp" | "subsystem" | "unknown";

export interface SshChannel {
  channel: number;
  kind: SshChannelKind;
  /** The pty the client asked for; null without one (then output has bare \n line ends). */
  pty: { term: string; cols: number; rows: number } | null;
  /** exec: the command line; subsystem: its name. */
  command: string | null;
  /** What policy decided about opening it; null when nothing was recorded. */
  decision: string | null;
  reason: string | null;
  exit: { code: number | null; signal: string | null; durationMs: number } | null;
  /** ms of its first and last event. */
  startMs: number;
  endMs: number;
  outputBytes: number;
  /** Output events: only channels with some can show a terminal. */
  outputEvents: number;
}

/** refused: policy said no (or the broker refused a request); error: the target failed it. */
export type MarkerKind = "exec" | "sftp" | "refused" | "error" | "forward" | "approved";

/** Something the timeline marks: a command, a file operation, a refusal, a forward. */
export interface SshMarker {
  ms: number;
  seq: number;
  kind: MarkerKind;
  channel: number | null;
  /** One line: "exec make test", "sftp write /srv/a.tgz (1.2 MiB)", "refused x11: …". */
  label: string;
}

export interface SshReplay {
  session: SessionRecord;
  events: TimedSshEvent[];
  channels: SshChannel[];
  markers: SshMarker[];
  /** ms from the session's start to its end (or its last event while open). */
  durationMs: number;
  /** Output past the recording limit was relayed but not recorded, from this ms on. */
  truncatedAtMs: number | null;
}

export function buildSshReplay(session: SessionRecord, events: readonly AuditEvent[]): SshReplay {
  const timed: TimedSshEvent[] = bodiesOf(events, "ssh").map((b) => ({
    seq: b.seq,
    // The event's own clock (seconds since the session began) orders output exactly; the
    // envelope's offset is the fallback for an event without one.
    ms: typeof b.event.t === "number" ? Math.round(b.event.t * 1000) : b.offsetMs,
    event: b.event,
  }));
  timed.sort((a, b) => a.ms - b.ms || a.seq - b.seq);

  const channels = new Map<number, SshChannel>();
  const channelOf = (n: number, ms: number): SshChannel => {
    let c = channels.get(n);
    if (!c) {
      c = {
        channel: n,
        kind: "unknown",
        pty: null,
        command: null,
        decision: null,
        reason: null,
        exit: null,
        startMs: ms,
        endMs: ms,
        outputBytes: 0,
        outputEvents: 0,
      };
      channels.set(n, c);
    }
    c.endMs = Math.max(c.endMs, ms);
    return c;
  };
  const markers: SshMarker[] = [];
  let truncatedAtMs: number | null = null;
  for (const { seq, ms, event: e } of timed) {
    const mark = (kind: MarkerKind, label: string, channel: number | null) =>
      markers.push({ ms, seq, kind, channel, label });
    if (e.kind === "forward") {
      const where = `${e.direction} ${oneLine(e.host)}:${e.port}`;
      mark(
        e.decision === "denied" ? "refused" : "forward",
        `forward ${where}${e.decision === "denied" ? " denied" : ""}`,
        null,
      );
      continue;
    }
    const c = channelOf(e.channel, ms);
    switch (e.kind) {
      case "output":
        c.outputBytes += Buffer.byteLength(e.data, "utf8");
        c.outputEvents++;
        break;
      case "shell":
        c.kind = "shell";
        c.pty = e.pty;
        c.decision = e.decision;
        c.reason = e.reason ?? null;
        if (e.decision === "denied")
          mark("refused", `shell denied${reasonText(e.reason)}`, c.channel);
        break;
      case "exec": {
        c.kind = e.transfer ? "scp" : "exec";
        c.command = e.command;
        c.decision = e.decision;
        c.reason = e.reason ?? null;
        const refused = e.decision === "blocked" || e.decision === "denied";
        mark(
          refused ? "refused" : e.decision === "approved" ? "approved" : "exec",
          `exec ${oneLine(e.command)}${refused ? ` ${e.decision.toUpperCase()}${reasonText(e.reason)}` : e.decision === "approved" ? " (approved)" : ""}`,
          c.channel,
        );
        break;
      }
      case "subsystem":
        c.kind = e.name === "sftp" ? "sftp" : "subsystem";
        c.command = e.name;
        c.decision = e.decision;
        c.reason = e.reason ?? null;
        if (e.decision === "denied") {
          mark("refused", `subsystem ${oneLine(e.name)} denied${reasonText(e.reason)}`, c.channel);
        }
        break;
      case "exit":
        c.exit = { code: e.code, signal: e.signal, durationMs: e.durationMs };
        break;
      case "sftp":
        mark(e.ok ? "sftp" : "error", `sftp ${sftpText(e)}`, c.channel);
        break;
      case "refused":
        mark("refused", `refused ${oneLine(e.what)}${reasonText(e.reason)}`, c.channel);
        break;
      case "agent":
        if (e.decision === "denied") mark("refused", "agent forwarding denied", c.channel);
        break;
      case "output_truncated":
        truncatedAtMs ??= ms;
        break;
      case "resize":
      case "env":
        break;
    }
  }
  const lastMs = timed.reduce((m, e) => Math.max(m, e.ms), 0);
  const durationMs =
    session.endedAt !== null ? Math.max(session.endedAt - session.startedAt, lastMs) : lastMs;
  return {
    session,
    events: timed,
    channels: [...channels.values()].sort((a, b) => a.channel - b.channel),
    markers,
    durationMs,
    truncatedAtMs,
  };
}

function reasonText(reason: string | undefined | null): string {
  return reason ? `: ${oneLine(reason)}` : "";
}

/** "write /srv/a.tgz (1.2 MiB)", "rename /a → /b", "open /etc/shadow (read) failed: …" */
export function sftpText(e: Extract<SshEvent, { kind: "sftp" }>): string {
  const parts = [e.op, oneLine(e.path)];
  if (e.to !== undefined) parts.push("→", oneLine(e.to));
  const extra = [e.mode, e.bytes !== undefined ? fmtBytes(e.bytes) : undefined].filter(
    (x) => x !== undefined,
  );
  return (
    parts.join(" ") +
    (extra.length > 0 ? ` (${extra.join(", ")})` : "") +
    (e.ok ? "" : ` failed${reasonText(e.error)}`)
  );
}

/** 512 B, 1.5 KiB, 3.2 MiB, 1.1 GiB */
export function fmtBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/** The channel the player and the export start with: the first shell that ran, else the first with output. */
export function defaultChannel(r: SshReplay): number | null {
  const ran = (c: SshChannel) => c.decision !== "denied" && c.decision !== "blocked";
  return (
    r.channels.find((c) => c.kind === "shell" && ran(c))?.channel ??
    r.channels.find((c) => c.outputEvents > 0)?.channel ??
    r.channels.find((c) => c.kind === "shell" || c.kind === "exec")?.channel ??
    r.channels[0]?.channel ??
    null
  );
}

/** "shell xterm-256color 80×24", "exec make test", "sftp", "scp upload" */
export function channelLabel(c: SshChannel): string {
  switch (c.kind) {
    case "shell":
      return c.pty ? `shell ${oneLine(c.pty.term)} ${c.pty.cols}×${c.pty.rows}` : "shell (no pty)";
    case "exec":
    case "scp":
      return `${c.kind} ${oneLine(c.command ?? "")}`.trimEnd();
    case "sftp":
      return "sftp";
    case "subsystem":
      return `subsystem ${oneLine(c.command ?? "")}`.trimEnd();
    case "unknown":
      return "channel";
  }
}

/** "exit 0", "exit 2", "signal TERM", "" (still running, or nothing recorded). */
export function exitText(c: SshChannel): string {
  if (!c.exit) return "";
  if (c.exit.signal !== null) return `signal ${c.exit.signal}`;
  return c.exit.code === null ? "ended" : `exit ${c.exit.code}`;
}

/** What the terminal emulator needs to replay one channel: its output and resizes, in order. */
export function terminalOf(r: SshReplay, channel: number): TerminalSpec {
  const c = r.channels.find((x) => x.channel === channel);
  const frames: TermFrame[] = [];
  for (const { ms, event: e } of r.events) {
    if (e.kind === "output" && e.channel === channel) frames.push({ ms, data: e.data });
    else if (e.kind === "resize" && e.channel === channel) {
      frames.push({ ms, resize: { cols: e.cols, rows: e.rows } });
    }
  }
  // An exec with a pty records no size: the first resize, else 80×24.
  const firstResize = frames.find((f) => "resize" in f);
  const size = c?.pty ?? (firstResize && "resize" in firstResize ? firstResize.resize : null);
  const hasPty = c?.pty != null || (c?.kind === "exec" && execHadPty(r, channel));
  return {
    frames,
    cols: size?.cols ?? 80,
    rows: size?.rows ?? 24,
    convertEol: !hasPty,
  };
}

function execHadPty(r: SshReplay, channel: number): boolean {
  return r.events.some(({ event: e }) => e.kind === "exec" && e.channel === channel && e.pty);
}
