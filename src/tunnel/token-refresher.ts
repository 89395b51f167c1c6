/**
 * Keeps a live tunnel's token fresh: shortly before the current token expires it asks the
 * token source again (MSAL refreshes silently; service principals re-acquire) and hands the new
 * token to every open stream, so sessions outlive any single token.
 *
 * The CLI only reads `exp` to schedule; the broker is what verifies.
 */
export function tokenExpiry(token: string): number | null {
  const part = token.split(".")[1];
  if (!part) return null;
  try {
    const payload = JSON.parse(Buffer.from(part, "base64url").toString("utf8")) as {
      exp?: unknown;
    };
    return typeof payload.exp === "number" ? payload.exp * 1000 : null;
  } catch {
    return null;
  }
}

/** When to refresh a token valid from `now` until `expiresAt` (ms): a third of its life early, 5 s at least. */
export function refreshDelay(now: number, expiresAt: number): number {
  const remaining = expiresAt - now;
  const margin = Math.max(5_000, Math.min(5 * 60_000, remaining / 3));
  return Math.max(1_000, remaining - margin);
}

export interface RefresherEvents {
  onToken(token: string, expiresAt: number | null): void;
  onError(err: unknown, expiresAt: number | null): void;
}

export class TokenRefresher {
  private current: string | null = null;
  private expiresAt: number | null = null;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private failures = 0;

  constructor(
    private readonly source: () => string | Promise<string>,
    private readonly events: RefresherEvents,
  ) {}

  /**
   * The token for a new stream. The source is asked every time (it caches; and a `gw login`
   * in another terminal or a new GW_TOKEN must take effect at once); a changed token also
   * goes to the open streams.
   */
  token(): Promise<string> {
    return this.refresh();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private async refresh(): Promise<string> {
    const token = await this.source();
    const exp = tokenExpiry(token);
    const changed = token !== this.current;
    this.current = token;
    this.expiresAt = exp;
    this.failures = 0;
    if (changed) this.events.onToken(token, exp);
    this.schedule();
    return token;
  }

  private schedule(): void {
    if (this.stopped || this.expiresAt === null) return;
    if (this.timer) clearTimeout(this.timer);
    // Capped to what setTimeout takes: past ~24.8 days Node fires at once, in a loop.
    const delay = Math.min(
      2 ** 31 - 1,
      this.failures === 0
        ? refreshDelay(Date.now(), this.expiresAt)
        : Math.min(30_000, 1_000 * 2 ** this.failures),
    );
    this.timer = setTimeout(() => {
      this.refresh().catch((err: unknown) => {
        this.failures++;
        this.events.onError(err, this.expiresAt);
        if (this.expiresAt !== null && Date.now() < this.expiresAt) this.schedule();
      });
    }, delay);
    this.timer.unref();
  }
}
