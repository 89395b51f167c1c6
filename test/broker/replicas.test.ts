/**
 * A broker replica's bookkeeping in a shared store, against a registry whose heartbeat ages the
 * test sets: who counts as lost, what a sweep closes, and when a replica must not sweep.
 * Timers are set far apart and sweeps are called directly, so nothing here depends on timing.
 */
import { describe, expect, it } from "vitest";
import { AuditSigner } from "../../src/audit/signer.js";
import { createLogger } from "../../src/broker/logger.js";
import { Replicas } from "../../src/broker/replicas.js";
import type { ReplicaInfo, ReplicaRegistry } from "../../src/store/replica-registry.js";

class FakeRegistry implements ReplicaRegistry {
  readonly rows = new Map<string, ReplicaInfo>();
  failing = false;
  async heartbeatReplica(r: Omit<ReplicaInfo, "heartbeatAgeMs">): Promise<boolean> {
    if (this.failing) throw new Error("connection refused");
    const anew = !this.rows.has(r.id);
    this.rows.set(r.id, { ...r, heartbeatAgeMs: 0 });
    return anew;
  }
  async listReplicas(): Promise<ReplicaInfo[]> {
    if (this.failing) throw new Error("connection refused");
    return [...this.rows.values()].map((r) => ({ ...r }));
  }
  async removeReplica(id: string, opts: { ifOlderThanMs?: number } = {}): Promise<boolean> {
    const r = this.rows.get(id);
    if (r === undefined) return false;
    if (opts.ifOlderThanMs !== undefined && r.heartbeatAgeMs <= opts.ifOlderThanMs) return false;
    return this.rows.delete(id);
  }
  add(id: string, ageMs: number, keyId = "key-1"): void {
    this.rows.set(id, { id, url: `https://${id}`, keyId, startedAt: 0, heartbeatAgeMs: ageMs });
  }
}

const signer = AuditSigner.ephemeral();

function setup(opts: { now?: () => number } = {}) {
  const registry = new FakeRegistry();
  const sealed: string[] = [];
  const cancelled: string[] = [];
  const lines: Array<Record<string, unknown>> = [];
  const faults = { cancel: false };
  const replicas = new Replicas({
    id: "me",
    url: () => "https://me:8443",
    registry,
    audit: {
      signer,
      recoverOpenSessions: async (o?: { brokerId?: string }) => {
        sealed.push(o?.brokerId ?? "*");
        return 2;
      },
    },
    approvals: {
      cancelPendingOf: async (id: string) => {
        if (faults.cancel) throw new Error("store down");
        cancelled.push(id);
        return 1;
      },
    },
    log: createLogger({
      level: "debug",
      write: (l) => lines.push(JSON.parse(l) as Record<string, unknown>),
    }),
    heartbeatMs: 7000, // fires long after each test is done
    sweepMs: 3_600_000,
    lostAfterMs: 15_000,
    ...(opts.now ? { now: opts.now } : {}),
  });
  return { registry, replicas, sealed, cancelled, lines, faults };
}

describe("Replicas", () => {
  it("registers, sweeps replicas silent too long at start, and deregisters on stop", async () => {
    const { registry, replicas, sealed, cancelled, lines } = setup();
    registry.add("dead", 20_000);
    registry.add("alive", 2_000);
    await replicas.start();
    expect(registry.rows.get("me")).toMatchObject({ url: "https://me:8443", keyId: signer.keyId });
    expect(sealed).toEqual(["dead"]);
    expect(cancelled).toEqual(["dead"]);
    expect([...registry.rows.keys()].sort()).toEqual(["alive", "me"]);
    expect(lines.find((l) => String(l.msg).includes("was lost"))).toMatchObject({
      replica: "dead",
      sessions: 2,
      approvals: 1,
    });
    expect(await replicas.sweep()).toBe(0); // nothing left to do
    await replicas.stop();
    expect(registry.rows.has("me")).toBe(false);
  });

  it("never sweeps itself, however old its own heartbeat looks", async () => {
    const { registry, replicas, sealed } = setup();
    await replicas.start();
    registry.rows.get("me")!.heartbeatAgeMs = 60_000;
    expect(await replicas.sweep()).toBe(0);
    expect(sealed).toEqual([]);
    await replicas.stop();
  });

  it("keeps a lost replica's registration when sweeping it failed, to try again", async () => {
    const { registry, replicas, lines, faults, cancelled } = setup();
    await replicas.start();
    registry.add("dead", 20_000);
    faults.cancel = true;
    expect(await replicas.sweep()).toBe(0);
    expect(registry.rows.has("dead")).toBe(true);
    expect(lines.some((l) => l.level === "error" && l.replica === "dead")).toBe(true);
    faults.cancel = false;
    expect(await replicas.sweep()).toBe(1);
    expect(cancelled).toEqual(["dead"]);
    expect(registry.rows.has("dead")).toBe(false);
    await replicas.stop();
  });

  it("after losing the store itself, waits a full lost-after period before sweeping others", async () => {
    let t = 1_000_000;
    const { registry, replicas, sealed } = setup({ now: () => t });
    await replicas.start();
    const beat = () =>
      (replicas as unknown as { heartbeat(): Promise<void> }).heartbeat.call(replicas);
    registry.failing = true;
    await beat();
    registry.failing = false;
    t += 1000;
    await beat(); // back, but the others were cut off just as long
    registry.add("slow", 20_000);
    expect(await replicas.sweep()).toBe(0);
    t += 15_000;
    expect(await replicas.sweep()).toBe(1);
    expect(sealed).toEqual(["slow"]);
    await replicas.stop();
  });

  it("says so when another replica had declared it lost", async () => {
    const { registry, replicas, lines } = setup();
    await replicas.start();
    registry.rows.delete("me");
    await (replicas as unknown as { heartbeat(): Promise<void> }).heartbeat();
    expect(lines.some((l) => l.level === "error" && String(l.msg).includes("declared lost"))).toBe(
      true,
    );
    expect(registry.rows.has("me")).toBe(true);
    await replicas.stop();
  });

  it("warns when a live replica signs with another audit key", async () => {
    const { registry, replicas, lines } = setup();
    registry.add("other", 1000, "some-other-key");
    await replicas.start();
    expect(lines.find((l) => String(l.msg).includes("different audit key"))).toMatchObject({
      replica: "other",
      theirKey: "some-other-key",
      ourKey: signer.keyId,
    });
    await replicas.stop();
  });

  it("refuses timings that would declare a live replica lost between two heartbeats", () => {
    expect(
      () =>
        new Replicas({
          id: "x",
          url: () => null,
          registry: new FakeRegistry(),
          audit: { signer, recoverOpenSessions: async () => 0 },
          approvals: { cancelPendingOf: async () => 0 },
          log: createLogger({ write: () => undefined }),
          heartbeatMs: 10_000,
          lostAfterMs: 15_000,
        }),
    ).toThrow(/twice heartbeatMs/);
  });
});
