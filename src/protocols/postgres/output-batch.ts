/**
 * What one input chunk turns into on the other side: mostly the same bytes (forwarded as one
 * slice of the chunk, no copy), sometimes with messages dropped (a blocked statement), inserted
 * (an ErrorResponse gw writes) or replaced (a masked DataRow).
 *
 * Contiguous forwarded ranges of the same buffer merge, so the common case stays one write of a
 * subarray; anything else becomes one concatenated write per chunk.
 */
export class OutputBatch {
  private parts: Buffer[] = [];
  private buf: Buffer | null = null;
  private start = -1;
  private end = -1;

  /** Forward buf[start..end) unchanged. */
  forward(buf: Buffer, start: number, end: number): void {
    if (this.buf === buf && this.end === start) {
      this.end = end;
      return;
    }
    this.closeRange();
    this.buf = buf;
    this.start = start;
    this.end = end;
  }

  /** Emit bytes gw produced (a replacement or an inserted message). */
  insert(bytes: Buffer): void {
    this.closeRange();
    this.parts.push(bytes);
  }

  get empty(): boolean {
    return this.buf === null && this.parts.length === 0;
  }

  /** Hands what was collected to `write` (once, as one buffer) and resets. */
  flush(write: (b: Buffer) => void): void {
    if (this.parts.length === 0) {
      if (this.buf === null) return;
      const b =
        this.start === 0 && this.end === this.buf.length
          ? this.buf
          : this.buf.subarray(this.start, this.end);
      this.buf = null;
      write(b);
      return;
    }
    this.closeRange();
    const out = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts);
    this.parts = [];
    write(out);
  }

  reset(): void {
    this.parts = [];
    this.buf = null;
  }

  private closeRange(): void {
    if (this.buf === null) return;
    this.parts.push(this.buf.subarray(this.start, this.end));
    this.buf = null;
  }
}
