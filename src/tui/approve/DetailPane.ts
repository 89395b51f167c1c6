import { Box, Text } from "ink";
import { createElement as h, type ReactElement } from "react";
import type { ApprovalView } from "../../tunnel/approvals-client.js";
import { SqlLine } from "../SqlText.js";
import { useTheme } from "../theme.js";
import { formatCountdown, oneLine, truncate } from "./format.js";
import { sqlLines } from "./sql.js";

export interface DetailPaneProps {
  request: ApprovalView;
  now: number;
  width: number;
  /** Lines available; the statement comes first, then who and why, then the session. */
  rows: number;
}

interface InfoLine {
  label: string;
  value: string;
}

const LABEL = 11;

function infoLines(a: ApprovalView, now: number): InfoLine[] {
  // Most telling first on each line: a narrow terminal cuts the end.
  const who = [
    a.requester.name || "(no name)",
    a.requester.type,
    `app ${a.applicationName ?? "-"}`,
    ...(a.agentLabel ? [`agent ${a.agentLabel}`] : []),
    `oid ${a.requester.oid}`,
  ].join(" · ");
  const approvals = new Set(
    a.decisions.filter((d) => d.decision === "approve").map((d) => d.by.oid),
  ).size;
  const decided = a.decisions.map((d) => `${d.by.name} ${d.decision}d`).join(", ");
  return [
    { label: "requester", value: who },
    { label: "reason", value: a.reason },
    {
      label: "rule",
      value: `${a.matchedRule.index >= 0 ? `#${a.matchedRule.index + 1} ` : ""}${a.matchedRule.description}`,
    },
    {
      label: "approvers",
      value: `${approvals} of ${a.minApprovals} approved${decided ? ` (${decided})` : ""} · expires in ${formatCountdown(a.expiresAt - now)} · ${a.approvers.join(", ")}`,
    },
  ];
}

/** The request in full: the statement, who asked and why it is held, the session before it. */
export function DetailPane(props: DetailPaneProps): ReactElement {
  const theme = useTheme();
  const a = props.request;
  const width = Math.max(10, props.width);
  const rows = Math.max(1, props.rows);
  const info = infoLines(a, props.now);
  const context = (a.contextStatements ?? []).map(oneLine).filter((s) => s !== "");
  const contextLines = context.length === 0 ? 1 : 1 + context.length;

  // The statement gets what is left after who and why (and up to 3 lines of the session).
  const all = sqlLines(a.sql, width - 2);
  const sqlBudget = Math.max(1, rows - info.length - Math.min(contextLines, 3));
  let sql = all;
  let more = 0;
  if (all.length > sqlBudget) {
    sql = all.slice(0, Math.max(0, sqlBudget - 1));
    more = all.length - sql.length;
  }
  const sqlUsed = sql.length + (more > 0 ? 1 : 0);
  const infoShown = info.slice(0, Math.max(0, rows - sqlUsed));
  const ctxRoom = rows - sqlUsed - infoShown.length;

  const children: ReactElement[] = sql.map((tokens, i) =>
    h(Box, { key: `sql${i}` }, h(Text, null, "  "), h(SqlLine, { tokens })),
  );
  if (more > 0) {
    children.push(
      h(
        Text,
        { key: "more", color: theme.muted, wrap: "truncate-end" },
        `  … ${more} more line${more === 1 ? "" : "s"} of the statement (\`gw approvals show ${a.id}\`)`,
      ),
    );
  }
  for (const l of infoShown) {
    children.push(
      h(
        Text,
        { key: l.label, wrap: "truncate-end" },
        h(Text, { color: theme.muted }, l.label.padEnd(LABEL)),
        truncate(l.value, width - LABEL),
      ),
    );
  }
  if (ctxRoom > 0) {
    children.push(
      h(
        Text,
        { key: "ctx", color: theme.muted, wrap: "truncate-end" },
        context.length === 0
          ? "session    no earlier statements in this session"
          : `session    ${context.length} earlier statement${context.length === 1 ? "" : "s"}, oldest first:`,
      ),
    );
    // The latest ones matter most when there is no room for all.
    const fit = context.slice(Math.max(0, context.length - (ctxRoom - 1)));
    fit.forEach((s, i) =>
      children.push(
        h(
          Text,
          { key: `c${i}`, wrap: "truncate-end", color: theme.muted },
          "  " + truncate(s, width - 2),
        ),
      ),
    );
  }
  return h(Box, { flexDirection: "column", height: rows, overflow: "hidden" }, ...children);
}
