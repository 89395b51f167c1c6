/**
 * Bad input on the client side of a session, and garbage from a target: every bad connection
 * ends with an ErrorResponse the client can read (or a plain close where the protocol allows no
 * answer), the broker stays up, and a good session running alongside is not disturbed.
 *
 * Bytes go in two ways: through a tunnel's local port (what a PostgreSQL client sees), and
 * straight to the broker's tunnel WebSocket with a valid token (the tunnel is a dumb pipe, so
 * this is what any holder of a token can send).
 */
import { randomBytes } from "node:crypto";
import { get } from "node:https";
import { connect as netConnect, createServer, type Server, type Socket } from "node:net";
import pg from "pg";
import { WebSocket } from "ws";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { Broker } from "../../src/broker/broker.js";
import { createLogger } from "../../src/broker/logger.js";
import { brokerConfig } from "../../src/config/schema.js";
import { Backend, StartupCode } from "../../src/protocols/postgres/codes.js";
import {
  cancelRequest,
  cstr,
  sslRequest,
  startupMessage,
  typed,
} from "../../src/protocols/postgres/wire.js";
import { GROUP_DBA, startStack, tunnelUrl, type Stack } from "../helpers/stack.js";
import type { Tunnel } from "../../src/tunnel/tunnel.js";

// --- wire helpers ------------------------------------------------------------------------

const int32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n | 0);
  return b;
};
const query = (sql: string) => typed(0x51, cstr(sql));
const terminate = () => typed(0x58, Buffer.alloc(0));
const gssEncRequest = () => Buffer.concat([int32(8), int32(StartupCode.gssEncRequest)]);
/** A typed message header claiming `length`, without the body. */
const header = (type: number, length: number) =>
  Buffer.concat([Buffer.from([type]), int32(length)]);
const startup = (extra: Record<string, string> = {}) =>
  startupMessage({
    user: "whoever",
    database: "whatever",
    application_name: "bad-input",
    ...extra,
  });

interface Msg {
  type: string;
  body: Buffer;
}

/** Backend messages in `data`, after `answers` one-byte SSL/GSS answers. Incomplete tail ignored. */
function parse(data: Buffer, answers = 0): { answers: string; msgs: Msg[]; complete: boolean } {
  const a = data.subarray(0, answers).toString("latin1");
  const msgs: Msg[] = [];
  let pos = Math.min(answers, data.length);
  while (data.length - pos >= 5) {
    const len = data.readInt32BE(pos + 1);
    if (len < 4 || pos + 1 + len > data.length) break;
    msgs.push({
      type: String.fromCharCode(data[pos]!),
      body: data.subarray(pos + 5, pos + 1 + len),
    });
    pos += 1 + len;
  }
  return { answers: a, msgs, complete: pos === data.length };
}

function fields(m: Msg): Map<string, string> {
  const out = new Map<string, string>();
  let pos = 0;
  while (pos < m.body.length && m.body[pos] !== 0) {
    const nul = m.body.indexOf(0, pos + 1);
    out.set(String.fromCharCode(m.body[pos]!), m.body.toString("utf8", pos + 1, nul));
    pos = nul + 1;
  }
  return out;
}

const count = (msgs: Msg[], type: string) => msgs.filter((m) => m.type === type).length;

// --- raw connections ---------------------------------------------------------------------

/** A raw byte conversation with the broker, through a tunnel port or a tunnel WebSocket. */
interface Raw {
  send(b: Buffer): void;
  /** Closes our side (TCP FIN, or a WebSocket close). */
  end(): void;
  data(): Buffer;
  /** Resolves once `pred(data)` holds; rejects if the connection closes first. */
  until(pred: (d: Buffer) => boolean): Promise<void>;
  /** Resolves with everything received once the connection is closed (by either side). */
  closed: Promise<Buffer>;
}

function rawBase(): {
  raw: Omit<Raw, "send" | "end">;
  push(b: Buffer): void;
  close(): void;
} {
  let buf = Buffer.alloc(0);
  let isClosed = false;
  const waiters: { pred: (d: Buffer) => boolean; ok: () => void; fail: (e: Error) => void }[] = [];
  let resolveClosed!: (b: Buffer) => void;
  const closed = new Promise<Buffer>((r) => (resolveClosed = r));
  const check = () => {
    for (const w of [...waiters]) {
      if (w.pred(buf)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.ok();
      } else if (isClosed) {
        waiters.splice(waiters.indexOf(w), 1);
        w.fail(
          new Error(`connection closed first; got ${buf.length} bytes: ${buf.toString("latin1")}`),
        );
      }
    }
  };
  return {
    raw: {
      data: () => buf,
      until: (pred) =>
        new Promise<void>((ok, fail) => {
          waiters.push({ pred, ok, fail });
          check();
        }),
      closed,
    },
    push(b) {
      buf = Buffer.concat([buf, b]);
      check();
    },
    close() {
      if (isClosed) return;
      isClosed = true;
      check();
      resolveClosed(buf);
    },
  };
}

function viaTunnel(t: Tunnel): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const base = rawBase();
    const s: Socket = netConnect({ host: "127.0.0.1", port: t.address.port }, () =>
      resolve({
        ...base.raw,
        send: (b) => void s.write(b),
        end: () => void s.end(),
      }),
    );
    s.on("data", (c: Buffer) => base.push(c));
    // A write after the broker hung up fails with EPIPE/ECONNRESET; what arrived still counts.
    s.on("error", reject);
    s.on("close", () => base.close());
  });
}

let wsCa = "";

function viaWs(url: string, token: string): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const base = rawBase();
    const ws = new WebSocket(url, {
      headers: { authorization: `Bearer ${token}` },
      ca: wsCa,
      perMessageDeflate: false,
    });
    ws.on("unexpected-response", (_req, res) =>
      reject(new Error(`tunnel upgrade refused: HTTP ${res.statusCode}`)),
    );
    ws.on("error", (err) => {
      if (ws.readyState !== WebSocket.OPEN) reject(err);
    });
    ws.on("message", (d: Buffer, isBinary: boolean) => {
      if (isBinary) base.push(d);
    });
    ws.on("close", () => base.close());
    ws.on("open", () =>
      resolve({
        ...base.raw,
        send: (b) => {
          if (ws.readyState === WebSocket.OPEN) ws.send(b, { binary: true });
        },
        end: () => ws.close(1000),
      }),
    );
  });
}

/** True once `data` holds n complete messages of `type` (after `answers` one-byte answers). */
const hasN =
  (type: string, n: number, answers = 0) =>
  (d: Buffer): boolean =>
    count(parse(d, answers).msgs, type) >= n;

/** Asserts the conversation ended with exactly one FATAL gw ErrorResponse, last. */
function expectGwError(data: Buffer, codes: string[], answers = 0): Map<string, string> {
  const p = parse(data, answers);
  expect(p.complete, `trailing bytes in ${data.toString("latin1")}`).toBe(true);
  const last = p.msgs.at(-1);
  expect(last?.type, `messages: ${p.msgs.map((m) => m.type).join("")}`).toBe("E");
  expect(count(p.msgs, "E")).toBe(1);
  const f = fields(last!);
  expect(f.get("S")).toBe("FATAL");
  expect(codes).toContain(f.get("C"));
  expect(f.get("M")).toMatch(/^gw: /);
  return f;
}

// --- small PRNG, so a failing fuzz case can be replayed --------------------------------

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// --- fake targets ------------------------------------------------------------------------

async function fakeTarget(
  onSocket: (s: Socket) => void,
): Promise<{ server: Server; port: number; sockets: Set<Socket> }> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => undefined);
    onSocket(s);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { server, port: (server.address() as { port: number }).port, sockets };
}

// --- the suite ---------------------------------------------------------------------------

/** The main broker's message limit: small, so over-limit messages are cheap to send. */
const SMALL_LIMIT = 4096;
const MAX_STARTUP = 10_000;
const FUZZ_SEED = Number(process.env.GW_FUZZ_SEED ?? 20240611);

describe("bad input", () => {
  let stack: Stack;
  let tunnel: Tunnel;
  /** A second broker on the same store and targets, with the default limits. */
  let defaultBroker: Broker;
  let garbageSignin: Awaited<ReturnType<typeof fakeTarget>>;
  let badAuthCode: Awaited<ReturnType<typeof fakeTarget>>;
  let garbageRelay: Awaited<ReturnType<typeof fakeTarget>>;
  let resetAfterSignin: Awaited<ReturnType<typeof fakeTarget>>;
  /** Opened when the test says so: createSession waits for it on the gated broker. */
  let openGate: () => void = () => undefined;
  let gate: Promise<void> = Promise.resolve();
  const targetReset: { done: Promise<void>; resolve: () => void } = (() => {
    let resolve!: () => void;
    const done = new Promise<void>((r) => (resolve = r));
    return { done, resolve };
  })();

  // The good session: a pg client querying in a loop through the same broker the whole time.
  let good: pg.Client;
  let goodPid = 0;
  let goodCount = 0;
  const goodErrors: unknown[] = [];
  const goodPids = new Set<number>();
  let stopGood = false;
  let goodLoop: Promise<void>;

  const wsUrl = (b: { url: string }, connection = "db-test") =>
    `${b.url.replace("127.0.0.1", "localhost").replace(/^http/, "ws")}/v1/tunnel/${connection}`;
  const ws = (b: { url: string } = stack.broker) => viaWs(wsUrl(b), stack.tokens.dba);
  const transports: [string, () => Promise<Raw>][] = [
    ["tunnel port", () => viaTunnel(tunnel)],
    ["broker WebSocket", () => ws()],
  ];

  beforeAll(async () => {
    // Answers a startup packet with an HTTP error page.
    garbageSignin = await fakeTarget((s) =>
      s.once("data", () => s.end("HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")),
    );
    // Asks for an authentication method nobody has heard of.
    badAuthCode = await fakeTarget((s) =>
      s.once("data", () => s.write(Buffer.concat([Buffer.from("R"), int32(8), int32(99)]))),
    );
    // Signs in fine, then answers any query with a message of impossible length.
    garbageRelay = await fakeTarget((s) => {
      s.once("data", () => {
        s.write(
          Buffer.concat([
            typed(Backend.authentication, int32(0)),
            typed(Backend.readyForQuery, Buffer.from("I")),
          ]),
        );
        s.on("data", () => s.write(Buffer.concat([Buffer.from("D"), int32(2)])));
      });
    });

    // Signs in fine, then resets the connection (RST) a moment later.
    resetAfterSignin = await fakeTarget((s) => {
      s.once("data", () => {
        s.write(
          Buffer.concat([
            typed(Backend.authentication, int32(0)),
            typed(Backend.readyForQuery, Buffer.from("I")),
          ]),
        );
        // Ordering only (the broker reads the sign-in before the reset), nothing is timed.
        setTimeout(() => {
          s.resetAndDestroy();
          targetReset.resolve();
        }, 50);
      });
    });

    stack = await startStack({
      mutate: (raw) => {
        raw.limits = { maxMessageBytes: SMALL_LIMIT, maxStartupBytes: MAX_STARTUP };
        const base = (raw.connections as Record<string, { target: Record<string, unknown> }>)[
          "db-test"
        ]!.target;
        const fake = (port: number) => ({
          type: "postgres",
          target: { ...base, port, tls: "disable", connectTimeout: 30 },
          allow: [`group:${GROUP_DBA}`],
        });
        Object.assign(raw.connections as object, {
          "garbage-signin": fake(garbageSignin.port),
          "bad-auth-code": fake(badAuthCode.port),
          "garbage-relay": fake(garbageRelay.port),
          "reset-after-signin": fake(resetAfterSignin.port),
        });
      },
    });
    wsCa = stack.ca.caPem;
    const defaults = brokerConfig.shape.limits.parse(undefined);
    expect(defaults.maxMessageBytes).toBeGreaterThan(SMALL_LIMIT);
    const defaultLogs: string[] = [];
    defaultBroker = await Broker.start({
      // A second broker on the same store: the first one's sessions are not orphans.
      recoverOrphans: false,
      config: { ...stack.config, limits: defaults },
      store: stack.store,
      listen: { host: "127.0.0.1", port: 0 },
      logger: createLogger({ level: "debug", write: (l) => defaultLogs.push(l) }),
    });
    tunnel = await stack.openTunnel(stack.tokens.dba);

    good = new pg.Client({ connectionString: tunnelUrl(tunnel) });
    await good.connect();
    goodPid = (await good.query<{ pid: number }>("select pg_backend_pid() as pid")).rows[0]!.pid;
    goodLoop = (async () => {
      while (!stopGood) {
        try {
          const n = goodCount;
          const r = await good.query<{ pid: number; n: number }>(
            "select pg_backend_pid() as pid, $1::int as n",
            [n],
          );
          goodPids.add(r.rows[0]!.pid);
          if (r.rows[0]!.n !== n) goodErrors.push(new Error(`asked for ${n}, got ${r.rows[0]!.n}`));
          goodCount++;
        } catch (err) {
          goodErrors.push(err);
          return;
        }
        // Leave the CPU to the tests; the loop only has to be running alongside them.
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
  });

  afterEach(async () => {
    // Whatever the test did, the good session answers, on the same backend.
    const r = await good.query<{ pid: number }>("select pg_backend_pid() as pid");
    expect(r.rows[0]!.pid).toBe(goodPid);
    expect(goodErrors).toEqual([]);
  });

  afterAll(async () => {
    stopGood = true;
    await goodLoop;
    await good?.end().catch(() => undefined);
    await defaultBroker?.close();
    await stack?.stop();
    for (const f of [garbageSignin, badAuthCode, garbageRelay, resetAfterSignin]) {
      if (!f) continue;
      for (const s of f.sockets) s.destroy();
      await new Promise<void>((r) => f.server.close(() => r()));
    }
  });

  async function healthy(b: Broker = stack.broker): Promise<void> {
    const status = await new Promise<number>((resolve, reject) => {
      get(`${b.url.replace("127.0.0.1", "localhost")}/healthz`, { ca: stack.ca.caPem }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      }).on("error", reject);
    });
    expect(status).toBe(200);
  }

  /** Sends a startup packet and waits for the broker's hello (ending with ReadyForQuery). */
  async function signIn(r: Raw): Promise<void> {
    r.send(startup());
    await r.until(hasN("Z", 1));
    const hello = parse(r.data()).msgs.map((m) => m.type);
    expect(hello[0]).toBe("R");
    expect(hello.at(-1)).toBe("Z");
  }

  for (const [via, open] of transports) {
    describe(`via the ${via}`, () => {
      it("random bytes: an ErrorResponse for a non-startup packet", async () => {
        const rnd = prng(FUZZ_SEED);
        for (let i = 0; i < 8; i++) {
          const bytes = Buffer.from(Array.from({ length: 4000 }, () => Math.floor(rnd() * 256)));
          // Mostly huge lengths; a plausible one half the time, so the "not a startup packet" path runs too.
          if (i % 2 === 1) bytes.writeInt32BE(8 + Math.floor(rnd() * 3000), 0);
          const r = await open();
          r.send(bytes);
          const data = await r.closed;
          const len = bytes.readInt32BE(0);
          const code = bytes.readInt32BE(4);
          expect(Object.values(StartupCode)).not.toContain(code);
          const expected = len > MAX_STARTUP ? "54000" : "08P01";
          const f = expectGwError(data, [expected]);
          if (len >= 8 && len <= MAX_STARTUP)
            expect(f.get("M")).toMatch(/not a PostgreSQL startup packet/);
        }
      });

      it("a startup packet with a huge length prefix (0x7fffffff): 54000, at once", async () => {
        const r = await open();
        // Only the length and the protocol code: the broker must not wait for 2 GiB to arrive.
        r.send(Buffer.concat([int32(0x7fffffff), int32(StartupCode.protocol3)]));
        const f = expectGwError(await r.closed, ["54000"]);
        expect(f.get("M")).toContain("2147483647");
      });

      it("a negative startup length: 08P01", async () => {
        const r = await open();
        r.send(Buffer.concat([int32(-8), int32(StartupCode.protocol3)]));
        expectGwError(await r.closed, ["08P01"]);
      });

      it("a truncated startup packet, then close: a clean close, nothing sent back", async () => {
        const r = await open();
        r.send(startup().subarray(0, 20));
        r.end();
        expect((await r.closed).length).toBe(0);
      });

      it("a startup packet whose parameters are not terminated: 08P01 malformed startup", async () => {
        const r = await open();
        const body = Buffer.concat([int32(StartupCode.protocol3), Buffer.from("user\0x")]);
        r.send(Buffer.concat([int32(body.length + 4), body]));
        const f = expectGwError(await r.closed, ["08P01"]);
        expect(f.get("M")).toMatch(/malformed startup packet/);
      });

      it("protocol 2.0: 08P01, says gw speaks 3.0", async () => {
        const r = await open();
        r.send(Buffer.concat([int32(8), int32(0x00020000)]));
        const f = expectGwError(await r.closed, ["08P01"]);
        expect(f.get("M")).toMatch(/unsupported frontend protocol 2\.0/);
      });

      it("an HTTP request: an ErrorResponse, not a hang", async () => {
        const r = await open();
        r.send(Buffer.from("GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"));
        expectGwError(await r.closed, ["54000", "08P01"]);
      });

      it("a cancel request with an unknown key: closed without an answer, like PostgreSQL", async () => {
        const r = await open();
        r.send(cancelRequest(12345, 67890));
        expect((await r.closed).length).toBe(0);
      });

      it("GSSENCRequest, then SSLRequest, then startup: both refused with N, then the session works", async () => {
        const r = await open();
        r.send(gssEncRequest());
        await r.until((d) => d.length >= 1);
        r.send(sslRequest());
        await r.until((d) => d.length >= 2);
        expect(r.data().subarray(0, 2).toString("latin1")).toBe("NN");
        r.send(startup());
        await r.until(hasN("Z", 1, 2));
        r.send(query("select 40 + 2 as answer"));
        await r.until(hasN("Z", 2, 2));
        const msgs = parse(r.data(), 2).msgs;
        expect(msgs.map((m) => m.type).join("")).toMatch(/^RS+KZTDCZ$/);
        const row = msgs.find((m) => m.type === "D")!;
        // DataRow: int16 column count, int32 length, value.
        expect(row.body.toString("utf8", 6)).toBe("42");
        r.send(terminate());
        await r.closed;
      });

      it("all of GSSENCRequest, SSLRequest and startup in one write also work", async () => {
        const r = await open();
        r.send(Buffer.concat([gssEncRequest(), sslRequest(), startup()]));
        await r.until(hasN("Z", 1, 2));
        expect(parse(r.data(), 2).answers).toBe("NN");
        r.end();
        await r.closed;
      });

      it("a query sent in the same write as the startup packet runs exactly once", async () => {
        const r = await open();
        r.send(Buffer.concat([startup(), query("select 'pipelined'")]));
        await r.until(hasN("Z", 2));
        // A marker query: everything the first one caused has arrived before its answer.
        r.send(query("select 'marker'"));
        await r.until(hasN("Z", 3));
        const msgs = parse(r.data()).msgs;
        const rows = msgs.filter((m) => m.type === "D").map((m) => m.body.toString("utf8", 6));
        expect(rows).toEqual(["pipelined", "marker"]);
        expect(count(msgs, "C")).toBe(2);
        expect(count(msgs, "E")).toBe(0);
        r.end();
        await r.closed;
      });

      it("replication=database: refused with 0A000", async () => {
        const r = await open();
        r.send(startup({ replication: "database" }));
        const f = expectGwError(await r.closed, ["0A000"]);
        expect(f.get("M")).toMatch(/replication/);
      });

      it("replication=true: refused with 0A000; replication=false is fine", async () => {
        const r = await open();
        r.send(startup({ replication: "true" }));
        expectGwError(await r.closed, ["0A000"]);
        const ok = await open();
        ok.send(startup({ replication: "false" }));
        await ok.until(hasN("Z", 1));
        ok.end();
        await ok.closed;
      });

      it("a typed message over the broker's limit: 54000, from the header alone", async () => {
        const r = await open();
        await signIn(r);
        r.send(header(0x51, SMALL_LIMIT + 1));
        const f = expectGwError(await r.closed, ["54000"]);
        expect(f.get("M")).toContain(String(SMALL_LIMIT));
      });

      it("a typed message with length 0x7fffffff: 54000", async () => {
        const r = await open();
        await signIn(r);
        r.send(header(0x51, 0x7fffffff));
        expectGwError(await r.closed, ["54000"]);
      });

      it("a typed message with a length below 4: 08P01", async () => {
        const r = await open();
        await signIn(r);
        r.send(header(0x51, 3));
        expectGwError(await r.closed, ["08P01"]);
      });

      it("a whole message of the limit's size still goes through", async () => {
        const r = await open();
        await signIn(r);
        // Type, length, text, NUL: the length field says exactly SMALL_LIMIT.
        const sql = `select '${"x".repeat(SMALL_LIMIT - 5 - "select '' as big".length)}' as big`;
        const q = query(sql);
        expect(q.length).toBe(SMALL_LIMIT + 1);
        r.send(q);
        await r.until(hasN("Z", 2));
        expect(count(parse(r.data()).msgs, "E")).toBe(0);
        r.end();
        await r.closed;
      });

      it("an unknown message type: 08P01", async () => {
        const r = await open();
        await signIn(r);
        r.send(typed(0x7a, Buffer.from("zzz")));
        const f = expectGwError(await r.closed, ["08P01"]);
        expect(f.get("M")).toMatch(/unknown message type 0x7a/);
      });

      it("a Query without its NUL terminator: 08P01", async () => {
        const r = await open();
        await signIn(r);
        r.send(typed(0x51, Buffer.from("select 1")));
        const f = expectGwError(await r.closed, ["08P01"]);
        expect(f.get("M")).toMatch(/malformed message/);
      });

      it("a Parse without its terminators: 08P01", async () => {
        const r = await open();
        await signIn(r);
        r.send(typed(0x50, Buffer.from("stmt\0select 1")));
        expectGwError(await r.closed, ["08P01"]);
      });

      it("a password message after startup: 08P01", async () => {
        const r = await open();
        await signIn(r);
        r.send(typed(0x70, cstr("hunter2")));
        const f = expectGwError(await r.closed, ["08P01"]);
        expect(f.get("M")).toMatch(/unexpected password message/);
      });

      it("a valid query and a bad message in one write: one error ends it, nothing after", async () => {
        const r = await open();
        await signIn(r);
        // Whether the query runs first or not, the error comes last and nothing follows.
        r.send(Buffer.concat([query("select 1"), typed(0x7a, Buffer.alloc(0))]));
        const data = await r.closed;
        const types = parse(data)
          .msgs.map((m) => m.type)
          .join("");
        expect(types).toMatch(/Z(TDCZ)?E$/);
        expectGwError(data, ["08P01"]);
      });
    });
  }

  describe("limits", () => {
    it("with the default limit, a message over 64 MiB is refused from its header: 54000", async () => {
      const limit = brokerConfig.shape.limits.parse(undefined).maxMessageBytes;
      const r = await ws(defaultBroker);
      await signIn(r);
      r.send(header(0x51, limit + 1));
      const f = expectGwError(await r.closed, ["54000"]);
      expect(f.get("M")).toContain(String(limit));
      await healthy(defaultBroker);
    });

    it("the default limit lets the small broker's over-limit message through", async () => {
      const r = await ws(defaultBroker);
      await signIn(r);
      const sql = `select length('${"y".repeat(SMALL_LIMIT * 2)}') as n`;
      r.send(query(sql));
      await r.until(hasN("Z", 2));
      const msgs = parse(r.data()).msgs;
      expect(count(msgs, "E")).toBe(0);
      expect(msgs.find((m) => m.type === "D")!.body.toString("utf8", 6)).toBe(
        String(SMALL_LIMIT * 2),
      );
      r.end();
      await r.closed;
    });

    it("the limit is on the client's messages: a result row bigger than it comes back", async () => {
      const c = new pg.Client({ connectionString: tunnelUrl(tunnel) });
      await c.connect();
      try {
        const r = await c.query<{ s: string }>("select repeat('z', $1::int) as s", [
          SMALL_LIMIT * 4,
        ]);
        expect(r.rows[0]!.s.length).toBe(SMALL_LIMIT * 4);
      } finally {
        await c.end();
      }
    });

    it("many small messages in one write bigger than the limit go through the tunnel", async () => {
      const r = await viaTunnel(tunnel);
      await signIn(r);
      const n = 2000;
      const batch = Buffer.concat(Array.from({ length: n }, (_, i) => query(`select ${i}`)));
      expect(batch.length).toBeGreaterThan(SMALL_LIMIT * 4);
      r.send(batch);
      await r.until(hasN("Z", n + 1));
      const msgs = parse(r.data()).msgs;
      expect(count(msgs, "C")).toBe(n);
      expect(count(msgs, "E")).toBe(0);
      r.end();
      await r.closed;
    });
  });

  describe("garbage from the target", () => {
    async function connectError(connection: string): Promise<{ code?: string; message: string }> {
      const t = await stack.openTunnel(stack.tokens.dba, connection);
      const c = new pg.Client({ connectionString: tunnelUrl(t) });
      c.on("error", () => undefined);
      try {
        await c.connect();
      } catch (err) {
        return err as { code?: string; message: string };
      } finally {
        await c.end().catch(() => undefined);
      }
      throw new Error("connect should have failed");
    }

    it("a target that answers the startup packet with an HTTP page: 08P01, not a hang", async () => {
      const err = await connectError("garbage-signin");
      expect(err.code).toBe("08P01");
      expect(err.message).toMatch(/^gw: /);
      expect(err.message).toContain("garbage-signin");
    });

    it("a target asking for an unknown authentication method: 0A000", async () => {
      const err = await connectError("bad-auth-code");
      expect(err.code).toBe("0A000");
      expect(err.message).toMatch(/^gw: .*bad-auth-code.*code 99/);
    });

    it("a target that sends a malformed message mid-session: the query fails with 08P01", async () => {
      const t = await stack.openTunnel(stack.tokens.dba, "garbage-relay");
      const c = new pg.Client({ connectionString: tunnelUrl(t) });
      c.on("error", () => undefined);
      await c.connect();
      const err = await c.query("select 1").then(
        () => {
          throw new Error("the query should have failed");
        },
        (e: unknown) => e as { code?: string; message: string },
      );
      await c.end().catch(() => undefined);
      expect(err.code).toBe("08P01");
      expect(err.message).toMatch(/^gw: the target sent a malformed message/);
    });
  });

  describe("a target lost while the session start is being recorded", () => {
    it("a reset between sign-in and the store's answer: an ErrorResponse, and the broker survives", async () => {
      // A broker whose store answers createSession only when the test opens the gate: the
      // target session is signed in and waits, listener-less, for the recording to start.
      gate = new Promise<void>((r) => (openGate = r));
      const store = stack.store;
      const gated = new Proxy(store, {
        get(target, prop) {
          if (prop === "createSession")
            return async (rec: Parameters<typeof store.createSession>[0]) => {
              await gate;
              return target.createSession(rec);
            };
          const v = Reflect.get(target, prop, target) as unknown;
          return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
      const gatedBroker = await Broker.start({
        // A second broker on the same store: the first one's sessions are not orphans.
        recoverOrphans: false,
        config: stack.config,
        store: gated,
        listen: { host: "127.0.0.1", port: 0 },
        logger: createLogger({ level: "debug", write: () => undefined }),
      });
      try {
        const r = await viaWs(wsUrl(gatedBroker, "reset-after-signin"), stack.tokens.dba);
        r.send(startup());
        await targetReset.done;
        // Let the broker's side of the connection see the reset before the store answers.
        await new Promise((res) => setTimeout(res, 50));
        openGate();
        const f = expectGwError(await r.closed, ["08006"]);
        expect(f.get("M")).toMatch(/reset-after-signin/);
        await healthy(gatedBroker);
      } finally {
        openGate();
        await gatedBroker.close();
      }
    });
  });

  describe("fuzzing", () => {
    it("200 mutations of a valid conversation: the broker survives and a fresh session works", async () => {
      const rnd = prng(FUZZ_SEED);
      const int = (n: number) => Math.floor(rnd() * n);
      const valid = [
        startup(),
        query("select 1"),
        typed(0x50, Buffer.concat([cstr(""), cstr("select $1::int + 1"), Buffer.from([0, 0])])),
        typed(
          0x42,
          Buffer.concat([
            cstr(""),
            cstr(""),
            Buffer.from([0, 0, 0, 1]),
            int32(1),
            Buffer.from("7"),
            Buffer.from([0, 0]),
          ]),
        ),
        typed(0x44, Buffer.concat([Buffer.from("P"), cstr("")])),
        typed(0x45, Buffer.concat([cstr(""), int32(0)])),
        typed(0x53, Buffer.alloc(0)),
        query("select 'a' || 'b'; select 2"),
      ];
      // Message boundaries in the valid stream, for length edits.
      const starts: number[] = [];
      let off = 0;
      for (const m of valid) {
        starts.push(off);
        off += m.length;
      }

      const mutate = (): Buffer => {
        const b = Buffer.from(Buffer.concat(valid));
        const edits = 1 + int(4);
        let out = b;
        for (let e = 0; e < edits; e++) {
          if (out.length === 0) break;
          const at = int(out.length);
          switch (int(5)) {
            case 0: // flip a bit
              out[at] = out[at]! ^ (1 << int(8));
              break;
            case 1: // a random byte
              out[at] = int(256);
              break;
            case 2: {
              // a length field set to something else
              const i = int(starts.length);
              const lenAt = i === 0 ? 0 : starts[i]! + 1;
              if (lenAt + 4 <= out.length) {
                const choices = [
                  0,
                  3,
                  4,
                  7,
                  8,
                  0x7fffffff,
                  -1,
                  int(SMALL_LIMIT * 2),
                  out.readInt32BE(lenAt) + int(9) - 4,
                ];
                out.writeInt32BE(choices[int(choices.length)]! | 0, lenAt);
              }
              break;
            }
            case 3: // truncated
              out = out.subarray(0, at);
              break;
            default: {
              // random bytes inserted
              out = Buffer.concat([
                out.subarray(0, at),
                randomBytes(1 + int(16)),
                out.subarray(at),
              ]);
            }
          }
        }
        return out;
      };

      // After the mutated bytes, zeros: they complete any message the broker still waits for
      // (at most a startup packet plus a whole message of the limit), then read as a message
      // of length 0, which ends the session. So every case ends without us timing anything.
      const zeros = Buffer.alloc(MAX_STARTUP + SMALL_LIMIT + 16);

      // How far each case got: refused before a session existed, or signed in and then ended.
      const outcomes = { refusedAtStartup: 0, signedIn: 0, endedWithError: 0, closedQuietly: 0 };
      for (let i = 0; i < 200; i++) {
        const bytes = mutate();
        const r = await ws();
        // In random pieces, as frames of a WebSocket.
        let pos = 0;
        while (pos < bytes.length) {
          const n = 1 + int(Math.min(2048, bytes.length - pos));
          r.send(bytes.subarray(pos, pos + n));
          pos += n;
        }
        for (let z = 0; z < zeros.length; z += 2048) r.send(zeros.subarray(z, z + 2048));
        const data = await r.closed;
        let answers = 0;
        while (data[answers] === 0x4e /* N */ && answers < 2) answers++;
        const p = parse(data, answers);
        const types = p.msgs.map((m) => m.type);
        if (types.includes("Z")) outcomes.signedIn++;
        else outcomes.refusedAtStartup++;
        const last = p.msgs.at(-1);
        if (last?.type === "E") {
          outcomes.endedWithError++;
          const f = fields(last);
          // The last word is gw's, and never an internal broker error.
          expect(f.get("M"), `case ${i}`).toMatch(/^gw: /);
          expect(f.get("C"), `case ${i}: ${f.get("M")}`).not.toBe("XX000");
        } else outcomes.closedQuietly++;
      }
      // Both phases were exercised: sessions refused at startup, and sessions that got as far
      // as relaying before the bad bytes reached the broker.
      expect(outcomes.refusedAtStartup).toBeGreaterThan(10);
      expect(outcomes.signedIn).toBeGreaterThan(10);
      // Only a Terminate or a cancel request (which get no answer) end a case without an error.
      expect(outcomes.endedWithError).toBeGreaterThan(150);

      await healthy();
      // No internal errors were logged, and the sessions are all gone (only the good one is left).
      expect(stack.logs.filter((l) => l.includes('"session failed"'))).toEqual([]);
      await vi.waitFor(() => expect(stack.broker.liveSessions).toBe(1), { timeout: 20_000 });

      // A fresh session works.
      const c = new pg.Client({ connectionString: tunnelUrl(tunnel) });
      await c.connect();
      expect((await c.query("select 1 as one")).rows).toEqual([{ one: 1 }]);
      await c.end();

      // And the target holds no sessions left behind by the fuzzing: only the good one.
      const admin = new pg.Client({ connectionString: stack.pg.url });
      await admin.connect();
      try {
        await vi.waitFor(
          async () => {
            const r = await admin.query<{ n: string }>(
              "select count(*) as n from pg_stat_activity where backend_type = 'client backend' and pid <> pg_backend_pid()",
            );
            expect(Number(r.rows[0]!.n)).toBe(1);
          },
          { timeout: 20_000, interval: 100 },
        );
      } finally {
        await admin.end();
      }
    });
  });

  describe("after all of it", () => {
    it("the broker is up and the good session ran every query on one backend", async () => {
      await healthy();
      stopGood = true;
      await goodLoop;
      expect(goodErrors).toEqual([]);
      expect(goodCount).toBeGreaterThan(0);
      expect([...goodPids]).toEqual([goodPid]);
      const r = await good.query<{ pid: number }>("select pg_backend_pid() as pid");
      expect(r.rows[0]!.pid).toBe(goodPid);
      expect(stack.logs.filter((l) => l.includes('"session failed"'))).toEqual([]);
    });
  });
});
