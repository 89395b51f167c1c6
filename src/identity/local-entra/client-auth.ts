/**
 * Authenticating confidential clients at the token endpoint, the three ways Entra allows:
 *
 * - client secret: `client_secret` in the body (client_secret_post) or HTTP Basic
 *   (client_secret_basic);
 * - certificate: `client_assertion` is a JWT the app signed itself (iss = sub = client id,
 *   aud = the token endpoint URL, exp), PS256 or RS256, naming its certificate by the SHA-256
 *   thumbprint in `x5t#S256` (what MSAL node 7 sends) or the SHA-1 one in `x5t`;
 * - federated credential: `client_assertion` is a JWT from an external OIDC issuer (GitHub
 *   Actions, Kubernetes, ...), verified with that issuer's JWKS, whose iss, sub and aud match one
 *   of the app's federated credentials (aud `api://AzureADTokenExchange`).
 *
 * Replayed assertions (same `jti`) are accepted by default, as Entra does: MSAL reuses its signed
 * certificate assertion for up to 10 minutes, so refusing a replay would break MSAL's second
 * client-credentials call. `rejectReplayedAssertions` turns the check on for tests that want it.
 */
import { timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { get } from "node:https";
import {
  createLocalJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  errors as joseErrors,
  jwtVerify,
  type JSONWebKeySet,
  type JWTPayload,
  type ProtectedHeaderParameters,
} from "jose";
import type { ConfidentialClient, Directory, FederatedIssuer } from "./directory.js";
import type { Form } from "./form.js";
import { OAuthError, invalidClient, missingParameter, unknownClient } from "./oauth-errors.js";

export const JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

export type ClientAuthMethod = "secret" | "certificate" | "federated";

export interface AuthenticatedClient {
  client: ConfidentialClient;
  method: ClientAuthMethod;
}

export interface ClientAuthContext {
  dir: Directory;
  tenantId: string;
  /** The token endpoint URL: the audience certificate assertions must carry. */
  tokenEndpoint: string;
  /** Epoch ms. */
  now: () => number;
  /** Leeway on assertion exp/nbf; Entra allows 5 minutes. */
  clockToleranceSeconds: number;
  /** When set, a `jti` seen before is refused. */
  replay: ReplayCache | undefined;
}

/** jti values of certificate assertions, until they expire. */
export class ReplayCache {
  private readonly seen = new Map<string, number>();

  /** False when `jti` was seen before. */
  add(jti: string, expiresAtMs: number, nowMs: number): boolean {
    for (const [k, exp] of this.seen) if (exp < nowMs) this.seen.delete(k);
    if (this.seen.has(jti)) return false;
    this.seen.set(jti, expiresAtMs);
    return true;
  }
}

const CERT_ALGS = ["PS256", "RS256"];
const FEDERATED_ALGS = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
];

function basicCredentials(header: string | undefined): { id: string; secret: string } | undefined {
  const m = /^Basic\s+(\S+)$/i.exec(header ?? "");
  if (!m) return undefined;
  const decoded = Buffer.from(m[1]!, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon < 0) {
    throw invalidClient(
      7000215,
      "Invalid client secret provided. (Malformed HTTP Basic credentials.)",
    );
  }
  // RFC 6749 2.3.1: both halves are form-urlencoded.
  const dec = (s: string): string => decodeURIComponent(s.replace(/\+/g, " "));
  return { id: dec(decoded.slice(0, colon)), secret: dec(decoded.slice(colon + 1)) };
}

function secretsEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, "utf8");
  const y = Buffer.from(b, "utf8");
  return x.length === y.length && timingSafeEqual(x, y);
}

function confidential(ctx: ClientAuthContext, clientId: string): ConfidentialClient {
  const client = ctx.dir.client(clientId);
  if (!client) throw unknownClient(clientId, ctx.tenantId);
  if (client.type === "public") {
    throw invalidClient(
      700025,
      "Client is public so neither 'client_assertion' nor 'client_secret' should be presented.",
    );
  }
  return client;
}

/**
 * The client the request authenticates as, or undefined when it presents no credentials at all
 * (the grant decides whether that is allowed). Throws Entra's OAuthError on a bad credential.
 */
export async function authenticateClient(
  form: Form,
  authorization: string | undefined,
  ctx: ClientAuthContext,
): Promise<AuthenticatedClient | undefined> {
  const basic = basicCredentials(authorization);
  let clientId = form.get("client_id");
  let secret = form.get("client_secret");
  const assertion = form.get("client_assertion");
  const assertionType = form.get("client_assertion_type");

  if (basic) {
    if (secret !== undefined || assertion !== undefined) {
      throw new OAuthError(
        "invalid_request",
        90014,
        "More than one client authentication method was presented (HTTP Basic and the request body).",
      );
    }
    if (clientId !== undefined && clientId !== basic.id) {
      throw new OAuthError(
        "invalid_request",
        90014,
        "The client_id parameter does not match the client of the HTTP Basic credentials.",
      );
    }
    clientId = basic.id;
    secret = basic.secret;
  }
  if (secret !== undefined && assertion !== undefined) {
    throw new OAuthError(
      "invalid_request",
      90014,
      "Both 'client_secret' and 'client_assertion' were presented; send one.",
    );
  }

  if (secret !== undefined) {
    if (clientId === undefined) throw missingParameter("client_id");
    const client = confidential(ctx, clientId);
    if (!client.secrets.some((s) => secretsEqual(s, secret))) {
      throw invalidClient(
        7000215,
        `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${client.clientId}'.`,
      );
    }
    return { client, method: "secret" };
  }

  if (assertion !== undefined) {
    if (assertionType !== JWT_BEARER) {
      throw new OAuthError(
        "invalid_request",
        90014,
        `The client_assertion_type must be '${JWT_BEARER}'${assertionType === undefined ? "" : `, not '${assertionType}'`}.`,
      );
    }
    let header: ProtectedHeaderParameters;
    let claims: JWTPayload;
    try {
      header = decodeProtectedHeader(assertion);
      claims = decodeJwt(assertion);
    } catch {
      throw invalidClient(50027, "JWT token is invalid or malformed. (client_assertion)");
    }
    // A certificate assertion is issued by the app itself; a federated one by someone else.
    const selfIssued = typeof claims.iss === "string" && ctx.dir.client(claims.iss) !== undefined;
    if (clientId === undefined) {
      if (!selfIssued) throw missingParameter("client_id");
      clientId = claims.iss as string;
    }
    const client = confidential(ctx, clientId);
    if (claims.iss === client.clientId) {
      await verifyCertificateAssertion(assertion, header, client, ctx);
      return { client, method: "certificate" };
    }
    if (selfIssued) {
      throw invalidClient(
        700021,
        `Client assertion application identifier doesn't match 'client_id' parameter. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .`,
      );
    }
    await verifyFederatedAssertion(assertion, claims, client, ctx);
    return { client, method: "federated" };
  }

  return undefined;
}

function timeRangeError(): OAuthError {
  return invalidClient(700024, "Client assertion is not within its valid time range.");
}

function mapVerifyError(err: unknown): OAuthError {
  if (err instanceof OAuthError) return err;
  if (err instanceof joseErrors.JWTExpired) return timeRangeError();
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === "nbf" || err.claim === "iat" || err.claim === "exp") return timeRangeError();
    return invalidClient(
      50027,
      `JWT token is invalid or malformed. (claim ${err.claim}: ${err.reason})`,
    );
  }
  if (err instanceof joseErrors.JOSEAlgNotAllowed) {
    return invalidClient(
      700027,
      `Client assertion failed signature validation. (algorithm not allowed)`,
    );
  }
  if (err instanceof joseErrors.JWKSNoMatchingKey) {
    return invalidClient(
      700027,
      "Client assertion failed signature validation. (No key of the issuer's key set matches the assertion's kid.)",
    );
  }
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) {
    return invalidClient(700027, "Client assertion failed signature validation.");
  }
  return invalidClient(50027, `JWT token is invalid or malformed. (${(err as Error).message})`);
}

async function verifyCertificateAssertion(
  assertion: string,
  header: ProtectedHeaderParameters,
  client: ConfidentialClient,
  ctx: ClientAuthContext,
): Promise<void> {
  const now = ctx.now();
  const x5tS256 = typeof header["x5t#S256"] === "string" ? header["x5t#S256"] : undefined;
  const x5t = typeof header.x5t === "string" ? header.x5t : undefined;
  if (x5tS256 === undefined && x5t === undefined) {
    throw invalidClient(
      700027,
      "Client assertion failed signature validation. The assertion names no certificate: its header has neither 'x5t#S256' nor 'x5t'.",
    );
  }
  const cert = client.certificates.find((c) =>
    x5tS256 !== undefined ? c.x5tS256 === x5tS256 : c.x5t === x5t,
  );
  if (!cert) {
    throw invalidClient(
      700027,
      `The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '${x5tS256 ?? x5t}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '${client.clientId}'.]`,
    );
  }
  if (now < Date.parse(cert.x509.validFrom) || now > Date.parse(cert.x509.validTo)) {
    throw invalidClient(
      700027,
      `Client assertion contains an invalid signature. [Reason - The key used is expired., Thumbprint of key used by client: '${x5tS256 ?? x5t}']`,
    );
  }
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(assertion, cert.x509.publicKey, {
      algorithms: CERT_ALGS,
      currentDate: new Date(now),
      clockTolerance: ctx.clockToleranceSeconds,
      requiredClaims: ["exp"],
    }));
  } catch (err) {
    throw mapVerifyError(err);
  }
  if (payload.sub !== client.clientId) {
    throw invalidClient(
      700021,
      "Client assertion application identifier doesn't match 'client_id' parameter. (The assertion's iss and sub must both be the client id.)",
    );
  }
  const aud = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
  if (!aud.includes(ctx.tokenEndpoint)) {
    throw invalidClient(
      700027,
      `Client assertion contains an invalid audience claim '${String(payload.aud)}': it must be the token endpoint ${ctx.tokenEndpoint}.`,
    );
  }
  if (ctx.replay) {
    if (typeof payload.jti !== "string") {
      throw invalidClient(
        50027,
        "JWT token is invalid or malformed. (The client assertion has no jti.)",
      );
    }
    if (!ctx.replay.add(payload.jti, (payload.exp! + ctx.clockToleranceSeconds) * 1000, now)) {
      throw invalidClient(
        70002,
        `Error validating credentials. The client assertion with jti '${payload.jti}' was already used.`,
      );
    }
  }
}

function pemOrFile(value: string): string {
  return value.includes("-----BEGIN ") ? value : readFileSync(value, "utf8");
}

function fetchJwks(issuer: FederatedIssuer): Promise<JSONWebKeySet> {
  const uri = issuer.jwksUri!;
  return new Promise((resolve, reject) => {
    const req = get(
      uri,
      { ...(issuer.ca ? { ca: pemOrFile(issuer.ca) } : {}), timeout: 5000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          if (res.statusCode !== 200) {
            reject(new Error(`HTTP ${res.statusCode ?? 0}`));
            return;
          }
          try {
            resolve(JSON.parse(Buffer.concat(chunks).toString("utf8")) as JSONWebKeySet);
          } catch (err) {
            reject(err as Error);
          }
        });
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.on("error", reject);
  });
}

async function verifyFederatedAssertion(
  assertion: string,
  claims: JWTPayload,
  client: ConfidentialClient,
  ctx: ClientAuthContext,
): Promise<void> {
  const iss = typeof claims.iss === "string" ? claims.iss : "";
  const sub = typeof claims.sub === "string" ? claims.sub : "";
  const audList = Array.isArray(claims.aud)
    ? claims.aud
    : claims.aud === undefined
      ? []
      : [claims.aud];
  const noMatch = (): OAuthError =>
    invalidClient(
      70021,
      `No matching federated identity record found for presented assertion. Assertion Issuer: '${iss}'. Assertion Subject: '${sub}'. Assertion Audience: '${audList.join(",")}'. https://learn.microsoft.com/entra/workload-id/workload-identity-federation`,
    );
  const issuer = ctx.dir.federatedIssuer(iss);
  // An issuer nobody trusts and a credential nobody registered look the same to the caller.
  if (!issuer || !client.federatedCredentials.some((f) => f.issuer === iss)) throw noMatch();
  let jwks: JSONWebKeySet;
  if (issuer.jwks) jwks = issuer.jwks;
  else {
    try {
      jwks = await fetchJwks(issuer);
    } catch (err) {
      throw invalidClient(
        50166,
        `Request to External OIDC endpoint failed. (${issuer.jwksUri}: ${(err as Error).message})`,
      );
    }
  }
  try {
    await jwtVerify(assertion, createLocalJWKSet(jwks), {
      algorithms: FEDERATED_ALGS,
      currentDate: new Date(ctx.now()),
      clockTolerance: ctx.clockToleranceSeconds,
      requiredClaims: ["exp", "sub", "aud"],
    });
  } catch (err) {
    throw mapVerifyError(err);
  }
  const match = client.federatedCredentials.some(
    (f) => f.issuer === iss && f.subject === sub && audList.includes(f.audience),
  );
  if (!match) throw noMatch();
}
