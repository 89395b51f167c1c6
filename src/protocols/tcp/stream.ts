import { Duplex } from "node:stream";
import type { ClientChannel, EndReason } from "../postgres/session.js";

export type { ClientChannel, EndReason };

/** The broker's Logger fits; so does anything with the same log method. */
export interface SessionLogger {
  log(
    level: "debug" | "info" | "warn" | "error",
    msg: string,
    fields?: Record<string, unknown>,
  ): void;
}

/** How a session ended, for the recording hooks. */
export interface SessionEndInfo {
  reason: EndReason;
  detail: string | null;
  /** Bytes from the client (tunnel side), and to it. */
  bytesIn: number;
  bytesOut: number;
  /** Events recorded (commands, requests, file operations...). */
  events: number;
}

/**
 * A ClientChannel as a node Duplex, for protocol libraries that want a socket (ssh2's Server
 * takes it through injectSocket, node:http's Server through emit("connection")).
 *
 * Readable side: what the session feeds it from the client (`feed`), with backpressure by
 * pausing the channel. Writable side: each write is one channel send; while the channel is
 * congested the write's callback waits for its drain, so writers see backpressure too.
 */
export class ChannelDuplex extends Duplex {
  bytesIn = 0;
  bytesOut = 0;
  private drainCb: (() => void) | null = null;
  private clientGone = false;

  constructor(private readonly ch: ClientChannel) {
    super({ allowHalfOpen: false, decodeStrings: true });
    ch.onDrain(() => {
      const cb = this.drainCb;
      this.drainCb = null;
      cb?.();
    });
  }

  // Socket-like details some libraries read.
  get remoteAddress(): string | undefined {
    return this.ch.remoteAddress ?? undefined;
  }
  readonly remotePort: number | undefined = undefined;
  readonly remoteFamily: string | undefined = undefined;
  readonly encrypted = false;
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
  setTimeout(_ms: number, cb?: () => void): this {
    if (cb) this.once("timeout", cb);
    return this;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }

  /** Bytes from the client. */
  feed(buf: Buffer): void {
    if (this.clientGone || this.destroyed) return;
    this.bytesIn += buf.length;
    if (!this.push(buf)) this.ch.pause();
  }

  /** The client went away: the readable side ends and the stream is destroyed. */
  clientClosed(): void {
    if (this.clientGone) return;
    this.clientGone = true;
    this.push(null);
    process.nextTick(() => this.destroy());
  }

  get isClientGone(): boolean {
    return this.clientGone;
  }

  override _read(): void {
    this.ch.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.clientGone) return cb();
    this.bytesOut += chunk.length;
    this.ch.send(chunk);
    if (this.ch.congested) this.drainCb = () => cb();
    else cb();
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.ch.close();
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const pending = this.drainCb;
    this.drainCb = null;
    this.ch.close();
    pending?.();
    cb(err);
  }
}

/** Seconds since `start` (performance.now() ms), to the microsecond: asciicast's clock. */
export function elapsedSeconds(start: number): number {
  return Math.round((performance.now() - start) * 1000) / 1e6;
}
