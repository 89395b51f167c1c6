export interface BackoffOptions {
  /** The first delay's upper bound, ms. */
  initialMs: number;
  /** The largest delay, ms. */
  maxMs: number;
  /** [0, 1); Math.random by default (tests fix it). */
  random?: () => number;
}

/**
 * The wait before reconnect attempt `attempt` (1 for the first retry): the step doubles per
 * attempt up to maxMs, and the wait is half the step plus a random part of the other half. The
 * jitter keeps a fleet of agents from reconnecting in lockstep after a broker restart; the fixed
 * half keeps each one from retrying too soon.
 */
export function backoffDelay(attempt: number, opts: BackoffOptions): number {
  const step = Math.min(opts.maxMs, opts.initialMs * 2 ** Math.min(Math.max(attempt - 1, 0), 30));
  const r = (opts.random ?? Math.random)();
  return Math.round(step / 2 + (r * step) / 2);
}
