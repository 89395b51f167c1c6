/**
 * Token signing keys of the local Entra-compatible identity server.
 *
 * Entra signs with RSA keys named by `kid` and rolls them over: a new key starts signing while
 * the old ones stay in the published JWKS until tokens signed with them have expired. Verifiers
 * (the broker) must cope with exactly that, so the local server does the same.
 */
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type CryptoKey, type JWK } from "jose";

export interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  /** The public half as published in the JWKS. */
  publicJwk: JWK;
  /** Epoch seconds. */
  createdAt: number;
  /** When a newer key took over signing; epoch seconds. */
  retiredAt: number | undefined;
}

export interface KeySetOptions {
  /** How long a key stays published after it stopped signing. Entra's tokens live ~1h; default 24h. */
  retainSeconds?: number;
  /** Clock, epoch seconds; tests move it. */
  now?: () => number;
}

const DEFAULT_RETAIN_SECONDS = 24 * 60 * 60;

export async function generateSigningKey(createdAt: number): Promise<SigningKey> {
  // Extractable so a later `gw demo` can persist keys across restarts.
  const { privateKey, publicKey } = await generateKeyPair("RS256", { extractable: true });
  const jwk = await exportJWK(publicKey);
  // The RFC 7638 thumbprint: stable for the key, unique, and URL-safe like Entra's kids.
  const kid = await calculateJwkThumbprint(jwk, "sha256");
  // Entra's JWKS entries carry kty, use, kid, n, e (plus x5t/x5c from a certificate we do not
  // have) and no alg: verifiers must pick the algorithm from the token header and the key type.
  const publicJwk: JWK = { kty: "RSA", use: "sig", kid, n: jwk.n, e: jwk.e };
  return { kid, privateKey, publicJwk, createdAt, retiredAt: undefined };
}

export class KeySet {
  private keys: SigningKey[];
  private readonly retainSeconds: number;
  private readonly now: () => number;

  private constructor(first: SigningKey, opts: KeySetOptions) {
    this.keys = [first];
    this.retainSeconds = opts.retainSeconds ?? DEFAULT_RETAIN_SECONDS;
    this.now = opts.now ?? (() => Math.floor(Date.now() / 1000));
  }

  static async create(opts: KeySetOptions = {}): Promise<KeySet> {
    const now = opts.now ?? (() => Math.floor(Date.now() / 1000));
    return new KeySet(await generateSigningKey(now()), opts);
  }

  /** The key new tokens are signed with. */
  get current(): SigningKey {
    // The constructor puts one key in and rotate() only ever appends: never empty.
    return this.keys[this.keys.length - 1]!;
  }

  /** A new key takes over signing; the previous ones stay published for `retainSeconds`. */
  async rotate(): Promise<SigningKey> {
    const now = this.now();
    const next = await generateSigningKey(now);
    this.current.retiredAt = now;
    this.keys.push(next);
    this.prune();
    return next;
  }

  /** Every key still published, newest last. */
  published(): SigningKey[] {
    this.prune();
    return [...this.keys];
  }

  /** The JWKS document, as served at /{tenant}/discovery/v2.0/keys. */
  jwks(): { keys: JWK[] } {
    return { keys: this.published().map((k) => ({ ...k.publicJwk })) };
  }

  find(kid: string): SigningKey | undefined {
    return this.published().find((k) => k.kid === kid);
  }

  private prune(): void {
    const cutoff = this.now() - this.retainSeconds;
    this.keys = this.keys.filter((k) => k.retiredAt === undefined || k.retiredAt > cutoff);
  }
}
