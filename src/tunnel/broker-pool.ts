import type { Agent as HttpAgent } from "node:http";
import { ExitCode, GwError } from "../errors.js";
import { makeFetch, type FetchLike } from "../net/http-client.js";
import { contextTrusting } from "../net/tls-context.js";
import { unreachable, unreachableReason } from "./broker-client.js";
import {
  resolveEndpoints,
  systemLookup,
  urlEndpoint,
  type BrokerEndpoint,
  type Lookup,
} from "./broker-endpoints.js";
import {
  failedBeforeSending,
  failoverStatus,
  failsOver,
  failureReason,
  statusReason,
} from "./broker-failures.js";
import { ConnectTimeoutHttpAgent, ConnectTimeoutHttpsAgent } from "./connect-timeout-agent.js";

/**
 * The replicas of one broker as the CLI sees them: the endpoints it may dial (every URL given,
 * every address of a name that has several), which of them are up, and which one a new tunnel
 * stream or API request goes to.
 *
 * Choice: sticky. New streams go to the endpoint that last worked, in the order given until
 * one fails; a failed endpoint is skipped for a few seconds and at once for the next try, and a
 * light probe of /readyz brings it back. Sticky rather than round robin because one tunnel's
 * connections then land on one replica (its TLS sessions are resumed, its logs tell the whole
 * story), a replica that just came back is not flooded by every client at once, and the order
 * given is the operator's preference (a standby listed second stays standby). Spreading
 * clients over replicas is what a name with several addresses does: resolvers rotate them,
 * so clients start at different ones.
 *
 * Failures that are the caller's (401, 403, 404) are answers, not outages: they never move a
 * request (see broker-failures.ts).
 */
export interface BrokerPoolOptions {
  /** A private CA the brokers' certificates are signed by. */
  caFile?: string | undefined;
  /** Resolves a host name to all its addresses (tests give their own). */
  lookup?: Lookup;
  /** How long a failed endpoint is skipped unless the probe brings it back first. Default 5 s. */
  downForMs?: number;
  /** How often endpoints that are down are probed. Default 1 s. */
  probeIntervalMs?: number;
  /** TCP+TLS connect deadline while there is another endpoint to go to. Default 1 s. */
  connectTimeoutMs?: number;
  /** Names are resolved again when their addresses are older than this. Default 30 s. */
  reresolveMs?: number;
  now?: () => number;
}

export type BrokerPoolEvent =
  /** An endpoint that was up failed; `next` is where new requests go (null: none is up). */
  | { type: "down"; endpoint: BrokerEndpoint; reason: string; next: BrokerEndpoint | null }
  /** An endpoint that was down answers again. */
  | { type: "up"; endpoint: BrokerEndpoint };

export interface EndpointStatus {
  url: string;
  address: string | null;
  up: boolean;
  /** Why it is down. */
  reason?: string;
}

export interface PoolRequestInit {
  method?: "GET" | "POST";
  headers?: Record<string, string>;
  body?: string;
  /** Per request, connect to last byte. Default 15 s. */
  timeoutMs?: number;
}

/** What a request does: a read may be sent anywhere again; a change only if it was never sent. */
export type RequestKind = "read" | "change";

const DEFAULTS = {
  downForMs: 5_000,
  probeIntervalMs: 1_000,
  connectTimeoutMs: 1_000,
  reresolveMs: 30_000,
};
const PROBE_TIMEOUT_MS = 2_000;

/** Pools by URL (and CA), so every client of one broker in a process shares what is known. */
const registry = new Map<string, BrokerPool>();
const registryKey = (url: string, caFile: string | undefined) => `${url}\n${caFile ?? ""}`;

export class BrokerPool {
  /** The broker URLs, normalized, in the order given. */
  readonly urls: readonly string[];
  private list: BrokerEndpoint[];
  private readonly down = new Map<string, { until: number; reason: string }>();
  /** The endpoint new requests stick to. */
  private current: string | null = null;
  private resolvedAt: number | null = null;
  private resolving: Promise<void> | null = null;
  private probeTimer: NodeJS.Timeout | null = null;
  private readonly probing = new Set<string>();
  private readonly listeners = new Set<(e: BrokerPoolEvent) => void>();
  private readonly agents: { https: HttpAgent; http: HttpAgent };
  private readonly streamAgents: { https: HttpAgent; http: HttpAgent };
  private readonly fetchers = new Map<string, FetchLike>();
  private readonly cfg: typeof DEFAULTS;
  private readonly now: () => number;
  private readonly lookup: Lookup;
  private closed = false;

  constructor(
    urls: readonly string[],
    private readonly opts: BrokerPoolOptions = {},
  ) {
    if (urls.length === 0) throw new Error("a broker pool needs at least one URL");
    this.urls = [...urls];
    this.list = this.urls.map(urlEndpoint);
    this.cfg = {
      downForMs: opts.downForMs ?? DEFAULTS.downForMs,
      probeIntervalMs: opts.probeIntervalMs ?? DEFAULTS.probeIntervalMs,
      connectTimeoutMs: opts.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
      reresolveMs: opts.reresolveMs ?? DEFAULTS.reresolveMs,
    };
    this.now = opts.now ?? Date.now;
    this.lookup = opts.lookup ?? systemLookup;
    const timeout = () => this.connectTimeoutMs;
    const tls = opts.caFile ? { secureContext: contextTrusting(opts.caFile) } : {};
    this.agents = {
      https: new ConnectTimeoutHttpsAgent({ keepAlive: true, ...tls }, timeout),
      http: new ConnectTimeoutHttpAgent({ keepAlive: true }, timeout),
    };
    // Tunnel streams: one upgraded socket each, never reused; TLS sessions are, so a new
    // stream costs little more than the WebSocket upgrade.
    this.streamAgents = {
      https: new ConnectTimeoutHttpsAgent({ maxCachedSessions: 100, ...tls }, timeout),
      http: new ConnectTimeoutHttpAgent({}, timeout),
    };
  }

  /**
   * The pool every client of these URLs in this process shares: the one already made for them
   * (or for more replicas of the same broker), else a new one.
   */
  static shared(urls: readonly string[], opts: BrokerPoolOptions = {}): BrokerPool {
    const known = registry.get(registryKey(urls[0]!, opts.caFile));
    if (known && !known.closed && urls.every((u) => known.urls.includes(u))) return known;
    const pool = new BrokerPool(urls, opts);
    for (const u of urls) registry.set(registryKey(u, opts.caFile), pool);
    return pool;
  }

  /** The first URL given: the broker's name in messages. */
  get url(): string {
    return this.urls[0]!;
  }

  get caFile(): string | undefined {
    return this.opts.caFile;
  }

  /** Only while there is somewhere else to go: a lone broker gets the OS's own patience. */
  get connectTimeoutMs(): number {
    return this.list.length > 1 ? this.cfg.connectTimeoutMs : 0;
  }

  get endpoints(): readonly BrokerEndpoint[] {
    return this.list;
  }

  status(): EndpointStatus[] {
    const now = this.now();
    return this.list.map((e) => {
      const d = this.down.get(e.key);
      const up = this.isUp(e, now);
      return { url: e.url, address: e.address, up, ...(!up && d ? { reason: d.reason } : {}) };
    });
  }

  onChange(listener: (e: BrokerPoolEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The agent a tunnel stream to `endpoint` dials through. */
  streamAgent(endpoint: BrokerEndpoint): HttpAgent {
    return endpoint.dialUrl.startsWith("https:") ? this.streamAgents.https : this.streamAgents.http;
  }

  /**
   * Where to send the next request, best first: the endpoint in use if it is up, the others
   * that are up in the order given, then those that are down, soonest back first (so that with
   * every endpoint down each is still tried once).
   */
  order(): BrokerEndpoint[] {
    const now = this.now();
    const up = this.list.filter((e) => this.isUp(e, now));
    const current = up.find((e) => e.key === this.current);
    const rest = up.filter((e) => e !== current);
    const down = this.list
      .filter((e) => !this.isUp(e, now))
      .sort((a, b) => this.down.get(a.key)!.until - this.down.get(b.key)!.until);
    return [...(current ? [current] : []), ...rest, ...down];
  }

  /** order(), once names are resolved; stale ones are resolved again in the background. */
  async candidates(): Promise<BrokerEndpoint[]> {
    if (this.resolvedAt === null) await this.resolve();
    else {
      const age = this.now() - this.resolvedAt;
      const allDown = this.list.every((e) => !this.isUp(e, this.now()));
      // Every address failing may mean the replicas moved: look again, at most once a second.
      if (age > this.cfg.reresolveMs || (allDown && age > 1_000)) void this.resolve();
    }
    return this.order();
  }

  /** A request or stream to `endpoint` worked: new ones stick to it. */
  succeeded(endpoint: BrokerEndpoint): void {
    this.current = endpoint.key;
    if (this.down.delete(endpoint.key) && this.list.length > 1) this.emit({ type: "up", endpoint });
  }

  /** `endpoint` did not answer (or not usefully): skip it until the probe brings it back. */
  failed(endpoint: BrokerEndpoint, reason: string): void {
    if (!this.list.some((e) => e.key === endpoint.key)) return; // resolved away meanwhile
    const now = this.now();
    const wasUp = this.isUp(endpoint, now);
    this.down.set(endpoint.key, { until: now + this.cfg.downForMs, reason });
    if (this.current === endpoint.key) this.current = null;
    if (this.list.length < 2) return;
    this.startProbe();
    if (wasUp) {
      const next = this.order()[0];
      this.emit({
        type: "down",
        endpoint,
        reason,
        next: next && this.isUp(next, now) ? next : null,
      });
    }
  }

  /**
   * Sends an API request to the best endpoint, and to the next one while an endpoint is down.
   * Resolves with the answer (any status: the caller maps errors) and who gave it; rejects
   * with broker_unreachable when no endpoint answered.
   */
  async request(
    path: string,
    init: PoolRequestInit,
    kind: RequestKind,
  ): Promise<{ res: Response; endpoint: BrokerEndpoint }> {
    const list = await this.candidates();
    const failures: Array<{ endpoint: BrokerEndpoint; error: unknown }> = [];
    /** A replica that answered 5xx: its answer says more than a later one's silence. */
    let answered: { res: Response; endpoint: BrokerEndpoint } | null = null;
    for (const [i, endpoint] of list.entries()) {
      const last = i === list.length - 1;
      let res: Response;
      try {
        res = await this.fetchFor(endpoint, init.timeoutMs ?? 15_000)(endpoint.dialUrl + path, {
          method: init.method ?? "GET",
          headers: { ...init.headers, ...endpoint.headers },
          ...(init.body !== undefined ? { body: init.body } : {}),
        });
      } catch (error) {
        failures.push({ endpoint, error });
        if (failsOver(error)) this.failed(endpoint, failureReason(error));
        const again = kind === "read" ? failsOver(error) : failedBeforeSending(error);
        if (again && !last) continue;
        if (again && answered) return answered;
        throw unreachableAll(failures);
      }
      if (failoverStatus(res.status, kind)) {
        this.failed(endpoint, statusReason(res.status, await jsonOf(res)));
        answered = { res, endpoint };
        if (!last) continue;
      } else this.succeeded(endpoint);
      return { res, endpoint };
    }
    // Not reached: the last endpoint returns or throws above.
    throw unreachableAll(failures);
  }

  /** Stops the probe and closes idle connections. */
  close(): void {
    this.closed = true;
    if (this.probeTimer) clearInterval(this.probeTimer);
    this.probeTimer = null;
    for (const a of [...Object.values(this.agents), ...Object.values(this.streamAgents)])
      a.destroy();
    for (const [k, p] of registry) if (p === this) registry.delete(k);
  }

  private isUp(e: BrokerEndpoint, now: number): boolean {
    const d = this.down.get(e.key);
    return d === undefined || d.until <= now;
  }

  private emit(e: BrokerPoolEvent): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch {
        // a listener that fails to log must not fail the request
      }
    }
  }

  private resolve(): Promise<void> {
    this.resolving ??= resolveEndpoints(this.urls, this.lookup)
      .then((list) => {
        this.list = list;
        this.resolvedAt = this.now();
        const keys = new Set(list.map((e) => e.key));
        for (const k of this.down.keys()) if (!keys.has(k)) this.down.delete(k);
        if (this.current !== null && !keys.has(this.current)) this.current = null;
      })
      .finally(() => {
        this.resolving = null;
      });
    return this.resolving;
  }

  private fetchFor(endpoint: BrokerEndpoint, timeoutMs: number): FetchLike {
    const secure = endpoint.dialUrl.startsWith("https:");
    const key = `${secure ? "https" : "http"} ${timeoutMs}`;
    let f = this.fetchers.get(key);
    if (!f) {
      f = makeFetch({ agent: secure ? this.agents.https : this.agents.http, timeoutMs });
      this.fetchers.set(key, f);
    }
    return f;
  }

  private startProbe(): void {
    if (this.probeTimer !== null || this.closed) return;
    this.probeTimer = setInterval(() => void this.probe(), this.cfg.probeIntervalMs);
    this.probeTimer.unref();
  }

  /** GET /readyz on every endpoint that is down; an answer below 500 brings it back. */
  private async probe(): Promise<void> {
    const down = this.list.filter((e) => this.down.has(e.key));
    if (down.length === 0) {
      if (this.probeTimer) clearInterval(this.probeTimer);
      this.probeTimer = null;
      return;
    }
    await Promise.all(
      down.map(async (endpoint) => {
        if (this.probing.has(endpoint.key)) return;
        this.probing.add(endpoint.key);
        let reason: string | null;
        try {
          const res = await this.fetchFor(endpoint, PROBE_TIMEOUT_MS)(
            endpoint.dialUrl + "/readyz",
            { headers: { accept: "application/json", ...endpoint.headers } },
          );
          // A proxy that hides /readyz (404) still shows the replica answers.
          reason = res.status < 500 ? null : statusReason(res.status, await jsonOf(res));
        } catch (err) {
          reason = failureReason(err);
        } finally {
          this.probing.delete(endpoint.key);
        }
        if (this.closed || !this.down.has(endpoint.key)) return;
        if (reason === null) {
          this.down.delete(endpoint.key);
          this.emit({ type: "up", endpoint });
        } else this.down.set(endpoint.key, { until: this.now() + this.cfg.downForMs, reason });
      }),
    );
  }
}

/**
 * broker_unreachable for the endpoints that were tried: the message of one (as with a single
 * broker), or each with its reason.
 */
export function unreachableAll(
  failures: ReadonlyArray<{ endpoint: BrokerEndpoint; error: unknown }>,
): GwError {
  const last = failures[failures.length - 1]!;
  if (failures.length === 1) return unreachable(last.endpoint.label, last.error);
  const each = failures.map((f) => `${f.endpoint.label} (${unreachableReason(f.error).why})`);
  return new GwError("broker_unreachable", `cannot reach any of the brokers: ${each.join(", ")}`, {
    exitCode: ExitCode.unavailable,
    hint: unreachableReason(last.error).hint,
    cause: last.error,
  });
}

async function jsonOf(res: Response): Promise<unknown> {
  try {
    return JSON.parse(await res.clone().text()) as unknown;
  } catch {
    return undefined;
  }
}
