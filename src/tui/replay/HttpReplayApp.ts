import { Box, Text, useApp, useInput } from "ink";
import { createElement as h, useEffect, useReducer, type ReactElement } from "react";
import { fmtOffset } from "../../audit/transcript.js";
import type { HttpReplay } from "../../replay/http-replay.js";
import {
  requestDetailLines,
  requestHeader,
  requestRow,
  titleOf,
} from "../../replay/http-transcript.js";
import { oneLine } from "../../replay/printable.js";
import { useTheme } from "../theme.js";
import { useTerminalSize } from "../useTerminalSize.js";
import {
  httpHelp,
  initialHttpState,
  reduceHttp,
  type HttpPlayerAction,
  type HttpPlayerState,
} from "./http-state.js";

/** Rows besides the list or the details: title, position, header, status, help. */
const CHROME_ROWS = 5;

/**
 * `gw replay` of an http session: its requests as a list (time, method, status, decision,
 * duration, size, path), and one request's details with its masked bodies.
 */
export function HttpReplayApp(props: { replay: HttpReplay }): ReactElement {
  const { replay } = props;
  const [state, dispatch] = useReducer(
    (st: HttpPlayerState, a: HttpPlayerAction) => reduceHttp(st, a),
    replay.requests.length,
    initialHttpState,
  );
  const { exit } = useApp();
  const size = useTerminalSize();
  const theme = useTheme();
  const width = Math.max(40, size.columns);
  const bodyRows = Math.max(3, size.rows - CHROME_ROWS);
  const current = replay.requests[state.selected];
  const detail = current ? requestDetailLines(current, { color: theme.color }) : [];
  const maxScroll = Math.max(0, detail.length - bodyRows);

  useInput((input, key) =>
    dispatch({ type: "key", input, key, layout: { page: bodyRows, maxScroll } }),
  );
  useEffect(() => {
    if (state.quit) exit();
  }, [state.quit, exit]);

  const s = replay.session;
  const title = [
    `session ${s.id.slice(0, 8)}`,
    `${s.identity.name} on ${s.connection} (http)`,
    s.applicationName ? oneLine(s.applicationName) : null,
    s.agentLabel ? `agent ${oneLine(s.agentLabel)}` : null,
  ]
    .filter(Boolean)
    .join(" · ");
  const n = replay.requests.length;
  const end =
    s.endedAt === null
      ? "still open"
      : `ended: ${s.endReason ?? "ended"}${s.prunedAt !== undefined ? " · pruned" : ""}`;
  const position =
    n === 0
      ? `no requests · ${end}`
      : `request ${state.selected + 1}/${n} · ${fmtOffset(current?.ms ?? 0)} of ${fmtOffset(replay.durationMs)} · ${end}`;

  const body =
    state.view === "list"
      ? h(RequestList, { replay, state, rows: bodyRows })
      : h(
          Box,
          { flexDirection: "column", height: bodyRows },
          ...detail
            .slice(Math.min(state.scroll, maxScroll), Math.min(state.scroll, maxScroll) + bodyRows)
            .map((l, i) => h(Text, { key: i, wrap: "truncate-end" }, l)),
        );
  const help = httpHelp(state.view);
  return h(
    Box,
    { flexDirection: "column", width },
    h(
      Text,
      { wrap: "truncate-end" },
      h(Text, { bold: true, color: theme.accent }, "gw replay "),
      title,
    ),
    h(Text, { color: theme.muted, wrap: "truncate-end" }, position),
    state.view === "list" || !current
      ? h(Text, { bold: true, wrap: "truncate-end" }, `  ${requestHeader()}`)
      : h(
          Text,
          { bold: true, color: theme.accent, wrap: "truncate-end" },
          `#${current.event.seq} ${titleOf(current)}`,
        ),
    body,
    h(
      Text,
      { color: theme.muted, wrap: "truncate-end" },
      state.view === "detail" && maxScroll > 0
        ? `lines ${Math.min(state.scroll, maxScroll) + 1}–${Math.min(detail.length, Math.min(state.scroll, maxScroll) + bodyRows)} of ${detail.length}`
        : " ",
    ),
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

/** The requests around the selected one, a page at a time; the selected one highlighted. */
function RequestList(props: {
  replay: HttpReplay;
  state: HttpPlayerState;
  rows: number;
}): ReactElement {
  const theme = useTheme();
  const { replay, state, rows } = props;
  if (replay.requests.length === 0) {
    return h(
      Box,
      { height: rows },
      h(Text, { color: theme.muted }, "This session made no requests."),
    );
  }
  const first = Math.max(
    0,
    Math.min(state.selected - Math.floor(rows / 2), replay.requests.length - rows),
  );
  const shown = replay.requests.slice(first, first + rows);
  return h(
    Box,
    { flexDirection: "column", height: rows },
    ...shown.map((e, i) => {
      const selected = first + i === state.selected;
      const loud = e.event.decision === "blocked" || e.event.decision === "denied" || e.unfinished;
      return h(
        Text,
        {
          key: e.seq,
          wrap: "truncate-end",
          ...(selected ? { inverse: theme.selectedInverse, bold: true } : {}),
          ...(!selected && loud && theme.danger ? { color: theme.danger } : {}),
        },
        (selected ? "› " : "  ") + requestRow(e),
      );
    }),
  );
}
