import { Box, Text } from "ink";
import { createElement as h, type ReactElement } from "react";
import type { Replay } from "../../audit/replay.js";
import { fmtOffset } from "../../audit/transcript.js";
import { useTheme } from "../theme.js";
import { replayHelp } from "./keys.js";
import { speedOf, type ReplayState } from "./state.js";
import { StatementPane } from "./StatementPane.js";
import { Timeline } from "./Timeline.js";

/** Lines the screen uses besides the statement pane. */
const CHROME_ROWS = 7;

export function ReplayScreen(props: {
  replay: Replay;
  state: ReplayState;
  columns: number;
  rows: number;
}): ReactElement {
  const theme = useTheme();
  const { replay, state } = props;
  const s = replay.session;
  const width = Math.max(20, props.columns);
  const current = replay.statements[state.index];
  const title = [
    `session ${s.id.slice(0, 8)}`,
    `${s.identity.name} on ${s.connection}`,
    s.applicationName,
    s.agentLabel ? `agent ${s.agentLabel}` : null,
  ]
    .filter(Boolean)
    .join(" · ");
  const playing = state.playing ? "▶ playing" : "❚❚ paused";
  const position =
    replay.statements.length === 0
      ? "no statements"
      : `statement ${state.index + 1}/${replay.statements.length} · ${fmtOffset(current?.offsetMs ?? 0)} of ${fmtOffset(replay.durationMs)}`;
  const end =
    s.endedAt === null
      ? "still open"
      : `ended: ${s.endReason ?? "ended"}${s.prunedAt !== undefined ? " · pruned" : ""}`;
  const help = replayHelp(state.mode);
  const status =
    state.mode === "search"
      ? h(
          Text,
          {},
          h(Text, { color: theme.accent, bold: true }, "/"),
          state.draft,
          h(Text, { inverse: true }, " "),
        )
      : h(
          Text,
          { color: theme.muted, wrap: "truncate-end" },
          state.message ??
            (state.query !== null
              ? `search “${state.query}”: ${state.matches.length} match${state.matches.length === 1 ? "" : "es"} (n/N)`
              : " "),
        );
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
        ` ${playing} ${speedOf(state)}x`,
      ),
    ),
    h(Timeline, {
      statements: replay.statements,
      durationMs: replay.durationMs,
      width,
      current: state.index,
      matches: state.matches,
    }),
    h(Text, { color: theme.muted, wrap: "truncate-end" }, `${position} · ${end}`),
    h(Text, { color: theme.muted }, "─".repeat(width)),
    h(StatementPane, {
      statement: current,
      connection: s.connection,
      width,
      rows: Math.max(3, props.rows - CHROME_ROWS),
    }),
    status,
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
