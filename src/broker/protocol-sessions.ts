import { brokerKeyFile } from "../config/key-files.js";
import type { BrokerConfig } from "../config/schema.js";
import { readSecret } from "../config/secrets.js";
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
import { httpRecording, sshRecording, tcpRecording } from "./protocol-recording.js";
import { openRecorder } from "./recorder.js";
import {
  RecentList,
  runningSession,
  type RunningSession,
  type SessionContext,
  type SessionDeps,
} from "./session-start.js";

/**
 * Starts the ssh, http and tcp sessions: their targets, compiled policies (once per
 * connection), the broker's ssh host key, and their recording (postgres: postgres-sessions.ts).
 */
export class ProtocolSessions {
  private readonly ssh = new Map<string, CompiledSshPolicy>();
  private readonly http = new Map<string, CompiledHttpPolicy>();
  private hostKeyCache: BrokerHostKey | null = null;

  constructor(private readonly deps: SessionDeps) {}

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

  private holdDeps(ctx: SessionContext, recent: RecentList): HoldDeps {
    return {
      approvals: this.deps.approvals,
      identity: ctx.identity,
      sessionId: ctx.id,
      connection: ctx.name,
      agentLabel: ctx.agentLabel,
      log: ctx.log,
      recent: () => recent.list(),
      announce: ctx.control,
    };
  }

  private startSsh(ctx: SessionContext, conn: SshConnectionConfig): RunningSession {
    const policy = once(this.ssh, ctx.name, () => new CompiledSshPolicy(conn.policy, ctx.name));
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
    const recent = new RecentList();
    const hooks = sshRecording(this.recorder(ctx, "ssh"), {
      strict: this.deps.audit.mode(ctx.name) === "strict",
      onStarted: () => ctx.control({ type: "session", id: ctx.id }),
      onCommand: (command) => recent.add(command),
    });
    const session = new SshSession(ctx.channel, {
      target,
      hostKey: this.hostKey().privateKey,
      hooks,
      policy: policy.forSession(this.holdDeps(ctx, recent)),
      access: policy.access,
      maskOutput: policy.maskOutput,
      log: ctx.log,
      signInExpired: ctx.signInExpired,
    });
    return runningSession(session);
  }

  private startHttp(ctx: SessionContext, conn: HttpConnectionConfig): RunningSession {
    const policy = once(this.http, ctx.name, () => new CompiledHttpPolicy(conn.policy, ctx.name));
    const recent = new RecentList();
    const hooks = httpRecording(this.recorder(ctx, "http"), {
      strict: this.deps.audit.mode(ctx.name) === "strict",
      onStarted: () => ctx.control({ type: "session", id: ctx.id }),
      onRequest: (line) => recent.add(line),
    });
    const session = new HttpSession(ctx.channel, {
      target: httpTargetFromConfig(ctx.name, conn.target),
      hooks,
      policy: policy.forSession(this.holdDeps(ctx, recent)),
      masking: policy.masking,
      websocket: policy.websocket,
      recordBodyBytes: policy.recordBodyBytes,
      log: ctx.log,
      signInExpired: ctx.signInExpired,
    });
    return runningSession(session);
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
    return runningSession(session);
  }
}

/** The value under `key`, made by `make` the first time (per-connection compiled policies). */
function once<T>(map: Map<string, T>, key: string, make: () => T): T {
  let v = map.get(key);
  if (v === undefined) {
    v = make();
    map.set(key, v);
  }
  return v;
}

/** Where the broker keeps its ssh host key: configured, else beside the SQLite store. */
export function sshHostKeyPath(config: BrokerConfig): string | null {
  return brokerKeyFile(config, config.sshHostKey, "ssh-host-key");
}
