import type { IBufferCell, Terminal } from "@xterm/headless";

/**
 * A terminal's screen at one moment, copied out of the emulator: rows of styled runs, the
 * cursor, the size. Plain data, so the player can draw it and tests can read it.
 */
export interface CellStyle {
  /** ink colour strings: a chalk name ("red", "blueBright"), "ansi256(n)" or "#rrggbb". */
  fg?: string;
  bg?: string;
  bold?: boolean;
  dim?: boolean;
  italic?: boolean;
  underline?: boolean;
  inverse?: boolean;
  strikethrough?: boolean;
}

/** One character on the screen; a wide one (CJK, most emoji) covers two columns. */
export interface ScreenCell {
  ch: string;
  width: 1 | 2;
  style: CellStyle;
}

/** Consecutive characters of one style. */
export interface ScreenRun {
  text: string;
  style: CellStyle;
}

export interface ScreenSnapshot {
  cols: number;
  rows: number;
  /** One entry per screen row, its cells covering exactly `cols` columns. */
  lines: ScreenCell[][];
  cursor: { x: number; y: number; visible: boolean };
  /** A full-screen program (vim, top, less) switched to the alternate screen. */
  altScreen: boolean;
}

/** The palette's first 16 colours by the names chalk (and so ink) knows. */
const NAMED = [
  "black",
  "red",
  "green",
  "yellow",
  "blue",
  "magenta",
  "cyan",
  "white",
  "blackBright",
  "redBright",
  "greenBright",
  "yellowBright",
  "blueBright",
  "magentaBright",
  "cyanBright",
  "whiteBright",
];

function colour(palette: boolean, rgb: boolean, value: number): string | undefined {
  if (palette) return value < 16 ? NAMED[value] : `ansi256(${value})`;
  if (rgb) return `#${value.toString(16).padStart(6, "0")}`;
  return undefined;
}

function styleOf(c: IBufferCell): CellStyle {
  const s: CellStyle = {};
  const fg = colour(c.isFgPalette(), c.isFgRGB(), c.getFgColor());
  const bg = colour(c.isBgPalette(), c.isBgRGB(), c.getBgColor());
  if (fg !== undefined) s.fg = fg;
  if (bg !== undefined) s.bg = bg;
  if (c.isBold()) s.bold = true;
  if (c.isDim()) s.dim = true;
  if (c.isItalic()) s.italic = true;
  if (c.isUnderline()) s.underline = true;
  if (c.isInverse()) s.inverse = true;
  if (c.isStrikethrough()) s.strikethrough = true;
  return s;
}

export function sameStyle(a: CellStyle, b: CellStyle): boolean {
  return (
    a.fg === b.fg &&
    a.bg === b.bg &&
    a.bold === b.bold &&
    a.dim === b.dim &&
    a.italic === b.italic &&
    a.underline === b.underline &&
    a.inverse === b.inverse &&
    a.strikethrough === b.strikethrough
  );
}

const PLAIN: CellStyle = Object.freeze({});

/** The visible screen of `term` (not its scrollback). */
export function readScreen(term: Terminal, cursorVisible: boolean): ScreenSnapshot {
  const buf = term.buffer.active;
  const cell = buf.getNullCell();
  const lines: ScreenCell[][] = [];
  for (let y = 0; y < term.rows; y++) {
    const line = buf.getLine(buf.baseY + y);
    const cells: ScreenCell[] = [];
    for (let x = 0; x < term.cols; x++) {
      const c = line?.getCell(x, cell);
      if (!c) {
        cells.push({ ch: " ", width: 1, style: PLAIN });
        continue;
      }
      const w = c.getWidth();
      if (w === 0) continue; // the right half of a wide character
      const chars = c.getChars();
      const style = styleOf(c);
      cells.push({
        ch: c.isInvisible() || chars === "" ? " ".repeat(w) : chars,
        width: w === 2 ? 2 : 1,
        style: Object.keys(style).length === 0 ? PLAIN : style,
      });
    }
    lines.push(cells);
  }
  return {
    cols: term.cols,
    rows: term.rows,
    lines,
    cursor: { x: buf.cursorX, y: buf.cursorY, visible: cursorVisible },
    altScreen: buf.type === "alternate",
  };
}

/** Cells joined into runs of one style. */
export function toRuns(cells: readonly ScreenCell[]): ScreenRun[] {
  const runs: ScreenRun[] = [];
  for (const c of cells) {
    const last = runs[runs.length - 1];
    if (last && sameStyle(last.style, c.style)) last.text += c.ch;
    else runs.push({ text: c.ch, style: c.style });
  }
  return runs;
}

/** The screen as plain text, one string per row, trailing blanks trimmed. */
export function screenText(s: ScreenSnapshot): string[] {
  return s.lines.map((cells) =>
    cells
      .map((c) => c.ch)
      .join("")
      .trimEnd(),
  );
}

/**
 * Everything the terminal holds, scrollback and screen, as plain text; lines the terminal
 * wrapped are joined back, and trailing blank lines dropped.
 */
export function bufferText(term: Terminal): string[] {
  const buf = term.buffer.active;
  const out: string[] = [];
  for (let y = 0; y < buf.length; y++) {
    const line = buf.getLine(y);
    if (!line) continue;
    // A row that continues on the next one keeps its trailing blanks: they are real spaces.
    const text = line.translateToString(buf.getLine(y + 1)?.isWrapped !== true);
    if (line.isWrapped && out.length > 0) out[out.length - 1] += text;
    else out.push(text);
  }
  while (out.length > 0 && out[out.length - 1] === "") out.pop();
  return out;
}
