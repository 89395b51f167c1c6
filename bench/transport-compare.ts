/**
 * Why the tunnel speaks WebSocket: the two candidate transports, measured on loopback.
 *
 *   WebSocket over TLS  one TLS connection and one WebSocket per client TCP connection (gw).
 *   HTTP/2 over TLS     one TLS session per tunnel; every client TCP connection is a stream.
 *
 * For each: round-trip latency of small messages (a query and its answer), echo throughput
 * of 64 KiB chunks (bulk results), and the cost of opening a stream (connect-per-transaction
 * clients). The echo server runs in a child process, as the broker would, and CPU time is
 * counted at both ends: on a small machine CPU per message is what limits throughput.
 *
 * The two run interleaved for `--rounds` rounds (this machine's speed drifts); every figure is
 * the median over the rounds.
 *
 *   node dist/bench/transport-compare.js [--round-trips 20000] [--megabytes 256] [--opens 500]
 *                                        [--rounds 3]
 */
import { fork } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { Agent as HttpsAgent, createServer as createHttpsServer } from "node:https";
import {
  connect as h2connect,
  createSecureServer,
  type ClientHttp2Session,
  type ServerHttp2Stream,
} from "node:http2";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createSecureContext } from "node:tls";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { WebSocket, WebSocketServer } from "ws";
import { fmtValue, median, table } from "./lib/report.js";
import { makeCerts, type BenchCerts } from "./lib/tls.js";

/** Bytes a sender may have in flight during the throughput test; below the HTTP/2 window. */
const IN_FLIGHT = 4 << 20;
/** HTTP/2 flow-control windows: the 64 KiB default would cap throughput, not the transport. */
const H2_WINDOW = 16 << 20;
const CHUNK = 64 << 10;
const WARMUP_ROUND_TRIPS = 2000;

// --- the echo server (child process) --------------------------------------------------------

interface Ports {
  ws: number;
  h2: number;
}

async function serve(certs: BenchCerts): Promise<void> {
  const tls = { cert: readFileSync(certs.cert), key: readFileSync(certs.key) };

  const https = createHttpsServer(tls);
  const wss = new WebSocketServer({ server: https, perMessageDeflate: false });
  wss.on("connection", (ws) => {
    ws.on("message", (data: Buffer, isBinary) =>
      ws.send(data, { binary: isBinary, compress: false }),
    );
  });

  const h2 = createSecureServer({ ...tls, settings: { initialWindowSize: H2_WINDOW } });
  h2.on("session", (session) =>
    session.once("connect", () => session.setLocalWindowSize(H2_WINDOW)),
  );
  h2.on("stream", (stream: ServerHttp2Stream) => {
    stream.respond({ ":status": 200 });
    stream.pipe(stream);
  });

  const listen = (srv: typeof https | typeof h2) =>
    new Promise<number>((resolve) =>
      srv.listen(0, "127.0.0.1", () => resolve((srv.address() as AddressInfo).port)),
    );
  const ports: Ports = { ws: await listen(https), h2: await listen(h2) };
  process.on("message", (m: { type: string }) => {
    if (m.type === "cpu") process.send!({ type: "cpu", cpu: process.cpuUsage() });
  });
  process.on("disconnect", () => process.exit(0));
  process.send!({ type: "ready", ports });
}

// --- transports (client side) ---------------------------------------------------------------

/** One bidirectional byte stream, whatever carries it. */
interface Stream {
  /** Returns false when the sender should wait for `ondrain`. */
  send(data: Buffer): boolean;
  ondata: (chunk: Buffer) => void;
  close(): Promise<void>;
}

interface Transport {
  name: string;
  /** Opens a stream; resolves once the server has accepted it and it can carry data. */
  open(): Promise<Stream>;
  shutdown(): Promise<void>;
}

/** What gw does: a TLS connection (resumed through the agent's session cache) per stream. */
function webSocketTransport(port: number, ca: Buffer): Transport {
  // One secure context for all connections: building one per connection parses the CAs again.
  const agent = new HttpsAgent({
    secureContext: createSecureContext({ ca }),
    maxCachedSessions: 100,
  });
  return {
    name: "WebSocket over TLS",
    open: () =>
      new Promise((resolve, reject) => {
        const ws = new WebSocket(`wss://127.0.0.1:${port}/`, { agent, perMessageDeflate: false });
        const stream: Stream = {
          send: (data) => {
            ws.send(data, { binary: true, compress: false });
            return ws.bufferedAmount < IN_FLIGHT;
          },
          ondata: () => undefined,
          close: () =>
            new Promise<void>((done) => {
              ws.once("close", () => done());
              ws.close(1000);
            }),
        };
        ws.on("message", (data: Buffer) => stream.ondata(data));
        ws.once("open", () => resolve(stream));
        ws.once("error", reject);
      }),
    shutdown: async () => agent.destroy(),
  };
}

/** The alternative: one HTTP/2 session, a stream per connection. */
async function http2Transport(port: number, ca: Buffer): Promise<Transport> {
  const session: ClientHttp2Session = h2connect(`https://127.0.0.1:${port}`, {
    secureContext: createSecureContext({ ca }),
    settings: { initialWindowSize: H2_WINDOW },
  });
  await new Promise<void>((resolve, reject) => {
    session.once("connect", () => resolve());
    session.once("error", reject);
  });
  session.setLocalWindowSize(H2_WINDOW);
  return {
    name: "HTTP/2 over TLS",
    open: () =>
      new Promise((resolve, reject) => {
        const req = session.request({ ":method": "POST", ":path": "/" }, { endStream: false });
        const stream: Stream = {
          send: (data) => req.write(data),
          ondata: () => undefined,
          close: () =>
            new Promise<void>((done) => {
              req.once("close", () => done());
              req.end();
            }),
        };
        req.on("data", (c: Buffer) => stream.ondata(c));
        req.once("response", () => resolve(stream));
        req.once("error", reject);
      }),
    shutdown: () => new Promise<void>((resolve) => session.close(() => resolve())),
  };
}

// --- measurements ---------------------------------------------------------------------------

const now = () => process.hrtime.bigint();
const micros = (from: bigint) => Number(now() - from) / 1000;

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Starts counting CPU here and in the server; the function it returns gives the µs used since. */
async function cpuMeter(server: ReturnType<typeof fork>): Promise<() => Promise<number>> {
  const serverCpu = () =>
    new Promise<number>((resolve) => {
      const onMessage = (m: { type: string; cpu?: NodeJS.CpuUsage }) => {
        if (m.type !== "cpu") return;
        server.off("message", onMessage);
        resolve(m.cpu!.user + m.cpu!.system);
      };
      server.on("message", onMessage);
      server.send({ type: "cpu" });
    });
  const mine = process.cpuUsage();
  const theirs = await serverCpu();
  return async () => {
    const d = process.cpuUsage(mine);
    return d.user + d.system + ((await serverCpu()) - theirs);
  };
}

/** Sends `size` bytes and waits for all of them to come back, `n` times, one at a time. */
async function roundTrips(stream: Stream, n: number, size: number): Promise<Float64Array> {
  const payload = Buffer.alloc(size, 0x61);
  const samples = new Float64Array(n);
  let missing = 0;
  let answered: () => void = () => undefined;
  stream.ondata = (c) => {
    missing -= c.length;
    if (missing <= 0) answered();
  };
  for (let i = 0; i < n; i++) {
    const t0 = now();
    missing = size;
    await new Promise<void>((resolve) => {
      answered = resolve;
      stream.send(payload);
    });
    samples[i] = micros(t0);
  }
  return samples.sort();
}

/** Streams `total` bytes in 64 KiB chunks through the echo; resolves with MB/s (one direction). */
function throughput(stream: Stream, total: number): Promise<number> {
  const chunk = Buffer.alloc(CHUNK, 0x62);
  let sent = 0;
  let received = 0;
  const t0 = now();
  return new Promise((resolve) => {
    const pump = () => {
      while (sent < total && sent - received < IN_FLIGHT) {
        sent += chunk.length;
        stream.send(chunk);
      }
    };
    stream.ondata = (c) => {
      received += c.length;
      if (received >= total) resolve(total / 1e6 / (micros(t0) / 1e6));
      else pump();
    };
    pump();
  });
}

/** Opens and closes `n` streams one after another; per-open wall times until the server accepted. */
async function opens(t: Transport, n: number): Promise<Float64Array> {
  const samples = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const t0 = now();
    const s = await t.open();
    samples[i] = micros(t0);
    await s.close();
  }
  return samples.sort();
}

interface Options {
  roundTrips: number;
  size: number;
  megabytes: number;
  opens: number;
  rounds: number;
}

interface Result {
  rttP50Us: number;
  rttP99Us: number;
  cpuPerRoundTripUs: number;
  throughputMBps: number;
  cpuPerMBUs: number;
  openP50Us: number;
  openP99Us: number;
  cpuPerOpenUs: number;
}

async function measure(
  t: Transport,
  server: ReturnType<typeof fork>,
  opts: Options,
): Promise<Result> {
  const stream = await t.open();
  await roundTrips(stream, WARMUP_ROUND_TRIPS, opts.size);
  let cpu = await cpuMeter(server);
  const rtt = await roundTrips(stream, opts.roundTrips, opts.size);
  const cpuPerRoundTripUs = (await cpu()) / opts.roundTrips;

  await throughput(stream, 16 * CHUNK); // warm-up
  cpu = await cpuMeter(server);
  const mbps = await throughput(stream, opts.megabytes << 20);
  const cpuPerMBUs = (await cpu()) / ((opts.megabytes << 20) / 1e6);
  await stream.close();

  await opens(t, Math.min(50, opts.opens)); // warm-up, and the TLS session cache
  cpu = await cpuMeter(server);
  const open = await opens(t, opts.opens);
  const cpuPerOpenUs = (await cpu()) / opts.opens;

  return {
    rttP50Us: percentile(rtt, 50),
    rttP99Us: percentile(rtt, 99),
    cpuPerRoundTripUs,
    throughputMBps: mbps,
    cpuPerMBUs,
    openP50Us: percentile(open, 50),
    openP99Us: percentile(open, 99),
    cpuPerOpenUs,
  };
}

function print(names: string[], results: Result[], opts: Options): void {
  const rows: [string, keyof Result][] = [
    [`round trip, ${opts.size} B, p50 (µs)`, "rttP50Us"],
    [`round trip, ${opts.size} B, p99 (µs)`, "rttP99Us"],
    ["CPU per round trip, both ends (µs)", "cpuPerRoundTripUs"],
    [`throughput, 64 KiB chunks (MB/s)`, "throughputMBps"],
    ["CPU per MB, both ends (µs)", "cpuPerMBUs"],
    ["open a stream, p50 (µs)", "openP50Us"],
    ["open a stream, p99 (µs)", "openP99Us"],
    ["CPU per open, both ends (µs)", "cpuPerOpenUs"],
  ];
  const [ws, h2] = results as [Result, Result];
  console.log(
    `\nTunnel transports on loopback: ${opts.roundTrips} round trips, ${opts.megabytes} MiB echoed, ` +
      `${opts.opens} opens; medians of ${opts.rounds} interleaved round${opts.rounds > 1 ? "s" : ""}\n`,
  );
  console.log(
    table(
      ["", ...names, "HTTP/2 ÷ WS"],
      rows.map(([label, key]) => {
        const a = ws[key];
        const b = h2[key];
        return [label, fmtValue(a), fmtValue(b), `${(b / a).toFixed(2)}x`];
      }),
    ),
  );
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      "round-trips": { type: "string", default: "20000" },
      size: { type: "string", default: "100" },
      megabytes: { type: "string", default: "256" },
      opens: { type: "string", default: "500" },
      rounds: { type: "string", default: "3" },
      serve: { type: "string" },
    },
  });
  if (values.serve !== undefined) return serve(JSON.parse(values.serve) as BenchCerts);
  const opts: Options = {
    roundTrips: Number(values["round-trips"]),
    size: Number(values.size),
    megabytes: Number(values.megabytes),
    opens: Number(values.opens),
    rounds: Number(values.rounds),
  };
  for (const [k, v] of Object.entries(opts))
    if (!Number.isInteger(v) || v < 1)
      throw new Error(
        `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} must be a positive integer`,
      );

  const dir = mkdtempSync(join(tmpdir(), "gw-transport-"));
  const certs = makeCerts(dir);
  const server = fork(fileURLToPath(import.meta.url), ["--serve", JSON.stringify(certs)]);
  try {
    const ports = await new Promise<Ports>((resolve, reject) => {
      server.once("message", (m: { type: string; ports: Ports }) => resolve(m.ports));
      server.once("exit", (code) => reject(new Error(`echo server exited (${code})`)));
    });
    const ca = readFileSync(certs.caCert);
    const transports = [webSocketTransport(ports.ws, ca), await http2Transport(ports.h2, ca)];
    const runs: Result[][] = transports.map(() => []);
    for (let round = 1; round <= opts.rounds; round++) {
      for (const [i, t] of transports.entries()) runs[i]!.push(await measure(t, server, opts));
      process.stderr.write(`round ${round}/${opts.rounds} done\n`);
    }
    for (const t of transports) await t.shutdown();
    const medians = runs.map((rs) => {
      const keys = Object.keys(rs[0]!) as (keyof Result)[];
      return Object.fromEntries(
        keys.map((k) => [k, median(rs.map((r) => r[k]))]),
      ) as unknown as Result;
    });
    print(
      transports.map((t) => t.name),
      medians,
      opts,
    );
  } finally {
    server.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(`transport-compare: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
