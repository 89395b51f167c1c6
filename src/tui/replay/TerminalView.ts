import { Box, Text } from "ink";
import { createElement as h, type ReactElement } from "react";
import {
  toRuns,
  type CellStyle,
  type ScreenCell,
  type ScreenSnapshot,
} from "../../replay/screen.js";
import { useTheme } from "../theme.js";

/**
 * The recorded terminal's screen in a frame, cell for cell. When the player's terminal is
 * smaller than the recorded one, it shows the part around the cursor (where the action is)
 * and the caller says it is cropped.
 */
export interface CropWindow {
  x0: number;
  y0: number;
  cols: number;
  rows: number;
  cropped: boolean;
}

/** Which part of `screen` fits in maxCols × maxRows cells. */
export function cropWindow(screen: ScreenSnapshot, maxCols: number, maxRows: number): CropWindow {
  const cols = Math.max(1, Math.min(screen.cols, maxCols));
  const rows = Math.max(1, Math.min(screen.rows, maxRows));
  const cx = Math.min(screen.cursor.x, screen.cols - 1);
  const x0 = cx >= cols ? Math.min(screen.cols - cols, cx - cols + 1) : 0;
  const y0 = screen.cursor.y >= rows ? Math.min(screen.rows - rows, screen.cursor.y - rows + 1) : 0;
  return { x0, y0, cols, rows, cropped: cols < screen.cols || rows < screen.rows };
}

/** The cells of one row between columns x0 and x0 + cols (a wide character cut in half becomes a space). */
export function cropCells(cells: readonly ScreenCell[], x0: number, cols: number): ScreenCell[] {
  const out: ScreenCell[] = [];
  let x = 0;
  for (const c of cells) {
    const end = x + c.width;
    if (end > x0 && x < x0 + cols) {
      if (x < x0 || end > x0 + cols) out.push({ ch: " ", width: 1, style: c.style });
      else out.push(c);
    }
    x = end;
  }
  return out;
}

export function TerminalView(props: {
  screen: ScreenSnapshot;
  window: CropWindow;
  title: string;
}): ReactElement {
  const theme = useTheme();
  const { screen, window: w } = props;
  const border = (s: string) => h(Text, { color: theme.muted }, s);
  const title = ` ${props.title} `.slice(0, Math.max(0, w.cols - 1));
  const rows: ReactElement[] = [
    h(
      Text,
      { key: "top" },
      border(`┌─${title}${"─".repeat(Math.max(0, w.cols - 1 - title.length))}┐`),
    ),
  ];
  for (let y = w.y0; y < w.y0 + w.rows; y++) {
    let cells = cropCells(screen.lines[y] ?? [], w.x0, w.cols);
    if (screen.cursor.visible && y === screen.cursor.y) {
      cells = withCursor(cells, Math.min(screen.cursor.x, screen.cols - 1) - w.x0);
    }
    const runs = toRuns(cells);
    rows.push(
      h(
        Text,
        { key: y, wrap: "truncate" },
        border("│"),
        ...runs.map((r, i) => h(Text, { key: i, ...inkStyle(r.style, theme.color) }, r.text)),
        border("│"),
      ),
    );
  }
  rows.push(h(Text, { key: "bottom" }, border(`└${"─".repeat(w.cols)}┘`)));
  return h(Box, { flexDirection: "column" }, ...rows);
}

function withCursor(cells: ScreenCell[], x: number): ScreenCell[] {
  let col = 0;
  return cells.map((c) => {
    const at = col;
    col += c.width;
    return at === x ? { ...c, style: { ...c.style, inverse: !c.style.inverse } } : c;
  });
}

/** ink's Text props for a cell style; colours only when the theme draws them (NO_COLOR). */
function inkStyle(s: CellStyle, color: boolean): Record<string, unknown> {
  const p: Record<string, unknown> = {};
  if (color && s.fg !== undefined) p["color"] = s.fg;
  if (color && s.bg !== undefined) p["backgroundColor"] = s.bg;
  if (s.bold) p["bold"] = true;
  if (s.dim) p["dimColor"] = true;
  if (s.italic) p["italic"] = true;
  if (s.underline) p["underline"] = true;
  if (s.inverse) p["inverse"] = true;
  if (s.strikethrough) p["strikethrough"] = true;
  return p;
}
