import { Box, Text } from "ink";
import { createElement as h, type ReactElement } from "react";
import { decisionLabel, type ReplayStatement } from "../../audit/replay.js";
import { infoLine, resultLines } from "../../audit/transcript.js";
import { sqlLines } from "../approve/sql.js";
import { SqlLine } from "../SqlText.js";
import { useTheme, type Theme } from "../theme.js";

function badgeColor(theme: Theme, s: ReplayStatement): string | undefined {
  switch (s.decision) {
    case "allowed":
      return theme.success;
    case "approved":
      return theme.warning;
    case "blocked":
    case "denied":
      return theme.danger;
    default:
      return theme.muted;
  }
}

/** The decision as a badge: "allowed", "BLOCKED", "approved by Carol", "DENIED by Dan: …". */
export function DecisionBadge(props: { statement: ReplayStatement }): ReactElement {
  const theme = useTheme();
  const s = props.statement;
  const label = decisionLabel(s);
  const loud = s.decision === "blocked" || s.decision === "denied";
  const text = ` ${loud ? label.replace(/^\w+/, (w) => w.toUpperCase()) : label} `;
  const color = badgeColor(theme, s);
  return theme.color
    ? h(Text, { ...(color ? { backgroundColor: color } : {}), color: "black", bold: true }, text)
    : h(Text, { bold: loud }, `[${text.trim()}]`);
}

/**
 * One statement as psql showed it: the prompt and SQL (highlighted), the result preview or
 * tags or error, under a line with its number, time, duration and decision. At most `rows`
 * lines; what does not fit is counted.
 */
export function StatementPane(props: {
  statement: ReplayStatement | undefined;
  connection: string;
  width: number;
  rows: number;
}): ReactElement {
  const theme = useTheme();
  const s = props.statement;
  if (!s) {
    return h(
      Box,
      { height: props.rows },
      h(Text, { color: theme.muted }, "This session ran no statements."),
    );
  }
  const prompt = `${props.connection}=> `;
  const cont = `${props.connection}-> `;
  const sql = sqlLines(s.sql, Math.max(10, props.width - prompt.length));
  const result = resultLines(s);
  const lines: ReactElement[] = [];
  sql.forEach((tokens, i) =>
    lines.push(
      h(
        Box,
        { key: `q${i}` },
        h(Text, { bold: true, color: theme.accent }, i === 0 ? prompt : cont),
        h(SqlLine, { tokens }),
      ),
    ),
  );
  result.forEach((line, i) =>
    lines.push(
      h(
        Text,
        {
          key: `r${i}`,
          wrap: "truncate-end",
          ...(line.startsWith("ERROR:") && theme.danger ? { color: theme.danger } : {}),
          ...(line.startsWith("--") && theme.muted ? { color: theme.muted } : {}),
        },
        line,
      ),
    ),
  );
  const room = Math.max(1, props.rows - 1);
  const shown = lines.length > room ? lines.slice(0, room - 1) : lines;
  const hidden = lines.length - shown.length;
  return h(
    Box,
    { flexDirection: "column", height: props.rows },
    h(
      Box,
      { key: "info" },
      h(Text, { color: theme.muted }, `${infoLine(s)}  `),
      h(DecisionBadge, { statement: s }),
    ),
    ...shown,
    hidden > 0
      ? h(
          Text,
          { key: "more", color: theme.muted },
          `… ${hidden} more line${hidden === 1 ? "" : "s"}`,
        )
      : null,
  );
}
