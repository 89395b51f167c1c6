/**
 * OAuth errors in Entra's shape.
 *
 * Entra answers every failed token or device-code request with
 *   { error, error_description: "AADSTSnnnn: ...\r\nTrace ID: ...\r\nCorrelation ID: ...\r\nTimestamp: ...",
 *     error_codes: [nnnn], timestamp, trace_id, correlation_id }
 * HTTP 400, or 401 for `invalid_client` (a failed client authentication), as Entra does.
 * Clients (MSAL) branch on `error` only; the AADSTS numbers are the closest Entra code and are
 * for people reading logs. Entra never answers `slow_down`; here it carries 70016, the code of
 * the device-flow polling family.
 */
import { randomUUID } from "node:crypto";

export type OAuthErrorCode =
  | "invalid_request"
  | "invalid_client"
  | "invalid_grant"
  | "unauthorized_client"
  | "unsupported_grant_type"
  | "invalid_scope"
  | "invalid_resource"
  | "invalid_tenant"
  | "authorization_pending"
  | "slow_down"
  | "authorization_declined"
  | "expired_token";

export class OAuthError extends Error {
  override name = "OAuthError";
  constructor(
    readonly error: OAuthErrorCode,
    readonly aadsts: number,
    readonly description: string,
    /** Entra's `suberror`: `bad_token` for a dead refresh token (MSAL: interaction required). */
    readonly suberror?: string,
  ) {
    super(`AADSTS${aadsts}: ${description}`);
  }

  /** HTTP status: 401 for invalid_client, 400 for everything else, as Entra. */
  get status(): 400 | 401 {
    return this.error === "invalid_client" ? 401 : 400;
  }
}

export interface EntraErrorBody {
  error: OAuthErrorCode;
  error_description: string;
  error_codes: number[];
  timestamp: string;
  trace_id: string;
  correlation_id: string;
  suberror?: string;
}

/** "2024-05-01 12:34:56Z", Entra's timestamp format. */
export function entraTimestamp(ms: number): string {
  return new Date(ms)
    .toISOString()
    .replace("T", " ")
    .replace(/\.\d+Z$/, "Z");
}

export function errorBody(err: OAuthError, correlationId: string, nowMs: number): EntraErrorBody {
  const traceId = randomUUID();
  const timestamp = entraTimestamp(nowMs);
  return {
    error: err.error,
    error_description:
      `AADSTS${err.aadsts}: ${err.description}\r\nTrace ID: ${traceId}\r\n` +
      `Correlation ID: ${correlationId}\r\nTimestamp: ${timestamp}`,
    error_codes: [err.aadsts],
    timestamp,
    trace_id: traceId,
    correlation_id: correlationId,
    ...(err.suberror === undefined ? {} : { suberror: err.suberror }),
  };
}

// The errors used in more than one place, with Entra's wording.

export const missingParameter = (name: string): OAuthError =>
  new OAuthError(
    "invalid_request",
    900144,
    `The request body must contain the following parameter: '${name}'.`,
  );

export const unknownClient = (clientId: string, tenantId: string): OAuthError =>
  new OAuthError(
    "unauthorized_client",
    700016,
    `Application with identifier '${clientId}' was not found in the directory '${tenantId}'. ` +
      "This can happen if the application has not been installed by the administrator of the tenant " +
      "or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
  );

export const invalidGrant = (aadsts: number, description: string, suberror?: string): OAuthError =>
  new OAuthError("invalid_grant", aadsts, description, suberror);

export const invalidClient = (aadsts: number, description: string): OAuthError =>
  new OAuthError("invalid_client", aadsts, description);
