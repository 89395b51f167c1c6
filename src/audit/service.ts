import { createPublicKey } from "node:crypto";
import { brokerKeyFile } from "../config/key-files.js";
import type { BrokerConfig } from "../config/schema.js";
import { parseDuration } from "../policy/duration.js";
import {
  MAX_SESSION_LIMIT,
  zeroCounts,
  type SessionRecord,
  type SessionSeal,
  type SessionStore,
} from "../store/types.js";
import { eventHash, headerHash, sealBody, sealDigest, type EventBody } from "./chain.js";
import { ExitCode, GwError } from "../errors.js";
import { auditUnavailable } from "./errors.js";
import { DEFAULT_PREVIEW, type PreviewLimits } from "./preview.js";
import { AuditSigner } from "./signer.js";
import { verifySession, type VerifyResult } from "./verify.js";

export type AuditMode = "strict" | "async";

/**
 * Without `audit:` on a connection. async keeps statement latency as it was; strict adds a
 * disk sync per statement (shared by concurrent sessions): see docs/recording.md.
 */
export const DEFAULT_AUDIT_MODE: AuditMode = "async";
/** Events an async connection may have in flight to the store, broker-wide. */
export const DEFAULT_ASYNC_BUFFER = 10_000;
/** After a failed write, statements are refused this long before the store is tried again. */
export const FAILURE_BACKOFF_MS = 1000;
const DAY_MS = 86_400_000;
const PRUNE_BATCH = 100;

export type AuditLog = (
  level: "info" | "warn" | "error",
  msg: string,
  fields?: Record<string, unknown>,
) => void;

/**
 * The broker's count of recording writes in flight, and whether the store is failing: what
 * lets a statement in. Shared by every session of the broker.
 */
export class WriteGate {
  private inFlight = 0;
  private failingUntil = 0;
  private lastError: unknown = null;

  constructor(
    readonly maxPending: number,
    private readonly now: () => number = Date.now,
  ) {}

  get pending(): number {
    return this.inFlight;
  }

  /** Throws audit_unavailable when a statement must not start: store failing, buffer full. */
  check(mode: AuditMode): void {
    if (this.now() < this.failingUntil) {
      const why = this.lastError instanceof Error ? `: ${this.lastError.message}` : "";
      throw auditUnavailable(`the session store is failing${why}`, this.lastError);
    }
    if (mode === "async" && this.inFlight >= this.maxPending) {
      throw auditUnavailable(
        `the recording buffer is full (${this.maxPending} events waiting for the store)`,
      );
    }
  }

  track(p: Promise<unknown>): void {
    this.inFlight++;
    p.then(
      () => {
        this.inFlight--;
      },
      (err: unknown) => {
        this.inFlight--;
        this.lastError = err;
        this.failingUntil = this.now() + FAILURE_BACKOFF_MS;
      },
    );
  }
}

/** What the recorder of one session needs from the broker's audit settings. */
export interface RecorderAudit {
  mode: AuditMode;
  preview: PreviewLimits | false;
  signer: AuditSigner | null;
  gate: WriteGate;
  now: () => number;
  /** The broker replica the session runs in, recorded on its session record. */
  brokerId?: string;
}

export interface AuditServiceOptions {
  config: BrokerConfig;
  store: SessionStore;
  log?: AuditLog;
  now?: () => number;
  /** Instead of the key file (tests). */
  signer?: AuditSigner;
  asyncBuffer?: number;
  /** The broker replica this service runs in: recorded on every session it records. */
  brokerId?: string;
}

/**
 * The broker's audit: its signing key, each connection's recording settings, the write gate,
 * retention, and the sealing of sessions a crashed broker left open.
 */
export class AuditService {
  readonly signer: AuditSigner;
  readonly gate: WriteGate;
  private readonly now: () => number;
  private readonly log: AuditLog;
  private timer: NodeJS.Timeout | undefined;

  private constructor(private readonly opts: AuditServiceOptions) {
    this.now = opts.now ?? Date.now;
    this.log = opts.log ?? (() => undefined);
    this.signer = opts.signer ?? openSigner(opts.config);
    this.gate = new WriteGate(opts.asyncBuffer ?? DEFAULT_ASYNC_BUFFER, this.now);
  }

  /** Loads (or makes, on first start) the signing key; throws GwError audit_key_unavailable. */
  static open(opts: AuditServiceOptions): AuditService {
    return new AuditService(opts);
  }

  get store(): SessionStore {
    return this.opts.store;
  }

  mode(connection: string): AuditMode {
    const conn = this.opts.config.connections[connection];
    return (conn && "audit" in conn ? conn.audit : undefined) ?? DEFAULT_AUDIT_MODE;
  }

  /** The preview limits of a connection: its own, else its policy's, else the default. */
  previewLimits(connection: string): PreviewLimits | false {
    const conn = this.opts.config.connections[connection];
    // Previews are of query results: postgres only.
    if (conn?.type !== "postgres") return { ...DEFAULT_PREVIEW };
    const policy = conn.policy ? this.opts.config.policies[conn.policy] : undefined;
    const p = conn.recording?.preview ?? policy?.recording?.preview;
    if (p === false) return false;
    return p ? { rows: p.rows, kib: p.kib } : { ...DEFAULT_PREVIEW };
  }

  forConnection(connection: string): RecorderAudit {
    return {
      mode: this.mode(connection),
      preview: this.previewLimits(connection),
      signer: this.signer,
      gate: this.gate,
      now: this.now,
      ...(this.opts.brokerId !== undefined ? { brokerId: this.opts.brokerId } : {}),
    };
  }

  /**
   * Call once the broker is up. Seals sessions a previous broker left open (only when this
   * broker owns the store: an embedded SQLite file), then applies retention now and daily.
   */
  async start(opts: { recoverOpenSessions: boolean }): Promise<void> {
    if (opts.recoverOpenSessions) {
      const n = await this.recoverOpenSessions();
      if (n > 0) this.log("warn", "sealed sessions a previous broker left open", { count: n });
    }
    if (this.retentionMs() !== undefined) {
      await this.applyRetention();
      this.timer = setInterval(() => void this.applyRetention(), DAY_MS);
      this.timer.unref();
    }
  }

  close(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  retentionMs(): number | undefined {
    const r = this.opts.config.retention;
    return r === undefined ? undefined : parseDuration(r);
  }

  /** Prunes every session that ended longer ago than the retention; resolves to how many. */
  async applyRetention(): Promise<number> {
    const ms = this.retentionMs();
    if (ms === undefined) return 0;
    const now = this.now();
    let total = 0;
    try {
      for (;;) {
        const n = await this.opts.store.pruneSessions(now - ms, { now, limit: PRUNE_BATCH });
        total += n;
        if (n < PRUNE_BATCH) break;
      }
    } catch (err) {
      this.log("error", "retention: pruning old sessions failed", { error: String(err) });
      return total;
    }
    if (total > 0)
      this.log("info", "retention: pruned the events of old sessions", {
        sessions: total,
        retention: this.opts.config.retention,
      });
    return total;
  }

  /** The session's verification against this broker's key; null when there is no such session. */
  async verify(sessionId: string): Promise<VerifyResult | null> {
    const session = await this.opts.store.getSession(sessionId);
    if (!session) return null;
    return verifySessionIn(this.opts.store, session, createPublicKey(this.signer.publicKeyPem));
  }

  /**
   * Ends and seals every open session (its chain, if intact, as it stands); how many. With
   * `brokerId`, only the sessions of that broker replica: one that was lost (endReason
   * broker_lost). A session that ends otherwise meanwhile (its broker was not dead after all,
   * or another replica sealed it first) is left as that made it.
   */
  async recoverOpenSessions(opts: { brokerId?: string } = {}): Promise<number> {
    const lost = opts.brokerId !== undefined;
    let count = 0;
    const done = new Set<string>();
    for (;;) {
      const open = (
        await this.opts.store.listSessions({
          open: true,
          limit: MAX_SESSION_LIMIT,
          ...(lost ? { brokerId: opts.brokerId } : {}),
        })
      ).filter((s) => !done.has(s.id));
      if (open.length === 0) return count;
      for (const s of open) {
        done.add(s.id);
        try {
          await this.recover(s, lost ? "broker_lost" : "broker_shutdown");
          count++;
        } catch (err) {
          this.log("error", "could not seal a session left open", {
            session: s.id,
            error: String(err),
          });
        }
      }
    }
  }

  private async recover(
    s: SessionRecord,
    endReason: "broker_shutdown" | "broker_lost",
  ): Promise<void> {
    const events = await this.opts.store.listEvents(s.id);
    let head = headerHash(s);
    let intact = true;
    const counts = zeroCounts();
    let statements = 0;
    let last = s.startedAt;
    for (const [i, e] of events.entries()) {
      if (e.seq !== i + 1 || e.prevHash !== head || eventHash(e.prevHash, e.body) !== e.hash) {
        intact = false;
        break;
      }
      head = e.hash;
      const body = JSON.parse(e.body) as EventBody;
      last = Math.max(last, body.at + (body.type === "statement" ? body.durationMs : 0));
      if (body.type === "statement") {
        statements++;
        counts[body.decision]++;
      }
    }
    const why =
      endReason === "broker_lost"
        ? `its broker replica${s.brokerId ? ` ${s.brokerId}` : ""} stopped sending heartbeats`
        : "the broker stopped before the session ended";
    const ended: SessionRecord = {
      ...s,
      endedAt: Math.round(last),
      endReason,
      endDetail: intact
        ? endReason === "broker_lost"
          ? `${why}; sealed by another replica`
          : `${why}; sealed at its next start`
        : `${why}; its chain was broken, so it was not sealed`,
      statementCount: statements,
      decisions: counts,
    };
    const end = {
      endedAt: ended.endedAt,
      endReason: ended.endReason,
      endDetail: ended.endDetail,
      bytesIn: s.bytesIn,
      bytesOut: s.bytesOut,
      statementCount: statements,
      decisions: counts,
    };
    if (!intact) return this.opts.store.endSession(s.id, end);
    const seal = createSeal(this.signer, ended, {
      headHash: head,
      eventCount: events.length,
      sealedAt: this.now(),
      recovered: true,
    });
    await this.opts.store.endSession(s.id, { ...end, seal });
  }
}

/** Signs a closed session (`s` as it will be stored, with its end and decision counts). */
export function createSeal(
  signer: AuditSigner,
  s: SessionRecord,
  chain: { headHash: string; eventCount: number; sealedAt: number; recovered?: boolean },
): SessionSeal {
  const digest = sealDigest(sealBody(s, chain));
  const seal: SessionSeal = {
    v: 1,
    algorithm: "ed25519",
    keyId: signer.keyId,
    eventCount: chain.eventCount,
    headHash: chain.headHash,
    digest,
    signature: signer.sign(digest),
    sealedAt: chain.sealedAt,
  };
  if (chain.recovered) seal.recovered = true;
  return seal;
}

/** Reads what verification needs from a store and verifies it. */
export async function verifySessionIn(
  store: Pick<SessionStore, "listEvents" | "listStatements">,
  session: SessionRecord,
  publicKey: ReturnType<typeof createPublicKey>,
): Promise<VerifyResult> {
  const [events, statements] = await Promise.all([
    store.listEvents(session.id),
    store.listStatements(session.id),
  ]);
  return verifySession({ session, events, statements, publicKey });
}

/** signingKey.file, else beside the SQLite store; a throwaway key for the memory store. */
export function signingKeyPath(config: BrokerConfig): string | null {
  return brokerKeyFile(config, config.signingKey, "audit-signing-key.pem");
}

function openSigner(config: BrokerConfig): AuditSigner {
  if ("postgres" in config.store && !config.signingKey) {
    // Replicas seal each other's sessions, and verification uses one public key: a key of
    // their own per process (or per restart) would leave seals nobody can check.
    throw new GwError(
      "signing_key_required",
      "store.postgres needs signingKey.file: every broker replica must sign with the same audit key",
      {
        exitCode: ExitCode.config,
        hint: "Make one key (start one broker with signingKey.file set, or `openssl genpkey -algorithm ed25519`), and give every replica that file.",
      },
    );
  }
  const path = signingKeyPath(config);
  return path === null ? AuditSigner.ephemeral() : AuditSigner.loadOrCreate(path);
}
