import type { ApprovalEvent, ApprovalService } from "../approvals/service.js";
import { redact, type Logger } from "../broker/logger.js";
import { readSecret } from "../config/secrets.js";
import { ExitCode, GwError } from "../errors.js";
import { makeFetch, type FetchLike } from "../net/http-client.js";
import type { z } from "zod";
import { notificationsConfig, type NotifyEvent, type WebhookConfig } from "./config.js";

/** The section as written (defaults not applied yet) or as parsed: either is accepted. */
export type NotificationsInput = z.input<typeof notificationsConfig>;
import { payloadFor } from "./payloads.js";

export {
  notificationsConfig,
  webhookConfig,
  type NotificationsConfig,
  type WebhookConfig,
} from "./config.js";
export { genericPayload, slackPayload, teamsPayload, payloadFor } from "./payloads.js";

/**
 * Tells webhooks about approval requests: created, decided, expired, cancelled.
 *
 * Delivery is fire and forget: the service's listener only appends the event to each
 * webhook's bounded queue (dropping the oldest when full) and returns, so a slow or failing
 * webhook never delays a decision or a held statement. Each webhook has one worker that
 * delivers its queue in order; an attempt that fails with a network error, 408, 425, 429 or
 * 5xx is retried after 0.5 s, 1 s and 2 s (or the receiver's Retry-After, up to a minute),
 * then the event is logged as undelivered and dropped. Other 4xx answers are not retried.
 *
 * Webhook URLs (Teams and Slack put their secret in it) and header values are never logged:
 * log lines name a webhook by its `name` (or its place in the config), its format and host,
 * and both are registered with the logger's redaction as a second line of defence.
 */
export interface Notifier {
  /** Subscribes to the service's events; returns the unsubscribe function. */
  attach(service: ApprovalService): () => void;
  /** Resolves true once every queue is empty and idle, false if `timeoutMs` passes first. */
  flush(timeoutMs?: number): Promise<boolean>;
  /** Detaches, waits up to `timeoutMs` (default 2 s) for queued deliveries, drops the rest. */
  close(timeoutMs?: number): Promise<void>;
  readonly stats: NotifierStats;
  /** How many webhooks are configured. */
  readonly size: number;
}

export interface NotifierStats {
  delivered: number;
  /** Events given up on after their attempts, or refused with a non-retryable answer. */
  failed: number;
  /** Events dropped because a queue was full or the notifier closed. */
  dropped: number;
}

export interface NotifierOptions {
  /** Defaults to an HTTP client per webhook (its `ca` and `timeoutMs`). */
  fetch?: FetchLike;
  /** Delays between attempts; default 500, 1000, 2000 ms (four attempts in all). */
  retryDelaysMs?: readonly number[];
  /** Ceiling for a receiver's Retry-After; default 60 s. */
  maxRetryAfterMs?: number;
  /** Events waiting per webhook before the oldest are dropped; default 500. */
  maxQueue?: number;
}

export const DEFAULT_RETRY_DELAYS_MS = [500, 1000, 2000] as const;
const MAX_RETRY_AFTER_MS = 60_000;
const MAX_QUEUE = 500;

interface Target {
  label: string;
  format: WebhookConfig["format"];
  host: string;
  url: string;
  headers: Record<string, string>;
  events: ReadonlySet<NotifyEvent>;
  includeSql: boolean;
  fetch: FetchLike;
}

/**
 * Reads the config (secrets included: a missing one throws the GwError of config/secrets, so
 * the broker does not start half-configured) and returns a notifier that does nothing until
 * attached. `config` undefined means no webhooks.
 */
export function createNotifier(
  config: NotificationsInput | undefined,
  log: Logger,
  opts: NotifierOptions = {},
): Notifier {
  const cfg = notificationsConfig.parse(config ?? {});
  const targets = cfg.webhooks.map((w, i) => resolveTarget(w, i, opts.fetch));
  const stats: NotifierStats = { delivered: 0, failed: 0, dropped: 0 };
  const closing = new AbortController();
  const sinks = targets.map(
    (t) =>
      new Sink(t, log, stats, closing.signal, {
        delays: opts.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS,
        maxRetryAfterMs: opts.maxRetryAfterMs ?? MAX_RETRY_AFTER_MS,
        maxQueue: opts.maxQueue ?? MAX_QUEUE,
      }),
  );
  const detachers = new Set<() => void>();

  const flush = async (timeoutMs = 30_000): Promise<boolean> => {
    const idle = Promise.all(sinks.map((s) => s.idle())).then(() => true);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((r) => {
      timer = setTimeout(() => r(false), timeoutMs);
      timer.unref();
    });
    const done = await Promise.race([idle, timeout]);
    clearTimeout(timer);
    return done;
  };

  return {
    stats,
    size: targets.length,
    attach(service) {
      if (sinks.length === 0) return () => {};
      const off = service.subscribe((ev) => {
        // The replica that made a change sends its webhooks; the others only show it.
        if (ev.remote) return;
        // Synchronous and cheap: the decision path waits on this call.
        for (const s of sinks) s.enqueue(ev);
      });
      detachers.add(off);
      return () => {
        off();
        detachers.delete(off);
      };
    },
    flush,
    async close(timeoutMs = 2000) {
      for (const off of detachers) off();
      detachers.clear();
      const drained = await flush(timeoutMs);
      if (!drained) closing.abort();
      for (const s of sinks) s.discard();
    },
  };
}

function resolveTarget(w: WebhookConfig, i: number, fetch: FetchLike | undefined): Target {
  const where = `notifications.webhooks[${i}]`;
  const url = typeof w.url === "string" ? w.url : readSecret(w.url, `${where}.url`);
  let host: string;
  try {
    const u = new URL(url);
    if (u.protocol !== "https:" && u.protocol !== "http:") throw new Error("not http");
    host = u.host;
  } catch {
    // The value came from a secret: do not echo it.
    throw new GwError("config_invalid", `${where}.url: the secret does not hold an http(s) URL`, {
      exitCode: ExitCode.config,
      hint: "Set the variable (or file) to the webhook URL your chat tool gave you.",
    });
  }
  if (typeof w.url !== "string") redact(url);
  const headers: Record<string, string> = {};
  for (const [name, ref] of Object.entries(w.headers ?? {})) {
    const v = readSecret(ref, `${where}.headers.${name}`);
    redact(v);
    headers[name.toLowerCase()] = v;
  }
  return {
    label: w.name ?? `webhooks[${i}]`,
    format: w.format,
    host,
    url,
    headers,
    events: new Set(w.events),
    includeSql: w.includeSql,
    fetch: fetch ?? makeFetch({ caFile: w.ca, timeoutMs: w.timeoutMs }),
  };
}

interface SinkLimits {
  delays: readonly number[];
  maxRetryAfterMs: number;
  maxQueue: number;
}

/** One webhook: its queue and the worker that empties it in order. */
class Sink {
  private readonly queue: ApprovalEvent[] = [];
  private running = false;
  private waiters: (() => void)[] = [];

  constructor(
    private readonly t: Target,
    private readonly log: Logger,
    private readonly stats: NotifierStats,
    private readonly closing: AbortSignal,
    private readonly limits: SinkLimits,
  ) {}

  enqueue(ev: ApprovalEvent): void {
    if (!this.t.events.has(ev.type) || this.closing.aborted) return;
    if (this.queue.length >= this.limits.maxQueue) {
      const old = this.queue.shift()!;
      this.stats.dropped++;
      this.log.log("warn", "webhook queue full; dropped the oldest notification", {
        ...this.fields(old),
        queued: this.queue.length,
      });
    }
    this.queue.push(ev);
    if (!this.running) {
      this.running = true;
      // Never on the caller's stack: the decision path returns first.
      setImmediate(() => void this.drain());
    }
  }

  /** Resolves when the queue is empty and nothing is in flight. */
  idle(): Promise<void> {
    if (!this.running && this.queue.length === 0) return Promise.resolve();
    return new Promise((r) => this.waiters.push(r));
  }

  discard(): void {
    this.stats.dropped += this.queue.length;
    this.queue.length = 0;
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0 && !this.closing.aborted) {
        const ev = this.queue.shift()!;
        try {
          await this.deliver(ev);
        } catch (err) {
          // deliver() handles its own failures; this is a bug, and must not stop the worker.
          this.stats.failed++;
          this.log.log("error", "webhook delivery failed unexpectedly", {
            ...this.fields(ev),
            error: err instanceof Error ? err.message : String(err),
          });
        }
      }
    } finally {
      this.running = false;
      if (this.closing.aborted) this.discard();
      const w = this.waiters;
      this.waiters = [];
      for (const r of w) r();
    }
  }

  private fields(ev: ApprovalEvent): Record<string, unknown> {
    return {
      webhook: this.t.label,
      format: this.t.format,
      host: this.t.host,
      event: ev.type,
      request: ev.approval.id,
    };
  }

  private async deliver(ev: ApprovalEvent): Promise<void> {
    const body = JSON.stringify(payloadFor(this.t.format, ev, { includeSql: this.t.includeSql }));
    const attempts = this.limits.delays.length + 1;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      let status: number | undefined;
      let retryAfter: number | undefined;
      let error: string | undefined;
      try {
        const res = await this.t.fetch(this.t.url, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            "user-agent": "gw-broker",
            ...this.t.headers,
          },
          body,
          signal: this.closing,
        });
        status = res.status;
        if (res.ok) {
          await res.arrayBuffer().catch(() => undefined);
          this.stats.delivered++;
          this.log.log("debug", "webhook delivered", { ...this.fields(ev), attempt, status });
          return;
        }
        retryAfter = parseRetryAfter(res.headers.get("retry-after"));
        error = (await res.text().catch(() => "")).slice(0, 200);
      } catch (err) {
        if (this.closing.aborted) return;
        error = err instanceof Error ? err.message : String(err);
      }
      const retryable = status === undefined || RETRYABLE.has(status) || status >= 500;
      if (!retryable || attempt === attempts) {
        this.stats.failed++;
        this.log.log(
          "warn",
          retryable
            ? `webhook failed after ${attempts} attempts; the notification is dropped`
            : "webhook refused the notification; not retrying",
          { ...this.fields(ev), attempt, ...(status !== undefined ? { status } : {}), error },
        );
        return;
      }
      const base = this.limits.delays[attempt - 1]!;
      const wait =
        retryAfter !== undefined ? Math.min(this.limits.maxRetryAfterMs, retryAfter) : base;
      this.log.log("info", "webhook attempt failed; retrying", {
        ...this.fields(ev),
        attempt,
        ...(status !== undefined ? { status } : {}),
        error,
        retryInMs: wait,
      });
      if (!(await sleep(Math.max(base, wait), this.closing))) return;
    }
  }
}

const RETRYABLE = new Set([408, 425, 429]);

/** Retry-After as ms: delay-seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(v: string | null, now = Date.now()): number | undefined {
  if (v === null || v.trim() === "") return undefined;
  const t = v.trim();
  if (/^\d+$/.test(t)) return Number(t) * 1000;
  const at = Date.parse(t);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** Resolves true after ms, false when aborted first. */
function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(false);
    const onAbort = () => {
      clearTimeout(t);
      resolve(false);
    };
    const t = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    t.unref();
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
