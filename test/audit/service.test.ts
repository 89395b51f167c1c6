/**
 * The broker's audit service: its signing key (made once, 0600, kept), each connection's
 * recording settings, sealing sessions a crashed broker left open, and retention.
 */
import { createPublicKey } from "node:crypto";
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AuditService, signingKeyPath, verifySessionIn } from "../../src/audit/service.js";
import { AuditSigner } from "../../src/audit/signer.js";
import { brokerConfig, type BrokerConfig } from "../../src/config/schema.js";
import { GwError } from "../../src/errors.js";
import { MemoryStore } from "../../src/store/memory-store.js";
import { SqliteStore } from "../../src/store/sqlite-store.js";
import { Clock, audit, completed, hooksFor, recordSession } from "./fixtures.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "gw-audit-service-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function config(extra: Record<string, unknown> = {}): BrokerConfig {
  return brokerConfig.parse({
    identity: { issuer: "https://login.example.com/t/v2.0", audience: "api://gw" },
    store: { sqlite: join(dir, "data", "gw.db") },
    connections: {
      strict: {
        type: "postgres",
        target: { host: "db", database: "app", user: "gw" },
        allow: ["group:x"],
        audit: "strict",
        policy: "prod",
      },
      fast: {
        type: "postgres",
        target: { host: "db", database: "app", user: "gw" },
        allow: ["group:x"],
        audit: "async",
        policy: "prod",
        recording: { preview: { rows: 5 } },
      },
      quiet: {
        type: "postgres",
        target: { host: "db", database: "app", user: "gw" },
        allow: ["group:x"],
        recording: { preview: false },
      },
    },
    policies: { prod: { recording: { preview: { rows: 3, kib: 2 } } } },
    ...extra,
  });
}

const mode = (p: string) => statSync(p).mode & 0o777;

describe("the signing key", () => {
  it("is made on first start next to the store (0600), with its public key beside it, and kept", () => {
    const cfg = config();
    const path = signingKeyPath(cfg)!;
    expect(path).toBe(join(dir, "data", "audit-signing-key.pem"));
    const first = AuditService.open({ config: cfg, store: new MemoryStore() });
    expect(mode(path)).toBe(0o600);
    expect(mode(join(dir, "data"))).toBe(0o700);
    expect(readFileSync(`${path}.pub`, "utf8")).toBe(first.signer.publicKeyPem);
    const again = AuditService.open({ config: cfg, store: new MemoryStore() });
    expect(again.signer.keyId).toBe(first.signer.keyId);
    expect(first.signer.keyId).toMatch(/^[0-9a-f]{16}$/);
  });

  it("goes where signingKey.file says; a key others can read is tightened; garbage is refused", () => {
    const file = join(dir, "keys", "broker.pem");
    const cfg = config({ signingKey: { file } });
    AuditService.open({ config: cfg, store: new MemoryStore() });
    chmodSync(file, 0o644);
    AuditService.open({ config: cfg, store: new MemoryStore() });
    expect(mode(file)).toBe(0o600);
    writeFileSync(file, "not a key", { mode: 0o600 });
    let err: unknown;
    try {
      AuditSigner.loadOrCreate(file);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(GwError);
    expect((err as GwError).code).toBe("audit_key_unavailable");
    expect((err as GwError).message).toContain(file);
  });

  it("is a throwaway key for the memory store", () => {
    const cfg = brokerConfig.parse({
      identity: { issuer: "https://login.example.com/t/v2.0", audience: "api://gw" },
      store: { memory: true },
      connections: {},
    });
    expect(signingKeyPath(cfg)).toBeNull();
    expect(AuditService.open({ config: cfg, store: new MemoryStore() }).signer.path).toBeNull();
    expect(existsSync(join(dir, "data"))).toBe(false);
  });
});

describe("recording settings", () => {
  it("resolves the audit mode and preview per connection, then policy, then default", () => {
    const s = AuditService.open({
      config: config(),
      store: new MemoryStore(),
      signer: AuditSigner.ephemeral(),
    });
    expect(s.mode("strict")).toBe("strict");
    expect(s.mode("fast")).toBe("async");
    expect(s.mode("quiet")).toBe("async"); // the default
    expect(s.previewLimits("strict")).toEqual({ rows: 3, kib: 2 });
    expect(s.previewLimits("fast")).toEqual({ rows: 5, kib: 16 });
    expect(s.previewLimits("quiet")).toBe(false);
    expect(s.forConnection("fast")).toMatchObject({ mode: "async", preview: { rows: 5, kib: 16 } });
  });

  it("rejects bad settings in the config", () => {
    const bad = (extra: Record<string, unknown>) => () => config(extra);
    expect(bad({ retention: "forever" })).toThrow();
    expect(bad({ signingKey: { env: "X" } })).toThrow();
    expect(() =>
      brokerConfig.parse({
        identity: { issuer: "https://login.example.com/t/v2.0", audience: "api://gw" },
        connections: {
          c: {
            type: "postgres",
            target: { host: "h", database: "d", user: "u" },
            allow: ["group:x"],
            audit: "sometimes",
          },
        },
      }),
    ).toThrow(/strict or async/);
  });
});

describe("sessions a crashed broker left open", () => {
  it("are ended and sealed at the next start, and verify as intact", async () => {
    const path = join(dir, "gw.db");
    const signer = AuditSigner.ephemeral();
    let store = SqliteStore.open(path);
    const clock = new Clock();
    const hooks = hooksFor(store, "s-crashed", audit({ clock, signer }));
    await hooks.onStart({ applicationName: null, startup: new Map() });
    await hooks.beforeStatement({ sql: "SELECT 1", protocol: "simple" });
    await hooks.onStatement(completed({ sql: "SELECT 1", at: clock.advance(100), durationMs: 3 }));
    await hooks.beforeStatement({ sql: "UPDATE t SET x = 1", protocol: "simple" }); // then: crash
    await recordSession(store, "s-fine", { signer });
    await store.close();

    store = SqliteStore.open(path);
    const cfg = config({ store: { sqlite: path } });
    const service = AuditService.open({ config: cfg, store, signer, now: () => clock.t + 60_000 });
    await service.start({ recoverOpenSessions: true });
    const s = (await store.getSession("s-crashed"))!;
    expect(s.endReason).toBe("broker_shutdown");
    expect(s.endDetail).toContain("sealed at its next start");
    expect(s.endedAt).toBe(clock.t + 3);
    expect(s.statementCount).toBe(1);
    expect(s.seal).toMatchObject({ eventCount: 3, recovered: true });
    const r = await verifySessionIn(store, s, createPublicKey(signer.publicKeyPem));
    expect(r.status).toBe("intact");
    expect(r.summary).toContain("(sealed at the next broker start)");
    expect((await store.getSession("s-fine"))?.seal?.recovered).toBeUndefined();
    service.close();
    await store.close();
  });
});
