/**
 * Entra's scope parameter: OIDC scopes plus scopes of at most one resource.
 *
 * `api://{appId}/access`, `{appId}/access` and `{identifierUri}/access` name the delegated scope
 * `access` of that API; `{resource}/.default` names all of them (users) or the app roles
 * (client credentials). The access token's `aud` is always the API's app id GUID, never the
 * `api://` URI, like Entra v2 tokens for an API that accepts v2 tokens.
 */
import { GRAPH_APP_ID, type Api, type Directory } from "./directory.js";
import { OAuthError } from "./oauth-errors.js";

export const OIDC_SCOPES = new Set(["openid", "profile", "email", "offline_access"]);

export interface ScopeRequest {
  /** The scopes as asked, in order (echoed back in the token response). */
  requested: string[];
  /** The OIDC scopes asked for. */
  oidc: Set<string>;
  /** The API the resource scopes name; undefined when only OIDC scopes were asked. */
  api: Api | undefined;
  /** The resource scopes as asked (e.g. `api://.../access`). */
  resourceScopes: string[];
  /** The delegated scope names for `scp` (e.g. `access`). */
  scp: string[];
  /** `{resource}/.default` was asked. */
  isDefault: boolean;
}

const invalidScope = (scope: string): OAuthError =>
  new OAuthError(
    "invalid_scope",
    70011,
    `The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope ${scope} is not valid.`,
  );

export function splitScopes(value: string | undefined): string[] {
  return (value ?? "").split(/\s+/).filter((s) => s !== "");
}

export function parseScopes(value: string | undefined, dir: Directory): ScopeRequest {
  const requested = splitScopes(value);
  const oidc = new Set<string>();
  const resourceScopes: string[] = [];
  const scp: string[] = [];
  let api: Api | undefined;
  let isDefault = false;
  for (const s of requested) {
    if (OIDC_SCOPES.has(s.toLowerCase())) {
      oidc.add(s.toLowerCase());
      continue;
    }
    const slash = s.lastIndexOf("/");
    if (slash <= 0 || slash === s.length - 1) throw invalidScope(s);
    const resource = s.slice(0, slash);
    const name = s.slice(slash + 1);
    const found = dir.api(resource);
    if (!found) {
      throw new OAuthError(
        "invalid_resource",
        500011,
        `The resource principal named ${resource} was not found in the tenant. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.`,
      );
    }
    if (api && api.appId !== found.appId) {
      throw new OAuthError(
        "invalid_scope",
        28000,
        `Provided value for the input parameter scope is not valid because it contains more than one resource. Scope ${requested.join(" ")} is not valid.`,
      );
    }
    api = found;
    resourceScopes.push(s);
    if (name === ".default") {
      isDefault = true;
      for (const n of found.scopes) if (!scp.includes(n)) scp.push(n);
    } else if (found.scopes.includes(name)) {
      if (!scp.includes(name)) scp.push(name);
    } else {
      throw invalidScope(s);
    }
  }
  if (isDefault && resourceScopes.length > 1) {
    throw new OAuthError(
      "invalid_scope",
      70011,
      `The provided value for the input parameter 'scope' is not valid. /.default cannot be combined with other resource scopes: ${requested.join(" ")}`,
    );
  }
  return { requested, oidc, api, resourceScopes, scp, isDefault };
}

/** What a user token is for when only OIDC scopes were asked: Graph, as in Entra. */
export function audienceOf(req: ScopeRequest): string {
  return req.api?.appId ?? GRAPH_APP_ID;
}
