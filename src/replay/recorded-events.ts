import type { HttpBody, SshBody } from "../audit/chain.js";
import type { AuditEvent } from "../store/types.js";

/**
 * The ssh and http bodies of a session's chain, parsed from the signed body text (not from the
 * store's copies beside it, as buildReplay does), in chain order. A body that does not parse,
 * or has no event, is skipped: `gw audit verify` is what reports a damaged chain.
 */
export function bodiesOf(events: readonly AuditEvent[], type: "ssh"): SshBody[];
export function bodiesOf(events: readonly AuditEvent[], type: "http"): HttpBody[];
export function bodiesOf(
  events: readonly AuditEvent[],
  type: "ssh" | "http",
): (SshBody | HttpBody)[] {
  const out: (SshBody | HttpBody)[] = [];
  for (const e of [...events].sort((a, b) => a.seq - b.seq)) {
    let body: unknown;
    try {
      body = JSON.parse(e.body);
    } catch {
      continue;
    }
    if (!isRecord(body) || body["type"] !== type || !isRecord(body["event"])) continue;
    if (typeof body["event"]["kind"] !== "string") continue;
    out.push(body as unknown as SshBody | HttpBody);
  }
  return out;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
