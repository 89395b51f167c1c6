import { describe, expect, it } from "vitest";
import { StartupCode } from "../../../src/protocols/postgres/codes.js";
import {
  FramingError,
  MessageFramer,
  STARTUP_TYPE,
  isStartupCode,
} from "../../../src/protocols/postgres/framing.js";
import {
  cancelRequest,
  cstr,
  sslRequest,
  startupMessage,
  typed,
} from "../../../src/protocols/postgres/wire.js";

interface Got {
  type: number;
  bytes: Buffer;
}

/** Feeds `chunks` and returns every message as a copy of its bytes (header included). */
function feed(framer: MessageFramer, chunks: Buffer[]): Got[] {
  const out: Got[] = [];
  for (const c of chunks) {
    framer.push(c, (type, buf, start, end) => {
      out.push({ type, bytes: Buffer.from(buf.subarray(start, end)) });
    });
  }
  return out;
}

function framingError(fn: () => void): FramingError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(FramingError);
    return err as FramingError;
  }
  throw new Error("expected a FramingError, nothing was thrown");
}

const Q = 0x51;
const query = (sql: string) => typed(Q, cstr(sql));
const sync = () => typed(0x53, Buffer.alloc(0));
const parse = (name: string, sql: string) =>
  typed(0x50, Buffer.concat([cstr(name), cstr(sql), Buffer.from([0, 0])]));

/** A header claiming `length` for a message of `type`, with no body. */
function header(type: number, length: number): Buffer {
  const b = Buffer.alloc(5);
  b[0] = type;
  b.writeInt32BE(length | 0, 1);
  return b;
}

describe("MessageFramer, typed messages", () => {
  const msgs = [query("select 1"), parse("s1", "select $1::int"), sync(), query("")];
  const stream = Buffer.concat(msgs);

  it("returns several messages from one chunk, each as its exact bytes", () => {
    const got = feed(new MessageFramer(1 << 20), [stream]);
    expect(got.map((g) => g.type)).toEqual([Q, 0x50, 0x53, Q]);
    got.forEach((g, i) => expect(g.bytes.equals(msgs[i]!)).toBe(true));
  });

  it("reassembles messages split into two chunks at every byte boundary", () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      const framer = new MessageFramer(1 << 20);
      const got = feed(framer, [stream.subarray(0, cut), stream.subarray(cut)]);
      expect(
        got.map((g) => g.bytes.toString("hex")),
        `cut at ${cut}`,
      ).toEqual(msgs.map((m) => m.toString("hex")));
      expect(framer.buffered).toBe(0);
    }
  });

  it("reassembles a stream fed one byte at a time, and three-way splits at every pair of boundaries", () => {
    const one = feed(
      new MessageFramer(1 << 20),
      [...stream].map((b) => Buffer.from([b])),
    );
    expect(Buffer.concat(one.map((g) => g.bytes)).equals(stream)).toBe(true);
    expect(one).toHaveLength(msgs.length);

    for (let a = 0; a <= stream.length; a += 3) {
      for (let b = a; b <= stream.length; b += 2) {
        const got = feed(new MessageFramer(1 << 20), [
          stream.subarray(0, a),
          stream.subarray(a, b),
          stream.subarray(b),
        ]);
        expect(Buffer.concat(got.map((g) => g.bytes)).equals(stream), `cuts ${a},${b}`).toBe(true);
        expect(got).toHaveLength(msgs.length);
      }
    }
  });

  it("keeps an incomplete tail buffered until its rest arrives", () => {
    const framer = new MessageFramer(1 << 20);
    const m = query("select 42");
    expect(feed(framer, [m.subarray(0, 7)])).toEqual([]);
    expect(framer.buffered).toBe(7);
    const got = feed(framer, [m.subarray(7)]);
    expect(got).toHaveLength(1);
    expect(got[0]!.bytes.equals(m)).toBe(true);
    expect(framer.buffered).toBe(0);
  });

  it("accepts a message with an empty body (length 4)", () => {
    const got = feed(new MessageFramer(1 << 20), [sync()]);
    expect(got).toEqual([{ type: 0x53, bytes: Buffer.from([0x53, 0, 0, 0, 4]) }]);
  });

  it("stops when the callback returns false and goes on from the same place on an empty push", () => {
    const framer = new MessageFramer(1 << 20);
    const seen: number[] = [];
    framer.push(stream, (type) => {
      seen.push(type);
      return false;
    });
    expect(seen).toEqual([Q]);
    expect(framer.buffered).toBe(stream.length - msgs[0]!.length);
    framer.push(Buffer.alloc(0), (type) => {
      seen.push(type);
    });
    expect(seen).toEqual([Q, 0x50, 0x53, Q]);
    expect(framer.buffered).toBe(0);
  });

  it("drain hands back the buffered bytes and forgets them", () => {
    const framer = new MessageFramer(1 << 20);
    const m = query("select 1");
    feed(framer, [m.subarray(0, 3)]);
    expect(framer.drain()?.equals(m.subarray(0, 3))).toBe(true);
    expect(framer.buffered).toBe(0);
    expect(framer.drain()).toBeNull();
  });

  it("accepts a message exactly at the limit and refuses one byte over as too_large, from the header alone", () => {
    const limit = 1024;
    const atLimit = typed(Q, Buffer.alloc(limit - 4, 0x61));
    expect(feed(new MessageFramer(limit), [atLimit])).toHaveLength(1);

    const err = framingError(() => feed(new MessageFramer(limit), [header(Q, limit + 1)]));
    expect(err.kind).toBe("too_large");
    expect(err.message).toContain(String(limit + 1));
    expect(err.message).toContain(String(limit));
  });

  it("refuses a huge length (0x7fffffff) as too_large without waiting for the body", () => {
    const err = framingError(() =>
      feed(new MessageFramer(64 * 1024 * 1024), [header(Q, 0x7fffffff)]),
    );
    expect(err.kind).toBe("too_large");
  });

  it("refuses lengths below 4, and negative ones, as malformed", () => {
    for (const len of [0, 1, 3, -1, -0x80000000]) {
      const err = framingError(() => feed(new MessageFramer(1 << 20), [header(Q, len)]));
      expect(err.kind, `length ${len}`).toBe("malformed");
    }
  });

  it("finds a bad length in a message that follows good ones in the same chunk", () => {
    const seen: number[] = [];
    const err = framingError(() =>
      new MessageFramer(1 << 20).push(Buffer.concat([sync(), header(Q, 2)]), (t) => {
        seen.push(t);
      }),
    );
    expect(seen).toEqual([0x53]);
    expect(err.kind).toBe("malformed");
  });

  it("waits for a whole header before judging a length", () => {
    const framer = new MessageFramer(1024);
    const h = header(Q, 0x7fffffff);
    // Four of the five header bytes: not enough to read the length yet.
    expect(feed(framer, [h.subarray(0, 4)])).toEqual([]);
    const err = framingError(() => feed(framer, [h.subarray(4)]));
    expect(err.kind).toBe("too_large");
  });
});

describe("MessageFramer, startup mode", () => {
  it("returns one untyped startup message, then frames typed messages", () => {
    const framer = new MessageFramer(1 << 20, { startup: true });
    const s = startupMessage({ user: "u", database: "d" });
    const q = query("select 1");
    const got = feed(framer, [Buffer.concat([s, q])]);
    expect(got).toHaveLength(2);
    expect(got[0]!.type).toBe(STARTUP_TYPE);
    expect(got[0]!.bytes.equals(s)).toBe(true);
    expect(got[1]!.type).toBe(Q);
    expect(got[1]!.bytes.equals(q)).toBe(true);
  });

  it("splits a startup packet at every byte boundary", () => {
    const s = startupMessage({ user: "someone", database: "somewhere", application_name: "t" });
    const q = query("select 1");
    const stream = Buffer.concat([s, q]);
    for (let cut = 0; cut <= stream.length; cut++) {
      const got = feed(new MessageFramer(1 << 20, { startup: true }), [
        stream.subarray(0, cut),
        stream.subarray(cut),
      ]);
      expect(
        got.map((g) => [g.type, g.bytes.toString("hex")]),
        `cut at ${cut}`,
      ).toEqual([
        [STARTUP_TYPE, s.toString("hex")],
        [Q, q.toString("hex")],
      ]);
    }
  });

  it("after an SSLRequest the caller can ask for another untyped message", () => {
    const framer = new MessageFramer(1 << 20, { startup: true });
    const s = startupMessage({ user: "u" });
    const got: Got[] = [];
    framer.push(Buffer.concat([sslRequest(), s]), (type, buf, start, end) => {
      got.push({ type, bytes: Buffer.from(buf.subarray(start, end)) });
      if (buf.readInt32BE(start + 4) === StartupCode.sslRequest) framer.expectStartup(true);
    });
    expect(got.map((g) => g.type)).toEqual([STARTUP_TYPE, STARTUP_TYPE]);
    expect(got[1]!.bytes.equals(s)).toBe(true);
  });

  it("refuses a startup length over maxStartupBytes as too_large, before the body arrives", () => {
    const b = Buffer.alloc(8);
    b.writeInt32BE(0x7fffffff, 0);
    b.writeInt32BE(StartupCode.protocol3, 4);
    const err = framingError(() =>
      feed(new MessageFramer(1 << 20, { startup: true, maxStartupBytes: 10_000 }), [
        b.subarray(0, 4),
      ]),
    );
    expect(err.kind).toBe("too_large");

    const atMax = Buffer.alloc(100);
    atMax.writeInt32BE(100, 0);
    atMax.writeInt32BE(StartupCode.protocol3, 4);
    expect(
      feed(new MessageFramer(1 << 20, { startup: true, maxStartupBytes: 100 }), [atMax]),
    ).toHaveLength(1);
    atMax.writeInt32BE(101, 0);
    expect(
      framingError(() =>
        feed(new MessageFramer(1 << 20, { startup: true, maxStartupBytes: 100 }), [atMax]),
      ).kind,
    ).toBe("too_large");
  });

  it("refuses startup lengths below 8, and negative ones, as malformed", () => {
    for (const len of [0, 4, 7, -1, -0x80000000]) {
      const b = Buffer.alloc(8);
      b.writeInt32BE(len, 0);
      const err = framingError(() => feed(new MessageFramer(1 << 20, { startup: true }), [b]));
      expect(err.kind, `length ${len}`).toBe("malformed");
    }
  });

  it("an HTTP request is not taken for a startup packet", () => {
    // "GET " read as a length is 0x47455420, far above any startup limit.
    const err = framingError(() =>
      feed(new MessageFramer(1 << 20, { startup: true }), [Buffer.from("GET / HTTP/1.1\r\n\r\n")]),
    );
    expect(err.kind).toBe("too_large");
  });

  it("frames a cancel request as a 16-byte untyped message", () => {
    const c = cancelRequest(1234, -5);
    const got = feed(new MessageFramer(1 << 20, { startup: true }), [c]);
    expect(got).toEqual([{ type: STARTUP_TYPE, bytes: c }]);
  });
});

describe("isStartupCode", () => {
  it("knows the four codes and nothing else", () => {
    for (const c of Object.values(StartupCode)) expect(isStartupCode(c)).toBe(true);
    expect(isStartupCode(0x00020000)).toBe(false);
    expect(isStartupCode(0)).toBe(false);
    expect(isStartupCode(196609)).toBe(false);
  });
});
