import { Box, Text } from "ink";
import { createElement as h, type ReactElement } from "react";
import type { ApprovalView } from "../../tunnel/approvals-client.js";
import { useTheme } from "../theme.js";
import { cell, formatAge, formatCountdown, oneLine } from "./format.js";
import type { Columns } from "./layout.js";
import { requesterLabel } from "./state.js";

export interface QueueListProps {
  requests: ApprovalView[];
  selectedId: string | null;
  inFlight: Record<string, "approve" | "deny">;
  now: number;
  columns: Columns;
  /** Lines available for rows; the list scrolls to keep the selection in view. */
  rows: number;
}

/** The first visible row so that the selected one is in a window of `rows`. */
export function scrollStart(count: number, selected: number, rows: number): number {
  if (count <= rows || selected < 0) return 0;
  const half = Math.floor(rows / 2);
  return Math.max(0, Math.min(count - rows, selected - half));
}

export function QueueHeader(props: { columns: Columns }): ReactElement {
  const theme = useTheme();
  const c = props.columns;
  const parts = [
    " ".repeat(c.marker) + cell("ID", c.id),
    cell("REQUESTER", c.requester),
    ...(c.statement > 0 ? [cell("STATEMENT", c.statement)] : []),
    cell("CONNECTION", c.connection),
    cell("AGE", c.age, "right"),
    cell("EXPIRES", c.expires, "right"),
  ];
  return h(Text, { bold: true, wrap: "truncate-end", color: theme.muted }, parts.join(" "));
}

export function QueueList(props: QueueListProps): ReactElement {
  const theme = useTheme();
  const c = props.columns;
  const selected = props.requests.findIndex((a) => a.id === props.selectedId);
  const start = scrollStart(props.requests.length, selected, props.rows);
  const shown = props.requests.slice(start, start + props.rows);
  return h(
    Box,
    { flexDirection: "column" },
    shown.map((a, i) => {
      const isSel = start + i === selected;
      const left = a.expiresAt - props.now;
      const busy = props.inFlight[a.id];
      const expires = busy ? (busy === "approve" ? "approve…" : "deny…") : formatCountdown(left);
      const urgency =
        busy !== undefined
          ? theme.accent
          : left <= 15_000
            ? theme.danger
            : left <= 60_000
              ? theme.warning
              : undefined;
      const marker = (isSel ? "›" : " ").padEnd(c.marker);
      const inverse = isSel && theme.selectedInverse;
      return h(
        Text,
        { key: a.id, wrap: "truncate-end", inverse, bold: isSel },
        marker + cell(a.id, c.id) + " ",
        cell(requesterLabel(a), c.requester) + " ",
        c.statement > 0 ? cell(oneLine(a.sql), c.statement) + " " : "",
        cell(a.connection, c.connection) + " ",
        cell(formatAge(props.now - a.createdAt), c.age, "right") + " ",
        h(Text, urgency ? { color: urgency } : {}, cell(expires, c.expires, "right")),
      );
    }),
  );
}
