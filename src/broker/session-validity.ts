import type { Identity } from "../identity/principal.js";

/**
 * How long a tunnelled session may go on: until its token expires, plus a small grace.
 * A fresh token sent over the live stream extends it, but only for the same identity: a
 * session never changes hands mid-way.
 */
export type ExtendResult =
  { ok: true; expiresAt: number } | { ok: false; code: "identity_mismatch"; message: string };

export class SessionValidity {
  private until: number;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly identity: Identity,
    private readonly graceMs: number,
    private readonly onExpire: () => void,
  ) {
    this.until = identity.expiresAt * 1000 + graceMs;
    this.arm();
  }

  get expired(): boolean {
    return Date.now() > this.until;
  }

  get validUntil(): number {
    return this.until;
  }

  extend(next: Identity): ExtendResult {
    if (
      next.oid !== this.identity.oid ||
      next.tid !== this.identity.tid ||
      next.type !== this.identity.type
    ) {
      return {
        ok: false,
        code: "identity_mismatch",
        message:
          "the new token belongs to another identity; a session keeps the identity it started with",
      };
    }
    const until = next.expiresAt * 1000 + this.graceMs;
    if (until > this.until) {
      this.until = until;
      this.arm();
    }
    return { ok: true, expiresAt: next.expiresAt };
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private arm(): void {
    if (this.timer) clearTimeout(this.timer);
    // setTimeout overflows past ~24.8 days; re-arm in steps.
    const delay = Math.min(Math.max(0, this.until - Date.now()) + 50, 2 ** 31 - 1);
    this.timer = setTimeout(() => {
      if (this.expired) this.onExpire();
      else this.arm();
    }, delay);
    this.timer.unref();
  }
}
