import { Text } from "ink";
import { createElement as h, type ReactElement } from "react";
import type { ReplayStatement } from "../../audit/replay.js";
import { useTheme, type Theme } from "../theme.js";

type Style = "track" | "ok" | "error" | "refused" | "approved" | "unfinished" | "current" | "match";

/** Where each statement sits on a track `width` wide, by its offset in the session. */
export function timelineCells(
  statements: readonly ReplayStatement[],
  durationMs: number,
  width: number,
  current: number,
  matches: readonly number[] = [],
): { ch: string; style: Style }[] {
  const w = Math.max(1, width);
  const cells: { ch: string; style: Style }[] = Array.from({ length: w }, () => ({
    ch: "─",
    style: "track",
  }));
  const pos = (s: ReplayStatement) =>
    durationMs > 0 ? Math.min(w - 1, Math.round((s.offsetMs / durationMs) * (w - 1))) : 0;
  const rank: Record<Style, number> = {
    track: 0,
    ok: 1,
    approved: 2,
    unfinished: 2,
    error: 3,
    refused: 4,
    match: 5,
    current: 6,
  };
  const matched = new Set(matches);
  statements.forEach((s, i) => {
    const mark: { ch: string; style: Style } =
      i === current
        ? { ch: "█", style: "current" }
        : matched.has(i)
          ? { ch: "◆", style: "match" }
          : s.outcome === "refused"
            ? { ch: "✕", style: "refused" }
            : s.outcome === "error"
              ? { ch: "!", style: "error" }
              : s.outcome === "unfinished"
                ? { ch: "?", style: "unfinished" }
                : s.decision === "approved"
                  ? { ch: "✓", style: "approved" }
                  : { ch: "•", style: "ok" };
    const p = pos(s);
    if (rank[mark.style] >= rank[cells[p]!.style]) cells[p] = mark;
  });
  return cells;
}

function colorOf(theme: Theme, style: Style): string | undefined {
  switch (style) {
    case "track":
      return theme.muted;
    case "ok":
      return theme.success;
    case "approved":
    case "unfinished":
    case "match":
      return theme.warning;
    case "error":
    case "refused":
      return theme.danger;
    case "current":
      return theme.accent;
  }
}

/** The session as a track: one mark per statement at its offset, the current one highlighted. */
export function Timeline(props: {
  statements: readonly ReplayStatement[];
  durationMs: number;
  width: number;
  current: number;
  matches: readonly number[];
}): ReactElement {
  const theme = useTheme();
  const cells = timelineCells(
    props.statements,
    props.durationMs,
    props.width,
    props.current,
    props.matches,
  );
  // Runs of one style become one Text.
  const runs: { text: string; style: Style }[] = [];
  for (const c of cells) {
    const last = runs[runs.length - 1];
    if (last && last.style === c.style) last.text += c.ch;
    else runs.push({ text: c.ch, style: c.style });
  }
  return h(
    Text,
    { wrap: "truncate-end" },
    ...runs.map((r, i) =>
      h(
        Text,
        {
          key: i,
          ...(colorOf(theme, r.style) ? { color: colorOf(theme, r.style) } : {}),
          bold: r.style === "current",
        },
        r.text,
      ),
    ),
  );
}
