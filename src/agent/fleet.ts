import { isIP } from "node:net";
import {
  addressEndpoint,
  systemLookup,
  urlEndpoint,
  type BrokerEndpoint,
  type Lookup,
} from "../tunnel/broker-endpoints.js";
import { Agent, type AgentEvent, type AgentOptions } from "./agent.js";

/**
 * One agent per broker replica. A session goes through the agent connected to the replica
 * that serves it, so the agent must be connected to every replica: it dials each broker URL
 * given and, for a name with several addresses (a Kubernetes headless Service, round-robin
 * DNS), each address, keeping the name for TLS. Names are looked up again every `refreshMs`,
 * so replicas that come and go are followed.
 */
export class AgentFleet {
  private readonly agents = new Map<string, { agent: Agent; run: Promise<void> }>();
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private failure: unknown = null;
  private settle!: { resolve: () => void; reject: (err: unknown) => void };
  private readonly done = new Promise<void>((resolve, reject) => {
    this.settle = { resolve, reject };
  });

  constructor(
    private readonly opts: Omit<AgentOptions, "broker" | "endpoint" | "onEvent"> & {
      brokers: readonly string[];
      onEvent?: (e: AgentEvent, replica: string) => void;
      lookup?: Lookup;
      refreshMs?: number;
    },
  ) {
    this.done.catch(() => undefined);
  }

  /** Resolves when stopped; rejects when one agent stops for good (refused, replaced). */
  async run(): Promise<void> {
    await this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.opts.refreshMs ?? 30_000);
    this.timer.unref();
    return this.done;
  }

  get size(): number {
    return this.agents.size;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await Promise.all([...this.agents.values()].map((a) => a.agent.stop()));
    this.agents.clear();
    if (this.failure !== null) this.settle.reject(this.failure);
    else this.settle.resolve();
  }

  /**
   * Every address of every name, even a single one (unlike the tunnel's pool): a name that
   * resolves to one address today may have three after a scale-up, and the agent already
   * connected to the first must not be replaced. A name that does not resolve is dialled as
   * it is, so its agent retries and logs why.
   */
  private async endpoints(): Promise<BrokerEndpoint[]> {
    const lookup = this.opts.lookup ?? systemLookup;
    const lists = await Promise.all(
      this.opts.brokers.map(async (url) => {
        const host = new URL(url).hostname.replace(/^\[|\]$/g, "");
        if (isIP(host) !== 0 || host === "localhost") return [urlEndpoint(url)];
        try {
          const found = [...new Set((await lookup(host)).map((a) => a.address))];
          if (found.length > 0) return found.map((a) => addressEndpoint(url, a));
        } catch {
          // below
        }
        const running = [...this.agents.keys()].filter((k) => k.startsWith(`${url} `));
        // Resolution failed: keep the replicas we have rather than dropping them all.
        return running.length > 0
          ? running.map((k) => addressEndpoint(url, k.slice(url.length + 1)))
          : [urlEndpoint(url)];
      }),
    );
    return lists.flat();
  }

  private async refresh(): Promise<void> {
    if (this.stopped) return;
    const endpoints = await this.endpoints();
    if (this.stopped) return;
    const wanted = new Set(endpoints.map((e) => e.key));
    for (const [key, a] of this.agents) {
      // An address gone from DNS: its replica went away (a pod rescheduled).
      if (!wanted.has(key)) {
        this.agents.delete(key);
        void a.agent.stop();
      }
    }
    for (const e of endpoints) {
      if (this.agents.has(e.key)) continue;
      const agent = new Agent({
        ...this.opts,
        broker: e.url,
        ...(e.address !== null ? { endpoint: e } : {}),
        onEvent: (ev) => this.opts.onEvent?.(ev, e.label),
      });
      const run = agent.run().catch((err: unknown) => {
        // Refused or replaced for good: the whole agent stops, as one agent would.
        if (this.failure === null) this.failure = err;
        void this.stop();
      });
      this.agents.set(e.key, { agent, run });
    }
  }
}
