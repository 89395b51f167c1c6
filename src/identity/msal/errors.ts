/**
 * MSAL's errors, turned into GwErrors that say what happened and what to do.
 *
 * MSAL loses much of what went wrong: a declined, expired or throttled device-code sign-in
 * ends as `post_request_failed: <oauth error>`, every discovery failure as
 * `endpoints_resolution_error`, every transport failure as `network_error`. The network
 * client's trace (what the server really answered, or why the connection failed) fills in
 * what MSAL dropped.
 */
import { AuthError, InteractionRequiredAuthError, ServerError } from "@azure/msal-node";
import { ExitCode, GwError, isGwError } from "../../errors.js";
import type { GwNetworkClient, WireEvent } from "./network-client.js";

export type MsalFlow = "device-code" | "silent" | "client-credentials";

export interface MsalErrorContext {
  flow: MsalFlow;
  net?: GwNetworkClient | undefined;
  /** https://host/tenant */
  authority?: string | undefined;
  /** For client credentials: how the service principal proves itself, for the hint. */
  credential?: string | undefined;
}

const TLS_CODE = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|ERR_SSL|EPROTO/;

function hostOf(url: string | undefined): string {
  if (!url) return "the identity provider";
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

/** A failed connection to the identity provider: unreachable, timed out, or an untrusted certificate. */
export function transportError(host: string, event: WireEvent | undefined): GwError {
  const code = event?.errorCode ?? "";
  if (TLS_CODE.test(code)) {
    return new GwError(
      "identity_tls",
      `the TLS certificate of the identity provider at ${host} is not trusted (${code})`,
      {
        exitCode: ExitCode.unavailable,
        hint: "If it uses a private or corporate CA, pass --ca-file (or set GW_CA_FILE) with that CA's certificate; otherwise check the broker's identity settings.",
      },
    );
  }
  let why = event?.errorMessage ?? "no response";
  if (code === "ECONNREFUSED") why = "connection refused";
  else if (code === "ENOTFOUND" || code === "EAI_AGAIN") why = "host not found";
  else if (code === "ETIMEDOUT") why = "timed out";
  else if (code === "ECONNRESET") why = "connection reset";
  else if (code === "EBADJSON") why = event?.errorMessage ?? "unexpected answer";
  return new GwError(
    "identity_unreachable",
    `cannot reach the identity provider at ${host}: ${why}`,
    {
      exitCode: ExitCode.unavailable,
      hint: "Check your network connection (and proxy or VPN), then try again.",
    },
  );
}

export function throttled(host: string, retryAfter: number | undefined): GwError {
  const wait = retryAfter !== undefined ? `${retryAfter} s` : "a minute";
  return new GwError(
    "identity_throttled",
    `the identity provider at ${host} is throttling requests (HTTP 429)`,
    { exitCode: ExitCode.unavailable, hint: `Wait ${wait} and try again.` },
  );
}

export function signInCancelled(): GwError {
  return new GwError("login_cancelled", "sign-in cancelled", { exitCode: ExitCode.failure });
}

function signInAgain(what: string): GwError {
  return new GwError("sign_in_expired", what, {
    exitCode: ExitCode.auth,
    hint: "Run `gw login` again.",
  });
}

/** The OAuth error behind an MSAL error: its own code, or the one it swallowed. */
function oauthCode(err: AuthError): string {
  if (err.errorCode === "post_request_failed") return err.errorMessage.trim().split(/\s+/)[0] ?? "";
  return err.errorCode;
}

function description(err: AuthError, event: WireEvent | undefined): string {
  if (event?.oauthDescription) return event.oauthDescription;
  // ServerError messages look like "Error(s): ... - Description: X - Correlation ID: ...".
  const m = /Description: (.*?)(?: - Correlation ID:|$)/.exec(err.errorMessage);
  const d = (m?.[1] ?? err.errorMessage).split(/\r?\n/)[0]!.trim();
  return d === "N/A" ? "" : d;
}

/** The latest answer from the token or device-code endpoint, if there was one. */
function lastTokenEvent(net: GwNetworkClient | undefined): WireEvent | undefined {
  if (!net) return undefined;
  for (let i = net.trace.length - 1; i >= 0; i--) {
    const e = net.trace[i]!;
    if (e.method === "POST") return e;
  }
  return undefined;
}

export function mapMsalError(err: unknown, ctx: MsalErrorContext): GwError {
  if (isGwError(err)) return err;
  const host = hostOf(ctx.authority);
  if (!(err instanceof AuthError)) {
    const msg = err instanceof Error ? err.message : String(err);
    return new GwError("login_failed", `sign-in failed: ${msg}`, {
      exitCode: ExitCode.failure,
      cause: err,
    });
  }
  const event = lastTokenEvent(ctx.net);
  if (event?.status === 429 || (err instanceof ServerError && err.status === 429))
    return throttled(host, event?.retryAfter);

  const code = oauthCode(err);
  const desc = description(err, event);
  switch (code) {
    case "authorization_declined":
    case "access_denied":
      return new GwError("login_declined", "the sign-in was declined", {
        exitCode: ExitCode.auth,
        hint: "Run `gw login` again and approve the request. If you did not start it, nothing was granted.",
      });
    case "expired_token":
    case "device_code_expired":
    case "user_timeout_reached":
      return new GwError("login_code_expired", "the sign-in code expired before it was used", {
        exitCode: ExitCode.auth,
        hint: "Run `gw login` again and enter the new code before it expires.",
      });
    case "slow_down":
      return new GwError(
        "login_slow_down",
        "the identity provider asked gw to poll more slowly (slow_down) and the sign-in stopped",
        { exitCode: ExitCode.unavailable, hint: "Wait a minute, then run `gw login` again." },
      );
    case "bad_verification_code":
      return new GwError(
        "login_failed",
        "the identity provider did not recognise the sign-in code",
        {
          exitCode: ExitCode.auth,
          hint: "Run `gw login` again.",
        },
      );
    case "device_code_polling_cancelled":
      return signInCancelled();
    case "invalid_tenant":
      return new GwError("unknown_tenant", `the tenant does not exist at ${host}`, {
        exitCode: ExitCode.config,
        hint: "Check the tenant id (--tenant, AZURE_TENANT_ID) or the broker's identity.login.authority.",
      });
    case "endpoints_resolution_error":
    case "openid_config_error": {
      const e = ctx.net?.last("openid-configuration");
      if (e?.errorCode) return transportError(host, e);
      if (e?.status === 429) return throttled(host, e.retryAfter);
      if (e?.oauthError === "invalid_tenant")
        return new GwError("unknown_tenant", `the tenant does not exist at ${host}`, {
          exitCode: ExitCode.config,
          hint: "Check the tenant id (--tenant, AZURE_TENANT_ID) or the broker's identity.login.authority.",
        });
      return new GwError(
        "identity_endpoints",
        `cannot use the identity provider at ${host}: its endpoints could not be resolved (TLS or issuer mismatch)`,
        {
          exitCode: ExitCode.config,
          hint: "If it uses a private or corporate CA, pass --ca-file (or GW_CA_FILE); otherwise the broker's identity settings are wrong: tell its operators.",
        },
      );
    }
    case "network_error":
    case "no_network_connectivity": {
      const e = ctx.net?.last();
      return transportError(host, e?.errorCode ? e : undefined);
    }
    case "invalid_client":
    case "invalid_client_credential":
    case "invalid_assertion":
    case "empty_fic_assertion":
      if (ctx.flow === "client-credentials")
        return new GwError(
          "sp_credentials_rejected",
          `the identity provider rejected the service principal's credentials${desc ? `: ${desc}` : ""}`,
          {
            exitCode: ExitCode.auth,
            hint: ctx.credential
              ? `Check ${ctx.credential} and the app registration's certificates, secrets and federated credentials.`
              : "Check the app registration's certificates, secrets and federated credentials.",
          },
        );
      break;
    case "unauthorized_client":
    case "invalid_scope":
    case "invalid_resource":
    case "invalid_request":
      return new GwError(
        "login_rejected",
        `the identity provider refused the request (${code})${desc ? `: ${desc}` : ""}`,
        {
          exitCode: ExitCode.auth,
          hint:
            ctx.flow === "client-credentials"
              ? "Check --client-id and --tenant, and that the app has been granted the broker's API."
              : "The broker's identity.login settings (client id, scopes) may be wrong, or the app does not allow public client flows; tell the broker's operators.",
        },
      );
  }
  if (
    err instanceof InteractionRequiredAuthError ||
    code === "invalid_grant" ||
    code === "no_tokens_found" ||
    code === "no_account_in_silent_request" ||
    code === "no_account_found" ||
    code === "refresh_token_expired"
  ) {
    return signInAgain(
      code === "invalid_grant" || code === "refresh_token_expired"
        ? "your sign-in has expired or was revoked"
        : "your sign-in is no longer valid",
    );
  }
  if (event && event.status !== undefined && event.status >= 500)
    return new GwError(
      "identity_unavailable",
      `the identity provider at ${host} failed (HTTP ${event.status})`,
      { exitCode: ExitCode.unavailable, hint: "Try again in a minute." },
    );
  return new GwError(
    ctx.flow === "client-credentials" ? "sp_token_failed" : "login_failed",
    `${ctx.flow === "client-credentials" ? "getting a token for the service principal" : "sign-in"} failed: ${code}${desc && desc !== code ? `: ${desc}` : ""}`,
    { exitCode: ExitCode.auth, cause: err },
  );
}
