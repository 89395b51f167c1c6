import { Transform, type TransformCallback } from "node:stream";

/**
 * Keeps the injected credential from ever reaching the client, even when the target echoes it
 * (an API that reflects request headers, a debug page): every occurrence of a secret in
 * response headers and bodies is overwritten with '*' of the same length, so lengths (and
 * Content-Length) stay valid.
 */
export class SecretScrubber {
  private readonly secrets: Buffer[];
  readonly maxLen: number;

  constructor(secrets: readonly string[]) {
    // Shortest first: "Bearer <token>" then keeps its scheme and shows only the token masked.
    const uniq = [...new Set(secrets.filter((s) => s.length >= 6))].sort(
      (a, b) => a.length - b.length,
    );
    this.secrets = uniq.map((s) => Buffer.from(s, "utf8"));
    this.maxLen = Math.max(0, ...this.secrets.map((s) => s.length));
  }

  get empty(): boolean {
    return this.secrets.length === 0;
  }

  /** Overwrites secrets in place; returns whether any was found. */
  scrubBuffer(buf: Buffer): boolean {
    let hit = false;
    for (const s of this.secrets) {
      let i = buf.indexOf(s);
      while (i >= 0) {
        buf.fill(0x2a, i, i + s.length);
        hit = true;
        i = buf.indexOf(s, i + s.length);
      }
    }
    return hit;
  }

  scrubText(text: string): string {
    if (this.empty) return text;
    let out = text;
    for (const s of this.secrets) {
      const str = s.toString("utf8");
      if (out.includes(str)) out = out.split(str).join("*".repeat(str.length));
    }
    return out;
  }

  /** How many bytes at the end of buf could be the start of a secret (held for the next chunk). */
  private partialTail(buf: Buffer): number {
    let best = 0;
    for (const s of this.secrets) {
      for (let k = Math.min(s.length - 1, buf.length); k > best; k--) {
        if (buf.compare(s, 0, k, buf.length - k, buf.length) === 0) {
          best = k;
          break;
        }
      }
    }
    return best;
  }

  /**
   * A stream that scrubs across chunk boundaries. Only a tail that could begin a secret is
   * held back for the next chunk, so streamed events are not delayed.
   */
  stream(): Transform {
    let tail: Buffer = Buffer.alloc(0);
    return new Transform({
      transform: (chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) => {
        const buf = tail.length > 0 ? Buffer.concat([tail, chunk]) : Buffer.from(chunk);
        this.scrubBuffer(buf);
        const cut = buf.length - this.partialTail(buf);
        tail = buf.subarray(cut);
        cb(null, cut > 0 ? buf.subarray(0, cut) : undefined);
      },
      flush: (cb: TransformCallback) => {
        this.scrubBuffer(tail);
        cb(null, tail.length > 0 ? tail : undefined);
      },
    });
  }
}
