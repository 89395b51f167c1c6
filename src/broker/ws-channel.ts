import type { Socket } from "node:net";
import type { WebSocket } from "ws";
import type { ClientChannel } from "../protocols/postgres/session.js";

/** Above this many queued bytes the target is paused until the tunnel drains. */
const HIGH_WATER = 1 << 20;
const SEND_OPTS = { binary: true, compress: false } as const;

/**
 * A tunnel stream as the session's client side: binary frames carry protocol bytes,
 * text frames carry control messages (handled by the tunnel endpoint, not here).
 */
export class WsChannel implements ClientChannel {
  private drainCb: (() => void) | null = null;
  private closed = false;

  constructor(
    private readonly ws: WebSocket,
    readonly remoteAddress: string | null,
  ) {
    // ws keeps its socket private; its 'drain' is the only precise backpressure signal.
    const raw = (ws as unknown as { _socket?: Socket })._socket;
    raw?.on("drain", () => this.drainCb?.());
  }

  send(data: Buffer): void {
    if (this.closed || this.ws.readyState !== this.ws.OPEN) return;
    this.ws.send(data, SEND_OPTS);
  }

  sendControl(msg: Record<string, unknown>): void {
    if (this.closed || this.ws.readyState !== this.ws.OPEN) return;
    this.ws.send(JSON.stringify(msg));
  }

  get congested(): boolean {
    return this.ws.bufferedAmount > HIGH_WATER;
  }

  onDrain(cb: () => void): void {
    this.drainCb = cb;
  }

  pause(): void {
    this.ws.pause();
  }

  resume(): void {
    this.ws.resume();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    // close() sends after queued data, so an ErrorResponse written just before still arrives.
    if (this.ws.readyState === this.ws.OPEN) this.ws.close(1000);
  }
}
