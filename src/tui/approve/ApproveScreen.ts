import { Box, Text } from "ink";
import { createElement as h, type ReactElement } from "react";
import { useTheme } from "../theme.js";
import { DetailPane } from "./DetailPane.js";
import { truncate } from "./format.js";
import { HelpBar } from "./HelpBar.js";
import { computeLayout } from "./layout.js";
import { QueueHeader, QueueList } from "./QueueList.js";
import { selectedRequest, visibleRequests, type ApproveState } from "./state.js";
import { feedText, StatusLine } from "./StatusLine.js";

export interface ApproveScreenProps {
  state: ApproveState;
  /** The broker being watched, as people know it. */
  broker: string;
  columns: number;
  rows: number;
}

/** The whole screen, drawn from the state and the terminal size. */
export function ApproveScreen(props: ApproveScreenProps): ReactElement {
  const theme = useTheme();
  const s = props.state;
  const shown = visibleRequests(s);
  const selected = selectedRequest(s);
  const longestConnection = Math.max(0, ...shown.map((a) => a.connection.length));
  const layout = computeLayout(
    props.columns,
    props.rows,
    shown.length,
    s.showDetails && selected !== null,
    longestConnection,
  );
  const w = layout.width;

  const live = s.feed.state === "live";
  const filter = s.mode === "filter" ? s.draft : s.filter;
  const count =
    filter.trim() !== ""
      ? `${shown.length} of ${s.requests.length} waiting (filter "${filter.trim()}")`
      : `${s.requests.length} waiting`;
  const feedLabel = live ? "● live" : `○ ${feedText(s.feed, s.now)}`;
  const countLabel = s.loaded ? ` · ${count}` : "";
  // The broker gets what the rest leaves (the line is cut at the end past that).
  const brokerRoom = Math.max(
    12,
    w - 1 - "gw approve ·  · ".length - feedLabel.length - countLabel.length,
  );
  const header = h(
    Text,
    { wrap: "truncate-end" },
    h(Text, { bold: true, color: theme.accent }, "gw approve"),
    h(Text, { color: theme.muted }, ` · ${truncate(props.broker, brokerRoom)} · `),
    h(Text, { color: live ? theme.success : theme.warning }, feedLabel),
    countLabel ? h(Text, { color: theme.muted }, countLabel) : null,
  );

  let body: ReactElement;
  if (shown.length === 0) {
    let text: string;
    if (!s.loaded) text = `Connecting to ${props.broker}…`;
    else if (s.requests.length > 0)
      text = `No request matches "${filter.trim()}" (${s.requests.length} waiting). Esc clears the filter.`;
    else text = `No requests waiting for you. Watching ${props.broker} for new ones…`;
    body = h(
      Box,
      { height: layout.listRows, flexDirection: "column" },
      h(Text, { wrap: "wrap", color: theme.muted }, text),
    );
  } else {
    body = h(QueueList, {
      requests: shown,
      selectedId: s.selectedId,
      inFlight: s.inFlight,
      now: s.now,
      columns: layout.columns,
      rows: layout.listRows,
    });
  }

  const details =
    selected !== null && layout.detailRows > 0
      ? [
          h(Text, { key: "sep", color: theme.muted }, "─".repeat(Math.max(1, w - 1))),
          h(DetailPane, {
            key: "detail",
            request: selected,
            now: s.now,
            width: w - 1,
            rows: layout.detailRows,
          }),
        ]
      : [];

  return h(
    Box,
    { flexDirection: "column", width: w },
    header,
    h(QueueHeader, { columns: layout.columns }),
    body,
    ...details,
    h(StatusLine, { state: s, width: w - 1 }),
    // While typing, the line under the input carries an error about it (an empty reason).
    s.mode !== "list" && s.message?.kind === "error"
      ? h(Text, { color: theme.danger, bold: true, wrap: "truncate-end" }, s.message.text)
      : h(HelpBar, { mode: s.mode, filter: s.filter, width: w }),
  );
}
