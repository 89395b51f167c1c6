import {
  createRemoteJWKSet,
  customFetch,
  errors as joseErrors,
  jwtVerify,
  type JWTPayload,
} from "jose";
import type { IdentityConfig } from "../config/schema.js";
import { makeFetch, type FetchLike } from "../net/http-client.js";
import type { Identity } from "./principal.js";

/**
 * Verifies bearer tokens (Entra v2 access tokens) for every API and tunnel request.
 *
 * Pinned algorithms (never `none`, never HS* with the public key), exact issuer and audience,
 * small clock tolerance. The key set is discovered from the issuer's openid-configuration
 * (or `jwksUri`), cached, and refetched when a token names an unknown `kid` (key rotation).
 */
export type AuthFailureCode =
  | "token_missing"
  | "token_malformed"
  | "token_expired"
  | "token_not_yet_valid"
  | "token_bad_signature"
  | "token_wrong_audience"
  | "token_wrong_issuer"
  | "token_bad_algorithm"
  | "token_unknown_key"
  | "token_not_access_token"
  | "groups_overage"
  | "issuer_unreachable";

export class AuthError extends Error {
  override name = "AuthError";
  constructor(
    readonly code: AuthFailureCode,
    message: string,
    readonly status: 401 | 403 | 503 = 401,
  ) {
    super(message);
  }
}

export interface TokenVerifierOptions {
  fetch?: FetchLike;
  /** Cooldown before an unknown kid may trigger another JWKS fetch (jose's default is 30 s). */
  jwksCooldownMs?: number;
}

export class TokenVerifier {
  private readonly fetch: FetchLike;
  private jwks: ReturnType<typeof createRemoteJWKSet> | null = null;
  private jwksPromise: Promise<ReturnType<typeof createRemoteJWKSet>> | null = null;
  private readonly audiences: string[];

  constructor(
    private readonly cfg: IdentityConfig,
    private readonly opts: TokenVerifierOptions = {},
  ) {
    this.fetch = opts.fetch ?? makeFetch({ caFile: cfg.ca, timeoutMs: 5000 });
    this.audiences = Array.isArray(cfg.audience) ? cfg.audience : [cfg.audience];
  }

  /** Parses "Bearer <jwt>" from an Authorization header. */
  static fromHeader(header: string | undefined): string {
    if (!header)
      throw new AuthError(
        "token_missing",
        "no bearer token; sign in with `gw login` or set GW_TOKEN",
      );
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m)
      throw new AuthError("token_malformed", "the Authorization header is not `Bearer <token>`");
    return m[1]!;
  }

  async verify(token: string): Promise<Identity> {
    if (token.split(".").length !== 3)
      throw new AuthError("token_malformed", "the bearer token is not a JWT");
    const jwks = await this.keySet();
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, jwks, {
        issuer: this.cfg.issuer,
        audience: this.audiences,
        algorithms: this.cfg.algorithms,
        clockTolerance: this.cfg.clockToleranceSeconds,
        requiredClaims: ["exp", "iat"],
      }));
    } catch (err) {
      throw mapJoseError(err);
    }
    return this.toIdentity(payload);
  }

  private async keySet(): Promise<ReturnType<typeof createRemoteJWKSet>> {
    if (this.jwks) return this.jwks;
    this.jwksPromise ??= this.discover().then(
      (uri) => {
        this.jwks = createRemoteJWKSet(new URL(uri), {
          [customFetch]: this.fetch as never,
          cooldownDuration: this.opts.jwksCooldownMs ?? 30_000,
          cacheMaxAge: 10 * 60_000,
        });
        return this.jwks;
      },
      (err: unknown) => {
        this.jwksPromise = null;
        throw err;
      },
    );
    return this.jwksPromise;
  }

  private async discover(): Promise<string> {
    if (this.cfg.jwksUri) return this.cfg.jwksUri;
    const url = `${this.cfg.issuer.replace(/\/$/, "")}/.well-known/openid-configuration`;
    let res: Response;
    try {
      res = await this.fetch(url);
    } catch (err) {
      throw new AuthError(
        "issuer_unreachable",
        `the broker cannot reach its identity provider (${(err as Error).message})`,
        503,
      );
    }
    if (!res.ok)
      throw new AuthError(
        "issuer_unreachable",
        `the identity provider's discovery document answered HTTP ${res.status}`,
        503,
      );
    const doc = (await res.json()) as { jwks_uri?: unknown };
    if (typeof doc.jwks_uri !== "string")
      throw new AuthError(
        "issuer_unreachable",
        "the identity provider's discovery document has no jwks_uri",
        503,
      );
    return doc.jwks_uri;
  }

  private toIdentity(p: JWTPayload): Identity {
    const claims = p as JWTPayload & Record<string, unknown>;
    // An id_token has the client as audience and no scp/roles; it is not an access token.
    if (claims["scp"] === undefined && claims["roles"] === undefined && claims["idtyp"] !== "app") {
      throw new AuthError(
        "token_not_access_token",
        "this is not an access token for the broker (no scp or roles); did you send an id_token?",
      );
    }
    const oid =
      typeof claims["oid"] === "string" ? claims["oid"] : typeof p.sub === "string" ? p.sub : null;
    if (!oid) throw new AuthError("token_malformed", "the token has no oid or sub claim");
    // Entra: idtyp=app for app-only tokens; v1 tokens lack idtyp, so fall back on scp presence.
    const type: "user" | "app" =
      claims["idtyp"] === "app" || (claims["idtyp"] === undefined && claims["scp"] === undefined)
        ? "app"
        : "user";
    if (claims["_claim_names"] !== undefined || claims["hasgroups"] !== undefined) {
      throw new AuthError(
        "groups_overage",
        "your token has too many groups to carry them (Entra groups overage), so the broker cannot check your access. " +
          "Ask the Entra admin to assign app roles to the broker API, or to filter the groups claim to the groups gw uses (see docs/entra.md).",
        403,
      );
    }
    const strs = (v: unknown): string[] =>
      Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
    const name =
      (typeof claims["name"] === "string" && claims["name"]) ||
      (typeof claims["preferred_username"] === "string" && claims["preferred_username"]) ||
      (typeof claims["app_displayname"] === "string" && claims["app_displayname"]) ||
      oid;
    const upn =
      typeof claims["preferred_username"] === "string"
        ? claims["preferred_username"]
        : typeof claims["upn"] === "string"
          ? claims["upn"]
          : undefined;
    return {
      oid,
      tid: typeof claims["tid"] === "string" ? claims["tid"] : undefined,
      name,
      upn,
      type,
      groups: strs(claims["groups"]),
      roles: strs(claims["roles"]),
      expiresAt: p.exp!,
    };
  }
}

function mapJoseError(err: unknown): AuthError {
  if (err instanceof AuthError) return err;
  if (err instanceof joseErrors.JWTExpired)
    return new AuthError("token_expired", "the token has expired; sign in again with `gw login`");
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    switch (err.claim) {
      case "aud":
        return new AuthError(
          "token_wrong_audience",
          "the token is for another application (wrong audience)",
        );
      case "iss":
        return new AuthError(
          "token_wrong_issuer",
          "the token comes from another issuer or tenant than the broker trusts",
        );
      case "nbf":
        return new AuthError(
          "token_not_yet_valid",
          "the token is not valid yet (nbf is in the future; check the clock)",
        );
      default:
        return new AuthError("token_malformed", `the token's ${err.claim} claim is invalid`);
    }
  }
  if (err instanceof joseErrors.JOSEAlgNotAllowed)
    return new AuthError("token_bad_algorithm", "the token's signing algorithm is not accepted");
  if (err instanceof joseErrors.JWKSNoMatchingKey)
    return new AuthError(
      "token_unknown_key",
      "the token is signed with a key the identity provider does not publish",
    );
  if (err instanceof joseErrors.JWSSignatureVerificationFailed)
    return new AuthError("token_bad_signature", "the token's signature is invalid");
  if (
    err instanceof joseErrors.JWSInvalid ||
    err instanceof joseErrors.JWTInvalid ||
    err instanceof joseErrors.JOSENotSupported
  ) {
    return new AuthError("token_malformed", "the token is malformed or uses an unsupported format");
  }
  if (err instanceof joseErrors.JWKSTimeout || err instanceof joseErrors.JWKSInvalid) {
    return new AuthError(
      "issuer_unreachable",
      "the broker cannot fetch its identity provider's keys",
      503,
    );
  }
  return new AuthError(
    "issuer_unreachable",
    `token verification failed: ${(err as Error)?.message ?? String(err)}`,
    503,
  );
}
