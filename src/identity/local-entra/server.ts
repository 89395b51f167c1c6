/**
 * A local identity server that looks like Microsoft Entra ID to its clients.
 *
 * TEST AND DEMO INFRASTRUCTURE ONLY. It signs anyone in as any registered identity at the click
 * of a button. Importing this module does nothing (no listener, no output, no timers); only
 * startLocalEntra() starts a server, and whoever starts one for people to use prints
 * `entra.banner` (LOCAL TEST IDENTITY SERVER — NOT MICROSOFT ENTRA ID). The login page shows it.
 *
 * Used by the tests and `gw demo`, so the whole login → token → broker path runs for real (with
 * MSAL) without a tenant. HTTPS only (MSAL insists), and every URL says `localhost` with the port
 * so the issuer matches the authority `https://localhost:PORT/{tenant}` exactly.
 *
 * Endpoints (Entra's paths):
 *   GET  /{tenant}/v2.0/.well-known/openid-configuration   discovery
 *   GET  /{tenant}/discovery/v2.0/keys                      JWKS
 *   POST /{tenant}/oauth2/v2.0/devicecode                   client_id, scope
 *        → { user_code, device_code, verification_uri, expires_in, interval, message }
 *   POST /{tenant}/oauth2/v2.0/token                        grant_type =
 *        device_code | urn:ietf:params:oauth:grant-type:device_code  (client_id, device_code)
 *        refresh_token       (client_id, refresh_token, scope?)
 *        client_credentials  (scope `<resource>/.default`; client_secret, HTTP Basic, or
 *                             client_assertion + client_assertion_type jwt-bearer: a certificate
 *                             assertion (x5t#S256 or x5t; PS256/RS256; aud = token endpoint) or
 *                             a federated one from a `federatedIssuers` issuer)
 *        → { token_type: "Bearer", scope, expires_in, ext_expires_in, access_token,
 *            refresh_token (with offline_access), id_token (with openid), client_info }
 *          client_credentials answers only token_type, scope, expires_in, ext_expires_in,
 *          access_token.
 *        errors: HTTP 400 (401 for invalid_client, as Entra) { error, error_description
 *        ("AADSTSnnnn: ..."), error_codes, timestamp, trace_id, correlation_id, suberror? }
 *        (suberror "bad_token" on a revoked/expired/rotated-out refresh token, as Entra, so
 *        MSAL throws InteractionRequiredAuthError):
 *        authorization_pending, slow_down, authorization_declined, expired_token, invalid_grant,
 *        invalid_client, unauthorized_client (unknown client id), unsupported_grant_type,
 *        invalid_scope, invalid_resource, invalid_request.
 *   GET  /devicelogin[?otc=CODE], POST /devicelogin         the person's sign-in page
 *
 * Scopes: `api://{audience}/access` (or `{audience}/access`, or `.../.default`) → access token
 * with `aud` = the audience GUID and `scp` = "access"; plus openid (id_token), profile,
 * offline_access (refresh_token). Only OIDC scopes → a Graph-audience token, as Entra.
 * User tokens: idtyp user, scp, oid, name, preferred_username, groups, roles (when non-empty),
 * azp = client id. App tokens: idtyp app, roles, oid = sub = the service principal's object id,
 * no scp. ID tokens: aud = client id, oid, tid, name, preferred_username.
 *
 * Device flow: `interval` (default 5 s; 0 turns the rate check off) and `lifetimes.deviceCode`
 * (expires_in, default 900 s). Polling sooner than the interval answers slow_down (and adds
 * 5 s to that code's interval, RFC 8628). A code is approved on the login page, by
 * approveDevice(), or by `autoApprove`; declined on the page or by declineDevice(). A redeemed
 * code is dead (invalid_grant).
 *
 * Refresh tokens: opaque, in memory, rotated on every use; the redeemed one keeps working for
 * `lifetimes.refreshTokenReuseGrace` seconds (default 60; 0 = single use), then invalid_grant.
 * revokeRefreshTokens(oid?) makes all of a user's (or everyone's) answer invalid_grant.
 *
 * Client assertions: a replayed jti is accepted (Entra does too, and MSAL reuses its certificate
 * assertion for 10 minutes) unless `rejectReplayedAssertions` is set.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { ExitCode, GwError } from "../../errors.js";
import { bannerText } from "./banner.js";
import { ReplayCache, type ClientAuthContext } from "./client-auth.js";
import { DeviceFlow, type AutoApprove, type PendingDeviceCode } from "./device-flow.js";
import {
  Directory,
  type Api,
  type Client,
  type ClientRegistration,
  type ApiRegistration,
  type DirectoryUser,
  type FederatedIssuer,
} from "./directory.js";
import { Form } from "./form.js";
import { KeySet } from "./keys.js";
import { loginPage, loginSubmit, type LoginPageContext, type Page } from "./login-page.js";
import { OAuthError, errorBody } from "./oauth-errors.js";
import { RefreshTokenStore } from "./refresh-tokens.js";
import {
  deviceCodeRequest,
  tokenRequest,
  type Lifetimes,
  type TokenServiceContext,
} from "./token-endpoint.js";
import {
  mintAccessToken,
  mintIdToken,
  type ClaimOverrides,
  type IssuerContext,
  type MintOptions,
} from "./tokens.js";

export { LOCAL_ENTRA_BANNER } from "./banner.js";
export {
  DEMO_AGENT,
  DEMO_GROUPS,
  DEMO_USERS,
  FEDERATED_AUDIENCE,
  type ApiRegistration,
  type ClientRegistration,
  type ConfidentialClientRegistration,
  type DirectoryUser,
  type FederatedCredential,
  type FederatedIssuer,
  type PublicClientRegistration,
} from "./directory.js";
export type { AutoApprove, PendingDeviceCode } from "./device-flow.js";
export type { Lifetimes } from "./token-endpoint.js";

export interface LocalEntraOptions {
  /** Server certificate and key: PEM text, or paths to PEM files. It must be valid for `localhost`. */
  tls: { cert: string; key: string };
  /** 0 (the default) picks a free port. */
  port?: number;
  /** Address to listen on; default 127.0.0.1. URLs always say `localhost`. */
  host?: string;
  /** Directory (tenant) id; a random GUID by default. */
  tenantId?: string;
  /** The API's application id: the default `aud` of access tokens; a random GUID by default. */
  audience?: string;
  /**
   * The gw CLI's client id: a public client allowed the device-code flow, the default `azp`,
   * and `aud` of ID tokens. A random GUID by default.
   */
  clientId?: string;
  /**
   * More applications. Default: one confidential client, DEMO_AGENT, with a random secret (read
   * it from `entra.clients`). Pass [] for none. The CLI client is always registered.
   */
  clients?: ClientRegistration[];
  /** People who can sign in on the login page; default DEMO_USERS. */
  users?: DirectoryUser[];
  /**
   * APIs tokens can be asked for. The `audience` API (identifier `api://{audience}`, scope
   * `access`) is always there; list it here to give it more identifier URIs or scopes.
   */
  apis?: ApiRegistration[];
  /** External OIDC issuers trusted for federated credentials, with their key sets. */
  federatedIssuers?: FederatedIssuer[];
  /** Token and code lifetimes in seconds; see Lifetimes for the defaults. */
  lifetimes?: Partial<Lifetimes>;
  /** Device-code polling interval in seconds; default 5 (Entra's). 0: no slow_down from rate. */
  interval?: number;
  /** Demo mode: device codes are approved without a person, as `userOid` (default: the first user). */
  autoApprove?: AutoApprove;
  /** Refuse a client assertion whose jti was seen before (Entra does not; MSAL reuses them). */
  rejectReplayedAssertions?: boolean;
  /** Leeway on client assertions' exp and nbf, seconds; default 300 like Entra. */
  assertionClockToleranceSeconds?: number;
  /** How long rotated-out keys stay in the JWKS; default 24h. */
  keyRetainSeconds?: number;
  /** The clock, epoch milliseconds; tests move it to expire codes and tokens. Default Date.now. */
  clock?: () => number;
}

export interface LocalEntra {
  /** https://localhost:PORT */
  url: string;
  port: number;
  tenantId: string;
  audience: string;
  /** The gw CLI's (public) client id. */
  clientId: string;
  /** https://localhost:PORT/{tenant}/v2.0, the `iss` of every token. */
  issuer: string;
  /** https://localhost:PORT/{tenant}, what MSAL is configured with. */
  authority: string;
  /** https://localhost:PORT/{tenant}/v2.0/.well-known/openid-configuration */
  discoveryUrl: string;
  jwksUri: string;
  /** https://localhost:PORT/{tenant}/oauth2/v2.0/token */
  tokenEndpoint: string;
  /** https://localhost:PORT/{tenant}/oauth2/v2.0/devicecode */
  deviceCodeEndpoint: string;
  /** https://localhost:PORT/devicelogin: the device flow's verification_uri. */
  deviceLoginUrl: string;
  /** The scope a user asks for to call the API: api://{audience}/access */
  apiScope: string;
  keys: KeySet;
  /** Registered applications, the CLI first; confidential ones with their secrets. */
  clients: readonly Client[];
  users: readonly DirectoryUser[];
  apis: readonly Api[];
  /** "LOCAL TEST IDENTITY SERVER — NOT MICROSOFT ENTRA ID", framed, with the URL. */
  banner: string;
  /** Writes `banner` (to stderr by default). */
  printBanner(write?: (text: string) => void): void;
  /** A user token by default; `{ idtyp: "app", roles }` for an app-only one. */
  mintAccessToken(claims?: ClaimOverrides, opts?: MintOptions): Promise<string>;
  mintIdToken(claims?: Record<string, unknown>, opts?: MintOptions): Promise<string>;
  /** A new signing key takes over; old ones stay published. Returns the new kid. */
  rotateKeys(): Promise<string>;
  /** Approves a device code as `userOid` (default: the first user). Throws if it cannot. */
  approveDevice(userCode: string, userOid?: string): void;
  /** Declines a device code. Throws if it is unknown, expired or already decided. */
  declineDevice(userCode: string): void;
  /** Device codes waiting for a person, oldest first. */
  pendingDeviceCodes(): PendingDeviceCode[];
  /** The oldest pending device code, or the next one requested (default timeout 10 s). */
  waitForDeviceCode(timeoutMs?: number): Promise<PendingDeviceCode>;
  /** The next `n` (default 1) polls of any device code answer slow_down. */
  slowDownNextPoll(n?: number): void;
  /** Every refresh token of `oid` (or of everyone) answers invalid_grant. Returns how many. */
  revokeRefreshTokens(oid?: string): number;
  close(): Promise<void>;
}

export const DEFAULT_LIFETIMES: Readonly<Lifetimes> = {
  accessToken: 3600,
  idToken: 3600,
  refreshToken: 90 * 24 * 3600,
  refreshTokenReuseGrace: 60,
  deviceCode: 900,
};
const DEFAULT_INTERVAL = 5;
const MAX_BODY_BYTES = 64 * 1024;

// Tenant ids become path segments and issuer URLs: keep them to what Entra uses.
const SEGMENT = /^[A-Za-z0-9._-]{1,64}$/;

function configError(message: string, cause?: unknown): GwError {
  return new GwError("local_entra_config", message, { exitCode: ExitCode.config, cause });
}

function pemOrFile(value: string, what: string): string {
  if (value.includes("-----BEGIN ")) return value;
  try {
    return readFileSync(value, "utf8");
  } catch (err) {
    throw new GwError(
      "local_entra_tls",
      `cannot read the local identity server's TLS ${what} ${value}`,
      {
        exitCode: ExitCode.config,
        cause: err,
      },
    );
  }
}

function discoveryDocument(base: string, tenant: string, issuer: string): Record<string, unknown> {
  const t = `${base}/${tenant}`;
  // Field for field what Entra publishes for a single tenant, minus its Microsoft-only extras
  // (kerberos, rbac, userinfo on Graph) that nothing here could serve.
  return {
    token_endpoint: `${t}/oauth2/v2.0/token`,
    token_endpoint_auth_methods_supported: [
      "client_secret_post",
      "private_key_jwt",
      "client_secret_basic",
    ],
    jwks_uri: `${t}/discovery/v2.0/keys`,
    response_modes_supported: ["query", "fragment", "form_post"],
    subject_types_supported: ["pairwise"],
    id_token_signing_alg_values_supported: ["RS256"],
    response_types_supported: ["code", "id_token", "code id_token", "id_token token"],
    scopes_supported: ["openid", "profile", "email", "offline_access"],
    issuer,
    request_uri_parameter_supported: false,
    authorization_endpoint: `${t}/oauth2/v2.0/authorize`,
    device_authorization_endpoint: `${t}/oauth2/v2.0/devicecode`,
    http_logout_supported: true,
    frontchannel_logout_supported: true,
    end_session_endpoint: `${t}/oauth2/v2.0/logout`,
    claims_supported: [
      "sub",
      "iss",
      "aud",
      "exp",
      "iat",
      "auth_time",
      "acr",
      "nonce",
      "preferred_username",
      "name",
      "tid",
      "ver",
      "at_hash",
      "c_hash",
      "email",
    ],
    cloud_instance_name: "localhost",
  };
}

const NO_STORE = { "cache-control": "no-store, no-cache", pragma: "no-cache" };

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
    // Entra lets JWKS be cached for a day; here keys rotate within one test, so never cache.
    ...NO_STORE,
    ...headers,
  });
  res.end(text);
}

function sendHtml(res: ServerResponse, page: Page): void {
  res.writeHead(page.status, {
    "content-type": "text/html; charset=utf-8",
    "content-length": Buffer.byteLength(page.html),
    ...NO_STORE,
    "content-security-policy":
      "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
  });
  res.end(page.html);
}

class BodyTooLarge extends Error {}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        reject(new BodyTooLarge());
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

function isForm(req: IncomingMessage): boolean {
  const type = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
  return type === "application/x-www-form-urlencoded";
}

/** The client's correlation id (MSAL sends a GUID) if it is safe to echo; a new one otherwise. */
function correlationIdOf(value: string | undefined): string {
  return value !== undefined && /^[A-Za-z0-9._-]{1,100}$/.test(value) ? value : randomUUID();
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export async function startLocalEntra(opts: LocalEntraOptions): Promise<LocalEntra> {
  const tenantId = opts.tenantId ?? randomUUID();
  if (!SEGMENT.test(tenantId)) {
    throw new GwError(
      "local_entra_tenant",
      `tenant id ${JSON.stringify(tenantId)} is not a valid path segment`,
      { exitCode: ExitCode.config },
    );
  }
  const audience = opts.audience ?? opts.apis?.[0]?.appId ?? randomUUID();
  const clientId = opts.clientId ?? randomUUID();
  const now = opts.clock ?? Date.now;
  const lifetimes: Lifetimes = { ...DEFAULT_LIFETIMES, ...opts.lifetimes };
  for (const [k, v] of Object.entries(lifetimes)) {
    if (!Number.isFinite(v) || v < 0 || (k !== "refreshTokenReuseGrace" && v === 0)) {
      throw configError(`lifetimes.${k} must be a positive number of seconds, not ${v}`);
    }
  }
  const interval = opts.interval ?? DEFAULT_INTERVAL;
  if (!Number.isInteger(interval) || interval < 0) {
    throw configError(`interval must be a whole number of seconds >= 0, not ${interval}`);
  }
  const dir = new Directory({
    cliClientId: clientId,
    audience,
    clients: opts.clients,
    users: opts.users,
    apis: opts.apis,
    federatedIssuers: opts.federatedIssuers,
  });
  let autoApprove: { userOid: string; afterPolls: number } | undefined;
  if (opts.autoApprove) {
    const userOid = opts.autoApprove.userOid ?? dir.users[0]?.oid;
    if (userOid === undefined || !dir.user(userOid)) {
      throw configError(`autoApprove: no user ${userOid ?? "(none registered)"} in the directory`);
    }
    autoApprove = { userOid, afterPolls: opts.autoApprove.afterPolls ?? 0 };
  }
  const keys = await KeySet.create({
    ...(opts.keyRetainSeconds === undefined ? {} : { retainSeconds: opts.keyRetainSeconds }),
    now: () => Math.floor(now() / 1000),
  });
  const cert = pemOrFile(opts.tls.cert, "certificate");
  const key = pemOrFile(opts.tls.key, "key");

  const deviceFlow = new DeviceFlow({
    expiresIn: lifetimes.deviceCode,
    interval,
    now,
    autoApprove,
  });
  const refreshTokens = new RefreshTokenStore({
    lifetimeSeconds: lifetimes.refreshToken,
    reuseGraceSeconds: lifetimes.refreshTokenReuseGrace,
    now,
  });
  const loginCtx: LoginPageContext = {
    dir,
    deviceFlow,
    tenantId,
    csrf: randomBytes(24).toString("base64url"),
  };

  // The request handler is attached once listening: every URL it serves needs the port, and
  // nobody can send a request before the port is known.
  const server: Server = createServer({ cert, key });

  await new Promise<void>((resolve, reject) => {
    server.once("error", (err) => {
      reject(
        new GwError(
          "local_entra_listen",
          `the local identity server cannot listen: ${err.message}`,
          { exitCode: ExitCode.unavailable, cause: err },
        ),
      );
    });
    server.listen(opts.port ?? 0, opts.host ?? "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const base = `https://localhost:${port}`;
  const issuer = `${base}/${tenantId}/v2.0`;
  const authority = `${base}/${tenantId}`;
  const tokenEndpoint = `${authority}/oauth2/v2.0/token`;
  const ctx: IssuerContext = { issuer, tenantId, audience, clientId };
  const clientAuth: ClientAuthContext = {
    dir,
    tenantId,
    tokenEndpoint,
    now,
    clockToleranceSeconds: opts.assertionClockToleranceSeconds ?? 300,
    replay: opts.rejectReplayedAssertions ? new ReplayCache() : undefined,
  };
  const tokens: TokenServiceContext = {
    dir,
    issuer: ctx,
    keys,
    deviceFlow,
    refreshTokens,
    lifetimes,
    clientAuth,
    verificationUri: `${base}/devicelogin`,
    now,
  };
  const oauthError = (res: ServerResponse, err: OAuthError, correlationId: string): void => {
    sendJson(res, err.status, errorBody(err, correlationId, now()), {
      "x-ms-request-id": randomUUID(),
    });
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? "/", "https://localhost");
    const path = url.pathname;
    const correlationId = correlationIdOf(header(req, "client-request-id"));

    if (path === "/devicelogin" || path === "/devicelogin/") {
      if (req.method === "GET" || req.method === "HEAD") {
        sendHtml(res, loginPage(loginCtx, url.searchParams));
      } else if (req.method === "POST") {
        if (!isForm(req)) {
          sendHtml(res, {
            status: 415,
            html: "the form must be application/x-www-form-urlencoded\n",
          });
          return;
        }
        let body: string;
        try {
          body = await readBody(req);
        } catch (err) {
          if (!(err instanceof BodyTooLarge)) throw err;
          sendHtml(res, { status: 413, html: "the form is too large\n" });
          return;
        }
        sendHtml(res, loginSubmit(loginCtx, new URLSearchParams(body)));
      } else {
        res.setHeader("allow", "GET, HEAD, POST");
        sendHtml(res, { status: 405, html: "method not allowed\n" });
      }
      return;
    }

    const parts = path.split("/").filter((p) => p !== "");
    const [tenant, ...rest] = parts;
    const route = rest.join("/");
    const getRoutes = ["v2.0/.well-known/openid-configuration", "discovery/v2.0/keys"];
    const postRoutes = ["oauth2/v2.0/token", "oauth2/v2.0/devicecode"];
    const isGet = getRoutes.includes(route);
    const isPost = postRoutes.includes(route);
    if (tenant === undefined || (!isGet && !isPost)) {
      sendJson(res, 404, { error: "not_found", error_description: `no such endpoint: ${path}` });
      return;
    }
    const allowed = isGet ? ["GET", "HEAD"] : ["POST"];
    if (!allowed.includes(req.method ?? "")) {
      res.setHeader("allow", allowed.join(", "));
      if (isPost) {
        oauthError(
          res,
          new OAuthError("invalid_request", 900561, "The endpoint only accepts POST requests."),
          correlationId,
        );
        return;
      }
      sendJson(res, 405, {
        error: "invalid_request",
        error_description: `${req.method} is not allowed here`,
      });
      return;
    }
    if (tenant !== tenantId) {
      // What Entra answers for a tenant it does not know.
      const description = `Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.`;
      if (isPost) {
        oauthError(res, new OAuthError("invalid_request", 90002, description), correlationId);
      } else {
        sendJson(res, 400, {
          error: "invalid_tenant",
          error_description: `AADSTS90002: ${description}`,
        });
      }
      return;
    }
    if (route === "discovery/v2.0/keys") {
      sendJson(res, 200, keys.jwks());
      return;
    }
    if (route === "v2.0/.well-known/openid-configuration") {
      sendJson(res, 200, discoveryDocument(base, tenantId, issuer));
      return;
    }

    // The token and devicecode endpoints.
    try {
      if (!isForm(req)) {
        throw new OAuthError(
          "invalid_request",
          900144,
          "The request body must contain the following parameter: 'grant_type'. (The body must be application/x-www-form-urlencoded.)",
        );
      }
      let body: string;
      try {
        body = await readBody(req);
      } catch (err) {
        if (err instanceof BodyTooLarge) {
          throw new OAuthError("invalid_request", 90014, "The request body is too large.");
        }
        throw err;
      }
      const form = Form.parse(body);
      const fromBody = form.get("client-request-id");
      const cid = fromBody === undefined ? correlationId : correlationIdOf(fromBody);
      try {
        const result =
          route === "oauth2/v2.0/devicecode"
            ? deviceCodeRequest(form, tokens)
            : await tokenRequest(form, header(req, "authorization"), tokens);
        sendJson(res, 200, result, { "x-ms-request-id": randomUUID(), "client-request-id": cid });
      } catch (err) {
        if (err instanceof OAuthError) oauthError(res, err, cid);
        else throw err;
      }
    } catch (err) {
      if (err instanceof OAuthError) oauthError(res, err, correlationId);
      else throw err;
    }
  };

  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res).catch(() => {
      if (!res.headersSent)
        sendJson(res, 500, { error: "server_error", error_description: "internal error" });
      else res.destroy();
    });
  });

  const banner = bannerText(base);
  const mintOpts = (o: MintOptions): MintOptions =>
    o.now === undefined ? { ...o, now: Math.floor(now() / 1000) } : o;

  let closed: Promise<void> | undefined;
  return {
    url: base,
    port,
    tenantId,
    audience,
    clientId,
    issuer,
    authority,
    discoveryUrl: `${authority}/v2.0/.well-known/openid-configuration`,
    jwksUri: `${authority}/discovery/v2.0/keys`,
    tokenEndpoint,
    deviceCodeEndpoint: `${authority}/oauth2/v2.0/devicecode`,
    deviceLoginUrl: `${base}/devicelogin`,
    apiScope: `api://${audience}/access`,
    keys,
    clients: dir.clients,
    users: dir.users,
    apis: dir.apis,
    banner,
    printBanner: (write = (t: string) => void process.stderr.write(`${t}\n`)) => write(banner),
    mintAccessToken: (claims = {}, o = {}) =>
      mintAccessToken(keys.current, ctx, claims, mintOpts(o)),
    mintIdToken: (claims = {}, o = {}) => mintIdToken(keys.current, ctx, claims, mintOpts(o)),
    rotateKeys: async () => (await keys.rotate()).kid,
    approveDevice: (userCode, userOid) => {
      const oid = userOid ?? dir.users[0]?.oid;
      if (oid === undefined || !dir.user(oid)) {
        throw new GwError(
          "local_entra_device_code",
          `no user ${oid ?? "(none registered)"} in the local identity server's directory`,
          { exitCode: ExitCode.usage },
        );
      }
      deviceFlow.approve(userCode, oid);
    },
    declineDevice: (userCode) => void deviceFlow.decline(userCode),
    pendingDeviceCodes: () => deviceFlow.pending(),
    waitForDeviceCode: (timeoutMs = 10_000) => deviceFlow.waitForPending(timeoutMs),
    slowDownNextPoll: (n = 1) => deviceFlow.slowDownNextPoll(n),
    revokeRefreshTokens: (oid) => refreshTokens.revoke(oid),
    close: () =>
      (closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Keep-alive clients would otherwise hold close() open until they time out.
        server.closeAllConnections();
      })),
  };
}
