import type { ResultPreview } from "../store/types.js";

export interface PreviewLimits {
  rows: number;
  kib: number;
}

export const DEFAULT_PREVIEW: PreviewLimits = { rows: 20, kib: 16 };

/**
 * A preview within the limits: at most `rows` rows and about `kib` KiB of text (column names
 * and values, UTF-8). A value that alone would overflow what is left is cut, ending in "…".
 * null when previews are off or there is nothing to keep.
 */
export function trimPreview(
  p: ResultPreview | undefined | null,
  limits: PreviewLimits | false,
): ResultPreview | null {
  if (!p || limits === false) return null;
  let budget = Math.floor(limits.kib * 1024);
  const columns = p.columns.map((c) => String(c));
  for (const c of columns) budget -= Buffer.byteLength(c);
  let truncated = p.truncated;
  const rows: (string | null)[][] = [];
  for (const row of p.rows) {
    if (rows.length >= limits.rows || budget <= 0) {
      truncated = true;
      break;
    }
    const size = row.reduce((n, v) => n + (v === null ? 0 : Buffer.byteLength(v)), 0);
    if (size <= budget) {
      rows.push(row.slice());
      budget -= size;
      continue;
    }
    // The first row that does not fit: keep what fits of it, then stop.
    const cut: (string | null)[] = [];
    for (const v of row) {
      if (v === null) cut.push(null);
      else {
        const kept = cutUtf8(v, Math.max(0, budget));
        budget -= Buffer.byteLength(kept);
        cut.push(kept.length < v.length ? kept + "…" : kept);
      }
    }
    rows.push(cut);
    truncated = true;
    break;
  }
  return { columns, rows, truncated };
}

/** The longest prefix of `s` whose UTF-8 form fits in `bytes`, never splitting a character. */
function cutUtf8(s: string, bytes: number): string {
  if (Buffer.byteLength(s) <= bytes) return s;
  let out = "";
  let used = 0;
  for (const ch of s) {
    const n = Buffer.byteLength(ch);
    if (used + n > bytes) break;
    out += ch;
    used += n;
  }
  return out;
}
