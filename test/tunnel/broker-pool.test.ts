/**
 * BrokerPool: which replica a request goes to, when one is skipped and when it comes back,
 * which answers never move a request, and a name with several addresses. Against real
 * HTTP(S) servers (test/tunnel/fake-broker.ts); the clock is faked only for the order tests.
 */
import { createServer, type Server, type Socket } from "node:net";
import { rmSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { BrokerPool, type BrokerPoolEvent } from "../../src/tunnel/broker-pool.js";
import { resolveEndpoints, type Lookup } from "../../src/tunnel/broker-endpoints.js";
import { parseBrokerUrls } from "../../src/tunnel/broker-urls.js";
import { BrokerClient } from "../../src/tunnel/broker-client.js";
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

function pool(urls: string[], opts: ConstructorParameters<typeof BrokerPool>[1] = {}) {
  const p = new BrokerPool(urls, opts);
  cleanup.push(() => p.close());
  const events: BrokerPoolEvent[] = [];
  p.onChange((e) => events.push(e));
  return { p, events };
}

/** Waits for a condition that must become true (a safety net, not a timing check). */
async function until(cond: () => boolean, what: string): Promise<void> {
  const end = Date.now() + 10_000;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`never happened: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const labels = (p: BrokerPool) => p.order().map((e) => e.url);
const GONE = /^(ECONNREFUSED|ECONNRESET)$/;

describe("parseBrokerUrls", () => {
  it("splits commas and repeated values, normalizes, drops duplicates", () => {
    expect(parseBrokerUrls("https://a:8443, https://b:8443/,https://a:8443")).toEqual([
      "https://a:8443",
      "https://b:8443",
    ]);
    expect(parseBrokerUrls(["https://a", "https://b,https://c"])).toEqual([
      "https://a",
      "https://b",
      "https://c",
    ]);
  });

  it("refuses an empty list and a URL that is not one, as broker_url_invalid (exit 2)", () => {
    expect(() => parseBrokerUrls(" , ")).toThrow(
      expect.objectContaining({ code: "broker_url_invalid", exitCode: 2 }),
    );
    expect(() => parseBrokerUrls("https://a,ftp://b")).toThrow(
      expect.objectContaining({ code: "broker_url_invalid" }),
    );
  });
});

describe("order", () => {
  const A = "http://127.0.0.1:1";
  const B = "http://127.0.0.1:2";
  const C = "http://127.0.0.1:3";

  it("follows the order given, sticks to the last that worked, skips one that failed", () => {
    let now = 1_000;
    const { p } = pool([A, B, C], { now: () => now, probeIntervalMs: 3_600_000 });
    expect(labels(p)).toEqual([A, B, C]);
    p.succeeded(p.endpoints[1]!);
    expect(labels(p)).toEqual([B, A, C]);
    // B fails: the others in the order given, B last (tried only when all are down).
    p.failed(p.endpoints[1]!, "ECONNREFUSED");
    expect(labels(p)).toEqual([A, C, B]);
    now += 100;
    p.failed(p.endpoints[0]!, "ECONNREFUSED");
    // Down ones are ordered by when they may be tried again: B failed first.
    expect(labels(p)).toEqual([C, B, A]);
    expect(p.status().map((s) => s.up)).toEqual([false, false, true]);
    expect(p.status()[0]).toMatchObject({ url: A, up: false, reason: "ECONNREFUSED" });
    // After the down time, a failed endpoint is tried in its place again (no probe ran).
    now += 5_000;
    expect(labels(p)).toEqual([A, B, C]);
  });

  it("says once when an endpoint goes down, and where new requests go", () => {
    const { p, events } = pool([A, B], { probeIntervalMs: 3_600_000 });
    p.failed(p.endpoints[0]!, "ECONNREFUSED");
    p.failed(p.endpoints[0]!, "ECONNRESET");
    expect(events).toEqual([
      { type: "down", endpoint: p.endpoints[0], reason: "ECONNREFUSED", next: p.endpoints[1] },
    ]);
    p.failed(p.endpoints[1]!, "ECONNREFUSED");
    expect(events[1]).toMatchObject({ type: "down", endpoint: p.endpoints[1], next: null });
    // A success on one that was down brings it back.
    p.succeeded(p.endpoints[1]!);
    expect(events[2]).toEqual({ type: "up", endpoint: p.endpoints[1] });
    expect(labels(p)[0]).toBe(B);
  });

  it("a lone broker has no events, no probe and no connect deadline", () => {
    const { p, events } = pool([A]);
    p.failed(p.endpoints[0]!, "ECONNREFUSED");
    expect(events).toEqual([]);
    expect(p.connectTimeoutMs).toBe(0);
    expect(labels(p)).toEqual([A]);
  });

  it("shared(): clients of one of the URLs in the same process use the pool of all of them", () => {
    const both = BrokerPool.shared([A, B]);
    cleanup.push(() => both.close());
    expect(BrokerPool.shared([B])).toBe(both);
    expect(new BrokerClient({ url: A }).pool).toBe(both);
    // Another CA is another way of reaching them: its own pool.
    const ca = makeCa();
    cleanup.push(() => rmSync(ca.dir, { recursive: true, force: true }));
    const other = BrokerPool.shared([B], { caFile: ca.caCert });
    cleanup.push(() => other.close());
    expect(other).not.toBe(both);
  });
});

describe("requests", () => {
  it("go to the first replica; to the next at once when it is down; back when the probe says so", async () => {
    const a = await fake();
    const b = await fake();
    const { p, events } = pool([a.url, b.url], { probeIntervalMs: 20 });
    const get = async () => (await p.request("/v1/x", { headers: {} }, "read")).endpoint.url;

    expect(await get()).toBe(a.url);
    await a.kill();
    expect(await get()).toBe(b.url);
    // Refused, or reset when the request went out on a kept-alive connection the kill cut.
    expect(events[0]).toMatchObject({ type: "down", reason: expect.stringMatching(GONE) });
    const down = events[0];
    expect(down?.type === "down" && down.next?.url).toBe(b.url);
    // Skipped while down: B only.
    const before = b.requests.length;
    expect(await get()).toBe(b.url);
    expect(b.requests.length).toBe(before + 1);

    await a.restart();
    await until(() => events.some((e) => e.type === "up"), "the probe brings A back");
    expect(a.requests.some((r) => r.path === "/readyz")).toBe(true);
    expect(p.status().every((s) => s.up)).toBe(true);
    // Sticky: B worked last, and still does.
    expect(await get()).toBe(b.url);
  });

  it("a replica shutting down (503) passes a read on; 401, 403 and 404 are answers, never moved", async () => {
    const a = await fake();
    const b = await fake();
    const { p, events } = pool([a.url, b.url], { probeIntervalMs: 3_600_000 });

    a.answer = () => ({ status: 503, body: { error: { code: "shutting_down" } } });
    const moved = await p.request("/v1/x", {}, "read");
    expect(moved.endpoint.url).toBe(b.url);
    expect(events[0]).toMatchObject({ type: "down", reason: "HTTP 503 shutting_down" });

    for (const status of [401, 403, 404]) {
      const { p: q, events: seen } = pool([a.url, b.url], { probeIntervalMs: 3_600_000 });
      a.answer = () => ({ status, body: { error: { code: `e${status}` } } });
      const bBefore = b.requests.length;
      const r = await q.request("/v1/x", {}, "read");
      expect(r.res.status).toBe(status);
      expect(r.endpoint.url).toBe(a.url);
      expect(b.requests.length).toBe(bBefore);
      expect(seen).toEqual([]);
      expect(q.status()[0]!.up).toBe(true);
    }
  });

  it("a change moves only when it cannot have reached the broker", async () => {
    const a = await fake();
    const b = await fake();
    // 502 from A: the change may have been made there; it is not sent again.
    a.answer = () => ({ status: 502, body: {} });
    const { p } = pool([a.url, b.url], { probeIntervalMs: 3_600_000 });
    const r = await p.request("/v1/approve", { method: "POST", body: "{}" }, "change");
    expect(r.endpoint.url).toBe(a.url);
    expect(r.res.status).toBe(502);
    expect(b.requests).toEqual([]);
    // Refused (A is gone): nothing reached it, B gets the change.
    const { p: q } = pool([a.url, b.url], { probeIntervalMs: 3_600_000 });
    await a.kill();
    const s = await q.request("/v1/approve", { method: "POST", body: "{}" }, "change");
    expect(s.endpoint.url).toBe(b.url);
    expect(b.requests.map((x) => x.method)).toEqual(["POST"]);
  });

  it("every replica down: broker_unreachable naming each, exit 6", async () => {
    const a = await fake();
    const b = await fake();
    await a.kill();
    await b.kill();
    const { p } = pool([a.url, b.url], { probeIntervalMs: 3_600_000 });
    const err = await p.request("/v1/x", {}, "read").catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "broker_unreachable", exitCode: 6 });
    expect((err as Error).message).toBe(
      `cannot reach any of the brokers: ${a.url} (connection refused), ${b.url} (connection refused)`,
    );
    // One broker: the message it always had.
    const { p: one } = pool([a.url]);
    const e1 = await one.request("/v1/x", {}, "read").catch((e: unknown) => e);
    expect((e1 as Error).message).toBe(`cannot reach the broker at ${a.url}: connection refused`);
  });

  it("a replica that accepts TCP but never finishes TLS is skipped after the connect deadline", async () => {
    const ca = makeCa();
    cleanup.push(() => rmSync(ca.dir, { recursive: true, force: true }));
    const cert = issueCert(ca);
    // A stuck broker: the kernel accepts, nobody speaks.
    const held: Socket[] = [];
    const stuck: Server = createServer((s) => held.push(s));
    await new Promise<void>((r) => stuck.listen(0, "127.0.0.1", () => r()));
    cleanup.push(
      () =>
        new Promise<void>((r) => {
          for (const s of held) s.destroy();
          stuck.close(() => r());
        }),
    );
    const stuckUrl = `https://127.0.0.1:${(stuck.address() as { port: number }).port}`;
    const b = await fake({ tls: cert });
    const { p, events } = pool([stuckUrl, b.url], {
      caFile: ca.caCert,
      connectTimeoutMs: 200,
      probeIntervalMs: 3_600_000,
    });
    const started = Date.now();
    const r = await p.request("/v1/x", {}, "read");
    console.log(`stuck replica skipped after ${Date.now() - started} ms (connect deadline 200 ms)`);
    expect(r.endpoint.url).toBe(b.url);
    expect(events[0]).toMatchObject({ type: "down", reason: "connect timed out after 200 ms" });
  });
});

describe("a name with several addresses", () => {
  it("resolves every address; dials each with the name's Host header and TLS name", async () => {
    const ca = makeCa();
    cleanup.push(() => rmSync(ca.dir, { recursive: true, force: true }));
    const cert = issueCert(ca, { cn: "gw.test", dns: ["gw.test"], ips: [] });
    const first = await fake({ tls: cert, host: "127.0.0.1" });
    // The same port on another loopback address: the name's second replica.
    let second: FakeBroker | null = null;
    for (let i = 0; i < 5 && second === null; i++) {
      second = await fake({ tls: cert, host: "127.0.0.2", port: first.port }).catch(() => null);
      if (second === null) {
        await first.kill();
        await first.restart();
      }
    }
    if (second === null) throw new Error("no port free on both 127.0.0.1 and 127.0.0.2");
    const asked: string[] = [];
    const lookup: Lookup = async (name) => {
      asked.push(name);
      return name === "gw.test"
        ? [
            { address: "127.0.0.1", family: 4 },
            { address: "127.0.0.2", family: 4 },
          ]
        : [];
    };
    const url = `https://gw.test:${first.port}`;
    const { p, events } = pool([url], { caFile: ca.caCert, lookup, probeIntervalMs: 3_600_000 });

    const r = await p.request("/v1/x", {}, "read");
    expect(asked).toEqual(["gw.test"]);
    expect(p.endpoints.map((e) => e.label)).toEqual([`${url} (127.0.0.1)`, `${url} (127.0.0.2)`]);
    expect(r.endpoint.address).toBe("127.0.0.1");
    // The certificate is for gw.test only: the request was verified against the name.
    expect(first.requests.at(-1)).toMatchObject({
      host: `gw.test:${first.port}`,
      servername: "gw.test",
    });

    await first.kill();
    const s = await p.request("/v1/x", {}, "read");
    expect(s.endpoint.address).toBe("127.0.0.2");
    expect(second.requests.at(-1)).toMatchObject({
      host: `gw.test:${first.port}`,
      servername: "gw.test",
    });
    expect(events[0]).toMatchObject({ type: "down", reason: expect.stringMatching(GONE) });
    expect(p.status()).toEqual([
      { url, address: "127.0.0.1", up: false, reason: expect.stringMatching(GONE) },
      { url, address: "127.0.0.2", up: true },
    ]);
  });

  it("IP literals and localhost are dialled by name; a name with one address or none too", async () => {
    const lookup: Lookup = async (name) => {
      if (name === "one.test") return [{ address: "10.0.0.1", family: 4 }];
      if (name === "two.test")
        return [
          { address: "10.0.0.1", family: 4 },
          { address: "fd00::2", family: 6 },
        ];
      throw Object.assign(new Error("nope"), { code: "ENOTFOUND" });
    };
    const eps = await resolveEndpoints(
      [
        "https://127.0.0.1:1",
        "https://localhost:2",
        "https://one.test",
        "https://none.test",
        "https://two.test:8443/gw",
      ],
      lookup,
    );
    expect(eps.map((e) => [e.label, e.dialUrl, e.headers, e.servername])).toEqual([
      ["https://127.0.0.1:1", "https://127.0.0.1:1", {}, undefined],
      ["https://localhost:2", "https://localhost:2", {}, undefined],
      ["https://one.test", "https://one.test", {}, undefined],
      ["https://none.test", "https://none.test", {}, undefined],
      [
        "https://two.test:8443/gw (10.0.0.1)",
        "https://10.0.0.1:8443/gw",
        { host: "two.test:8443" },
        "two.test",
      ],
      [
        "https://two.test:8443/gw (fd00::2)",
        "https://[fd00::2]:8443/gw",
        { host: "two.test:8443" },
        "two.test",
      ],
    ]);
  });
});
