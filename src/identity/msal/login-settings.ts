/**
 * What a broker's discovery document (GET /.well-known/gw-configuration) says about signing in:
 * `identity.login = { authority, clientId, scopes }` for people, and from it (or from the
 * issuer and audience) the authority host and the `<resource>/.default` scope for service
 * principals.
 */
import { ExitCode, GwError } from "../../errors.js";
import { BrokerClient } from "../../tunnel/broker-client.js";
import { authorityWithTenant, parseAuthority } from "./authority.js";

export interface LoginSettings {
  broker: string;
  /** The user sign-in settings, when the broker publishes them. */
  login?: { authority: string; clientId: string; scopes: string[] };
  /** https://host of the identity provider (the authority without its tenant). */
  authorityHost: string;
  /** The scope service principals ask for: `<resource>/.default`. */
  appScope: string;
}

/** `api://x/access` → `api://x/.default`; a GUID audience → `GUID/.default`. */
export function defaultScopeFor(scopeOrAudience: string): string {
  if (scopeOrAudience.endsWith("/.default")) return scopeOrAudience;
  const i = scopeOrAudience.lastIndexOf("/");
  // A scope is <resource>/<name>; a bare resource (a GUID or api://x with no name) has none.
  if (i > 0 && !scopeOrAudience.slice(0, i).endsWith(":/") && !scopeOrAudience.endsWith("/")) {
    return `${scopeOrAudience.slice(0, i)}/.default`;
  }
  return `${scopeOrAudience.replace(/\/+$/, "")}/.default`;
}

function noSettings(broker: string, what: string): GwError {
  return new GwError(
    "broker_login_unsupported",
    `the broker at ${broker} does not publish ${what}`,
    {
      exitCode: ExitCode.config,
      hint: "Its operators must set identity.login (authority, clientId, scopes) in the broker config; until then use GW_TOKEN.",
    },
  );
}

export function parseLoginSettings(broker: string, doc: Record<string, unknown>): LoginSettings {
  const identity = (doc["identity"] ?? {}) as {
    issuer?: unknown;
    audience?: unknown;
    login?: { authority?: unknown; clientId?: unknown; scopes?: unknown };
  };
  const l = identity.login;
  let login: LoginSettings["login"];
  if (
    l &&
    typeof l.authority === "string" &&
    typeof l.clientId === "string" &&
    Array.isArray(l.scopes) &&
    l.scopes.length > 0 &&
    l.scopes.every((s) => typeof s === "string")
  ) {
    parseAuthority(l.authority, "the broker's identity.login.authority");
    login = {
      authority: l.authority.replace(/\/+$/, ""),
      clientId: l.clientId,
      scopes: l.scopes as string[],
    };
  }
  let authorityHost: string | undefined;
  if (login) authorityHost = new URL(login.authority).origin;
  else if (typeof identity.issuer === "string") {
    try {
      authorityHost = new URL(identity.issuer).origin;
    } catch {
      authorityHost = undefined;
    }
  }
  if (!authorityHost) throw noSettings(broker, "its identity provider");
  const audience = Array.isArray(identity.audience) ? identity.audience[0] : identity.audience;
  const resource = login?.scopes[0] ?? (typeof audience === "string" ? audience : undefined);
  if (!resource) throw noSettings(broker, "the API to ask tokens for");
  return {
    broker,
    ...(login ? { login } : {}),
    authorityHost,
    appScope: defaultScopeFor(resource),
  };
}

export async function fetchLoginSettings(broker: string, caFile?: string): Promise<LoginSettings> {
  const client = new BrokerClient({ url: broker, caFile });
  const doc = await client.discovery();
  if (doc["product"] !== undefined && doc["product"] !== "gw") {
    throw new GwError("broker_bad_response", `${client.url} is not a gw broker`, {
      exitCode: ExitCode.unavailable,
    });
  }
  return parseLoginSettings(client.url, doc);
}

/** The authority a service principal of `tenant` signs in at, on the broker's identity provider. */
export function spAuthority(settings: LoginSettings, tenant: string): string {
  return authorityWithTenant(settings.authorityHost + "/x", tenant);
}
