import type { WebSocket } from "ws";
import type { Identity } from "../identity/principal.js";
import {
  AgentClose,
  agentMessage,
  parseMessage,
  type BrokerMessage,
  type OpenFailureCode,
} from "../agent/protocol.js";
import type { Logger } from "./logger.js";
import { SessionValidity } from "./session-validity.js";

export interface AgentLinkOptions {
  name: string;
  identity: Identity;
  remoteAddress: string | null;
  log: Logger;
  /** Verifies a fresh token sent over the channel. */
  verify(token: string): Promise<Identity>;
  /** Whether an identity may still be this agent (a refreshed token is checked again). */
  allowed(identity: Identity): boolean;
  graceMs: number;
  heartbeatMs: number;
  /** The agent said who it is and what it will dial: time to welcome it. */
  onHello(): void;
  onOpenFailed(stream: string, code: OpenFailureCode, reason: string): void;
  onClose(): void;
}

/**
 * One agent's control channel, as the broker holds it: it lives as long as the agent's sign-in
 * (fresh tokens over the channel extend it) and its heartbeat, and the data streams opened
 * under it end with it, so a session never outlives the agent that carries it.
 */
export class AgentLink {
  readonly connectedAt = Date.now();
  /** Data streams paired under this channel; terminated when it closes. */
  readonly streams = new Set<WebSocket>();
  version: string | null = null;
  /** What the agent said it will dial; null: anything (--allow-any); undefined: not said yet. */
  allow: string[] | null | undefined = undefined;
  private closed = false;
  private readonly validity: SessionValidity;
  private readonly heartbeat: NodeJS.Timeout;
  private alive = true;

  constructor(
    private readonly ws: WebSocket,
    private readonly opts: AgentLinkOptions,
  ) {
    this.validity = new SessionValidity(opts.identity, opts.graceMs, () => {
      opts.log.log("info", "agent sign-in expired; closing its control channel");
      this.close(AgentClose.signInExpired, "sign-in expired");
    });
    // An agent whose network silently dropped the connection would otherwise look connected
    // for as long as TCP keeps a dead socket: sessions would wait on it for their timeout.
    this.heartbeat = setInterval(() => {
      if (!this.alive) {
        opts.log.log("warn", "agent missed its heartbeat; dropping its control channel");
        this.ws.terminate();
        return;
      }
      this.alive = false;
      this.ws.ping();
    }, opts.heartbeatMs);
    this.heartbeat.unref();
    ws.on("pong", () => (this.alive = true));
    ws.on("message", (data: Buffer, isBinary: boolean) => this.onMessage(data, isBinary));
    ws.on("close", () => this.onClosed());
    ws.on("error", (err) =>
      opts.log.log("warn", "agent control channel error", { error: err.message }),
    );
  }

  get name(): string {
    return this.opts.name;
  }

  get identity(): Identity {
    return this.opts.identity;
  }

  get remoteAddress(): string | null {
    return this.opts.remoteAddress;
  }

  get open(): boolean {
    return !this.closed && this.ws.readyState === this.ws.OPEN;
  }

  send(msg: BrokerMessage): void {
    if (this.open) this.ws.send(JSON.stringify(msg));
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    if (this.ws.readyState === this.ws.OPEN) this.ws.close(code, reason);
    else this.ws.terminate();
    this.onClosed();
  }

  private onClosed(): void {
    if (this.closed) return;
    this.closed = true;
    this.validity.stop();
    clearInterval(this.heartbeat);
    // Sessions in flight end with the channel: a stream without its agent's control channel
    // could no longer be accounted for (or cut off when the agent's sign-in lapses).
    for (const s of this.streams) s.terminate();
    this.streams.clear();
    // A channel we closed ourselves may take a moment to finish its close handshake.
    if (this.ws.readyState !== this.ws.CLOSED) setTimeout(() => this.ws.terminate(), 1000).unref();
    this.opts.onClose();
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    if (isBinary) {
      // Bytes belong on streams: an agent that sends them here is not speaking this protocol.
      this.opts.log.log("warn", "agent sent bytes on its control channel; closing it");
      this.close(AgentClose.protocolError, "unexpected binary frame");
      return;
    }
    const msg = parseMessage(agentMessage, data);
    if (!msg) {
      // A newer agent may say more than this broker knows.
      this.opts.log.log("warn", "agent sent a message the broker does not understand; ignored");
      return;
    }
    switch (msg.type) {
      case "hello":
        this.version = msg.version;
        this.allow = msg.allow;
        this.opts.log.log("info", "agent announced itself", {
          version: msg.version,
          allow: msg.allow ?? "any",
        });
        this.opts.onHello();
        return;
      case "open_failed":
        this.opts.onOpenFailed(msg.stream, msg.code, msg.reason);
        return;
      case "token":
        this.refresh(msg.token);
        return;
    }
  }

  private refresh(token: string): void {
    this.opts.verify(token).then(
      (next) => {
        if (this.closed) return;
        const r = this.opts.allowed(next)
          ? this.validity.extend(next)
          : ({
              ok: false,
              code: "agent_forbidden",
              message: "the new token's identity may no longer register as this agent",
            } as const);
        if (r.ok) {
          this.opts.log.log("debug", "agent token refreshed", { expiresAt: r.expiresAt });
          this.send({ type: "token_accepted", expiresAt: r.expiresAt });
        } else {
          this.opts.log.log("warn", "agent's refreshed token refused", { code: r.code });
          this.send({ type: "token_rejected", code: r.code, message: r.message });
        }
      },
      (err: unknown) => {
        const code = (err as { code?: unknown }).code;
        this.opts.log.log("warn", "agent's refreshed token refused", { code: String(code) });
        this.send({
          type: "token_rejected",
          code: typeof code === "string" ? code : "token_invalid",
          message: "the broker did not accept the refreshed token",
        });
      },
    );
  }
}
