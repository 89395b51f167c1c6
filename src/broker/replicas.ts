import type { ApprovalService } from "../approvals/service.js";
import type { AuditService } from "../audit/service.js";
import type { ReplicaInfo, ReplicaRegistry } from "../store/replica-registry.js";
import type { Logger } from "./logger.js";

export interface ReplicaTimings {
  /** How often this replica tells the store it is alive, in ms. Default 3000. */
  heartbeatMs?: number;
  /** A replica whose last heartbeat is older than this is lost, in ms. Default 15000. */
  lostAfterMs?: number;
  /** How often this replica looks for lost ones, in ms. Default 5000. */
  sweepMs?: number;
}

export interface ReplicasOptions extends ReplicaTimings {
  /** This replica's id (the brokerId on its sessions and approval requests). */
  id: string;
  /** Where it serves, for operators reading the registry; null until it knows. */
  url: () => string | null;
  registry: ReplicaRegistry;
  audit: Pick<AuditService, "recoverOpenSessions" | "signer">;
  approvals: Pick<ApprovalService, "cancelPendingOf">;
  log: Logger;
  /** Local clock for this replica's own bookkeeping (not for comparing with others). */
  now?: () => number;
}

export const DEFAULT_REPLICA_TIMINGS: Required<ReplicaTimings> = {
  heartbeatMs: 3000,
  lostAfterMs: 15_000,
  sweepMs: 5000,
};

/**
 * A broker replica's membership in a shared store: it registers itself, heartbeats, and
 * sweeps up after replicas that died without a clean shutdown. A lost replica's open sessions
 * are ended (broker_lost) and sealed with this replica's key, as a restarted single broker
 * seals what it left open; its pending approval requests are cancelled, since nobody can
 * release their statements any more. Then its registration is removed.
 *
 * Heartbeat ages come from the store's clock, so replicas whose clocks disagree still agree
 * on who is late. After this replica could not reach the store itself, it sweeps again only
 * once its heartbeats have gone through for lostAfterMs: the others were cut off too, and
 * deserve the same time to report back before they are declared lost.
 */
export class Replicas {
  readonly id: string;
  private readonly timings: Required<ReplicaTimings>;
  private readonly now: () => number;
  private readonly startedAt: number;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private readonly inFlight = new Set<Promise<unknown>>();
  private sweeping: Promise<number> | null = null;
  /** Since when heartbeats have gone through without a failure (local clock). */
  private healthySince: number;
  private registered = false;
  private stopped = false;

  constructor(private readonly opts: ReplicasOptions) {
    this.id = opts.id;
    this.timings = {
      heartbeatMs: opts.heartbeatMs ?? DEFAULT_REPLICA_TIMINGS.heartbeatMs,
      lostAfterMs: opts.lostAfterMs ?? DEFAULT_REPLICA_TIMINGS.lostAfterMs,
      sweepMs: opts.sweepMs ?? DEFAULT_REPLICA_TIMINGS.sweepMs,
    };
    if (this.timings.heartbeatMs * 2 > this.timings.lostAfterMs) {
      // A replica declared lost between two heartbeats would lose its live sessions.
      throw new Error(
        `replica lostAfterMs (${this.timings.lostAfterMs}) must be at least twice heartbeatMs (${this.timings.heartbeatMs})`,
      );
    }
    this.now = opts.now ?? Date.now;
    this.startedAt = this.now();
    // The sweep at start needs no wait: the store was reachable a moment ago, to open it.
    this.healthySince = this.startedAt - this.timings.lostAfterMs;
  }

  /** Registers this replica (rejecting when the store refuses), sweeps once, starts the timers. */
  async start(): Promise<void> {
    await this.opts.registry.heartbeatReplica(this.info());
    this.registered = true;
    await this.track(this.warnOnOtherKeys());
    await this.sweep();
    if (this.stopped) return;
    this.heartbeatTimer = setInterval(
      () => void this.track(this.heartbeat()),
      this.timings.heartbeatMs,
    );
    this.heartbeatTimer.unref();
    this.sweepTimer = setInterval(() => void this.sweep(), this.timings.sweepMs);
    this.sweepTimer.unref();
  }

  /** Stops heartbeats and sweeps and deregisters (a clean shutdown: nobody will sweep it). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.heartbeatTimer);
    clearInterval(this.sweepTimer);
    await Promise.allSettled([...this.inFlight, this.sweeping]);
    if (!this.registered) return;
    try {
      await this.opts.registry.removeReplica(this.id);
    } catch (err) {
      this.opts.log.log("warn", "replicas: could not deregister; others will sweep this replica", {
        error: message(err),
      });
    }
  }

  /**
   * Ends what replicas silent for longer than lostAfterMs left behind. Resolves to how many
   * replicas it swept. Never rejects (failures are logged, and the next sweep tries again).
   */
  sweep(): Promise<number> {
    if (this.stopped) return Promise.resolve(0);
    this.sweeping ??= this.sweepOnce().finally(() => {
      this.sweeping = null;
    });
    return this.sweeping;
  }

  private async sweepOnce(): Promise<number> {
    if (this.now() - this.healthySince < this.timings.lostAfterMs) return 0;
    let replicas: ReplicaInfo[];
    try {
      replicas = await this.opts.registry.listReplicas();
    } catch (err) {
      this.opts.log.log("warn", "replicas: cannot list the replicas", { error: message(err) });
      return 0;
    }
    let swept = 0;
    for (const r of replicas) {
      if (this.stopped) break;
      if (r.id === this.id || r.heartbeatAgeMs <= this.timings.lostAfterMs) continue;
      try {
        const sessions = await this.opts.audit.recoverOpenSessions({ brokerId: r.id });
        const approvals = await this.opts.approvals.cancelPendingOf(r.id);
        // Only while it is still silent: a replica that came back keeps its registration.
        await this.opts.registry.removeReplica(r.id, { ifOlderThanMs: this.timings.lostAfterMs });
        swept++;
        this.opts.log.log("warn", "replicas: a broker replica was lost; closed what it left open", {
          replica: r.id,
          url: r.url,
          silentMs: Math.round(r.heartbeatAgeMs),
          sessions,
          approvals,
        });
      } catch (err) {
        this.opts.log.log("error", "replicas: sweeping a lost replica failed; will retry", {
          replica: r.id,
          error: message(err),
        });
      }
    }
    return swept;
  }

  private async heartbeat(): Promise<void> {
    if (this.stopped) return;
    try {
      const anew = await this.opts.registry.heartbeatReplica(this.info());
      if (anew) {
        // Another replica took this one for dead: its sessions were ended and sealed, and
        // their further writes fail (they end). New sessions are recorded as usual.
        this.opts.log.log("error", "replicas: this replica had been declared lost by another", {
          replica: this.id,
        });
      }
    } catch (err) {
      this.healthySince = Number.POSITIVE_INFINITY;
      this.opts.log.log("warn", "replicas: heartbeat failed", { error: message(err) });
      return;
    }
    if (this.healthySince === Number.POSITIVE_INFINITY) this.healthySince = this.now();
  }

  /** Seals made with different keys cannot all be verified with one: say so loudly. */
  private async warnOnOtherKeys(): Promise<void> {
    const mine = this.opts.audit.signer.keyId;
    try {
      const others = (await this.opts.registry.listReplicas()).filter(
        (r) =>
          r.id !== this.id &&
          r.keyId !== null &&
          r.keyId !== mine &&
          r.heartbeatAgeMs <= this.timings.lostAfterMs,
      );
      for (const r of others) {
        this.opts.log.log("error", "replicas: another replica signs with a different audit key", {
          replica: r.id,
          url: r.url,
          theirKey: r.keyId,
          ourKey: mine,
          hint: "Give every replica the same signingKey.file.",
        });
      }
    } catch {
      // Only a warning; the heartbeat reports store trouble.
    }
  }

  private info(): Omit<ReplicaInfo, "heartbeatAgeMs"> {
    return {
      id: this.id,
      url: this.opts.url(),
      keyId: this.opts.audit.signer.keyId,
      startedAt: this.startedAt,
    };
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p)).catch(() => undefined);
    return p;
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
