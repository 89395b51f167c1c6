import { dirname, join } from "node:path";
import type { ApprovalService } from "../approvals/service.js";
import type { AuditService } from "../audit/service.js";
import type { BrokerConfig, ConnectionConfig } from "../config/schema.js";
import type { Dial } from "../net/dial.js";
import { readSecret } from "../config/secrets.js";
import type { Identity } from "../identity/principal.js";
import type { HttpConnectionConfig } from "../protocols/http/config.js";
import { CompiledHttpPolicy } from "../protocols/http/policy.js";
import { HttpSession, httpTargetFromConfig } from "../protocols/http/session.js";
import type { SshConnectionConfig } from "../protocols/ssh/config.js";
import {
  ephemeralHostKey,
  loadOrCreateHostKey,
  type BrokerHostKey,
} from "../protocols/ssh/host-key.js";
import { CompiledSshPolicy } from "../protocols/ssh/policy.js";
import { SshSession, type SshTarget } from "../protocols/ssh/session.js";
import type { TcpConnectionConfig } from "../protocols/tcp/config.js";
import type { HoldDeps } from "../protocols/tcp/rules.js";
import { TcpSession } from "../protocols/tcp/session.js";
import type { ClientChannel } from "../protocols/tcp/stream.js";
import type { SessionStore } from "../store/types.js";
import type { Logger } from "./logger.js";
import { httpRecording, sshRecording, tcpRecording } from "./protocol-recording.js";
import { openRecorder } from "./recorder.js";

/** A running session of any connection type, as the broker drives it. */
export interface RunningSession {
  onClientData(buf: Buffer): void;
  onClientClosed(): void;
  /** The broker is going away: tell the client and end. */
  shutdown(): void;
  /** The identity's sign-in lapsed. */
  expire(): void;
}

/** What starting one session needs from the broker. */
export interface SessionContext {
  id: string;
  name: string;
  identity: Identity;
  channel: ClientChannel & { remoteAddress: string | null };
  log: Logger;
  agentLabel: string | null;
  /** True once the sign-in lapsed (the session ends at the next client data). */
  signInExpired: () => boolean;
  /** Tells the tunnel beside the data (session id, held and decided requests). */
  control: (event: Record<string, unknown>) => void;
}

const SHUTDOWN = "gw: the broker is shutting down; reconnect in a moment";
const EXPIRED = "gw: your sign-in expired; run `gw login`";

/**
 * Starts the ssh, http and tcp sessions: their targets, compiled policies (once per
 * connection), the broker's ssh host key, and their recording (postgres: postgres-sessions.ts).
 */
export class ProtocolSessions {
  private readonly ssh = new Map<string, CompiledSshPolicy>();
  private readonly http = new Map<string, CompiledHttpPolicy>();
  private hostKeyCache: BrokerHostKey | null = null;

  constructor(
    private readonly deps: {
      config: BrokerConfig;
      store: SessionStore;
      audit: AuditService;
      approvals: ApprovalService;
      log: Logger;
      /** For a connection with `via`: how its target is reached (through the agent). */
      dial?: (name: string, conn: ConnectionConfig, timeoutMs: number) => Dial | undefined;
    },
  ) {}

  /** The broker's ssh host key (made on first use where the config says), for clients to pin. */
  hostKey(): BrokerHostKey {
    if (this.hostKeyCache) return this.hostKeyCache;
    const path = sshHostKeyPath(this.deps.config);
    if (path !== null) {
      this.hostKeyCache = loadOrCreateHostKey(path);
    } else {
      // No place to keep one (memory store): a key for this process only; clients re-pin.
      this.hostKeyCache = ephemeralHostKey();
      this.deps.log.log("warn", "no file for the broker's ssh host key: using one for this run", {
        hint: "set sshHostKey.file so clients can pin it across restarts and replicas",
      });
    }
    return this.hostKeyCache;
  }

  /** The session, or null when the connection is misconfigured (the client has been told). */
  start(
    ctx: SessionContext,
    conn: SshConnectionConfig | HttpConnectionConfig | TcpConnectionConfig,
  ): RunningSession | null {
    try {
      switch (conn.type) {
        case "ssh":
          return this.startSsh(ctx, conn);
        case "http":
          return this.startHttp(ctx, conn);
        case "tcp":
          return this.startTcp(ctx, conn);
      }
    } catch (err) {
      // A secret or key that cannot be read: the client hears it is misconfigured, no more.
      ctx.log.log("error", "connection misconfigured", {
        error: err instanceof Error ? err.message : String(err),
      });
      ctx.control({
        type: "error",
        message: `gw: the broker cannot open ${ctx.name}: it is misconfigured; tell the broker's operators`,
      });
      ctx.channel.close();
      return null;
    }
  }

  private recorder(ctx: SessionContext, protocol: "ssh" | "http" | "tcp") {
    return openRecorder({
      store: this.deps.store,
      sessionId: ctx.id,
      identity: ctx.identity,
      connection: ctx.name,
      clientAddress: ctx.channel.remoteAddress,
      log: ctx.log,
      agentLabel: ctx.agentLabel,
      audit: this.deps.audit,
      protocol,
    });
  }

  private holdDeps(ctx: SessionContext, recent: () => string[]): HoldDeps {
    return {
      approvals: this.deps.approvals,
      identity: ctx.identity,
      sessionId: ctx.id,
      connection: ctx.name,
      agentLabel: ctx.agentLabel,
      log: ctx.log,
      recent,
      announce: ctx.control,
    };
  }

  private startSsh(ctx: SessionContext, conn: SshConnectionConfig): RunningSession {
    let policy = this.ssh.get(ctx.name);
    if (!policy) {
      policy = new CompiledSshPolicy(conn.policy, ctx.name);
      this.ssh.set(ctx.name, policy);
    }
    const t = conn.target;
    const at = `connections.${ctx.name}.target`;
    const target: SshTarget = {
      name: ctx.name,
      host: t.host,
      port: t.port,
      user: t.user,
      privateKey: t.privateKey ? readSecret(t.privateKey, `${at}.privateKey`) : undefined,
      passphrase: t.passphrase ? readSecret(t.passphrase, `${at}.passphrase`) : undefined,
      password: t.password ? readSecret(t.password, `${at}.password`) : undefined,
      knownHosts: t.knownHosts,
      connectTimeoutMs: t.connectTimeout * 1000,
      dial: this.deps.dial?.(ctx.name, conn, t.connectTimeout * 1000),
    };
    const strict = this.deps.audit.mode(ctx.name) === "strict";
    const recent: string[] = [];
    const hooks = sshRecording(this.recorder(ctx, "ssh"), {
      strict,
      onStarted: () => ctx.control({ type: "session", id: ctx.id }),
    });
    const onEvent = hooks.onEvent.bind(hooks);
    hooks.onEvent = (e) => {
      if (e.kind === "exec") {
        recent.push(e.command);
        if (recent.length > 5) recent.shift();
      }
      return onEvent(e);
    };
    const session = new SshSession(ctx.channel, {
      target,
      hostKey: this.hostKey().privateKey,
      hooks,
      policy: policy.forSession(this.holdDeps(ctx, () => recent.slice())),
      access: policy.access,
      maskOutput: policy.maskOutput,
      log: ctx.log,
      signInExpired: ctx.signInExpired,
    });
    return {
      onClientData: (b) => session.onClientData(b),
      onClientClosed: () => session.onClientClosed(),
      shutdown: () => session.terminate("broker_shutdown", SHUTDOWN),
      expire: () => session.terminate("auth_expired", EXPIRED),
    };
  }

  private startHttp(ctx: SessionContext, conn: HttpConnectionConfig): RunningSession {
    let policy = this.http.get(ctx.name);
    if (!policy) {
      policy = new CompiledHttpPolicy(conn.policy, ctx.name);
      this.http.set(ctx.name, policy);
    }
    const strict = this.deps.audit.mode(ctx.name) === "strict";
    const recent: string[] = [];
    const hooks = httpRecording(this.recorder(ctx, "http"), {
      strict,
      onStarted: () => ctx.control({ type: "session", id: ctx.id }),
    });
    const onEvent = hooks.onEvent.bind(hooks);
    hooks.onEvent = (e) => {
      // Completed requests only: a request's start and its end are one request.
      if (e.kind === "request") {
        recent.push(`${e.method} ${e.path}`);
        if (recent.length > 5) recent.shift();
      }
      return onEvent(e);
    };
    const session = new HttpSession(ctx.channel, {
      target: httpTargetFromConfig(ctx.name, conn.target),
      hooks,
      policy: policy.forSession(this.holdDeps(ctx, () => recent.slice())),
      masking: policy.masking,
      websocket: policy.websocket,
      recordBodyBytes: policy.recordBodyBytes,
      log: ctx.log,
      signInExpired: ctx.signInExpired,
    });
    return {
      onClientData: (b) => session.onClientData(b),
      onClientClosed: () => session.onClientClosed(),
      shutdown: () => session.terminate("broker_shutdown", SHUTDOWN),
      expire: () => session.terminate("auth_expired", EXPIRED),
    };
  }

  private startTcp(ctx: SessionContext, conn: TcpConnectionConfig): RunningSession {
    const t = conn.target;
    const session = new TcpSession(ctx.channel, {
      target: {
        name: ctx.name,
        host: t.host,
        port: t.port,
        connectTimeoutMs: t.connectTimeout * 1000,
        dial: this.deps.dial?.(ctx.name, conn, t.connectTimeout * 1000),
      },
      hooks: tcpRecording(this.recorder(ctx, "tcp"), {
        onStarted: () => ctx.control({ type: "session", id: ctx.id }),
      }),
      log: ctx.log,
      signInExpired: ctx.signInExpired,
    });
    return {
      onClientData: (b) => session.onClientData(b),
      onClientClosed: () => session.onClientClosed(),
      shutdown: () => session.terminate("broker_shutdown", SHUTDOWN),
      expire: () => session.terminate("auth_expired", EXPIRED),
    };
  }
}

/** Where the broker keeps its ssh host key: configured, else beside the SQLite store. */
export function sshHostKeyPath(config: BrokerConfig): string | null {
  if (config.sshHostKey) return config.sshHostKey.file;
  if ("sqlite" in config.store && config.store.sqlite !== ":memory:")
    return join(dirname(config.store.sqlite), "ssh-host-key");
  return null;
}
