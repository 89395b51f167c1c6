/**
 * An agent over time: when the broker goes away its sessions end and it reconnects, with
 * growing jittered delays, and new sessions work once the broker is back; its token is renewed
 * over the control channel before it expires, so the channel outlives any one token, while an
 * agent whose token is not renewed is dropped when it expires.
 */
import { afterEach, describe, expect, it } from "vitest";
import { backoffDelay } from "../../src/agent/backoff.js";
import { AgentClose } from "../../src/agent/protocol.js";
import {
  closedPort,
  hubConfig,
  readBytes,
  runAgent,
  startEcho,
  startHub,
  stopAgents,
  tokens,
  type HubServer,
} from "./fixtures.js";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  await stopAgents();
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function hub(opts: Parameters<typeof startHub>[0] = {}): Promise<HubServer> {
  const h = await startHub(opts);
  cleanups.push(() => h.close());
  return h;
}

const dialOpts = { connection: "db-edge", timeoutMs: 5000 };

describe("backoff", () => {
  it("doubles per attempt up to the cap, half fixed and half jitter", () => {
    const opts = { initialMs: 1000, maxMs: 60_000 };
    const at = (attempt: number, r: number) => backoffDelay(attempt, { ...opts, random: () => r });
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((n) => at(n, 0))).toEqual([
      500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000,
    ]);
    expect([1, 2, 3, 7, 100].map((n) => at(n, 0.999_999))).toEqual([
      1000, 2000, 4000, 60_000, 60_000,
    ]);
    for (let i = 0; i < 100; i++) {
      const d = backoffDelay(4, opts);
      expect(d).toBeGreaterThanOrEqual(4000);
      expect(d).toBeLessThanOrEqual(8000);
    }
  });

  it("an agent with no broker to reach retries with those delays", async () => {
    const port = await closedPort();
    const a = runAgent(`http://127.0.0.1:${port}`, {
      backoff: { initialMs: 40, maxMs: 200, random: () => 0.5 },
    });
    await a.next("connect_failed", (e) => e.attempt === 4, 0);
    const failures = a.events.flatMap((e) => (e.type === "connect_failed" ? [e] : []));
    expect(failures.slice(0, 4).map((e) => e.retryInMs)).toEqual([30, 60, 120, 150]);
    expect(failures[0]!.error.code).toBe("broker_unreachable");
    expect(failures[0]!.error.message).toContain("connection refused");
  });
});

describe("the broker goes away", () => {
  it("sessions in flight end; the agent reconnects; new sessions work", async () => {
    const target = await startEcho();
    cleanups.push(() => target.close());
    const first = await startHub();
    const a = runAgent(first.url);
    await a.next("connected", undefined, 0);
    const inFlight = await first.hub.dial("edge", "127.0.0.1", target.port, dialOpts);
    await a.next("stream_open", undefined, 0);
    const ended = new Promise<void>((resolve) => inFlight.once("close", () => resolve()));
    inFlight.on("error", () => undefined);
    inFlight.resume();

    const mark = a.events.length;
    await first.close();
    await ended;
    const gone = await a.next("disconnected", undefined, mark);
    expect(gone.streamsEnded).toBe(1);
    expect(a.agent.openStreams).toBe(0);

    // The broker comes back where it was.
    const second = await hub({ port: first.port });
    await a.next("connected", undefined, mark);
    const s = await second.hub.dial("edge", "127.0.0.1", target.port, dialOpts);
    s.write("again");
    expect((await readBytes(s, 5)).toString()).toBe("again");
    s.destroy();
    expect(target.accepted()).toBe(2);
  });
});

describe("the agent's sign-in", () => {
  it("fresh tokens over the control channel keep it open past each token's expiry", async () => {
    const h = await hub({ config: hubConfig({ expiryGraceSeconds: 0 }) });
    const target = await startEcho();
    cleanups.push(() => target.close());
    // Tokens of 3 s: the agent renews each about 1 s after it got it.
    const a = runAgent(h.url, { token: () => tokens.edge(3) });
    await a.next("connected", undefined, 0);
    const since = h.hub.status().find((x) => x.name === "edge")!.since;
    const firstExpiry = Math.floor(Date.now() / 1000) + 3;

    await a.next("token_refreshed", () => Date.now() > firstExpiry * 1000 + 1500, 0);
    expect(a.events.filter((e) => e.type === "connected")).toHaveLength(1);
    expect(a.events.some((e) => e.type === "disconnected" || e.type === "token_rejected")).toBe(
      false,
    );
    expect(h.hub.status().find((x) => x.name === "edge")).toMatchObject({ connected: true, since });
    const s = await h.hub.dial("edge", "127.0.0.1", target.port, dialOpts);
    s.destroy();
  });

  it("an agent whose token is not renewed is dropped when it expires", async () => {
    const h = await hub({ config: hubConfig({ expiryGraceSeconds: 0 }) });
    const stale = tokens.edge(2);
    const a = runAgent(h.url, { token: () => stale });
    await a.next("connected", undefined, 0);
    const dropped = await a.next("disconnected", undefined, 0);
    expect(dropped.code).toBe(AgentClose.signInExpired);
    expect(h.logs.some((l) => l.includes("agent sign-in expired"))).toBe(true);
  });
});
