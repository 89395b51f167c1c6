import type { MaskingProfile } from "../../policy/masking/index.js";

/** Masks a chunk of output bytes; returns the same buffer when nothing was found. */
export type OutputMask = (data: Buffer) => Buffer;

/**
 * The profile's detectors over raw bytes: every byte outside a detected span comes out exactly
 * as it went in (the engine works on byte strings), so binary and any ASCII-compatible
 * encoding survive.
 */
export function outputMask(profile: MaskingProfile): OutputMask {
  return (data) => {
    if (data.length === 0) return data;
    const masked = profile.maskText(data.toString("latin1"));
    return masked === null ? data : Buffer.from(masked, "latin1");
  };
}

/**
 * Streams output through a mask at line granularity, so a value is never split between two
 * mask calls by a read boundary: complete lines (up to the last \n or \r) go out at once, a
 * trailing partial line waits for its end, for `flushMs` (a prompt, a progress bar; null: no
 * timer, for formats whose lines always end), or until it reaches `maxLine` bytes.
 */
export class LineMasker {
  private pending: Buffer = Buffer.alloc(0);
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly mask: OutputMask,
    private readonly emit: (data: Buffer) => void,
    private readonly opts: { flushMs?: number | null; maxLine?: number } = {},
  ) {}

  push(data: Buffer): void {
    const buf = this.pending.length === 0 ? data : Buffer.concat([this.pending, data]);
    let cut = -1;
    for (let i = buf.length - 1; i >= 0; i--) {
      const c = buf[i];
      if (c === 0x0a || c === 0x0d) {
        cut = i + 1;
        break;
      }
    }
    if (cut > 0) {
      this.out(buf.subarray(0, cut));
      this.pending = buf.subarray(cut);
    } else this.pending = buf;
    if (this.pending.length >= (this.opts.maxLine ?? 64 * 1024)) {
      const p = this.pending;
      this.pending = Buffer.alloc(0);
      this.out(p);
    }
    this.schedule();
  }

  /** Sends what is held back (end of stream). */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.pending.length === 0) return;
    const p = this.pending;
    this.pending = Buffer.alloc(0);
    this.out(p);
  }

  /** Drops what is held back (the stream was cut off). */
  discard(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.pending = Buffer.alloc(0);
  }

  private out(b: Buffer): void {
    const m = this.mask(b);
    if (m.length > 0) this.emit(m);
  }

  private schedule(): void {
    if (this.pending.length === 0) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      return;
    }
    if (this.timer || this.opts.flushMs === null) return;
    const ms = this.opts.flushMs ?? 25;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.flush();
    }, ms);
  }
}
