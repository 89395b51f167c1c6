/** Text helpers for the approvals screen: short durations and fixed-width cells. */

/** How long ago: "12s", "3m", "2h", "4d". */
export function formatAge(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h`;
  return `${Math.floor(h / 24)}d`;
}

/** Time left: "4:48", "0:07", "1h02m", "expired". */
export function formatCountdown(ms: number): string {
  if (ms <= 0) return "expired";
  const s = Math.ceil(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  const h = Math.floor(s / 3600);
  if (h < 48) return `${h}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  return `${Math.floor(h / 24)}d`;
}

/** One line: newlines and runs of white space become one space. */
export function oneLine(s: string): string {
  return s.replace(/\s+/g, " ").trim();
}

/** At most `width` characters, with "…" when cut. */
export function truncate(s: string, width: number): string {
  if (width <= 0) return "";
  const chars = Array.from(s);
  if (chars.length <= width) return s;
  return width === 1 ? "…" : chars.slice(0, width - 1).join("") + "…";
}

/** Exactly `width` characters: cut with "…" or padded with spaces. */
export function cell(s: string, width: number, align: "left" | "right" = "left"): string {
  const t = truncate(s, width);
  const pad = " ".repeat(Math.max(0, width - Array.from(t).length));
  return align === "left" ? t + pad : pad + t;
}
