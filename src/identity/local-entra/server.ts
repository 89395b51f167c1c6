/**
 * A local identity server that looks like Microsoft Entra ID to its clients.
 *
 * Used by the tests and `gw demo`, so the whole login → token → broker path runs without a
 * tenant. It serves Entra's v2 discovery document and JWKS at Entra's paths, under
 * `https://localhost:PORT/{tenant}`, and mints Entra v2-shaped tokens in-process:
 *
 *   GET /{tenant}/v2.0/.well-known/openid-configuration
 *   GET /{tenant}/discovery/v2.0/keys
 *
 * The token, device-code and authorize endpoints are advertised (clients read them from the
 * discovery document) and arrive with the device-code and client-credentials flows; until then
 * they answer 404 like any unknown path.
 *
 * It is HTTPS only, as MSAL and the broker insist on it, and the issuer uses `localhost` with the
 * port so that it matches the authority `https://localhost:PORT/{tenant}` exactly, as MSAL
 * requires. It is only ever started by calling startLocalEntra(): importing this module does
 * nothing, prints nothing and listens nowhere.
 */
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { ExitCode, GwError } from "../../errors.js";
import { KeySet } from "./keys.js";
import {
  mintAccessToken,
  mintIdToken,
  type ClaimOverrides,
  type IssuerContext,
  type MintOptions,
} from "./tokens.js";

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
  /** The client application id (the gw CLI): default `azp`, and `aud` of ID tokens. */
  clientId?: string;
  /** How long rotated-out keys stay in the JWKS; default 24h. */
  keyRetainSeconds?: number;
}

export interface LocalEntra {
  /** https://localhost:PORT */
  url: string;
  port: number;
  tenantId: string;
  audience: string;
  clientId: string;
  /** https://localhost:PORT/{tenant}/v2.0, the `iss` of every token. */
  issuer: string;
  /** https://localhost:PORT/{tenant}, what MSAL is configured with. */
  authority: string;
  /** https://localhost:PORT/{tenant}/v2.0/.well-known/openid-configuration */
  discoveryUrl: string;
  jwksUri: string;
  keys: KeySet;
  /** A user token by default; `{ idtyp: "app", roles }` for an app-only one. */
  mintAccessToken(claims?: ClaimOverrides, opts?: MintOptions): Promise<string>;
  mintIdToken(claims?: Record<string, unknown>, opts?: MintOptions): Promise<string>;
  /** A new signing key takes over; old ones stay published. Returns the new kid. */
  rotateKeys(): Promise<string>;
  close(): Promise<void>;
}

// Tenant ids become path segments and issuer URLs: keep them to what Entra uses.
const SEGMENT = /^[A-Za-z0-9._-]{1,64}$/;

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

function sendJson(res: ServerResponse, status: number, body: unknown, cache = "no-store"): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
    // Entra lets JWKS be cached for a day; here keys rotate within one test, so never cache.
    "cache-control": cache,
  });
  res.end(text);
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
  const audience = opts.audience ?? randomUUID();
  const clientId = opts.clientId ?? randomUUID();
  const keys = await KeySet.create(
    opts.keyRetainSeconds === undefined ? {} : { retainSeconds: opts.keyRetainSeconds },
  );
  const cert = pemOrFile(opts.tls.cert, "certificate");
  const key = pemOrFile(opts.tls.key, "key");

  // Filled in once listening: the issuer needs the port.
  let base = "";
  let issuer = "";

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const path = new URL(req.url ?? "/", "https://localhost").pathname;
    const parts = path.split("/").filter((p) => p !== "");
    const [tenant, ...rest] = parts;
    const route = rest.join("/");
    const known =
      route === "v2.0/.well-known/openid-configuration" || route === "discovery/v2.0/keys";
    if (tenant === undefined || !known) {
      sendJson(res, 404, { error: "not_found", error_description: `no such endpoint: ${path}` });
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.setHeader("allow", "GET, HEAD");
      sendJson(res, 405, {
        error: "invalid_request",
        error_description: `${req.method} is not allowed here`,
      });
      return;
    }
    if (tenant !== tenantId) {
      // What Entra answers for a tenant it does not know.
      sendJson(res, 400, {
        error: "invalid_tenant",
        error_description: `AADSTS90002: Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.`,
      });
      return;
    }
    if (route === "discovery/v2.0/keys") sendJson(res, 200, keys.jwks());
    else sendJson(res, 200, discoveryDocument(base, tenantId, issuer));
  };

  const server: Server = createServer({ cert, key }, (req, res) => {
    try {
      handle(req, res);
    } catch {
      if (!res.headersSent)
        sendJson(res, 500, { error: "server_error", error_description: "internal error" });
      else res.destroy();
    }
  });

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
  base = `https://localhost:${port}`;
  issuer = `${base}/${tenantId}/v2.0`;
  const ctx: IssuerContext = { issuer, tenantId, audience, clientId };

  let closed: Promise<void> | undefined;
  return {
    url: base,
    port,
    tenantId,
    audience,
    clientId,
    issuer,
    authority: `${base}/${tenantId}`,
    discoveryUrl: `${base}/${tenantId}/v2.0/.well-known/openid-configuration`,
    jwksUri: `${base}/${tenantId}/discovery/v2.0/keys`,
    keys,
    mintAccessToken: (claims = {}, mintOpts = {}) =>
      mintAccessToken(keys.current, ctx, claims, mintOpts),
    mintIdToken: (claims = {}, mintOpts = {}) => mintIdToken(keys.current, ctx, claims, mintOpts),
    rotateKeys: async () => (await keys.rotate()).kid,
    close: () =>
      (closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Keep-alive clients would otherwise hold close() open until they time out.
        server.closeAllConnections();
      })),
  };
}
