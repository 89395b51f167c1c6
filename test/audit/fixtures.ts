/**
 * Recorded sessions for the audit tests, made the way the broker makes them: the recorder's
 * hooks driven as a protocol session drives them (start, before each statement, completion,
 * end), with a real signing key.
 */
import { createLogger } from "../../src/broker/logger.js";
import {
  recordingHooks,
  type RecordedStatement,
  type RecordingHooks,
} from "../../src/broker/recorder.js";
import { AuditSigner } from "../../src/audit/signer.js";
import { WriteGate, type AuditMode, type RecorderAudit } from "../../src/audit/service.js";
import type { PreviewLimits } from "../../src/audit/preview.js";
import type { Identity } from "../../src/identity/principal.js";
import type { SessionStore } from "../../src/store/types.js";

export const DANA: Identity = {
  oid: "oid-dana",
  tid: "tid",
  name: "Dana DBA",
  upn: "dana@example.com",
  type: "user",
  groups: [],
  roles: [],
  expiresAt: 2_000_000_000,
};

export const T0 = Date.UTC(2026, 0, 15, 9, 30, 0);

/** A clock the test moves. */
export class Clock {
  constructor(public t = T0) {}
  now = () => this.t;
  advance(ms: number): number {
    this.t += ms;
    return this.t;
  }
}

export function audit(
  opts: {
    mode?: AuditMode;
    signer?: AuditSigner | null;
    preview?: PreviewLimits | false;
    clock?: Clock;
    buffer?: number;
    gate?: WriteGate;
  } = {},
): RecorderAudit {
  const now = opts.clock?.now ?? Date.now;
  return {
    mode: opts.mode ?? "strict",
    signer: opts.signer === undefined ? signer() : opts.signer,
    preview: opts.preview ?? { rows: 20, kib: 16 },
    gate: opts.gate ?? new WriteGate(opts.buffer ?? 1000, now),
    now,
  };
}

let cachedSigner: AuditSigner | undefined;
/** One key for the whole test file (making keys is cheap, but one is enough). */
export function signer(): AuditSigner {
  return (cachedSigner ??= AuditSigner.ephemeral());
}

export const quietLog = createLogger({ level: "error", write: () => undefined });

export function hooksFor(
  store: SessionStore,
  sessionId: string,
  a: RecorderAudit,
  extra: { agentLabel?: string | null; identity?: Identity; connection?: string } = {},
): RecordingHooks {
  return recordingHooks({
    store,
    sessionId,
    identity: extra.identity ?? DANA,
    connection: extra.connection ?? "db-test",
    clientAddress: "127.0.0.1:50000",
    log: quietLog,
    agentLabel: extra.agentLabel ?? null,
    audit: a,
  });
}

export function completed(over: Partial<RecordedStatement> & { sql: string }): RecordedStatement {
  return {
    at: Date.now(),
    durationMs: 1.5,
    protocol: "simple",
    commandTag: "SELECT 1",
    rows: 1,
    errorCode: null,
    errorMessage: null,
    decision: "allowed",
    ...over,
  };
}

/**
 * Records a session of `n` allowed SELECTs (start + completion each) and ends it; resolves
 * once everything is written. Statement i runs `SELECT i AS n`, offsets 1 s apart.
 */
export async function recordSession(
  store: SessionStore,
  sessionId: string,
  opts: {
    n?: number;
    clock?: Clock;
    signer?: AuditSigner | null;
    agentLabel?: string;
    identity?: Identity;
  } = {},
): Promise<void> {
  const clock = opts.clock ?? new Clock();
  const hooks = hooksFor(store, sessionId, audit({ clock, signer: opts.signer }), {
    agentLabel: opts.agentLabel ?? null,
    ...(opts.identity ? { identity: opts.identity } : {}),
  });
  await hooks.onStart({ applicationName: "psql", startup: new Map() });
  const n = opts.n ?? 4;
  for (let i = 1; i <= n; i++) {
    const at = clock.advance(1000);
    const sql = `SELECT ${i} AS n`;
    await hooks.beforeStatement({ sql, protocol: "simple" });
    clock.advance(5);
    await hooks.onStatement(
      completed({
        sql,
        at,
        durationMs: 5,
        preview: { columns: ["n"], rows: [[String(i)]], truncated: false },
      }),
    );
  }
  clock.advance(500);
  hooks.onEnd({
    reason: "client_closed",
    detail: null,
    bytesIn: 100,
    bytesOut: 200,
    statements: n,
  });
  await settle(store, sessionId);
}

/** Waits until the session's end (written after its events) is in the store. */
export async function settle(store: SessionStore, sessionId: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const s = await store.getSession(sessionId);
    if (s?.endedAt !== null && s?.endedAt !== undefined) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`session ${sessionId} did not end`);
}
