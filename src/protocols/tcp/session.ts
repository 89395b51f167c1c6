import { connect, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { Dial } from "../../net/dial.js";
import type { ClientChannel, EndReason, SessionEndInfo, SessionLogger } from "./stream.js";

export { validateTcpPolicy, tcpConnection, tcpTarget } from "./config.js";

export interface TcpSessionHooks {
  /** The target accepted the connection. Must make the session durable; rejecting closes it. */
  onStart(info: { target: string }): Promise<void>;
  /** Called once, however the session ended (also when it never started). */
  onEnd(info: SessionEndInfo): void;
}

export interface TcpSessionOptions {
  target: {
    name?: string;
    host: string;
    port: number;
    connectTimeoutMs: number;
    /** Reaches the target some other way than a direct connect (an outbound agent). */
    dial?: Dial | undefined;
  };
  hooks: TcpSessionHooks;
  log: SessionLogger;
  /** True once the identity's sign-in lapsed: the next client data ends the session. */
  signInExpired?: () => boolean;
}

/** Client bytes held while the target connects; beyond this the channel is paused. */
const MAX_PENDING = 1 << 20;

/**
 * A raw TCP session: bytes relayed both ways with backpressure, the session recorded as
 * metadata (who, when, bytes). Nothing is parsed, so no policy beyond allow applies.
 */
export class TcpSession {
  private upstream: Duplex | null = null;
  /** What the target said before the session was on record. */
  private readonly early: Buffer[] = [];
  private state: "connecting" | "relaying" | "closed" = "connecting";
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private bytesIn = 0;
  private bytesOut = 0;

  constructor(
    private readonly channel: ClientChannel,
    private readonly opts: TcpSessionOptions,
  ) {
    channel.onDrain(() => this.upstream?.resume());
    this.connect();
  }

  onClientData(buf: Buffer): void {
    if (this.state === "closed") return;
    if (this.opts.signInExpired?.()) {
      this.end("auth_expired", "the sign-in expired");
      return;
    }
    this.bytesIn += buf.length;
    if (this.state === "connecting") {
      this.pending.push(buf);
      this.pendingBytes += buf.length;
      if (this.pendingBytes > MAX_PENDING) this.channel.pause();
      return;
    }
    this.write(buf);
  }

  onClientClosed(): void {
    this.end("client_closed", null);
  }

  /** Ends the session from the broker's side (shutdown, expired sign-in). */
  terminate(reason: EndReason, message: string): void {
    this.opts.log.log("info", "session terminated", { reason, message });
    this.end(reason, message);
  }

  private connect(): void {
    const t = this.opts.target;
    if (t.dial) {
      t.dial(t.host, t.port).then(
        (stream) => {
          if (this.state === "closed") return stream.destroy();
          this.relay(stream);
          this.connected(stream);
        },
        (err: unknown) => {
          const message = err instanceof Error ? err.message : String(err);
          this.opts.log.log("warn", "target connection failed", {
            target: `${t.host}:${t.port}`,
            error: message,
          });
          this.end("upstream_error", message);
        },
      );
      return;
    }
    const sock: Socket = connect({ host: t.host, port: t.port });
    sock.setNoDelay(true);
    const timer = setTimeout(() => {
      sock.destroy(new Error(`no answer within ${t.connectTimeoutMs} ms`));
    }, t.connectTimeoutMs);
    sock.once("connect", () => {
      clearTimeout(timer);
      this.connected(sock);
    });
    sock.on("error", () => clearTimeout(timer));
    sock.on("close", () => clearTimeout(timer));
    this.relay(sock);
  }

  /** The target is there: record the session, then let the client's bytes through. */
  private connected(sock: Duplex): void {
    const t = this.opts.target;
    if (this.state === "closed") return void sock.destroy();
    this.opts.hooks.onStart({ target: `${t.host}:${t.port}` }).then(
      () => {
        if (this.state === "closed") return;
        this.state = "relaying";
        const held = this.pending;
        this.pending = [];
        this.pendingBytes = 0;
        for (const b of held) this.write(b);
        this.channel.resume();
      },
      (err: unknown) => {
        this.opts.log.log("error", "could not record the session; closing it", {
          error: String(err),
        });
        this.end("recording_failed", "the session could not be recorded");
      },
    );
  }

  private relay(sock: Duplex): void {
    const t = this.opts.target;
    this.upstream = sock;
    sock.on("data", (d: Buffer) => {
      if (this.state === "closed") return;
      if (this.state !== "relaying") {
        // A target that speaks first (a banner) is heard once the session is on record.
        this.early.push(d);
        return;
      }
      this.bytesOut += d.length;
      this.channel.send(d);
      if (this.channel.congested) sock.pause();
    });
    sock.on("error", (err) => {
      this.opts.log.log("warn", "target connection failed", {
        target: `${t.host}:${t.port}`,
        error: err.message,
      });
      this.end("upstream_error", err.message);
    });
    sock.on("close", () => this.end("upstream_closed", null));
  }

  private write(buf: Buffer): void {
    const up = this.upstream;
    if (!up || up.destroyed) return;
    if (!up.write(buf)) {
      this.channel.pause();
      up.once("drain", () => this.channel.resume());
    }
  }

  private end(reason: EndReason, detail: string | null): void {
    if (this.state === "closed") return;
    this.state = "closed";
    this.pending = [];
    const up = this.upstream;
    if (up && !up.destroyed) {
      // Whatever the target sent is already with the channel; a client that left gets a FIN
      // to the target, the rest a hard close.
      if (reason === "client_closed") up.end();
      else up.destroy();
    }
    this.channel.close();
    this.opts.hooks.onEnd({
      reason,
      detail,
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
      events: 0,
    });
  }
}
