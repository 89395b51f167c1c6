/**
 * Checks an authority before MSAL sees it, and tells MSAL what it would otherwise discover.
 *
 * MSAL reports every problem with an authority's discovery document (unreachable host,
 * untrusted certificate, unknown tenant, issuer on another host) as one opaque
 * `endpoints_resolution_error`. gw fetches the document itself first, through the same
 * CA-aware network client, so each of those gets its own message; the document is then handed
 * to MSAL (`authorityMetadata`), which saves MSAL the same request.
 */
import { ExitCode, GwError } from "../../errors.js";
import type { GwNetworkClient } from "./network-client.js";
import { transportError, throttled } from "./errors.js";

/** Hosts of Microsoft's public and national clouds: MSAL knows them; everything else it must be told. */
const MICROSOFT_HOSTS = new Set([
  "login.microsoftonline.com",
  "login.microsoft.com",
  "login.windows.net",
  "login.microsoftonline.us",
  "login.chinacloudapi.cn",
  "login.partner.microsoftonline.cn",
]);

export interface ResolvedAuthority {
  /** https://host[:port]/tenant, without a trailing slash. */
  authority: string;
  /** host[:port] */
  host: string;
  /** The tenant segment of the authority (a GUID, a domain, `organizations`, ...). */
  tenant: string;
  /** For MSAL's `knownAuthorities`: empty for Microsoft's clouds (MSAL discovers those). */
  knownAuthorities: string[];
  /** The openid-configuration, as MSAL's `authorityMetadata` wants it (a JSON string). */
  metadata: string;
  issuer: string;
}

/** Parses and normalizes an authority URL; `what` names where it came from, for messages. */
export function parseAuthority(authority: string, what = "the authority"): URL {
  let u: URL;
  try {
    u = new URL(authority);
  } catch {
    throw new GwError("authority_invalid", `${what} "${authority}" is not a URL`, {
      exitCode: ExitCode.config,
      hint: "An authority looks like https://login.microsoftonline.com/<tenant-id>.",
    });
  }
  if (u.protocol !== "https:") {
    throw new GwError("authority_insecure", `${what} ${authority} is not https`, {
      exitCode: ExitCode.config,
      hint: "Entra ID and MSAL only talk to https:// authorities; fix the broker's identity.login.authority.",
    });
  }
  const tenant = u.pathname.split("/").filter((p) => p !== "")[0];
  if (!tenant) {
    throw new GwError("authority_invalid", `${what} ${authority} names no tenant`, {
      exitCode: ExitCode.config,
      hint: "An authority looks like https://login.microsoftonline.com/<tenant-id>.",
    });
  }
  return u;
}

export function isMicrosoftHost(host: string): boolean {
  return MICROSOFT_HOSTS.has(host.toLowerCase());
}

/** `https://host/tenant` for the same host as `authority` with another tenant (service principals). */
export function authorityWithTenant(authority: string, tenant: string): string {
  const u = parseAuthority(authority);
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(tenant)) {
    throw new GwError("tenant_invalid", `"${tenant}" is not a tenant id or domain`, {
      exitCode: ExitCode.usage,
      hint: "Pass the directory (tenant) id, a GUID, or the tenant's domain.",
    });
  }
  return `${u.origin}/${tenant}`;
}

export async function resolveAuthority(
  authority: string,
  net: GwNetworkClient,
): Promise<ResolvedAuthority> {
  const u = parseAuthority(authority);
  const tenant = u.pathname.split("/").filter((p) => p !== "")[0]!;
  const base = `${u.origin}/${tenant}`;
  const url = `${base}/v2.0/.well-known/openid-configuration`;
  let res;
  try {
    res = await net.sendGetRequestAsync<Record<string, unknown>>(url, {}, 15_000);
  } catch {
    throw transportError(u.host, net.last(url));
  }
  const body = res.body;
  if (res.status === 429) throw throttled(u.host, net.last(url)?.retryAfter);
  if (
    body.error === "invalid_tenant" ||
    (typeof body.error_description === "string" && body.error_description.includes("AADSTS90002"))
  ) {
    throw unknownTenant(tenant, u.host);
  }
  if (res.status >= 500) {
    throw new GwError(
      "identity_unavailable",
      `the identity provider at ${u.host} failed (HTTP ${res.status})`,
      { exitCode: ExitCode.unavailable, hint: "Try again in a minute." },
    );
  }
  if (res.status !== 200 || typeof body.token_endpoint !== "string") {
    throw new GwError(
      "identity_discovery_failed",
      `${url} is not an OpenID configuration (HTTP ${res.status})`,
      {
        exitCode: ExitCode.config,
        hint: "The broker's identity.login.authority looks wrong; tell the broker's operators.",
      },
    );
  }
  const issuer = typeof body.issuer === "string" ? body.issuer : "";
  let issuerUrl: URL | undefined;
  try {
    issuerUrl = new URL(issuer);
  } catch {
    issuerUrl = undefined;
  }
  // What MSAL checks too: same scheme, host and port. (Entra's multi-tenant documents have
  // `{tenantid}` in the path, so only the origin is compared.)
  if (!issuerUrl || issuerUrl.origin !== u.origin) {
    throw new GwError(
      "identity_issuer_mismatch",
      `the identity provider's discovery document at ${u.host} names the issuer ${issuer || "(none)"}, which is not on ${u.origin}`,
      {
        exitCode: ExitCode.config,
        hint: "The broker's identity settings (identity.login.authority) do not match its identity provider; tell the broker's operators.",
      },
    );
  }
  return {
    authority: base,
    host: u.host,
    tenant,
    knownAuthorities: isMicrosoftHost(u.hostname) ? [] : [u.host],
    metadata: JSON.stringify(body),
    issuer,
  };
}

export function unknownTenant(tenant: string, host: string): GwError {
  return new GwError("unknown_tenant", `the tenant "${tenant}" does not exist at ${host}`, {
    exitCode: ExitCode.config,
    hint: "Check the tenant id (--tenant, AZURE_TENANT_ID) or the broker's identity.login.authority.",
  });
}
