import pg from "pg";
import { errMessage, scrubSecrets, storeTypes, type PostgresTarget } from "./postgres-target.js";

export type ListenerLog = (
  level: "info" | "warn" | "error",
  msg: string,
  fields?: Record<string, unknown>,
) => void;

export interface ChannelListenerOptions {
  url: string;
  target: PostgresTarget;
  channel: string;
  /** A notification's payload. */
  onNotify(payload: string): void;
  /**
   * Listening (again): notifications sent before this moment are lost. Called on every
   * successful LISTEN, the first included (writes may have happened while it connected).
   */
  onListening(): void;
  log: ListenerLog;
  /** Reconnect backoff: first delay and ceiling, in ms. Default 100 and 5000. */
  backoffMs?: { min: number; max: number };
}

/**
 * LISTEN on one channel over a connection of its own (a pooled connection would drop the
 * subscription when it is handed back). When the connection breaks it reconnects with
 * exponential backoff, forever, until stop(); each time it is listening again, onListening()
 * says that notifications may have been missed.
 */
export class ChannelListener {
  private client: pg.Client | null = null;
  private stopped = false;
  private delay: number;
  private timer: NodeJS.Timeout | undefined;
  private failures = 0;
  private readonly minDelay: number;
  private readonly maxDelay: number;

  constructor(private readonly opts: ChannelListenerOptions) {
    this.minDelay = opts.backoffMs?.min ?? 100;
    this.maxDelay = opts.backoffMs?.max ?? 5000;
    this.delay = this.minDelay;
  }

  /** Whether the connection is up and listening. */
  get listening(): boolean {
    return this.client !== null;
  }

  /** Resolves once listening (or after the first attempt failed: it keeps retrying). */
  start(): Promise<void> {
    return this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    const c = this.client;
    this.client = null;
    if (c !== null) await c.end().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    const c = new pg.Client({
      connectionString: this.opts.url,
      types: storeTypes,
      application_name: "gw broker (approvals listener)",
      connectionTimeoutMillis: 10_000,
      keepAlive: true,
    });
    let broken = false;
    const onBroken = (err?: unknown) => {
      if (broken) return;
      broken = true;
      if (this.client === c) this.client = null;
      c.end().catch(() => undefined);
      if (this.stopped) return;
      this.failures++;
      this.opts.log("warn", "store: lost the approvals notification connection; reconnecting", {
        error: err === undefined ? "closed" : scrubSecrets(errMessage(err), this.opts.target),
        retryInMs: this.delay,
      });
      this.retry();
    };
    c.on("error", onBroken);
    c.on("end", () => onBroken());
    c.on("notification", (n) => {
      if (n.channel === this.opts.channel) this.opts.onNotify(n.payload ?? "");
    });
    try {
      await c.connect();
      await c.query(`LISTEN ${pg.escapeIdentifier(this.opts.channel)}`);
    } catch (err) {
      onBroken(err);
      return;
    }
    if (this.stopped) {
      await c.end().catch(() => undefined);
      return;
    }
    const again = this.failures > 0;
    this.client = c;
    this.delay = this.minDelay;
    if (again) this.opts.log("info", "store: approvals notifications restored");
    this.failures = 0;
    this.opts.onListening();
  }

  private retry(): void {
    if (this.stopped || this.timer !== undefined) return;
    const wait = this.delay;
    this.delay = Math.min(this.maxDelay, this.delay * 2);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.connect();
    }, wait);
    this.timer.unref();
  }
}
