/**
 * Refresh tokens: opaque random strings, kept in memory, rotated on every use.
 *
 * Rotation: each redemption issues a new refresh token with a fresh lifetime (Entra's sliding
 * 90 days). The redeemed one keeps working for `reuseGraceSeconds` (default 60) and then answers
 * invalid_grant, so two concurrent silent refreshes of one MSAL cache both succeed, while a
 * leaked token that was already rotated is soon dead. (Entra itself lets old refresh tokens live
 * until they expire; this server is stricter on purpose, and 0 makes tokens single-use.)
 *
 * Revocation (`revoke(oid)`, like Revoke-MgUserSignInSession) makes every refresh token of the
 * user answer invalid_grant (AADSTS50173); access tokens already issued stay valid until they
 * expire, as in Entra.
 */
import { randomBytes } from "node:crypto";
import { invalidGrant, type OAuthError } from "./oauth-errors.js";

export interface RefreshGrant {
  oid: string;
  clientId: string;
  /** The scopes of the original sign-in, used when a refresh request names none. */
  scope: string;
}

interface Entry extends RefreshGrant {
  /** Epoch ms. */
  expiresAt: number;
  /** When it was redeemed (rotated out); epoch ms. */
  rotatedAt: number | undefined;
  revoked: boolean;
}

export interface RefreshTokenStoreOptions {
  lifetimeSeconds: number;
  reuseGraceSeconds: number;
  /** Epoch ms. */
  now: () => number;
}

export class RefreshTokenStore {
  private readonly tokens = new Map<string, Entry>();

  constructor(private readonly opts: RefreshTokenStoreOptions) {}

  issue(grant: RefreshGrant): string {
    this.prune();
    // Entra's refresh tokens are long opaque strings starting with a version marker; only the
    // length and opacity matter to clients.
    const token = `0.LOCAL.${randomBytes(48).toString("base64url")}`;
    this.tokens.set(token, {
      ...grant,
      expiresAt: this.opts.now() + this.opts.lifetimeSeconds * 1000,
      rotatedAt: undefined,
      revoked: false,
    });
    return token;
  }

  /**
   * Checks a refresh token for `clientId` and marks it rotated out; the caller issues the next.
   * Throws the OAuthError Entra would answer.
   */
  redeem(token: string, clientId: string): RefreshGrant {
    const e = this.tokens.get(token);
    const now = this.opts.now();
    if (!e) throw malformed();
    if (e.clientId !== clientId) {
      throw invalidGrant(
        70000,
        "Provided grant is invalid or malformed. The refresh token was issued to a different client.",
      );
    }
    if (e.revoked) {
      throw invalidGrant(
        50173,
        "The provided grant has expired due to it being revoked, a fresh auth token is needed. " +
          "The user might have changed or reset their password. (The sign-in sessions of this user were revoked.)",
        "bad_token",
      );
    }
    if (now >= e.expiresAt) {
      throw invalidGrant(
        700082,
        `The refresh token has expired due to inactivity. The token was issued on ${new Date(
          e.expiresAt - this.opts.lifetimeSeconds * 1000,
        ).toISOString()} and was inactive for ${this.opts.lifetimeSeconds / 86400} days.`,
        "bad_token",
      );
    }
    if (e.rotatedAt !== undefined && now - e.rotatedAt >= this.opts.reuseGraceSeconds * 1000) {
      throw invalidGrant(
        70000,
        "Provided grant is invalid or malformed. This refresh token was already redeemed and has been " +
          "replaced by a newer one (this local server rotates refresh tokens).",
        "bad_token",
      );
    }
    e.rotatedAt ??= now;
    return { oid: e.oid, clientId: e.clientId, scope: e.scope };
  }

  /** Every refresh token of `oid` (or of everyone) answers invalid_grant from now on. */
  revoke(oid?: string): number {
    let n = 0;
    for (const e of this.tokens.values()) {
      if ((oid === undefined || e.oid === oid) && !e.revoked) {
        e.revoked = true;
        n++;
      }
    }
    return n;
  }

  private prune(): void {
    const now = this.opts.now();
    for (const [t, e] of this.tokens) {
      const deadAt = Math.min(
        e.expiresAt,
        e.rotatedAt === undefined ? Infinity : e.rotatedAt + this.opts.reuseGraceSeconds * 1000,
      );
      // Keep dead tokens a day so their errors stay specific, then forget them.
      if (now > deadAt + 86_400_000) this.tokens.delete(t);
    }
  }
}

function malformed(): OAuthError {
  return invalidGrant(
    9002313,
    "Invalid request. Request is malformed or invalid. (The refresh token is not one this server issued.)",
  );
}
