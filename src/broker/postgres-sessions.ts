import type { PostgresConnectionConfig } from "../config/schema.js";
import { readSecret } from "../config/secrets.js";
import { isGwError } from "../errors.js";
import { compileConnectionPolicy, sharedClassifier, type CompiledPolicy } from "../policy/index.js";
import { compileMaskingProfile, type MaskingProfile } from "../policy/masking/index.js";
import { CancelRegistry } from "../protocols/postgres/cancel-registry.js";
import { CatalogCache } from "../protocols/postgres/catalog.js";
import { SqlState } from "../protocols/postgres/codes.js";
import { PgWireError } from "../protocols/postgres/pg-wire-error.js";
import { ResultMasking } from "../protocols/postgres/result-masking.js";
import { PostgresSession, signInExpiredError } from "../protocols/postgres/session.js";
import type { UpstreamTarget } from "../protocols/postgres/upstream.js";
import {
  RecentList,
  SHUTDOWN_MESSAGE,
  type RunningSession,
  type SessionContext,
  type SessionDeps,
} from "./session-start.js";
import { recordingHooks } from "./recorder.js";
import { BrokerSessionPolicy } from "./session-policy.js";

interface Policing {
  policy: CompiledPolicy | null;
  mask: MaskingProfile | null;
  catalog: CatalogCache | null;
}

/**
 * Starts the PostgreSQL sessions: their targets (secrets read per session, so a rotated file
 * takes effect), each connection's policy and masking compiled once, the broker-wide cancel
 * registry, and their recording as statements.
 */
export class PostgresSessions {
  private readonly cancels = new CancelRegistry();
  private readonly policies = new Map<string, Policing>();

  constructor(private readonly deps: SessionDeps) {}

  /** The session, or null when the connection is misconfigured (the client has been told). */
  start(ctx: SessionContext, conn: PostgresConnectionConfig): RunningSession | null {
    const { id, name, channel, log } = ctx;
    let target: UpstreamTarget;
    let policing: Policing;
    try {
      target = this.targetOf(name, conn);
      policing = this.policyOf(name, conn);
    } catch (err) {
      log.log("error", "connection misconfigured", {
        error: isGwError(err) ? err.message : String(err),
      });
      channel.send(
        new PgWireError(
          SqlState.connectionFailure,
          `gw: the broker cannot open ${name}: it is misconfigured`,
          { hint: "Tell the broker's operators; the broker log says what is wrong." },
        ).toBuffer(),
      );
      channel.close();
      return null;
    }
    const { policy: compiled, mask, catalog } = policing;
    const recent = new RecentList();
    const sessionPolicy = compiled
      ? new BrokerSessionPolicy({
          policy: compiled,
          classifier: sharedClassifier(),
          approvals: this.deps.approvals,
          identity: ctx.identity,
          sessionId: id,
          connection: name,
          agentLabel: ctx.agentLabel,
          log,
          recentStatements: () => recent.list(),
          announce: ctx.control,
        })
      : undefined;
    const hooks = recordingHooks({
      store: this.deps.store,
      sessionId: id,
      identity: ctx.identity,
      connection: name,
      clientAddress: channel.remoteAddress,
      log,
      onStarted: () => ctx.control({ type: "session", id }),
      agentLabel: ctx.agentLabel,
      audit: this.deps.audit,
    });
    const onStatement = hooks.onStatement.bind(hooks);
    hooks.onStatement = (st) => {
      recent.add(st.sql);
      return onStatement(st);
    };
    const limits = this.deps.config.limits;
    const session = new PostgresSession(channel, {
      target,
      ...(sessionPolicy ? { policy: sessionPolicy } : {}),
      ...(mask ? { masking: new ResultMasking(mask, catalog) } : {}),
      // The session terminates right after, with the error.
      signInExpired: ctx.signInExpired,
      ownerOid: ctx.identity.oid,
      maxMessageBytes: limits.maxMessageBytes,
      maxStartupBytes: limits.maxStartupBytes,
      cancels: this.cancels,
      hooks,
    });
    return {
      onClientData: (b) => session.onClientData(b),
      onClientClosed: () => session.onClientClosed(),
      shutdown: () =>
        session.terminate(
          "broker_shutdown",
          new PgWireError(SqlState.adminShutdown, SHUTDOWN_MESSAGE),
        ),
      expire: () => session.terminate("auth_expired", signInExpiredError()),
    };
  }

  private policyOf(name: string, conn: PostgresConnectionConfig): Policing {
    let entry = this.policies.get(name);
    if (!entry) {
      const cfg = this.deps.config;
      const hasPolicy = conn.policy !== undefined || conn.readOnly;
      const policy = hasPolicy ? compileConnectionPolicy(cfg, name) : null;
      let mask: MaskingProfile | null = null;
      if (policy?.mask) {
        const m = policy.mask;
        mask = compileMaskingProfile({
          columns: m.columns,
          detectors: m.detectors,
          strategy: m.strategy,
          ...(m.hashKey
            ? { hashKey: readSecret(m.hashKey, `policies.${conn.policy}.mask.hashKey`) }
            : {}),
        });
        if (!mask.enabled) mask = null;
      }
      const catalog = mask?.hasColumnRules
        ? new CatalogCache(() => this.targetOf(name, conn))
        : null;
      entry = { policy, mask, catalog };
      this.policies.set(name, entry);
    }
    return entry;
  }

  private targetOf(name: string, conn: PostgresConnectionConfig): UpstreamTarget {
    const t = conn.target;
    return {
      name,
      host: t.host,
      port: t.port,
      database: t.database,
      user: t.user,
      password: t.password
        ? readSecret(t.password, `connections.${name}.target.password`)
        : undefined,
      tls: t.tls,
      ca: t.ca,
      connectTimeoutMs: t.connectTimeout * 1000,
      dial: this.deps.dial?.(name, conn, t.connectTimeout * 1000),
    };
  }
}
