import { fmtClock, fmtOffset, painter } from "../audit/transcript.js";
import type { SessionRecord } from "../store/types.js";
import { oneLine } from "./printable.js";
import { fmtBytes } from "./ssh-replay.js";

/**
 * A raw TCP session has nothing to play: the broker relays its bytes without understanding
 * them and records only who, when and how much. One screen says so.
 */
export function tcpSummary(s: SessionRecord, opts: { color?: boolean } = {}): string {
  const paint = painter(opts.color === true);
  const who = [s.identity.upn, s.identity.type].filter(Boolean).join(", ");
  const duration = s.endedAt === null ? null : s.endedAt - s.startedAt;
  const lines = [
    paint("bold", `gw replay · raw TCP session ${s.id}`),
    "",
    `  who        ${s.identity.name} (${who})${s.agentLabel ? ` · agent ${oneLine(s.agentLabel)}` : ""}`,
    `  connection ${s.connection}${s.clientAddress ? ` · from ${s.clientAddress}` : ""}`,
    `  started    ${fmtClock(s.startedAt)}`,
    s.endedAt === null
      ? `  ended      ${paint("yellow", "still open")}`
      : `  ended      ${fmtClock(s.endedAt)} (${s.endReason ?? "ended"}${s.endDetail ? `: ${s.endDetail}` : ""})`,
    `  duration   ${duration === null ? "—" : fmtOffset(duration).slice(1)}`,
    `  bytes in   ${fmtBytes(s.bytesIn)} (client → target)`,
    `  bytes out  ${fmtBytes(s.bytesOut)} (target → client)`,
    "",
    paint(
      "dim",
      "Content is not recorded for tcp connections: the broker relays the bytes without " +
        "understanding them, so there is nothing to replay.",
    ),
  ];
  if (s.prunedAt !== undefined) {
    lines.push(paint("dim", `Retention pruned the session on ${fmtClock(s.prunedAt)}.`));
  }
  return lines.join("\n") + "\n";
}
