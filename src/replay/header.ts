import { fmtClock, fmtOffset, painter } from "../audit/transcript.js";
import type { SessionRecord } from "../store/types.js";
import { oneLine } from "./printable.js";

/**
 * The opening and closing comment lines of every non-SQL transcript (ssh, http, tcp), in the
 * psql transcript's style: who, where, when, how it ended.
 */
export function sessionHeaderLines(
  s: SessionRecord,
  summary: string,
  opts: { color?: boolean } = {},
): string[] {
  const paint = painter(opts.color === true);
  const who = [s.identity.upn, s.identity.type].filter(Boolean).join(", ");
  const lines = [
    `-- gw replay · session ${s.id}`,
    `-- ${s.identity.name} (${who}) on ${s.connection} (${s.protocol})` +
      (s.applicationName ? ` · client ${oneLine(s.applicationName)}` : "") +
      (s.clientAddress ? ` · from ${s.clientAddress}` : "") +
      (s.agentLabel ? ` · agent ${oneLine(s.agentLabel)}` : ""),
    `-- started ${fmtClock(s.startedAt)}` +
      (s.endedAt !== null
        ? ` · ended ${fmtClock(s.endedAt)} (${s.endReason ?? "ended"})`
        : " · still open"),
    `-- ${summary}`,
  ];
  if (s.prunedAt !== undefined) {
    lines.push(`-- its events were removed by retention on ${fmtClock(s.prunedAt)}`);
  }
  return lines.map((l) => paint("dim", l));
}

export function sessionEndLine(s: SessionRecord, opts: { color?: boolean } = {}): string {
  const paint = painter(opts.color === true);
  return paint(
    "dim",
    s.endedAt === null
      ? "-- (the session is still open)"
      : `-- session ended ${fmtOffset(s.endedAt - s.startedAt)}: ${s.endReason ?? "ended"}${s.endDetail ? ` (${s.endDetail})` : ""}`,
  );
}
