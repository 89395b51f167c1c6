import { isConnectTimeout } from "./connect-timeout-agent.js";

/**
 * Which failures of one broker replica send a request to the next one, and how they read in a
 * log line. A replica that is down, restarting or broken is skipped; an answer that is about
 * the caller (401, 403, 404, a 4xx) is the same on every replica and is returned as it is.
 */

const NETWORK = [
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EPIPE",
  "EAI_AGAIN",
];

/** Errors that mean "nobody answered" (worth trying again later), not "the answer was no". */
export function isNetworkFailure(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code ?? "";
  return (
    NETWORK.includes(code) ||
    /socket hang up|Opening handshake has timed out/i.test(String((err as Error)?.message))
  );
}

/** The TLS handshake failed: a replica with a bad certificate, or one that is not TLS at all. */
export function isTlsFailure(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code ?? "";
  return /^ERR_(SSL|TLS)_|CERT|SELF_SIGNED|UNABLE_TO_/.test(code);
}

/** The replica did not answer (or not over TLS): another one may. */
export function failsOver(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code ?? "";
  return isNetworkFailure(err) || isTlsFailure(err) || code === "ENOTFOUND";
}

/**
 * The request cannot have reached the broker: safe to send again elsewhere even when it
 * changes something (an approval). A reset or a timeout after connecting may come after the
 * broker acted.
 */
export function failedBeforeSending(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code ?? "";
  return (
    ["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN", "ENOTFOUND"].includes(code) ||
    isConnectTimeout(err) ||
    isTlsFailure(err)
  );
}

/**
 * HTTP statuses that send a request elsewhere. A tunnel upgrade has done nothing yet when it is
 * refused, so any 5xx moves it; an API read moves on the statuses of a replica (or its proxy)
 * that is down or going; a change moves only on 503, which the broker answers before acting.
 */
export function failoverStatus(status: number, kind: "tunnel" | "read" | "change"): boolean {
  if (kind === "tunnel") return status >= 500;
  if (kind === "read") return status === 502 || status === 503 || status === 504;
  return status === 503;
}

/** A short reason for log lines: "ECONNREFUSED", "connect timed out after 1000 ms", "HTTP 503 shutting_down". */
export function failureReason(err: unknown): string {
  if (isConnectTimeout(err)) return err.message;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code) return code;
  return err instanceof Error ? err.message : String(err);
}

export function statusReason(status: number, body: unknown): string {
  const code = (body as { error?: { code?: unknown } } | undefined)?.error?.code;
  return typeof code === "string" ? `HTTP ${status} ${code}` : `HTTP ${status}`;
}
