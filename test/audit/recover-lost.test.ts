/**
 * Sessions of a lost broker replica: another replica ends them (broker_lost) and seals them
 * with its key, the way a restarted single broker seals what it left open; sessions of other
 * replicas, live ones included, are left alone. The recorder stamps each session with its
 * replica's id, which is what the sweep goes by.
 */
import { createPublicKey } from "node:crypto";
import { describe, expect, it } from "vitest";
import { AuditService, verifySessionIn } from "../../src/audit/service.js";
import { AuditSigner } from "../../src/audit/signer.js";
import { brokerConfig } from "../../src/config/schema.js";
import { MemoryStore } from "../../src/store/memory-store.js";
import { Clock, audit, completed, hooksFor } from "./fixtures.js";

const config = brokerConfig.parse({
  identity: { issuer: "https://login.example.com/t/v2.0", audience: "api://gw" },
  store: { memory: true },
  connections: {},
});

async function openSession(store: MemoryStore, id: string, brokerId: string, clock: Clock) {
  const signer = AuditSigner.ephemeral();
  const hooks = hooksFor(store, id, { ...audit({ clock, signer }), brokerId });
  await hooks.onStart({ applicationName: "psql", startup: new Map() });
  await hooks.beforeStatement({ sql: "SELECT 1", protocol: "simple" });
  await hooks.onStatement(completed({ sql: "SELECT 1", at: clock.advance(100), durationMs: 3 }));
  return hooks;
}

describe("sessions of a lost broker replica", () => {
  it("are ended as broker_lost and sealed by the sweeping replica; others are untouched", async () => {
    const store = new MemoryStore();
    const clock = new Clock();
    await openSession(store, "s-lost-1", "replica-dead", clock);
    await openSession(store, "s-lost-2", "replica-dead", clock);
    await openSession(store, "s-live", "replica-alive", clock);
    expect((await store.getSession("s-lost-1"))?.brokerId).toBe("replica-dead");

    const signer = AuditSigner.ephemeral();
    const sweeper = AuditService.open({ config, store, signer, brokerId: "replica-alive" });
    expect(await sweeper.recoverOpenSessions({ brokerId: "replica-dead" })).toBe(2);
    expect(await sweeper.recoverOpenSessions({ brokerId: "replica-dead" })).toBe(0);

    for (const id of ["s-lost-1", "s-lost-2"]) {
      const s = (await store.getSession(id))!;
      expect(s.endReason).toBe("broker_lost");
      expect(s.endDetail).toBe(
        "its broker replica replica-dead stopped sending heartbeats; sealed by another replica",
      );
      expect(s.statementCount).toBe(1);
      expect(s.seal).toMatchObject({ keyId: signer.keyId, recovered: true, eventCount: 2 });
      const r = await verifySessionIn(store, s, createPublicKey(signer.publicKeyPem));
      expect(r.status).toBe("intact");
      expect(r.summary).toContain("(sealed by another replica: its broker was lost)");
    }
    const live = (await store.getSession("s-live"))!;
    expect(live.endedAt).toBeNull();
    expect(live.brokerId).toBe("replica-alive");
    sweeper.close();
  });
});
