import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import { randomUUID } from "node:crypto";
import { WebSocketServer, type WebSocket } from "ws";
import type { BrokerConfig, ConnectionConfig } from "../config/schema.js";
import type { SecretRef } from "../config/refs.js";
import { readSecret } from "../config/secrets.js";
import { isAllowed, type Identity } from "../identity/principal.js";
import { AuthError, TokenVerifier } from "../identity/verify-token.js";
import type { Dial } from "../net/dial.js";
import type { SessionStore } from "../store/types.js";
import { ApiError, clientAddress, refuseUpgrade, sendError, sendJson } from "./http-util.js";
import { createLogger, redact, type Logger } from "./logger.js";
import { WsChannel } from "./ws-channel.js";
import { SessionValidity } from "./session-validity.js";
import { VERSION } from "../version.js";
import { ApprovalService } from "../approvals/service.js";
import { handleApprovalsRequest } from "./approvals-api.js";
import { createNotifier, type Notifier } from "../notify/index.js";
import { AuditService } from "../audit/service.js";
import { handleAuditRequest } from "./audit-api.js";
import { initPolicyParser } from "../policy/index.js";
import { Replicas, type ReplicaTimings } from "./replicas.js";
import { replicaRegistryOf } from "../store/replica-registry.js";
import { AgentHub, viaOf } from "./agent-hub.js";
import { PostgresSessions } from "./postgres-sessions.js";
import { ProtocolSessions } from "./protocol-sessions.js";
import type { RunningSession, SessionContext, SessionDeps } from "./session-start.js";

export interface BrokerOptions {
  config: BrokerConfig;
  store: SessionStore;
  logger?: Logger;
  /** Overrides listen (tests use port 0). */
  listen?: { host: string; port: number };
  verifier?: TokenVerifier;
  /**
   * Close what a previous broker on this store left open (pending approvals, open sessions).
   * Default: on for the embedded SQLite store, which one broker owns; a second broker sharing
   * the file (tests) must not close the first one's live sessions.
   */
  recoverOrphans?: boolean;
  /**
   * This broker's replica id, recorded on its sessions and approval requests; default a random
   * UUID per start. With a store replicas share (PostgreSQL), the replica registers under it.
   */
  brokerId?: string;
  /** Heartbeat and lost-replica timings, for a store replicas share (tests shorten them). */
  replicas?: ReplicaTimings;
}

interface LiveSession {
  id: string;
  identity: Identity;
  connection: string;
  /** Tells the client the broker is going away, and ends the session. */
  shutdown: () => void;
  channel: WsChannel;
}

/**
 * The broker: HTTP(S) API, discovery document, and the tunnel endpoint where each WebSocket
 * becomes one protocol session to a target.
 */
export class Broker {
  private readonly server: Server;
  private readonly wss: WebSocketServer;
  private readonly verifier: TokenVerifier;
  private readonly live = new Map<string, LiveSession>();
  private readonly log: Logger;
  private closing = false;
  readonly approvals: ApprovalService;
  private readonly notifier: Notifier;
  /** Hash chains, the broker's signing key, durability modes, retention. */
  readonly audit: AuditService;
  /** This replica's id: on its sessions and approval requests, and in a shared store's registry. */
  readonly brokerId: string;
  /** Membership in a store replicas share; null for a store this broker has to itself. */
  private replicas: Replicas | null = null;
  /** Outbound agents' control channels, and the streams to targets behind them (docs/agent.md). */
  readonly agents: AgentHub;
  /** PostgreSQL sessions: their policies, masking, cancel keys and recording. */
  private readonly postgres: PostgresSessions;
  /** ssh, http and tcp sessions: their policies, host key and recording. */
  readonly protocols: ProtocolSessions;

  private constructor(private readonly opts: BrokerOptions) {
    const cfg = opts.config;
    this.log = opts.logger ?? createLogger();
    this.verifier = opts.verifier ?? new TokenVerifier(cfg.identity);
    this.brokerId = opts.brokerId ?? randomUUID();
    this.approvals = new ApprovalService(opts.store, {
      brokerId: this.brokerId,
      onError: (err, context) =>
        this.log.log("error", "approvals: " + context, {
          error: err instanceof Error ? err.message : String(err),
        }),
    });
    this.audit = AuditService.open({
      config: cfg,
      store: opts.store,
      log: (l, m, f) => this.log.log(l, m, f),
      brokerId: this.brokerId,
    });
    this.notifier = createNotifier(cfg.notifications, this.log.child({ component: "notify" }));
    this.agents = new AgentHub({
      config: cfg,
      verify: (token) => this.verifier.verify(token),
      log: this.log.child({ component: "agents" }),
    });
    const sessionDeps: SessionDeps = {
      config: cfg,
      store: opts.store,
      audit: this.audit,
      approvals: this.approvals,
      log: this.log,
      dial: (name, conn, timeoutMs) => this.agentDial(name, conn, timeoutMs),
    };
    this.postgres = new PostgresSessions(sessionDeps);
    this.protocols = new ProtocolSessions(sessionDeps);
    this.notifier.attach(this.approvals);
    const handler = (req: IncomingMessage, res: ServerResponse) => {
      this.handle(req, res).catch((err: unknown) => {
        this.log.log("error", "request failed", {
          error: err instanceof Error ? err.stack : String(err),
        });
        if (!res.headersSent)
          sendError(
            res,
            new ApiError(500, "internal", "internal broker error; see the broker log"),
          );
        else res.destroy();
      });
    };
    this.server = cfg.tls
      ? createHttpsServer(
          { cert: readFileSync(cfg.tls.cert), key: readFileSync(cfg.tls.key) },
          handler,
        )
      : createHttpServer(handler);
    this.server.keepAliveTimeout = 65_000;
    this.wss = new WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      // A frame carries whatever one read of the client's socket returned (up to 64 KiB, many
      // messages), not one message: the message limit is the session's to enforce, with an
      // ErrorResponse. Tied to a small limit, frames were cut off with a bare close instead.
      maxPayload: Math.max(cfg.limits.maxMessageBytes + 1024, 1 << 20),
    });
    this.server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      socket.on("error", () => socket.destroy());
      this.upgrade(req, socket, head).catch((err: unknown) => {
        this.log.log("error", "tunnel upgrade failed", {
          error: err instanceof Error ? err.stack : String(err),
        });
        refuseUpgrade(
          socket,
          new ApiError(500, "internal", "internal broker error; see the broker log"),
        );
      });
    });
    this.server.on("clientError", (_err, socket) => socket.destroy());
    for (const c of Object.values(cfg.connections)) {
      for (const ref of connectionSecrets(c)) {
        try {
          redact(readSecret(ref, "a connection secret"));
        } catch {
          // Reported when a session needs it; the broker still serves the other connections.
        }
      }
    }
  }

  static async start(opts: BrokerOptions): Promise<Broker> {
    // PostgreSQL's parser (WASM) loads once, before any statement needs it.
    await initPolicyParser();
    const b = new Broker(opts);
    // Requests left pending by a broker that died can never be released: close them. (An
    // embedded store has one broker; replicas sharing a store sweep per replica, below.)
    const recover = opts.recoverOrphans ?? "sqlite" in opts.config.store;
    const orphans = recover ? await b.approvals.cancelOrphans() : 0;
    // Sessions a crashed broker left open are closed and sealed; retention runs now and daily.
    await b.audit.start({ recoverOpenSessions: recover });
    if (orphans > 0)
      b.log.log("warn", "cancelled approval requests left pending by a previous broker", {
        count: orphans,
      });
    // A store replicas share: register, heartbeat, and close what lost replicas left open.
    const registry = replicaRegistryOf(opts.store);
    if (registry !== null) {
      b.replicas = new Replicas({
        ...opts.replicas,
        id: b.brokerId,
        url: () => opts.config.publicUrl ?? (b.server.listening ? b.url : null),
        registry,
        audit: b.audit,
        approvals: b.approvals,
        log: b.log.child({ component: "replicas" }),
      });
      try {
        await b.replicas.start();
      } catch (err) {
        await b.close().catch(() => undefined);
        throw err;
      }
    }
    const [host, portText] = splitHostPort(opts.config.listen);
    const listen = opts.listen ?? { host, port: Number(portText) };
    await new Promise<void>((resolve, reject) => {
      b.server.once("error", reject);
      b.server.listen(listen.port, listen.host, () => {
        b.server.off("error", reject);
        resolve();
      });
    });
    b.log.log("info", "broker listening", { url: b.url });
    return b;
  }

  get url(): string {
    const a = this.server.address() as AddressInfo;
    const host = a.family === "IPv6" ? `[${a.address}]` : a.address;
    return `${this.opts.config.tls ? "https" : "http"}://${host}:${a.port}`;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  get liveSessions(): number {
    return this.live.size;
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    for (const s of this.live.values()) s.shutdown();
    // Sessions were told; give the close frames a moment, then drop whatever lingers, so a
    // client that never answers the close handshake cannot hold shutdown for 30 s.
    if (this.wss.clients.size > 0) await new Promise((r) => setTimeout(r, 250));
    for (const ws of this.wss.clients) ws.terminate();
    this.wss.close();
    await this.agents.close();
    await this.approvals.close();
    await this.replicas?.stop();
    this.audit.close();
    await this.notifier.close(2000);
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  // --- HTTP API --------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://x");
    const path = url.pathname;
    if (path === "/v1/approvals" || path.startsWith("/v1/approvals/")) {
      let identity: Identity;
      try {
        identity = await this.authenticate(req);
      } catch (err) {
        return sendError(res, toApiError(err));
      }
      if (
        await handleApprovalsRequest(
          req,
          res,
          url,
          identity,
          this.approvals,
          this.isAuditor(identity),
        )
      )
        return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      return sendError(
        res,
        new ApiError(405, "method_not_allowed", `${req.method} is not supported on ${path}`),
      );
    }
    if (path === "/.well-known/gw-configuration") return sendJson(res, 200, this.discovery());
    if (path === "/healthz") return sendJson(res, 200, { status: "ok" });
    if (path === "/readyz") {
      const ok = !this.closing;
      return sendJson(res, ok ? 200 : 503, {
        status: ok ? "ready" : "shutting_down",
        sessions: this.live.size,
      });
    }
    if (!path.startsWith("/v1/"))
      return sendError(res, new ApiError(404, "not_found", `no such endpoint: ${path}`));

    let identity: Identity;
    try {
      identity = await this.authenticate(req);
    } catch (err) {
      return sendError(res, toApiError(err));
    }
    if (path === "/v1/whoami")
      return sendJson(res, 200, { identity, auditor: this.isAuditor(identity) });
    if (path === "/v1/agents") {
      if (!this.isAuditor(identity))
        return sendError(res, new ApiError(403, "forbidden", "only auditors may list the agents"));
      return sendJson(res, 200, { agents: this.agents.status() });
    }
    if (path === "/v1/connections") {
      const list = Object.entries(this.opts.config.connections)
        .filter(([, c]) => isAllowed(identity, c.allow))
        .map(([name, c]) => ({
          name,
          type: c.type,
          description: c.description ?? null,
          database: c.type === "postgres" ? c.target.database : null,
          ...(c.type === "ssh" ? { user: c.target.user } : {}),
        }));
      return sendJson(res, 200, { connections: list });
    }
    if (
      await handleAuditRequest(
        req,
        res,
        url,
        identity,
        this.isAuditor(identity),
        this.opts.store,
        this.audit,
      )
    )
      return;
    return sendError(res, new ApiError(404, "not_found", `no such endpoint: ${path}`));
  }

  private discovery(): Record<string, unknown> {
    const id = this.opts.config.identity;
    return {
      product: "gw",
      version: VERSION,
      broker: this.opts.config.publicUrl ?? this.url,
      identity: {
        issuer: id.issuer,
        audience: id.audience,
        ...(id.login ? { login: id.login } : {}),
      },
      tunnel: { transport: "websocket", path: "/v1/tunnel/{connection}" },
      ...(this.hasSsh() ? { ssh: this.sshHostKeyInfo() } : {}),
    };
  }

  private hasSsh(): boolean {
    return Object.values(this.opts.config.connections).some((c) => c.type === "ssh");
  }

  /** The broker's ssh host key, which clients pin (null when it cannot be loaded). */
  private sshHostKeyInfo(): { hostKey: string; fingerprint: string } | null {
    try {
      const k = this.protocols.hostKey();
      return { hostKey: k.publicKey, fingerprint: k.fingerprint };
    } catch (err) {
      this.log.log("error", "the broker's ssh host key is unusable", {
        error: err instanceof Error ? err.message : String(err),
      });
      return null;
    }
  }

  private isAuditor(id: Identity): boolean {
    return isAllowed(id, this.opts.config.auditors);
  }

  private async authenticate(req: IncomingMessage): Promise<Identity> {
    const token = TokenVerifier.fromHeader(req.headers.authorization);
    return this.verifier.verify(token);
  }

  // --- tunnel ----------------------------------------------------------------------------

  private async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const url = new URL(req.url ?? "/", "http://x");
    if (AgentHub.handles(url.pathname)) return this.agents.upgrade(req, socket, head);
    const m = /^\/v1\/tunnel\/([^/]+)$/.exec(url.pathname);
    if (!m)
      return refuseUpgrade(
        socket,
        new ApiError(404, "not_found", `no tunnel endpoint at ${url.pathname}`),
      );
    if (this.closing)
      return refuseUpgrade(
        socket,
        new ApiError(503, "shutting_down", "the broker is shutting down; retry"),
      );
    const name = decodeURIComponent(m[1]!);
    let identity: Identity;
    try {
      identity = await this.authenticate(req);
    } catch (err) {
      this.log.log("warn", "tunnel refused", {
        connection: name,
        reason: err instanceof AuthError ? err.code : "error",
      });
      return refuseUpgrade(socket, toApiError(err));
    }
    const conn = Object.hasOwn(this.opts.config.connections, name)
      ? this.opts.config.connections[name]
      : undefined;
    // Unknown and forbidden look alike to a caller who may not use the connection.
    if (!conn || !isAllowed(identity, conn.allow)) {
      this.log.log("warn", "tunnel forbidden", { connection: name, oid: identity.oid });
      return refuseUpgrade(
        socket,
        new ApiError(
          403,
          "forbidden",
          `${identity.name} may not use connection "${name}" (or it does not exist); ask its owners to add one of your groups to its allow list`,
        ),
      );
    }
    this.wss.handleUpgrade(req, socket, head, (ws) =>
      this.startSession(ws, req, name, conn, identity),
    );
  }

  /**
   * One WebSocket becomes one session of the connection's type. Every type lives as long as
   * its identity's sign-in does (fresh tokens extend it), and ends for that either on the
   * validity timer or, when client data comes in first, in the session itself: the tunnel is
   * told either way.
   */
  private startSession(
    ws: WebSocket,
    req: IncomingMessage,
    name: string,
    conn: ConnectionConfig,
    identity: Identity,
  ): void {
    const id = randomUUID();
    const log = this.log.child({ session: id, connection: name, oid: identity.oid });
    const channel = new WsChannel(ws, clientAddress(req));
    let expiryAnnounced = false;
    const announceExpiry = () => {
      if (expiryAnnounced) return;
      expiryAnnounced = true;
      log.log("info", "sign-in expired; ending the session");
      channel.sendControl({ type: "sign_in_expired" });
    };
    let session: RunningSession | null = null;
    const validity = new SessionValidity(
      identity,
      this.opts.config.identity.expiryGraceSeconds * 1000,
      () => {
        announceExpiry();
        session?.expire();
      },
    );
    const ctx: SessionContext = {
      id,
      name,
      identity,
      channel,
      log,
      agentLabel: new URL(req.url ?? "/", "http://x").searchParams.get("agent"),
      signInExpired: () => {
        if (!validity.expired) return false;
        announceExpiry(); // the session ends right after
        return true;
      },
      control: (event) => channel.sendControl(event),
    };
    session =
      conn.type === "postgres" ? this.postgres.start(ctx, conn) : this.protocols.start(ctx, conn);
    if (session === null) {
      validity.stop();
      return;
    }
    const running = session;
    this.live.set(id, {
      id,
      identity,
      connection: name,
      channel,
      shutdown: () => running.shutdown(),
    });
    ws.on("message", (data: Buffer, isBinary: boolean) => {
      if (isBinary) running.onClientData(data);
      else this.onControl(data, validity, channel, log);
    });
    ws.on("close", () => {
      validity.stop();
      this.live.delete(id);
      running.onClientClosed();
    });
    ws.on("error", (err) => log.log("warn", "tunnel stream error", { error: err.message }));
  }

  /** Text frames beside the data: today, fresh tokens from the CLI. */
  private onControl(
    data: Buffer,
    validity: SessionValidity,
    channel: WsChannel,
    log: Logger,
  ): void {
    let msg: { type?: unknown; token?: unknown };
    try {
      msg = JSON.parse(data.toString("utf8")) as typeof msg;
    } catch {
      log.log("warn", "malformed control message ignored");
      return;
    }
    if (msg.type !== "token" || typeof msg.token !== "string") {
      log.log("warn", "unknown control message ignored", { type: String(msg.type) });
      return;
    }
    this.verifier.verify(msg.token).then(
      (next) => {
        const r = validity.extend(next);
        if (r.ok) {
          log.log("debug", "token refreshed", { expiresAt: r.expiresAt });
          channel.sendControl({ type: "token_accepted", expiresAt: r.expiresAt });
        } else {
          log.log("warn", "refreshed token refused", { code: r.code, newOid: next.oid });
          channel.sendControl({ type: "token_rejected", code: r.code, message: r.message });
        }
      },
      (err: unknown) => {
        const e = toApiError(err);
        log.log("warn", "refreshed token refused", { code: e.code });
        channel.sendControl({ type: "token_rejected", code: e.code, message: e.message });
      },
    );
  }

  /** For a connection with `via: <agent>`: its target's bytes go through that agent. */
  private agentDial(name: string, conn: ConnectionConfig, timeoutMs: number): Dial | undefined {
    const via = viaOf(conn);
    if (via === undefined) return undefined;
    return (host, port) => this.agents.dial(via, host, port, { connection: name, timeoutMs });
  }
}

function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof AuthError) return new ApiError(err.status, err.code, err.message);
  return new ApiError(500, "internal", "internal broker error; see the broker log");
}

/** Every secret a connection's target names, so none of them can reach a log line. */
function connectionSecrets(c: ConnectionConfig): SecretRef[] {
  switch (c.type) {
    case "postgres":
      return c.target.password ? [c.target.password] : [];
    case "ssh":
      return [c.target.password, c.target.passphrase, c.target.privateKey].filter(
        (r): r is SecretRef => r !== undefined,
      );
    case "http":
      return [
        ...Object.values(c.target.headers ?? {}),
        ...(c.target.bearer ? [c.target.bearer] : []),
        ...(c.target.basic ? [c.target.basic.password] : []),
      ];
    case "tcp":
      return [];
  }
}

function splitHostPort(listen: string): [string, string] {
  const i = listen.lastIndexOf(":");
  return [listen.slice(0, i).replace(/^\[|\]$/g, ""), listen.slice(i + 1)];
}
