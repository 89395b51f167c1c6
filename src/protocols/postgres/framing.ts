import { StartupCode } from "./codes.js";

/**
 * Splits a byte stream into protocol messages without copying whole chunks.
 *
 * Typed messages are `type:u8 length:i32 body`, where length counts itself but not the type.
 * The first message of a connection (startup, SSLRequest, CancelRequest, ...) has no type byte;
 * callers switch modes with `expectStartup`.
 *
 * `push` hands back each complete message as (type, buffer, start, end) where buffer[start..end)
 * is the whole message including header, so callers can forward it untouched. Bytes of an
 * incomplete trailing message are kept until the rest arrives.
 */
export class FramingError extends Error {
  constructor(
    message: string,
    readonly kind: "too_large" | "malformed",
  ) {
    super(message);
    this.name = "FramingError";
  }
}

/** Called for each complete message. Return false to stop processing the rest of the chunk. */
/**
 * Return false to stop after this message (the rest is kept), or RETRY to stop before it (it is
 * kept too, and handed over again on the next push).
 */
export type OnMessage = (
  type: number,
  buf: Buffer,
  start: number,
  end: number,
) => boolean | typeof RETRY | void;

export const RETRY = Symbol("retry");

/** Type code reported for untyped startup-phase messages. */
export const STARTUP_TYPE = 0;

export class MessageFramer {
  private tail: Buffer | null = null;
  private startup: boolean;

  constructor(
    private readonly maxMessageBytes: number,
    opts: { startup?: boolean; maxStartupBytes?: number } = {},
  ) {
    this.startup = opts.startup ?? false;
    this.maxStartupBytes = opts.maxStartupBytes ?? 10_000;
  }
  private readonly maxStartupBytes: number;

  /** The next message is an untyped startup-phase message (after SSLRequest was answered, say). */
  expectStartup(on: boolean): void {
    this.startup = on;
  }

  get buffered(): number {
    return this.tail?.length ?? 0;
  }

  /**
   * Feeds a chunk. When a callback returns false, the unprocessed rest is kept: push an empty
   * buffer later to go on from there.
   */
  push(chunk: Buffer, onMessage: OnMessage): void {
    let buf: Buffer;
    if (this.tail !== null) {
      buf = chunk.length === 0 ? this.tail : Buffer.concat([this.tail, chunk]);
      this.tail = null;
    } else {
      buf = chunk;
    }
    let pos = 0;
    const len = buf.length;
    while (pos < len) {
      if (this.startup) {
        if (len - pos < 4) break;
        const size = buf.readInt32BE(pos);
        if (size < 8 || size > this.maxStartupBytes) {
          throw new FramingError(
            `invalid startup packet length ${size}`,
            size < 8 ? "malformed" : "too_large",
          );
        }
        if (len - pos < size) break;
        const end = pos + size;
        // Only one untyped message at a time: the caller decides what comes next.
        this.startup = false;
        const cont = onMessage(STARTUP_TYPE, buf, pos, end);
        pos = end;
        if (cont === false) break;
        continue;
      }
      if (len - pos < 5) break;
      const type = buf[pos]!;
      const size = buf.readInt32BE(pos + 1);
      if (size < 4)
        throw new FramingError(
          `invalid length ${size} for message '${String.fromCharCode(type)}'`,
          "malformed",
        );
      if (size > this.maxMessageBytes) {
        throw new FramingError(
          `message '${String.fromCharCode(type)}' of ${size} bytes exceeds the limit of ${this.maxMessageBytes}`,
          "too_large",
        );
      }
      const end = pos + 1 + size;
      if (end > len) break;
      const cont = onMessage(type, buf, pos, end);
      if (cont === RETRY) break;
      pos = end;
      if (cont === false) break;
    }
    if (pos < len) this.tail = pos === 0 ? buf : buf.subarray(pos);
  }

  /** Removes and returns whatever is buffered (used when handing a stream over, e.g. to TLS). */
  drain(): Buffer | null {
    const t = this.tail;
    this.tail = null;
    return t;
  }
}

export function isStartupCode(code: number): boolean {
  return (
    code === StartupCode.protocol3 ||
    code === StartupCode.sslRequest ||
    code === StartupCode.gssEncRequest ||
    code === StartupCode.cancelRequest
  );
}
