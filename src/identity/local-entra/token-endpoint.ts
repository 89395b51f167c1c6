/**
 * The devicecode and token endpoints: request in (a parsed form), JSON body out, or an
 * OAuthError thrown with exactly what Entra would answer.
 *
 * Grants: `device_code` (MSAL's short form) and `urn:ietf:params:oauth:grant-type:device_code`,
 * `refresh_token`, `client_credentials`. Tokens are Entra v2-shaped (see tokens.ts); the
 * access token's `aud` is the API's app id GUID.
 */
import type { KeySet } from "./keys.js";
import { authenticateClient, type ClientAuthContext } from "./client-auth.js";
import type { DeviceFlow } from "./device-flow.js";
import type { Directory, DirectoryUser } from "./directory.js";
import type { Form } from "./form.js";
import {
  OAuthError,
  invalidClient,
  invalidGrant,
  missingParameter,
  unknownClient,
} from "./oauth-errors.js";
import type { RefreshTokenStore } from "./refresh-tokens.js";
import { audienceOf, parseScopes, splitScopes, type ScopeRequest } from "./scopes.js";
import { mintAccessToken, mintIdToken, type IssuerContext } from "./tokens.js";

export interface Lifetimes {
  /** Access tokens, seconds. */
  accessToken: number;
  /** ID tokens, seconds. */
  idToken: number;
  /** Refresh tokens, seconds (sliding: each redemption issues a new one). */
  refreshToken: number;
  /** How long a redeemed refresh token still works, seconds. */
  refreshTokenReuseGrace: number;
  /** Device codes (`expires_in`), seconds. */
  deviceCode: number;
}

export interface TokenServiceContext {
  dir: Directory;
  issuer: IssuerContext;
  keys: KeySet;
  deviceFlow: DeviceFlow;
  refreshTokens: RefreshTokenStore;
  lifetimes: Lifetimes;
  clientAuth: ClientAuthContext;
  /** `${url}/devicelogin` */
  verificationUri: string;
  /** Epoch ms. */
  now: () => number;
}

export interface TokenResponse {
  token_type: "Bearer";
  scope: string;
  expires_in: number;
  ext_expires_in: number;
  access_token: string;
  refresh_token?: string;
  id_token?: string;
  client_info?: string;
}

export interface DeviceCodeResponse {
  user_code: string;
  device_code: string;
  verification_uri: string;
  expires_in: number;
  interval: number;
  message: string;
}

const DEVICE_CODE_GRANTS = new Set(["device_code", "urn:ietf:params:oauth:grant-type:device_code"]);

/** A grant only public clients use: refuse confidential clients and presented credentials. */
function publicClient(form: Form, ctx: TokenServiceContext): string {
  const clientId = form.get("client_id");
  if (clientId === undefined) throw missingParameter("client_id");
  const client = ctx.dir.client(clientId);
  if (!client) throw unknownClient(clientId, ctx.issuer.tenantId);
  if (client.type === "confidential") {
    // What Entra answers when an app without "allow public client flows" tries a public flow.
    throw invalidClient(
      7000218,
      "The request body must contain the following parameter: 'client_assertion' or 'client_secret'. " +
        "(This client is registered as a confidential client; device-code sign-in is for public clients.)",
    );
  }
  if (form.get("client_secret") !== undefined || form.get("client_assertion") !== undefined) {
    throw invalidClient(
      700025,
      "Client is public so neither 'client_assertion' nor 'client_secret' should be presented.",
    );
  }
  return clientId;
}

export function deviceCodeRequest(form: Form, ctx: TokenServiceContext): DeviceCodeResponse {
  const clientId = publicClient(form, ctx);
  const scope = form.get("scope");
  if (scope === undefined) throw missingParameter("scope");
  parseScopes(scope, ctx.dir); // refuse bad scopes now, not after the person signed in
  const e = ctx.deviceFlow.start(clientId, scope);
  return {
    user_code: e.userCode,
    device_code: e.deviceCode,
    verification_uri: ctx.verificationUri,
    expires_in: Math.round((e.expiresAt - e.createdAt) / 1000),
    interval: e.interval,
    message: `To sign in, use a web browser to open the page ${ctx.verificationUri} and enter the code ${e.userCode} to authenticate.`,
  };
}

export async function tokenRequest(
  form: Form,
  authorization: string | undefined,
  ctx: TokenServiceContext,
): Promise<TokenResponse> {
  const grantType = form.get("grant_type");
  if (grantType === undefined) throw missingParameter("grant_type");
  if (DEVICE_CODE_GRANTS.has(grantType)) return deviceCodeGrant(form, ctx);
  if (grantType === "refresh_token") return refreshTokenGrant(form, ctx);
  if (grantType === "client_credentials") return clientCredentialsGrant(form, authorization, ctx);
  throw new OAuthError(
    "unsupported_grant_type",
    70003,
    `The app requested an unsupported grant type '${grantType}'.`,
  );
}

function deviceCodeGrant(form: Form, ctx: TokenServiceContext): Promise<TokenResponse> {
  const clientId = publicClient(form, ctx);
  const deviceCode = form.get("device_code");
  if (deviceCode === undefined) throw missingParameter("device_code");
  const e = ctx.deviceFlow.poll(deviceCode, clientId);
  const user = ctx.dir.user(e.userOid!);
  if (!user) throw noSuchUser(e.userOid!);
  // The scopes are the ones the person approved at the devicecode endpoint, not whatever the
  // poll says.
  return userTokens(ctx, user, clientId, e.scope, parseScopes(e.scope, ctx.dir), false);
}

function refreshTokenGrant(form: Form, ctx: TokenServiceContext): Promise<TokenResponse> {
  const clientId = publicClient(form, ctx);
  const token = form.get("refresh_token");
  if (token === undefined) throw missingParameter("refresh_token");
  const asked = form.get("scope");
  // Validate the scopes before using up the refresh token.
  const askedScopes = asked === undefined ? undefined : parseScopes(asked, ctx.dir);
  const grant = ctx.refreshTokens.redeem(token, clientId);
  const scope = asked ?? grant.scope;
  const user = ctx.dir.user(grant.oid);
  if (!user) throw noSuchUser(grant.oid);
  return userTokens(ctx, user, clientId, scope, askedScopes ?? parseScopes(scope, ctx.dir), true);
}

function noSuchUser(oid: string): OAuthError {
  return invalidGrant(
    50034,
    `The user account ${oid} does not exist in the directory. To sign into this application, the account must be added to the directory.`,
  );
}

function clientInfo(oid: string, tid: string): string {
  return Buffer.from(JSON.stringify({ uid: oid, utid: tid })).toString("base64url");
}

/** The scopes as the response reports them: the resource scopes asked, then the OIDC ones. */
function responseScope(req: ScopeRequest): string {
  const oidc = ["openid", "profile", "email", "offline_access"].filter((s) => req.oidc.has(s));
  return [...req.resourceScopes, ...oidc].join(" ");
}

async function userTokens(
  ctx: TokenServiceContext,
  user: DirectoryUser,
  clientId: string,
  scope: string,
  req: ScopeRequest,
  fromRefreshToken: boolean,
): Promise<TokenResponse> {
  const nowS = Math.floor(ctx.now() / 1000);
  const groups = user.groups ?? [];
  const roles = user.roles ?? [];
  // Without an API scope Entra issues a Graph token; its scp holds the OIDC scopes granted.
  const scp = req.api
    ? req.scp.join(" ")
    : ["openid", "profile", "email"].filter((s) => req.oidc.has(s)).join(" ") || "openid";
  const accessToken = await mintAccessToken(
    ctx.keys.current,
    ctx.issuer,
    {
      aud: audienceOf(req),
      oid: user.oid,
      azp: clientId,
      azpacr: "0",
      idtyp: "user",
      name: user.name,
      preferred_username: user.preferred_username,
      scp,
      groups: groups.length > 0 ? [...groups] : undefined,
      roles: roles.length > 0 ? [...roles] : undefined,
    },
    { now: nowS, lifetimeSeconds: ctx.lifetimes.accessToken },
  );
  const res: TokenResponse = {
    token_type: "Bearer",
    scope: responseScope(req),
    expires_in: ctx.lifetimes.accessToken,
    ext_expires_in: ctx.lifetimes.accessToken,
    access_token: accessToken,
  };
  // Entra returns a refresh token when offline_access was granted (MSAL always asks for it), and
  // a new one for every redeemed refresh token.
  if (req.oidc.has("offline_access") || fromRefreshToken) {
    res.refresh_token = ctx.refreshTokens.issue({ oid: user.oid, clientId, scope });
  }
  if (req.oidc.has("openid")) {
    res.id_token = await mintIdToken(
      ctx.keys.current,
      ctx.issuer,
      {
        aud: clientId,
        oid: user.oid,
        name: user.name,
        preferred_username: user.preferred_username,
      },
      { now: nowS, lifetimeSeconds: ctx.lifetimes.idToken },
    );
  }
  res.client_info = clientInfo(user.oid, ctx.issuer.tenantId);
  return res;
}

async function clientCredentialsGrant(
  form: Form,
  authorization: string | undefined,
  ctx: TokenServiceContext,
): Promise<TokenResponse> {
  const auth = await authenticateClient(form, authorization, ctx.clientAuth);
  if (!auth) {
    const clientId = form.get("client_id");
    if (clientId === undefined) throw missingParameter("client_id");
    if (!ctx.dir.client(clientId)) throw unknownClient(clientId, ctx.issuer.tenantId);
    throw invalidClient(
      7000216,
      "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.",
    );
  }
  const scope = form.get("scope");
  if (scope === undefined) throw missingParameter("scope");
  const scopes = splitScopes(scope);
  if (scopes.length !== 1 || !scopes[0]!.endsWith("/.default")) {
    throw new OAuthError(
      "invalid_scope",
      1002012,
      `The provided value for scope ${scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`,
    );
  }
  const req = parseScopes(scope, ctx.dir);
  const { client, method } = auth;
  const nowS = Math.floor(ctx.now() / 1000);
  const accessToken = await mintAccessToken(
    ctx.keys.current,
    ctx.issuer,
    {
      aud: audienceOf(req),
      oid: client.objectId,
      sub: client.objectId,
      azp: client.clientId,
      azpacr: method === "secret" ? "1" : "2",
      idtyp: "app",
      roles: client.roles.length > 0 ? [...client.roles] : undefined,
    },
    { now: nowS, lifetimeSeconds: ctx.lifetimes.accessToken },
  );
  return {
    token_type: "Bearer",
    scope,
    expires_in: ctx.lifetimes.accessToken,
    ext_expires_in: ctx.lifetimes.accessToken,
    access_token: accessToken,
  };
}
