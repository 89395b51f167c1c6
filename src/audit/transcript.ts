import type { ResultPreview } from "../store/types.js";
import { decisionLabel, type Replay, type ReplayStatement } from "./replay.js";

/**
 * A session as a psql-like transcript: the prompt and SQL, the result preview as psql's
 * aligned table, the command tag or error, and a comment line with timing and the decision.
 * Plain text unless `color` (ANSI, for a terminal or an asciicast).
 */
export interface TranscriptOptions {
  color?: boolean;
}

const ANSI = { bold: "1", dim: "2", red: "31", green: "32", yellow: "33", cyan: "36" } as const;

/** Paints with ANSI codes, or leaves the text alone when `color` is off. */
export function painter(color: boolean) {
  return (code: keyof typeof ANSI, s: string) => (color ? `\x1b[${ANSI[code]}m${s}\x1b[0m` : s);
}

export function fmtClock(ms: number): string {
  return new Date(ms).toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

/** "+4.512s", "+2m03.100s", "+1h02m03.100s" */
export function fmtOffset(ms: number): string {
  const total = Math.max(0, ms) / 1000;
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = (total % 60).toFixed(3);
  if (h > 0) return `+${h}h${String(m).padStart(2, "0")}m${s.padStart(6, "0")}s`;
  if (m > 0) return `+${m}m${s.padStart(6, "0")}s`;
  return `+${s}s`;
}

export function fmtMs(ms: number | null): string {
  if (ms === null) return "—";
  if (ms < 1000) return `${ms.toFixed(ms < 10 ? 2 : 1)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

/** The header: who, where, when, and how it ended; one comment line each. */
export function headerLines(r: Replay, opts: TranscriptOptions = {}): string[] {
  const paint = painter(opts.color === true);
  const s = r.session;
  const who = [s.identity.upn, s.identity.type].filter(Boolean).join(", ");
  const lines = [
    `-- gw replay · session ${s.id}`,
    `-- ${s.identity.name} (${who}) on ${s.connection}` +
      (s.applicationName ? ` · application ${s.applicationName}` : "") +
      (s.agentLabel ? ` · agent ${s.agentLabel}` : ""),
    `-- started ${fmtClock(s.startedAt)}` +
      (s.endedAt !== null
        ? ` · ended ${fmtClock(s.endedAt)} (${s.endReason ?? "ended"})`
        : " · still open"),
  ];
  const counts = new Map<string, number>();
  for (const st of r.statements) {
    const k = st.decision ?? "no result";
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  const n = r.statements.length;
  lines.push(
    `-- ${n} statement${n === 1 ? "" : "s"}` +
      (n > 0 ? `: ${[...counts].map(([k, v]) => `${v} ${k}`).join(", ")}` : ""),
  );
  if (s.prunedAt !== undefined) {
    lines.push(`-- its statements were removed by retention on ${fmtClock(s.prunedAt)}`);
  }
  return lines.map((l) => paint("dim", l));
}

/** What the user typed: the prompt and the SQL. */
export function inputLines(
  s: ReplayStatement,
  connection: string,
  opts: TranscriptOptions = {},
): string[] {
  const paint = painter(opts.color === true);
  const sql = s.sql.replace(/\r\n?/g, "\n").split("\n");
  return sql.map((line, i) => paint("bold", `${connection}${i === 0 ? "=>" : "->"} `) + line);
}

/** What came back: the preview table, tags or error, and the comment with time and decision. */
export function outputLines(s: ReplayStatement, opts: TranscriptOptions = {}): string[] {
  const paint = painter(opts.color === true);
  return [...resultLines(s, opts), paint("dim", `-- ${infoLine(s)} · `) + badge(s, opts)];
}

/** "#3 · +4.512s · 12.3 ms · SQLSTATE 42501" */
export function infoLine(s: ReplayStatement): string {
  return [
    s.n === null ? "#?" : `#${s.n}`,
    fmtOffset(s.offsetMs),
    fmtMs(s.durationMs),
    s.errorCode ? `SQLSTATE ${s.errorCode}` : null,
  ]
    .filter((x) => x !== null)
    .join(" · ");
}

/** The result as psql shows it: the preview table and row count, tags, or the error. */
export function resultLines(s: ReplayStatement, opts: TranscriptOptions = {}): string[] {
  const paint = painter(opts.color === true);
  const out: string[] = [];
  if (s.preview && s.preview.columns.length > 0) {
    out.push(...previewTable(s.preview));
    const shown = s.preview.rows.length;
    const total = s.rows ?? shown;
    out.push(
      s.preview.truncated || total > shown
        ? `(${total} row${total === 1 ? "" : "s"}; first ${shown} recorded)`
        : `(${total} row${total === 1 ? "" : "s"})`,
    );
  }
  const tags = (s.commandTag ?? "").split(", ").filter((t) => t !== "");
  for (const t of tags) {
    // psql prints a SELECT's rows instead of its tag.
    if (s.preview && /^SELECT \d+$/.test(t)) continue;
    out.push(t);
  }
  if (s.errorMessage !== null || s.errorCode !== null) {
    out.push(paint("red", `ERROR:  ${s.errorMessage ?? ""}`));
  }
  if (s.outcome === "unfinished") {
    out.push(
      paint(
        "dim",
        "-- no result recorded: it was sent to the target, but the session ended or an earlier error in its batch skipped it",
      ),
    );
  }
  return out;
}

/** [allowed], [BLOCKED], [approved by Carol], [DENIED by Dan: reason] */
export function badge(s: ReplayStatement, opts: TranscriptOptions = {}): string {
  const paint = painter(opts.color === true);
  const label = decisionLabel(s);
  switch (s.decision) {
    case "allowed":
      return paint("green", `[${label}]`);
    case "approved":
      return paint("yellow", `[${label}]`);
    case "blocked":
    case "denied":
      return paint("red", `[${label.replace(/^\w+/, (w) => w.toUpperCase())}]`);
    default:
      return paint("dim", `[${label}]`);
  }
}

/** psql's aligned format: centred headers, numbers right-aligned, NULL as empty. */
export function previewTable(p: ResultPreview): string[] {
  const cells = p.rows.map((r) => p.columns.map((_, i) => oneLine(r[i] ?? null)));
  const widths = p.columns.map((c, i) => Math.max(width(c), ...cells.map((r) => width(r[i]!))));
  const numeric = p.columns.map((_, i) =>
    cells.every((r) => r[i] === "" || /^-?\d+(\.\d+)?(e[+-]?\d+)?$/i.test(r[i]!)),
  );
  const line = (parts: string[]) => (" " + parts.join(" | ")).replace(/\s+$/, "");
  const head = line(
    p.columns.map((c, i) => {
      const pad = widths[i]! - width(c);
      const left = Math.floor(pad / 2);
      return " ".repeat(left) + c + " ".repeat(pad - left);
    }),
  );
  const rule = widths.map((w) => "-".repeat(w + 2)).join("+");
  const body = cells.map((r) =>
    line(
      r.map((v, i) =>
        numeric[i]
          ? v.padStart(widths[i]! + v.length - width(v))
          : v + " ".repeat(widths[i]! - width(v)),
      ),
    ),
  );
  return [head, rule, ...body];
}

function oneLine(v: string | null): string {
  return v === null ? "" : v.replace(/\r?\n/g, "↵");
}

/** Display width, counting each code point as one column (good enough for a transcript). */
function width(s: string): number {
  return [...s].length;
}

/** The whole session as text. */
export function transcript(r: Replay, opts: TranscriptOptions = {}): string {
  const lines = headerLines(r, opts);
  for (const s of r.statements) {
    lines.push("", ...inputLines(s, r.session.connection, opts), ...outputLines(s, opts));
  }
  lines.push("", endLine(r, opts));
  return lines.join("\n") + "\n";
}

export function endLine(r: Replay, opts: TranscriptOptions = {}): string {
  const paint = painter(opts.color === true);
  const s = r.session;
  return paint(
    "dim",
    s.endedAt === null
      ? "-- (the session is still open)"
      : `-- session ended ${fmtOffset(s.endedAt - s.startedAt)}: ${s.endReason ?? "ended"}${s.endDetail ? ` (${s.endDetail})` : ""}`,
  );
}
