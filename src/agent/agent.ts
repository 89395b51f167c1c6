import { Agent as HttpsAgent } from "node:https";
import type { Socket } from "node:net";
import type { SecureContext } from "node:tls";
import { WebSocket, type ClientOptions } from "ws";
import { ExitCode, GwError, isGwError } from "../errors.js";
import { refusalBody } from "../net/http-client.js";
import { contextTrusting } from "../net/tls-context.js";
import { wsDuplex } from "../net/ws-duplex.js";
import { httpError, normalizeBrokerUrl, unreachable } from "../tunnel/broker-client.js";
import { TokenRefresher } from "../tunnel/token-refresher.js";
import type { BrokerEndpoint } from "../tunnel/broker-endpoints.js";
import { VERSION } from "../version.js";
import type { AllowList } from "./allow-list.js";
import { backoffDelay, type BackoffOptions } from "./backoff.js";
import { dialTarget, TargetDialError } from "./dial-target.js";
import {
  AGENT_CONTROL_PATH,
  AGENT_STREAM_PREFIX,
  AgentClose,
  brokerMessage,
  parseMessage,
  type AgentMessage,
  type BrokerMessage,
  type OpenFailureCode,
} from "./protocol.js";

export interface AgentOptions {
  /** The broker's URL (https://, or http:// on loopback). */
  broker: string;
  /** The agent's name: a key of the broker's `agents`. */
  name: string;
  /** A private CA that signed the broker's certificate. */
  caFile?: string | undefined;
  /** The agent's bearer token (a service principal's); asked again before each expiry. */
  token: () => string | Promise<string>;
  allow: AllowList;
  onEvent?: (e: AgentEvent) => void;
  /** Reconnect delays; default { initialMs: 1000, maxMs: 60000 }. */
  backoff?: Partial<BackoffOptions>;
  /** Pings the broker this often and reconnects when a ping goes unanswered; default 20 s. */
  heartbeatMs?: number;
  /**
   * One replica of the broker: the address to dial for the URL's name, keeping the name for
   * the Host header and TLS (src/tunnel/broker-endpoints.ts). Default: the URL itself.
   */
  endpoint?: Pick<BrokerEndpoint, "dialUrl" | "headers" | "servername" | "label">;
}

interface StreamLabel {
  /** The first characters of the broker's stream id (enough to follow one in a log). */
  stream: string;
  connection: string | null;
  host: string;
  port: number;
}

/** What the agent does, for its log. No event carries a token or a target's bytes. */
export type AgentEvent =
  | { type: "connecting"; attempt: number }
  | {
      type: "connected";
      /** The connections the broker routes through this agent, and whether --allow permits each. */
      connections: { name: string; host: string; port: number; allowed: boolean }[];
    }
  /** Connecting failed; the next attempt is in retryInMs. */
  | { type: "connect_failed"; attempt: number; error: GwError; retryInMs: number }
  /** The control channel closed; its streams ended; reconnecting in retryInMs. */
  | { type: "disconnected"; code: number; reason: string; streamsEnded: number; retryInMs: number }
  | ({ type: "stream_open" } & StreamLabel)
  | ({
      type: "stream_refused";
      code: OpenFailureCode | "broker_refused";
      reason: string;
    } & StreamLabel)
  | ({ type: "stream_closed"; bytesToTarget: number; bytesFromTarget: number } & StreamLabel)
  | { type: "token_refreshed"; expiresAt: number | null }
  | { type: "token_refresh_failed"; error: unknown; expiresAt: number | null }
  | { type: "token_rejected"; code: string; message: string };

interface Stream {
  socket: Socket | null;
  ws: WebSocket | null;
}

const zeroMask = (mask: Buffer) => mask.fill(0);

/**
 * The agent: in a private network, it keeps one outbound control channel to the broker and, when
 * the broker asks, dials a target in its network and relays that connection's bytes over a
 * stream of its own. It never sees a credential of a target, never parses what it relays, and
 * decides nothing but whether a target is on its allow list: identity checks, policy, masking
 * and recording all happen in the broker, as for a target the broker reaches directly.
 *
 * When the broker goes away the agent reconnects, with exponential backoff and jitter; the
 * sessions it carried end, and new ones work once it is back.
 */
export class Agent {
  private readonly url: string;
  /** Where the WebSockets go: the URL, or one replica's address with the URL's name kept. */
  private readonly wsBase: string;
  private readonly refresher: TokenRefresher;
  private readonly https = new HttpsAgent({ keepAlive: false, maxCachedSessions: 100 });
  private readonly secureContext: SecureContext | undefined;
  private readonly backoff: BackoffOptions;
  private control: WebSocket | null = null;
  private readonly streams = new Set<Stream>();
  /** Failed attempts since the last good connection. */
  private failures = 0;
  private started = false;
  private everConnected = false;
  private stopped = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  private settle!: { resolve: () => void; reject: (err: unknown) => void };
  private readonly done: Promise<void>;

  constructor(private readonly opts: AgentOptions) {
    this.url = normalizeBrokerUrl(opts.broker);
    this.wsBase = (opts.endpoint?.dialUrl ?? this.url).replace(/^http/, "ws");
    this.secureContext = opts.caFile ? contextTrusting(opts.caFile) : undefined;
    this.backoff = {
      initialMs: opts.backoff?.initialMs ?? 1000,
      maxMs: opts.backoff?.maxMs ?? 60_000,
      ...(opts.backoff?.random ? { random: opts.backoff.random } : {}),
    };
    this.refresher = new TokenRefresher(opts.token, {
      onToken: (token, expiresAt) => {
        // The open control channel gets the fresh token beside its traffic; a channel that is
        // still connecting already carries it in its upgrade request.
        const ws = this.control;
        if (ws?.readyState !== WebSocket.OPEN) return;
        this.sendOn(ws, { type: "token", token });
        this.emit({ type: "token_refreshed", expiresAt });
      },
      onError: (error, expiresAt) => this.emit({ type: "token_refresh_failed", error, expiresAt }),
    });
    this.done = new Promise((resolve, reject) => (this.settle = { resolve, reject }));
    // Whoever awaits run() hears of a failure; nobody else must get an unhandled rejection.
    this.done.catch(() => undefined);
  }

  /** Connects, and keeps connected; resolves after stop(), rejects when the broker refuses the agent. */
  run(): Promise<void> {
    if (!this.started) {
      this.started = true;
      this.connect();
    }
    return this.done;
  }

  get connected(): boolean {
    return this.control?.readyState === WebSocket.OPEN;
  }

  get openStreams(): number {
    return this.streams.size;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    await this.shutdown();
    this.settle.resolve();
  }

  // --- the control channel ---------------------------------------------------------------

  private connect(): void {
    if (this.stopped) return;
    this.emit({ type: "connecting", attempt: this.failures + 1 });
    this.refresher.token().then(
      (token) => this.openControl(token),
      (err: unknown) =>
        this.reconnectAfter((retryInMs, attempt) => ({
          type: "connect_failed",
          attempt,
          retryInMs,
          error: isGwError(err)
            ? err
            : new GwError("token_unavailable", `could not get a token: ${String(err)}`, {
                exitCode: ExitCode.auth,
              }),
        })),
    );
  }

  private openControl(token: string): void {
    if (this.stopped) return;
    const url = this.wsBase + `${AGENT_CONTROL_PATH}?name=${encodeURIComponent(this.opts.name)}`;
    const ws = new WebSocket(url, this.wsOptions(token, false));
    this.control = ws;
    let opened = false;
    /** This attempt's outcome is decided (ws may report it twice: error, then close). */
    let decided = false;
    const failed = (err: GwError, fatal: boolean) => {
      if (decided) return;
      decided = true;
      if (fatal) return void this.fail(err);
      this.reconnectAfter((retryInMs, attempt) => ({
        type: "connect_failed",
        attempt,
        retryInMs,
        error: err,
      }));
    };
    ws.on("unexpected-response", (_req, res) => {
      void refusalBody(res).then((body) => {
        const status = res.statusCode ?? 500;
        failed(httpError(this.url, status, body), this.isFatal(status));
        ws.terminate();
      });
    });
    ws.on("error", (err) => {
      if (!opened) failed(unreachable(this.url, err), false);
    });
    ws.on("open", () => {
      opened = true;
      this.sendOn(ws, { type: "hello", version: VERSION, allow: this.opts.allow.describe() });
      this.startHeartbeat(ws);
    });
    ws.on("message", (data: Buffer, isBinary: boolean) => {
      if (isBinary) return;
      const msg = parseMessage(brokerMessage, data);
      // Messages a newer broker may send are ignored.
      if (msg) this.onMessage(ws, msg);
    });
    ws.on("close", (code, reason) => {
      if (!opened) return failed(unreachable(this.url, new Error("connection closed")), false);
      if (decided) return;
      decided = true;
      this.onClosed(code, reason.toString("utf8"));
    });
  }

  /**
   * Refusals that waiting will not fix: the broker has no such agent or does not let this
   * identity be it (403, 404, 400). A refused sign-in (401) is fatal on the first attempt,
   * which is someone setting the agent up; later it may be a passing problem of the identity
   * provider, so the agent keeps trying.
   */
  private isFatal(status: number): boolean {
    if (status === 401) return this.failures === 0 && !this.everConnected;
    return status === 400 || status === 403 || status === 404;
  }

  private onMessage(ws: WebSocket, msg: BrokerMessage): void {
    switch (msg.type) {
      case "welcome":
        this.failures = 0;
        this.everConnected = true;
        this.emit({
          type: "connected",
          connections: msg.connections.map((c) => ({
            ...c,
            allowed: this.opts.allow.permits(c.host, c.port),
          })),
        });
        return;
      case "open":
        this.openStream(ws, msg);
        return;
      case "token_rejected":
        this.emit({ type: "token_rejected", code: msg.code, message: msg.message });
        return;
      case "token_accepted":
        return;
    }
  }

  private onClosed(code: number, reason: string): void {
    this.stopHeartbeat();
    this.control = null;
    const streamsEnded = this.endStreams();
    if (this.stopped) return;
    if (code === AgentClose.replaced) {
      // Two processes under one name would take the name from each other forever.
      this.fail(
        new GwError(
          "agent_replaced",
          `another agent named ${this.opts.name} connected to ${this.url} and took over; this one stops`,
          {
            exitCode: ExitCode.conflict,
            hint: "Run one agent per name; give each agent its own name (and its own entry under the broker's agents).",
          },
        ),
      );
      return;
    }
    this.reconnectAfter((retryInMs) => ({
      type: "disconnected",
      code,
      reason,
      streamsEnded,
      retryInMs,
    }));
  }

  private reconnectAfter(event: (retryInMs: number, attempt: number) => AgentEvent): void {
    if (this.stopped) return;
    this.control = null;
    this.failures++;
    const delay = backoffDelay(this.failures, this.backoff);
    this.emit(event(delay, this.failures));
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.connect();
    }, delay);
  }

  private startHeartbeat(ws: WebSocket): void {
    this.stopHeartbeat();
    let alive = true;
    ws.on("pong", () => (alive = true));
    // A broker that vanished without closing (a dropped NAT mapping, a dead load balancer)
    // would otherwise leave the agent waiting on a dead socket.
    this.heartbeat = setInterval(() => {
      if (!alive) return void ws.terminate();
      alive = false;
      ws.ping();
    }, this.opts.heartbeatMs ?? 20_000);
    this.heartbeat.unref();
  }

  private stopHeartbeat(): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
  }

  // --- streams ---------------------------------------------------------------------------

  private openStream(control: WebSocket, msg: Extract<BrokerMessage, { type: "open" }>): void {
    const label: StreamLabel = {
      stream: msg.stream.slice(0, 8),
      connection: msg.connection ?? null,
      host: msg.host,
      port: msg.port,
    };
    const refuse = (code: OpenFailureCode, reason: string) => {
      this.sendOn(control, { type: "open_failed", stream: msg.stream, code, reason });
      this.emit({ type: "stream_refused", ...label, code, reason });
    };
    if (!this.opts.allow.permits(msg.host, msg.port))
      return refuse("not_allowed", "not on the agent's allow list");
    const entry: Stream = { socket: null, ws: null };
    this.streams.add(entry);
    const current = () => !this.stopped && this.control === control && this.streams.has(entry);
    dialTarget(msg.host, msg.port, msg.timeoutMs)
      .then(async (socket) => {
        entry.socket = socket;
        socket.on("error", () => undefined); // 'close' follows; the relay ends there
        const token = current() ? await this.refresher.token() : null;
        if (token === null || !current()) {
          socket.destroy();
          this.streams.delete(entry);
          return;
        }
        const url = this.wsBase + AGENT_STREAM_PREFIX + encodeURIComponent(msg.stream);
        const ws = new WebSocket(url, this.wsOptions(token, true));
        entry.ws = ws;
        let relaying = false;
        ws.on("unexpected-response", (_req, res) => {
          res.resume();
          ws.terminate();
        });
        ws.on("error", () => undefined); // 'close' follows
        ws.on("open", () => {
          relaying = true;
          this.emit({ type: "stream_open", ...label });
          this.relay(entry, socket, ws, label);
        });
        ws.on("close", () => {
          if (relaying) return;
          // The broker no longer waited for it (the session gave up), or went away.
          socket.destroy();
          this.streams.delete(entry);
          this.emit({
            type: "stream_refused",
            ...label,
            code: "broker_refused",
            reason: "the broker did not take the stream",
          });
        });
      })
      .catch((err: unknown) => {
        entry.socket?.destroy();
        this.streams.delete(entry);
        if (!current() && !(err instanceof TargetDialError)) return;
        if (err instanceof TargetDialError) refuse(err.code, err.reason);
        else refuse("unreachable", "connection failed");
      });
  }

  /** Bytes both ways until either side closes; the target sees an orderly end where it can. */
  private relay(entry: Stream, socket: Socket, ws: WebSocket, label: StreamLabel): void {
    const stream = wsDuplex(ws);
    let toTarget = 0;
    let fromTarget = 0;
    socket.on("data", (c: Buffer) => (fromTarget += c.length));
    stream.on("data", (c: Buffer) => (toTarget += c.length));
    stream.on("error", () => undefined);
    socket.pipe(stream);
    stream.pipe(socket);
    let open = 2;
    const closed = () => {
      if (--open > 0) return;
      this.streams.delete(entry);
      this.emit({
        type: "stream_closed",
        ...label,
        bytesToTarget: toTarget,
        bytesFromTarget: fromTarget,
      });
    };
    // The broker's side ended: what it sent still reaches the target, then the socket closes.
    stream.once("close", () => {
      socket.destroySoon();
      closed();
    });
    // The target's side ended: an orderly end already went through the pipe; an error did not.
    socket.once("close", (hadError) => {
      if (hadError) stream.destroy();
      else stream.end();
      closed();
    });
  }

  /** Ends every stream at once: their control channel is gone. Returns how many there were. */
  private endStreams(): number {
    const n = this.streams.size;
    for (const s of this.streams) {
      s.ws?.terminate();
      s.socket?.destroy();
    }
    this.streams.clear();
    return n;
  }

  // --- plumbing --------------------------------------------------------------------------

  private wsOptions(token: string, data: boolean): ClientOptions {
    return {
      headers: { ...this.opts.endpoint?.headers, authorization: `Bearer ${token}` },
      ...(this.opts.endpoint?.servername ? { servername: this.opts.endpoint.servername } : {}),
      perMessageDeflate: false,
      handshakeTimeout: 15_000,
      // A data frame is one write of the broker's session: up to a whole protocol message,
      // which the broker already bounds (limits.maxMessageBytes). Control messages are small.
      maxPayload: data ? 0 : 1 << 20,
      // Masking is for browsers behind shared proxies; over TLS it only costs a copy per frame.
      ...(data ? { generateMask: zeroMask } : {}),
      ...(this.url.startsWith("https:")
        ? {
            agent: this.https,
            ...(this.secureContext ? { secureContext: this.secureContext } : {}),
          }
        : {}),
    };
  }

  private sendOn(ws: WebSocket, msg: AgentMessage): void {
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
  }

  private emit(e: AgentEvent): void {
    try {
      this.opts.onEvent?.(e);
    } catch {
      // a failing listener must not take the agent down
    }
  }

  private fail(err: GwError): void {
    if (this.stopped) return;
    void this.shutdown().then(() => this.settle.reject(err));
  }

  private async shutdown(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.stopHeartbeat();
    this.refresher.stop();
    this.endStreams();
    const ws = this.control;
    this.control = null;
    if (ws && ws.readyState !== WebSocket.CLOSED) {
      if (ws.readyState === WebSocket.OPEN) ws.close(1000, "agent stopping");
      else ws.terminate();
      // A broker that does not answer the close handshake must not hold the process for 30 s.
      const closed = () => (ws.readyState as number) === WebSocket.CLOSED;
      const until = Date.now() + 500;
      while (!closed() && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      if (!closed()) ws.terminate();
    }
    this.https.destroy();
  }
}
