/**
 * The broker's agent hub with real agents over real WebSockets: a dialled stream is paired with
 * the agent's TCP connection to the target and carries bytes both ways; identities the config
 * does not list, people, and unknown names are refused; only the agent's own identity can answer
 * a stream; every way a dial can fail says which connection, agent and target, and why; a newer
 * agent of the same name replaces the older one, which stops; a silent agent is dropped.
 */
import type { Duplex } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { AGENT_CONTROL_PATH, AGENT_STREAM_PREFIX } from "../../src/agent/protocol.js";
import { DialError } from "../../src/net/dial.js";
import { GwError } from "../../src/errors.js";
import {
  closedPort,
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

async function echo() {
  const e = await startEcho();
  cleanups.push(() => e.close());
  return e;
}

const dialOpts = { connection: "db-edge", timeoutMs: 5000 };

async function dialFailure(p: Promise<Duplex>): Promise<DialError> {
  const r = await p.then(
    (s) => {
      s.destroy();
      return undefined;
    },
    (e: unknown) => e,
  );
  if (!(r instanceof DialError)) throw new Error(`expected a DialError, got ${String(r)}`);
  return r;
}

/** A hand-made agent: a control channel that does whatever the test says. */
function rawControl(h: HubServer, token: string, extra: { autoPong?: boolean } = {}) {
  const ws = new WebSocket(`ws://127.0.0.1:${h.port}${AGENT_CONTROL_PATH}?name=edge`, {
    headers: { authorization: `Bearer ${token}` },
    ...extra,
  });
  const messages: Array<Record<string, unknown>> = [];
  const waiters: Array<() => void> = [];
  ws.on("message", (d: Buffer) => {
    messages.push(JSON.parse(d.toString()) as Record<string, unknown>);
    for (const w of waiters.splice(0)) w();
  });
  cleanups.push(async () => void ws.terminate());
  return {
    ws,
    opened: new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("error", reject);
    }),
    closed: new Promise<number>((resolve) => ws.once("close", (code) => resolve(code))),
    message(type: string): Promise<Record<string, unknown>> {
      return new Promise((resolve) => {
        const check = () => {
          const m = messages.find((x) => x["type"] === type);
          if (m) resolve(m);
          else waiters.push(check);
        };
        check();
      });
    },
  };
}

describe("pairing", () => {
  it("a dialled stream reaches the target through the agent, bytes both ways", async () => {
    const h = await hub();
    const target = await echo();
    const a = runAgent(h.url, { allowed: [`127.0.0.1:${target.port}`] });
    await a.next("connected", undefined, 0);

    const s = await h.hub.dial("edge", "127.0.0.1", target.port, dialOpts);
    const open = await a.next("stream_open", undefined, 0);
    expect(open).toMatchObject({ connection: "db-edge", host: "127.0.0.1", port: target.port });
    expect(h.hub.status().find((x) => x.name === "edge")?.streams).toBe(1);

    const payload = Buffer.from("SELECT 1 -- through the agent\n");
    s.write(payload);
    expect((await readBytes(s, payload.length)).equals(payload)).toBe(true);
    const closed = a.next("stream_closed");
    s.end();
    expect(await closed).toMatchObject({
      bytesToTarget: payload.length,
      bytesFromTarget: payload.length,
    });
    expect(target.accepted()).toBe(1);
  });

  it("tells the agent which connections it carries, and which --allow leaves out", async () => {
    const h = await hub();
    const a = runAgent(h.url, { allowed: ["127.0.0.1:1"] });
    const connected = await a.next("connected", undefined, 0);
    expect(connected.connections).toEqual([
      { name: "db-edge", host: "db.internal", port: 5432, allowed: false },
    ]);
    const st = h.hub.status().find((x) => x.name === "edge")!;
    expect(st).toMatchObject({
      connected: true,
      description: "the edge network",
      allow: ["127.0.0.1:1"],
      identity: { name: "edge-agent" },
      connections: [{ name: "db-edge", host: "db.internal", port: 5432 }],
    });
    expect(h.hub.status().find((x) => x.name === "spare")?.connected).toBe(false);
  });

  it("only the identity holding the agent's channel can answer its stream", async () => {
    const h = await hub();
    const target = await echo();
    const control = rawControl(h, tokens.edge());
    await control.opened;
    const dialled = h.hub.dial("edge", "127.0.0.1", target.port, dialOpts);
    const open = await control.message("open");
    const url = `ws://127.0.0.1:${h.port}${AGENT_STREAM_PREFIX}${String(open["stream"])}`;

    const status = await new Promise<number>((resolve) => {
      const intruder = new WebSocket(url, {
        headers: { authorization: `Bearer ${tokens.other()}` },
      });
      intruder.on("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
      intruder.on("open", () => resolve(101));
      intruder.on("error", () => undefined);
    });
    expect(status).toBe(404);

    const mine = new WebSocket(url, { headers: { authorization: `Bearer ${tokens.edge()}` } });
    cleanups.push(async () => void mine.terminate());
    const s = await dialled;
    mine.on("message", (d: Buffer) => mine.send(d)); // the agent's side, echoing
    s.write("ping");
    expect((await readBytes(s, 4)).toString()).toBe("ping");
    s.destroy();
  });
});

describe("who may be an agent", () => {
  it("refuses an identity the agent's config does not list, and the agent stops", async () => {
    const h = await hub();
    const a = runAgent(h.url, { token: () => tokens.other() });
    const err = (await a.outcome) as GwError;
    expect(err).toBeInstanceOf(GwError);
    expect(err.exitCode).toBe(5);
    expect(err.message).toContain('may not register as agent "edge"');
    expect(h.hub.status().find((x) => x.name === "edge")?.connected).toBe(false);
  });

  it("refuses a person", async () => {
    const h = await hub();
    const err = (await runAgent(h.url, { token: () => tokens.dana() }).outcome) as GwError;
    expect(err.message).toContain("agents sign in as service principals");
  });

  it("refuses a name the broker has no agent for", async () => {
    const h = await hub();
    const err = (await runAgent(h.url, { name: "nowhere" }).outcome) as GwError;
    expect(err.exitCode).toBe(5);
    expect(err.message).toContain('may not register as agent "nowhere"');
  });

  it("refuses a token the broker does not accept on the first attempt instead of retrying", async () => {
    const h = await hub();
    const err = (await runAgent(h.url, { token: () => tokens.edge() + ".bad" }).outcome) as GwError;
    expect(err.exitCode).toBe(4);
    expect(err.message).toContain("refused your sign-in");
  });
});

describe("dial failures", () => {
  it("no agent connected: the connection goes through an agent that is not here", async () => {
    const h = await hub();
    const err = await dialFailure(h.hub.dial("edge", "db.internal", 5432, dialOpts));
    expect(err.code).toBe("agent_not_connected");
    expect(err.message).toBe(
      "connection db-edge goes through agent edge, which is not connected to this broker",
    );
    expect(err.hint).toContain("gw agent start --name edge");
  });

  it("the target refuses: the reason comes back, naming connection, target and agent", async () => {
    const h = await hub();
    const port = await closedPort();
    const a = runAgent(h.url);
    await a.next("connected", undefined, 0);
    const err = await dialFailure(h.hub.dial("edge", "127.0.0.1", port, dialOpts));
    expect(err.code).toBe("target_refused");
    expect(err.message).toBe(
      `cannot reach the target of db-edge at 127.0.0.1:${port} through agent edge (connection refused)`,
    );
    expect(a.events.find((e) => e.type === "stream_refused")).toMatchObject({
      code: "refused",
      port,
    });
  });

  it("a target off the agent's allow list is never dialled", async () => {
    const h = await hub();
    const target = await echo();
    const a = runAgent(h.url, { allowed: ["127.0.0.1:1"] });
    await a.next("connected", undefined, 0);
    const err = await dialFailure(h.hub.dial("edge", "127.0.0.1", target.port, dialOpts));
    expect(err.code).toBe("target_not_allowed");
    expect(err.message).toBe(
      `agent edge refuses to dial 127.0.0.1:${target.port} for db-edge: it is not on the agent's allow list`,
    );
    expect(err.hint).toContain(`--allow 127.0.0.1:${target.port}`);
    expect(target.accepted()).toBe(0);
  });

  it("an agent that does not answer: the dial times out", async () => {
    const h = await hub();
    const control = rawControl(h, tokens.edge());
    await control.opened;
    const err = await dialFailure(
      h.hub.dial("edge", "127.0.0.1", 9, { connection: "db-edge", timeoutMs: 200 }),
    );
    expect(err.code).toBe("agent_timeout");
    expect(err.message).toContain("agent edge did not open a stream to 127.0.0.1:9 for db-edge");
  });

  it("an agent that goes away while a stream is being opened", async () => {
    const h = await hub();
    const control = rawControl(h, tokens.edge());
    await control.opened;
    const dialled = dialFailure(h.hub.dial("edge", "127.0.0.1", 9, dialOpts));
    await control.message("open");
    control.ws.terminate();
    const err = await dialled;
    expect(err.code).toBe("agent_disconnected");
    expect(err.message).toContain("agent edge disconnected while opening a stream");
  });
});

describe("one agent per name", () => {
  it("a newer agent of the same name takes over; the older stops instead of fighting", async () => {
    const h = await hub();
    const target = await echo();
    const first = runAgent(h.url);
    await first.next("connected", undefined, 0);
    const second = runAgent(h.url);
    await second.next("connected", undefined, 0);

    const err = (await first.outcome) as GwError;
    expect(err.code).toBe("agent_replaced");
    expect(err.exitCode).toBe(7);
    const s = await h.hub.dial("edge", "127.0.0.1", target.port, dialOpts);
    await second.next("stream_open", undefined, 0);
    expect(first.events.some((e) => e.type === "stream_open")).toBe(false);
    s.destroy();
  });

  it("an agent that stops answering pings is dropped", async () => {
    const h = await hub({ heartbeatMs: 100 });
    const control = rawControl(h, tokens.edge(), { autoPong: false });
    await control.opened;
    expect(h.hub.status().find((x) => x.name === "edge")?.connected).toBe(true);
    await control.closed;
    expect(h.hub.status().find((x) => x.name === "edge")?.connected).toBe(false);
    expect(h.logs.some((l) => l.includes("missed its heartbeat"))).toBe(true);
  });
});
