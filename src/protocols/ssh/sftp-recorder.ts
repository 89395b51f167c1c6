/**
 * A passive SFTP (version 3, as OpenSSH speaks it) observer: it sees the bytes relayed in both
 * directions of an sftp subsystem channel, pairs requests with their responses by id, and
 * reports file operations: what was opened, read and written (bytes per file, summed up when
 * the file is closed), removed, renamed, created. It never changes a byte; the target's own
 * sftp-server parses the same packets, so what it reports is what happened.
 */

export interface SftpOperation {
  op:
    | "open"
    | "read"
    | "write"
    | "remove"
    | "rename"
    | "mkdir"
    | "rmdir"
    | "setstat"
    | "symlink"
    | "link"
    | "list";
  path: string;
  /** rename, symlink, link: the second path. */
  to?: string;
  /** read, write: bytes transferred (summed per open file). */
  bytes?: number;
  /** open: "read", "write" or "read-write" (with create, truncate, append). */
  mode?: string;
  ok: boolean;
  /** The target's status message when it failed. */
  error?: string;
}

const T = {
  INIT: 1,
  VERSION: 2,
  OPEN: 3,
  CLOSE: 4,
  READ: 5,
  WRITE: 6,
  SETSTAT: 9,
  OPENDIR: 11,
  REMOVE: 13,
  MKDIR: 14,
  RMDIR: 15,
  RENAME: 18,
  SYMLINK: 20,
  STATUS: 101,
  HANDLE: 102,
  DATA: 103,
  EXTENDED: 200,
} as const;

/** OpenSSH's sftp-server refuses longer packets (SFTP_MAX_MSG_LENGTH); so do we. */
export const MAX_SFTP_PACKET = 256 * 1024 + 1024;

class Reader {
  pos = 0;
  constructor(private readonly b: Buffer) {}
  byte(): number {
    if (this.pos + 1 > this.b.length) throw new RangeError("short packet");
    return this.b[this.pos++]!;
  }
  u32(): number {
    if (this.pos + 4 > this.b.length) throw new RangeError("short packet");
    const v = this.b.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  u64(): void {
    this.u32();
    this.u32();
  }
  bytes(): Buffer {
    const n = this.u32();
    if (this.pos + n > this.b.length) throw new RangeError("short packet");
    const v = this.b.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }
  /** Only the length of a string (WRITE data): no copy. */
  skipString(): number {
    const n = this.u32();
    if (this.pos + n > this.b.length) throw new RangeError("short packet");
    this.pos += n;
    return n;
  }
  str(): string {
    return this.bytes().toString("utf8");
  }
}

class Framer {
  private chunks: Buffer[] = [];
  private size = 0;

  /** Complete packets (type byte first), or null on a packet longer than allowed. */
  push(data: Buffer): Buffer[] | null {
    this.chunks.push(data);
    this.size += data.length;
    const out: Buffer[] = [];
    for (;;) {
      if (this.size < 4) break;
      const head = this.peek(4);
      const len = head.readUInt32BE(0);
      if (len > MAX_SFTP_PACKET || len === 0) return null;
      if (this.size < 4 + len) break;
      const all = this.take(4 + len);
      out.push(all.subarray(4));
    }
    return out;
  }

  private peek(n: number): Buffer {
    if (this.chunks[0]!.length >= n) return this.chunks[0]!;
    const b = Buffer.concat(this.chunks);
    this.chunks = [b];
    return b;
  }

  private take(n: number): Buffer {
    const b = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    const head = b.subarray(0, n);
    const rest = b.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.size = rest.length;
    return head;
  }
}

interface Pending {
  op: "open" | "close" | "read" | "write" | "opendir" | SftpOperation["op"];
  path?: string;
  to?: string;
  handle?: string;
  bytes?: number;
  mode?: string;
}

interface OpenFile {
  path: string;
  read: number;
  written: number;
}

function openMode(pflags: number): string {
  const r = (pflags & 1) !== 0;
  const w = (pflags & 2) !== 0;
  const parts = [r && w ? "read-write" : w ? "write" : "read"];
  if (pflags & 8) parts.push("create");
  if (pflags & 16) parts.push("truncate");
  if (pflags & 4) parts.push("append");
  return parts.join(",");
}

export class SftpRecorder {
  private readonly up = new Framer();
  private readonly down = new Framer();
  private readonly pending = new Map<number, Pending>();
  private readonly files = new Map<string, OpenFile>();
  private broken = false;

  constructor(private readonly emit: (op: SftpOperation) => void) {}

  /** Client → target bytes. False when the stream is not SFTP (the channel must close). */
  fromClient(data: Buffer): boolean {
    if (this.broken) return false;
    const packets = this.up.push(data);
    if (packets === null) return this.fail();
    try {
      for (const p of packets) this.request(p);
    } catch {
      return this.fail();
    }
    return true;
  }

  /** Target → client bytes. */
  fromServer(data: Buffer): boolean {
    if (this.broken) return false;
    const packets = this.down.push(data);
    if (packets === null) return this.fail();
    try {
      for (const p of packets) this.response(p);
    } catch {
      return this.fail();
    }
    return true;
  }

  /** The channel closed: files still open are reported with what moved so far. */
  finish(): void {
    for (const f of this.files.values()) this.summarise(f);
    this.files.clear();
    this.pending.clear();
  }

  private fail(): false {
    this.broken = true;
    return false;
  }

  private request(p: Buffer): void {
    const r = new Reader(p);
    const type = r.byte();
    if (type === T.INIT) return;
    const id = r.u32();
    switch (type) {
      case T.OPEN: {
        const path = r.str();
        const pflags = r.u32();
        this.pending.set(id, { op: "open", path, mode: openMode(pflags) });
        return;
      }
      case T.CLOSE:
        this.pending.set(id, { op: "close", handle: r.bytes().toString("hex") });
        return;
      case T.READ:
        this.pending.set(id, { op: "read", handle: r.bytes().toString("hex") });
        return;
      case T.WRITE: {
        const handle = r.bytes().toString("hex");
        r.u64();
        this.pending.set(id, { op: "write", handle, bytes: r.skipString() });
        return;
      }
      case T.OPENDIR:
        this.pending.set(id, { op: "list", path: r.str() });
        return;
      case T.SETSTAT:
        this.pending.set(id, { op: "setstat", path: r.str() });
        return;
      case T.REMOVE:
        this.pending.set(id, { op: "remove", path: r.str() });
        return;
      case T.MKDIR:
        this.pending.set(id, { op: "mkdir", path: r.str() });
        return;
      case T.RMDIR:
        this.pending.set(id, { op: "rmdir", path: r.str() });
        return;
      case T.RENAME: {
        const path = r.str();
        this.pending.set(id, { op: "rename", path, to: r.str() });
        return;
      }
      case T.SYMLINK: {
        // OpenSSH sends (target, link) in the reverse of the draft's order; both are kept.
        const path = r.str();
        this.pending.set(id, { op: "symlink", path, to: r.str() });
        return;
      }
      case T.EXTENDED: {
        const name = r.str();
        if (name === "posix-rename@openssh.com") {
          const path = r.str();
          this.pending.set(id, { op: "rename", path, to: r.str() });
        } else if (name === "hardlink@openssh.com") {
          const path = r.str();
          this.pending.set(id, { op: "link", path, to: r.str() });
        } else if (name === "lsetstat@openssh.com") {
          this.pending.set(id, { op: "setstat", path: r.str() });
        }
        return;
      }
      default:
        return; // stat, realpath, readdir...: metadata reads, not recorded
    }
  }

  private response(p: Buffer): void {
    const r = new Reader(p);
    const type = r.byte();
    if (type === T.VERSION) return;
    const id = r.u32();
    const req = this.pending.get(id);
    if (!req) return;
    this.pending.delete(id);
    switch (type) {
      case T.HANDLE: {
        const handle = r.bytes().toString("hex");
        if (req.op === "open") {
          this.files.set(handle, { path: req.path!, read: 0, written: 0 });
          this.emit({ op: "open", path: req.path!, mode: req.mode!, ok: true });
        } else if (req.op === "list") {
          this.emit({ op: "list", path: req.path!, ok: true });
        }
        return;
      }
      case T.DATA: {
        if (req.op === "read") {
          const f = this.files.get(req.handle!);
          if (f) f.read += r.skipString();
        }
        return;
      }
      case T.STATUS: {
        const code = r.u32();
        let msg = "";
        try {
          msg = r.str();
        } catch {
          // version 3 servers may omit the message
        }
        const ok = code === 0;
        switch (req.op) {
          case "read":
            return; // EOF (code 1) ends a read loop; nothing to record
          case "write": {
            const f = this.files.get(req.handle!);
            if (f && ok) f.written += req.bytes ?? 0;
            return;
          }
          case "close": {
            const f = this.files.get(req.handle!);
            if (f) {
              this.files.delete(req.handle!);
              this.summarise(f);
            }
            return;
          }
          default: {
            const e: SftpOperation = { op: req.op as SftpOperation["op"], path: req.path!, ok };
            if (req.to !== undefined) e.to = req.to;
            if (req.mode !== undefined) e.mode = req.mode;
            if (!ok) e.error = msg || `status ${code}`;
            this.emit(e);
          }
        }
        return;
      }
      default:
        return;
    }
  }

  private summarise(f: OpenFile): void {
    if (f.read > 0) this.emit({ op: "read", path: f.path, bytes: f.read, ok: true });
    if (f.written > 0) this.emit({ op: "write", path: f.path, bytes: f.written, ok: true });
  }
}
