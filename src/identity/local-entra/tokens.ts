/**
 * Entra v2-shaped tokens from the local identity server.
 *
 * The broker is written against what Entra really issues, so these tokens copy that shape
 * (claim names, types, `ver: "2.0"`, a pairwise `sub`, `scp` for users and `roles` for apps)
 * rather than inventing a convenient one. Every claim can be overridden, and a claim set to
 * `undefined` is left out, so tests can make the malformed tokens the broker has to refuse.
 */
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { SignJWT, type JWTHeaderParameters } from "jose";
import type { SigningKey } from "./keys.js";

/** The claims of an Entra v2 access token that gw reads, plus the ones that make it look real. */
export interface EntraAccessTokenClaims {
  iss: string;
  /** The API's application (client) id. */
  aud: string;
  /** Object id of the user or service principal. */
  oid: string;
  tid: string;
  /** Pairwise: differs per application for the same user. For apps it equals oid. */
  sub: string;
  /** The client application the token was issued to. */
  azp: string;
  /** How the client authenticated: "0" public client, "1" secret, "2" certificate. */
  azpacr: "0" | "1" | "2";
  name?: string;
  preferred_username?: string;
  /** Delegated scopes, space-separated (user tokens). */
  scp?: string;
  /** App roles (app tokens, and users assigned app roles). */
  roles?: string[];
  groups?: string[];
  idtyp: "user" | "app";
  /** Unique token id (Entra's equivalent of jti). */
  uti: string;
  ver: "2.0";
  iat: number;
  nbf: number;
  exp: number;
}

/** Claims to set: anything here replaces the default; `undefined` removes the claim. */
export type ClaimOverrides = {
  [K in keyof EntraAccessTokenClaims]?: EntraAccessTokenClaims[K] | undefined;
} & Record<string, unknown>;

export interface MintOptions {
  /** Token lifetime; default 3600 (Entra issues 60-90 minutes). */
  lifetimeSeconds?: number;
  /** Issue time, epoch seconds; default now. Back-date it to make expired tokens. */
  now?: number;
  /** Header fields to override, e.g. a `kid` the JWKS does not have. alg stays RS256. */
  header?: Partial<Omit<JWTHeaderParameters, "alg">>;
}

/** What the issuing server knows: who it is, and who tokens are for by default. */
export interface IssuerContext {
  issuer: string;
  tenantId: string;
  /** Default `aud` of access tokens: the API application id. */
  audience: string;
  /** Default `azp` of access tokens and `aud` of ID tokens: the client application id. */
  clientId: string;
}

const DEFAULT_LIFETIME_SECONDS = 3600;
/** The API's delegated scope: what `api://{audience}/access` grants (`scp`). */
export const DEFAULT_SCOPE = "access";

/** Entra's `sub` is a pairwise id: stable for one user and one app, unlinkable across apps. */
function pairwiseSub(oid: string, aud: string): string {
  return createHash("sha256").update(`${oid}\0${aud}`).digest("base64url");
}

function applyOverrides(
  defaults: Record<string, unknown>,
  overrides: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...defaults };
  for (const [k, v] of Object.entries(overrides)) {
    if (v === undefined) delete out[k];
    else out[k] = v;
  }
  return out;
}

async function sign(
  key: SigningKey,
  payload: Record<string, unknown>,
  header: MintOptions["header"],
): Promise<string> {
  return new SignJWT(payload)
    .setProtectedHeader({ typ: "JWT", kid: key.kid, ...header, alg: "RS256" })
    .sign(key.privateKey);
}

function times(opts: MintOptions): { iat: number; nbf: number; exp: number } {
  const iat = opts.now ?? Math.floor(Date.now() / 1000);
  return { iat, nbf: iat, exp: iat + (opts.lifetimeSeconds ?? DEFAULT_LIFETIME_SECONDS) };
}

/**
 * An access token for the API. A user token by default (random oid, `scp`); pass
 * `{ idtyp: "app", roles: [...] }` for a client-credentials (app-only) token.
 */
export async function mintAccessToken(
  key: SigningKey,
  ctx: IssuerContext,
  claims: ClaimOverrides = {},
  opts: MintOptions = {},
): Promise<string> {
  const app = claims.idtyp === "app";
  const oid = typeof claims.oid === "string" ? claims.oid : randomUUID();
  const aud = typeof claims.aud === "string" ? claims.aud : ctx.audience;
  const defaults: Record<string, unknown> = {
    aud,
    iss: ctx.issuer,
    ...times(opts),
    azp: ctx.clientId,
    azpacr: app ? "1" : "0",
    oid,
    sub: app ? oid : pairwiseSub(oid, aud),
    tid: ctx.tenantId,
    uti: randomBytes(16).toString("base64url"),
    ver: "2.0",
    idtyp: app ? "app" : "user",
    // Entra leaves `roles` out of an app token when the app holds none, and apps have no name.
    ...(app
      ? {}
      : {
          name: "Test User",
          preferred_username: `user-${oid.slice(0, 8)}@localentra.test`,
          scp: DEFAULT_SCOPE,
        }),
  };
  return sign(key, applyOverrides(defaults, claims), opts.header);
}

/** An OIDC ID token for the client application (what `gw login` gets next to the access token). */
export async function mintIdToken(
  key: SigningKey,
  ctx: IssuerContext,
  claims: Record<string, unknown> = {},
  opts: MintOptions = {},
): Promise<string> {
  const oid = typeof claims.oid === "string" ? claims.oid : randomUUID();
  const aud = typeof claims.aud === "string" ? claims.aud : ctx.clientId;
  const defaults: Record<string, unknown> = {
    aud,
    iss: ctx.issuer,
    ...times(opts),
    name: "Test User",
    oid,
    preferred_username: `user-${oid.slice(0, 8)}@localentra.test`,
    sub: pairwiseSub(oid, aud),
    tid: ctx.tenantId,
    uti: randomBytes(16).toString("base64url"),
    ver: "2.0",
  };
  return sign(key, applyOverrides(defaults, claims), opts.header);
}
