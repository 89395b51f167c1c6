import { Text } from "ink";
import { createElement as h, type ReactElement } from "react";
import type { MarkerKind, SshMarker } from "../../replay/ssh-replay.js";
import { useTheme, type Theme } from "../theme.js";

type Style = "track" | "played" | MarkerKind | "position";

const GLYPH: Record<MarkerKind, string> = {
  exec: "•",
  approved: "✓",
  sftp: "◆",
  forward: "↔",
  error: "!",
  refused: "✕",
};

/** Which mark wins a cell several fall into: refusals over everything but the position. */
const RANK: Record<Style, number> = {
  track: 0,
  played: 0,
  forward: 1,
  sftp: 2,
  exec: 3,
  approved: 4,
  error: 5,
  refused: 6,
  position: 7,
};

/** The session as a track `width` wide: played part, one mark per event, the position. */
export function sshTimelineCells(
  markers: readonly SshMarker[],
  durationMs: number,
  positionMs: number,
  width: number,
): { ch: string; style: Style }[] {
  const w = Math.max(1, width);
  const at = (ms: number) =>
    durationMs > 0 ? Math.max(0, Math.min(w - 1, Math.round((ms / durationMs) * (w - 1)))) : 0;
  const pos = at(positionMs);
  const cells: { ch: string; style: Style }[] = Array.from({ length: w }, (_, i) =>
    i < pos ? { ch: "━", style: "played" } : { ch: "─", style: "track" },
  );
  for (const m of markers) {
    const p = at(m.ms);
    if (RANK[m.kind] >= RANK[cells[p]!.style]) cells[p] = { ch: GLYPH[m.kind], style: m.kind };
  }
  cells[pos] = { ch: "█", style: "position" };
  return cells;
}

function colorOf(theme: Theme, style: Style): string | undefined {
  switch (style) {
    case "track":
      return theme.muted;
    case "played":
    case "position":
      return theme.accent;
    case "exec":
      return theme.success;
    case "approved":
      return theme.warning;
    case "sftp":
    case "forward":
      return theme.keyword;
    case "error":
    case "refused":
      return theme.danger;
  }
}

export function SshTimeline(props: {
  markers: readonly SshMarker[];
  durationMs: number;
  positionMs: number;
  width: number;
}): ReactElement {
  const theme = useTheme();
  const cells = sshTimelineCells(props.markers, props.durationMs, props.positionMs, props.width);
  const runs: { text: string; style: Style }[] = [];
  for (const c of cells) {
    const last = runs[runs.length - 1];
    if (last && last.style === c.style) last.text += c.ch;
    else runs.push({ text: c.ch, style: c.style });
  }
  return h(
    Text,
    { wrap: "truncate-end" },
    ...runs.map((r, i) => {
      const color = colorOf(theme, r.style);
      return h(Text, { key: i, ...(color ? { color } : {}), bold: r.style === "position" }, r.text);
    }),
  );
}
