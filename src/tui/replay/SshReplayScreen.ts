import { Box, Text } from "ink";
import { createElement as h, type ReactElement } from "react";
import { fmtOffset } from "../../audit/transcript.js";
import type { ScreenSnapshot } from "../../replay/screen.js";
import {
  channelLabel,
  exitText,
  type SshChannel,
  type SshReplay,
} from "../../replay/ssh-replay.js";
import { eventLog } from "../../replay/ssh-transcript.js";
import { oneLine } from "../../replay/printable.js";
import { useTheme } from "../theme.js";
import { sshHelp } from "./ssh-keys.js";
import { currentChannel, sshSpeed, type SshPlayerState } from "./ssh-state.js";
import { SshTimeline } from "./SshTimeline.js";
import { TerminalView, cropWindow } from "./TerminalView.js";

/** Rows besides the channel's view: title, channels, timeline, position, event, status, help. */
const CHROME_ROWS = 7;

/** Whether a channel is shown as a terminal (else as its list of events). */
export function isTerminalChannel(c: SshChannel | undefined): boolean {
  return c !== undefined && (c.outputEvents > 0 || c.kind === "shell");
}

export function SshReplayScreen(props: {
  replay: SshReplay;
  state: SshPlayerState;
  /** The screen drawn last, and the moment it shows (it lags while a seek re-feeds). */
  shown: { channel: number; ms: number; screen: ScreenSnapshot } | null;
  columns: number;
  rows: number;
}): ReactElement {
  const theme = useTheme();
  const { replay, state } = props;
  const s = replay.session;
  const width = Math.max(30, props.columns);
  const ch = currentChannel(state);
  const channel = replay.channels.find((c) => c.channel === ch);
  const bodyRows = Math.max(3, props.rows - CHROME_ROWS);

  const title = [
    `session ${s.id.slice(0, 8)}`,
    `${s.identity.name} on ${s.connection} (ssh)`,
    s.applicationName ? oneLine(s.applicationName) : null,
    s.agentLabel ? `agent ${oneLine(s.agentLabel)}` : null,
  ]
    .filter(Boolean)
    .join(" · ");
  const playing = state.playing ? "▶ playing" : "❚❚ paused";
  const end =
    s.endedAt === null
      ? "still open"
      : `ended: ${s.endReason ?? "ended"}${s.prunedAt !== undefined ? " · pruned" : ""}`;
  const last = [...replay.markers].reverse().find((m) => m.ms <= state.positionMs);

  // The channel's view: its terminal, or (sftp, a refused command) its events so far.
  let body: ReactElement;
  let note: string | null = null;
  const screen = props.shown !== null && props.shown.channel === ch ? props.shown : null;
  if (channel && isTerminalChannel(channel) && screen) {
    const win = cropWindow(screen.screen, width - 2, bodyRows - 2);
    const now = screen.screen;
    body = h(TerminalView, {
      screen: now,
      window: win,
      title: `channel ${channel.channel} · ${shortLabel(channel)} ${now.cols}×${now.rows}`,
    });
    if (win.cropped) {
      note = `screen ${now.cols}×${now.rows} cropped to ${win.cols}×${win.rows} around the cursor: enlarge the terminal to see all of it`;
    }
    if (screen.ms !== state.positionMs) note = "seeking…";
  } else if (channel && isTerminalChannel(channel)) {
    body = h(Box, { height: bodyRows }, h(Text, { color: theme.muted }, "seeking…"));
  } else {
    const lines = channel
      ? eventLog(replay, { channel: channel.channel, untilMs: state.positionMs })
      : [];
    body = h(
      Box,
      { flexDirection: "column", height: bodyRows },
      h(
        Text,
        { color: theme.muted },
        channel
          ? `channel ${channel.channel} · ${channelLabel(channel)}: no terminal output; its events so far:`
          : "This session opened no channels.",
      ),
      ...lines.slice(-(bodyRows - 1)).map((l, i) => h(Text, { key: i, wrap: "truncate-end" }, l)),
    );
  }
  if (channel && state.positionMs < channel.startMs && note === null) {
    note = `channel ${channel.channel} opens at ${fmtOffset(channel.startMs)}`;
  }

  const help = sshHelp();
  return h(
    Box,
    { flexDirection: "column", width },
    h(
      Box,
      { justifyContent: "space-between" },
      h(
        Text,
        { wrap: "truncate-end" },
        h(Text, { bold: true, color: theme.accent }, "gw replay "),
        title,
      ),
      h(
        Text,
        { bold: true, color: state.playing ? theme.success : theme.muted },
        ` ${playing} ${sshSpeed(state)}x`,
      ),
    ),
    h(ChannelBar, { channels: replay.channels, current: ch, width }),
    h(SshTimeline, {
      markers: replay.markers,
      durationMs: replay.durationMs,
      positionMs: state.positionMs,
      width,
    }),
    h(
      Text,
      { color: theme.muted, wrap: "truncate-end" },
      `${fmtOffset(state.positionMs)} of ${fmtOffset(replay.durationMs)} · ${end}` +
        (replay.truncatedAtMs !== null
          ? ` · output not recorded after ${fmtOffset(replay.truncatedAtMs)}`
          : ""),
    ),
    h(
      Text,
      { wrap: "truncate-end" },
      last
        ? `${fmtOffset(last.ms)} ${last.channel === null ? "" : `[${last.channel}] `}${last.label}`
        : h(Text, { color: theme.muted }, "no event yet"),
    ),
    body,
    h(Text, { color: theme.muted, wrap: "truncate-end" }, state.message ?? note ?? " "),
    h(
      Text,
      { wrap: "truncate-end" },
      ...help.flatMap((it, i) => [
        i > 0 ? h(Text, { key: `s${i}`, color: theme.muted }, " · ") : null,
        h(Text, { key: `k${i}`, bold: true, color: theme.accent }, it.keys),
        h(Text, { key: `h${i}` }, ` ${it.help}`),
      ]),
    ),
  );
}

/** "shell", "exec make test", "sftp": what a channel is, without its pty. */
function shortLabel(c: SshChannel): string {
  return c.kind === "shell" ? "shell" : channelLabel(c);
}

/**
 * "channels 0 shell · [1 exec make test exit 0] · 2 exec ✕ · 3 sftp": the current channel in
 * full, the others short; when they do not fit, a window around the current one.
 */
export function channelBarItems(
  channels: readonly SshChannel[],
  current: number | null,
  width: number,
): { text: string; current: boolean; refused: boolean }[] {
  const items = channels.map((c) => {
    const refused = c.decision === "blocked" || c.decision === "denied";
    const isCurrent = c.channel === current;
    const text = isCurrent
      ? [String(c.channel), channelLabel(c), refused ? c.decision!.toUpperCase() : exitText(c)]
          .filter((x) => x !== "")
          .join(" ")
      : `${c.channel} ${c.kind === "unknown" ? "channel" : c.kind}${refused ? " ✕" : ""}`;
    return { text: isCurrent ? `[${text}]` : text, current: isCurrent, refused };
  });
  const size = (xs: typeof items) => xs.reduce((n, x) => n + x.text.length + 3, 0);
  if (size(items) <= width) return items;
  const at = Math.max(
    0,
    items.findIndex((x) => x.current),
  );
  // Room for the two "…" ends.
  const fits = (a: number, b: number) => size(items.slice(a, b)) + 8 <= width;
  let lo = at;
  let hi = at + 1;
  for (let grew = true; grew;) {
    grew = false;
    if (hi < items.length && fits(lo, hi + 1)) {
      hi++;
      grew = true;
    }
    if (lo > 0 && fits(lo - 1, hi)) {
      lo--;
      grew = true;
    }
  }
  return [
    ...(lo > 0 ? [{ text: "…", current: false, refused: false }] : []),
    ...items.slice(lo, hi),
    ...(hi < items.length ? [{ text: "…", current: false, refused: false }] : []),
  ];
}

function ChannelBar(props: {
  channels: readonly SshChannel[];
  current: number | null;
  width: number;
}): ReactElement {
  const theme = useTheme();
  const label = "channels ";
  const items = channelBarItems(props.channels, props.current, props.width - label.length);
  return h(
    Text,
    { wrap: "truncate-end" },
    h(Text, { color: theme.muted }, label),
    ...items.flatMap((it, i) => {
      const el = h(
        Text,
        {
          key: i,
          ...(it.current ? { bold: true, color: theme.accent } : {}),
          ...(!it.current && it.refused && theme.danger ? { color: theme.danger } : {}),
          ...(!it.current && !it.refused && theme.muted ? { color: theme.muted } : {}),
        },
        it.text,
      );
      return i === 0 ? [el] : [h(Text, { key: `s${i}`, color: theme.muted }, " · "), el];
    }),
  );
}
