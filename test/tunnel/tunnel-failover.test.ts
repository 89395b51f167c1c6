/**
 * A tunnel given two broker replicas (test/tunnel/fake-broker.ts: real WebSocket servers that
 * echo): new local connections go to the one that is up, streams on a replica that dies end,
 * refusals about the caller are not moved, and a refreshed token reaches the open streams on
 * both replicas.
 */
import { connect, type Socket } from "node:net";
import { rmSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { BrokerClient } from "../../src/tunnel/broker-client.js";
import { BrokerPool, type BrokerPoolEvent } from "../../src/tunnel/broker-pool.js";
import { Tunnel, type TunnelEvent } from "../../src/tunnel/tunnel.js";
import type { Lookup } from "../../src/tunnel/broker-endpoints.js";
import { issueCert, makeCa } from "../helpers/tls.js";
import { startFakeBroker, type FakeBroker } from "./fake-broker.js";

const cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function fake(opts: Parameters<typeof startFakeBroker>[0] = {}): Promise<FakeBroker> {
  const f = await startFakeBroker(opts);
  cleanup.push(() => f.kill());
  return f;
}

async function until(cond: () => boolean, what: string): Promise<void> {
  const end = Date.now() + 10_000;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`never happened: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function tunnelTo(
  brokers: FakeBroker[] | string[],
  token: () => string,
  opts: { caFile?: string; lookup?: Lookup } = {},
) {
  const pool = new BrokerPool(
    brokers.map((b) => (typeof b === "string" ? b : b.url)),
    { probeIntervalMs: 3_600_000, ...opts },
  );
  const poolEvents: BrokerPoolEvent[] = [];
  pool.onChange((e) => poolEvents.push(e));
  const events: TunnelEvent[] = [];
  const tunnel = await Tunnel.open({
    client: new BrokerClient({ url: pool.urls, pool, token: token(), caFile: opts.caFile }),
    connection: { name: "db", type: "postgres", description: null, database: "app" },
    token,
    bind: "127.0.0.1",
    port: 0,
    onEvent: (e) => events.push(e),
    retry: false,
  });
  cleanup.push(() => pool.close());
  cleanup.push(() => tunnel.close());
  return { tunnel, pool, events, poolEvents };
}

/** A local client: connects, and collects what comes back until the tunnel closes it. */
function client(port: number) {
  const s: Socket = connect({ host: "127.0.0.1", port });
  cleanup.push(() => s.destroy());
  let received = Buffer.alloc(0);
  let closed = false;
  s.on("data", (c: Buffer) => (received = Buffer.concat([received, c])));
  s.on("error", () => undefined);
  s.on("close", () => (closed = true));
  return {
    socket: s,
    received: () => received,
    closed: () => closed,
    async echo(text: string): Promise<void> {
      const before = received.length;
      s.write(text);
      await until(
        () => received.subarray(before).toString() === text,
        `the echo of ${JSON.stringify(text)}`,
      );
    },
  };
}

/** A PostgreSQL startup packet (protocol 3.0, no parameters): a refusal answers it. */
function startup(): Buffer {
  const b = Buffer.alloc(8);
  b.writeInt32BE(8, 0);
  b.writeInt32BE(196608, 4);
  return b;
}

const opened = (events: TunnelEvent[]) =>
  events.flatMap((e) => (e.type === "stream_open" ? [e.broker] : []));

describe("a tunnel with two brokers", () => {
  it("sends new connections to the one that is up; streams on the dead one end", async () => {
    const a = await fake();
    const b = await fake();
    const { tunnel, events, poolEvents } = await tunnelTo([a, b], () => "t1");

    const first = client(tunnel.address.port);
    await first.echo("one");
    expect(opened(events)).toEqual([a.url]);

    await a.kill();
    // The stream on A ends: its local client sees the close, as with one broker.
    await until(() => first.closed(), "the client on A is closed");

    const second = client(tunnel.address.port);
    await second.echo("two");
    expect(opened(events)).toEqual([a.url, b.url]);
    expect(b.streams).toHaveLength(1);
    expect(poolEvents).toEqual([
      expect.objectContaining({
        type: "down",
        reason: "ECONNREFUSED",
        endpoint: expect.objectContaining({ url: a.url }),
        next: expect.objectContaining({ url: b.url }),
      }),
    ]);
    // Nothing was refused: the local client only saw a connect that took a little longer.
    expect(events.filter((e) => e.type === "stream_refused")).toEqual([]);
  });

  it("a refusal about the caller (401, 403, 404) is not moved to the other broker", async () => {
    for (const status of [401, 403, 404]) {
      const a = await fake();
      const b = await fake();
      a.upgradeStatus = status;
      const { tunnel, events, poolEvents } = await tunnelTo([a, b], () => "t1");
      const c = client(tunnel.address.port);
      c.socket.write(startup());
      await until(() => c.closed(), "the client is refused");
      const refused = events.find((e) => e.type === "stream_refused");
      expect(refused?.type === "stream_refused" && refused.error.code).toBe(`status_${status}`);
      expect(b.requests).toEqual([]);
      expect(poolEvents).toEqual([]);
      // The refusal reaches the client as a PostgreSQL error, as with one broker.
      expect(c.received()[0]).toBe("E".charCodeAt(0));
    }
  });

  it("a broker shutting down (503) passes the connection to the next one", async () => {
    const a = await fake();
    const b = await fake();
    a.upgradeStatus = 503;
    const { tunnel, events, poolEvents } = await tunnelTo([a, b], () => "t1");
    await client(tunnel.address.port).echo("x");
    expect(opened(events)).toEqual([b.url]);
    expect(poolEvents[0]).toMatchObject({ type: "down", reason: "HTTP 503 status_503" });
  });

  it("a refreshed token goes to the open streams on both brokers", async () => {
    const a = await fake();
    const b = await fake();
    let token = "t1";
    const { tunnel, events } = await tunnelTo([a, b], () => token);
    const onA = client(tunnel.address.port);
    await onA.echo("a");
    // A stops taking new connections but keeps its open stream.
    a.upgradeStatus = 503;
    const onB = client(tunnel.address.port);
    await onB.echo("b");
    expect(opened(events)).toEqual([a.url, b.url]);
    expect(a.streams.length).toBe(1);
    expect(b.streams.length).toBe(1);
    expect(b.requests.at(-1)?.authorization).toBe("Bearer t1");

    // A new token: the next stream takes it, and the open ones on A and B are sent it.
    token = "t2";
    await client(tunnel.address.port).echo("c");
    await until(
      () => a.control.length === 1 && b.control.length === 1,
      "both brokers were sent the token",
    );
    expect(a.control).toEqual([{ type: "token", token: "t2" }]);
    expect(b.control).toEqual([{ type: "token", token: "t2" }]);
    expect(events.find((e) => e.type === "token_refreshed")).toMatchObject({ streams: 2 });
    // And the streams still carry data.
    await onA.echo("still a");
    await onB.echo("still b");
  });

  it("every broker down: the client is refused with each named", async () => {
    const a = await fake();
    const b = await fake();
    await a.kill();
    await b.kill();
    const { tunnel, events } = await tunnelTo([a, b], () => "t1");
    const c = client(tunnel.address.port);
    c.socket.write(startup());
    await until(() => c.closed(), "the client is refused");
    expect(c.received()[0]).toBe("E".charCodeAt(0));
    const refused = events.find((e) => e.type === "stream_refused");
    expect(refused?.type === "stream_refused" && refused.error.message).toBe(
      `cannot reach any of the brokers: ${a.url} (connection refused), ${b.url} (connection refused)`,
    );
  });

  it("a name with two addresses: streams dial each address with the name's Host and TLS name", async () => {
    const ca = makeCa();
    cleanup.push(() => rmSync(ca.dir, { recursive: true, force: true }));
    const cert = issueCert(ca, { cn: "gw.test", dns: ["gw.test"], ips: [] });
    const first = await fake({ tls: cert, host: "127.0.0.1" });
    let second: FakeBroker | null = null;
    for (let i = 0; i < 5 && second === null; i++) {
      second = await fake({ tls: cert, host: "127.0.0.2", port: first.port }).catch(() => null);
      if (second === null) {
        await first.kill();
        await first.restart();
      }
    }
    if (second === null) throw new Error("no port free on both 127.0.0.1 and 127.0.0.2");
    const lookup: Lookup = async () => [
      { address: "127.0.0.1", family: 4 },
      { address: "127.0.0.2", family: 4 },
    ];
    const url = `https://gw.test:${first.port}`;
    const { tunnel, events } = await tunnelTo([url], () => "t1", { caFile: ca.caCert, lookup });

    await client(tunnel.address.port).echo("one");
    expect(first.requests.at(-1)).toMatchObject({
      path: "/v1/tunnel/db",
      host: `gw.test:${first.port}`,
      servername: "gw.test",
    });
    await first.kill();
    await client(tunnel.address.port).echo("two");
    expect(second.requests.at(-1)).toMatchObject({
      path: "/v1/tunnel/db",
      host: `gw.test:${first.port}`,
      servername: "gw.test",
    });
    expect(opened(events)).toEqual([`${url} (127.0.0.1)`, `${url} (127.0.0.2)`]);
  });
});
