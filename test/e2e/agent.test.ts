/**
 * A PostgreSQL target that the broker reaches only through an outbound agent, end to end: the
 * real CLI (`gw agent start`, signing in as the DEMO_AGENT service principal from the AZURE_*
 * variables, against the local identity server), a real broker, real tunnels and real pg
 * clients.
 *
 * The broker is never the one connecting to the target: before the agent is up (and after it
 * is killed) sessions fail with "connection db-edge goes through agent edge, which is not
 * connected to this broker", although the target is up and reachable from the broker's host;
 * and a counting TCP proxy in front of the target sees exactly as many connections as the
 * agent logged streams. Through the agent, statements are recorded by the broker and its policy
 * still blocks; a 20 MB message and a cancel request go the same way; killing the agent ends
 * the session in flight, and a restarted agent carries new sessions again. The agent's output
 * carries no token, secret or password.
 */
import { createConnection, createServer, type AddressInfo, type Server } from "node:net";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeFetch } from "../../src/net/http-client.js";
import { BrokerClient } from "../../src/tunnel/broker-client.js";
import { Tunnel } from "../../src/tunnel/tunnel.js";
import { startGw, type BackgroundGw } from "../helpers/cli.js";
import { startSignedInStack, type SignedInStack } from "../helpers/signed-in-stack.js";
import { APP_AGENT, GROUP_AUDIT, GROUP_DBA } from "../helpers/stack.js";

const DROP_REASON =
  "gw: blocked by rule no-drop of policy guard: nothing is dropped through the edge";
const NOT_CONNECTED =
  "gw: connection db-edge goes through agent edge, which is not connected to this broker";

let stack: SignedInStack;
let proxy: Server;
let proxyPort = 0;
let proxied = 0;
let echo: Server;
let echoPort = 0;
let echoed = 0;
let targetPort = 0;
let tunnel: Tunnel;
let dbaToken: string;
const agents: BackgroundGw[] = [];

beforeAll(async () => {
  // Counts every connection that reaches the target, whoever made it.
  proxy = createServer((inbound) => {
    proxied++;
    const out = createConnection({ host: "127.0.0.1", port: targetPort });
    inbound.on("error", () => out.destroy());
    out.on("error", () => inbound.destroy());
    inbound.pipe(out).pipe(inbound);
  });
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", () => resolve()));
  proxyPort = (proxy.address() as AddressInfo).port;

  // A raw TCP target behind the same agent.
  echo = createServer((s) => {
    echoed++;
    s.on("error", () => undefined);
    s.pipe(s);
  });
  await new Promise<void>((resolve) => echo.listen(0, "127.0.0.1", () => resolve()));
  echoPort = (echo.address() as AddressInfo).port;

  stack = await startSignedInStack({
    mutate: (raw) => {
      const conns = raw["connections"] as Record<string, { target: Record<string, unknown> }>;
      const direct = conns["db-test"]!.target;
      targetPort = direct["port"] as number;
      raw["auditors"] = [`group:${GROUP_AUDIT}`];
      raw["agents"] = {
        edge: { identity: [`app:${APP_AGENT}`], description: "the private network" },
      };
      raw["policies"] = {
        guard: {
          rules: [
            {
              name: "no-drop",
              match: { kind: ["drop"] },
              action: "block",
              reason: "nothing is dropped through the edge",
            },
          ],
        },
      };
      conns["db-edge"] = {
        type: "postgres",
        via: "edge",
        target: { ...direct, port: proxyPort },
        allow: [`group:${GROUP_DBA}`],
        policy: "guard",
      } as never;
      conns["tcp-edge"] = {
        type: "tcp",
        via: "edge",
        target: { host: "127.0.0.1", port: echoPort },
        allow: [`group:${GROUP_DBA}`],
      } as never;
    },
  });
  dbaToken = await stack.entra.mintAccessToken({
    name: "Dana DBA",
    preferred_username: "dana@example.com",
    groups: [GROUP_DBA],
  });
  const client = new BrokerClient({
    url: stack.brokerUrl,
    token: dbaToken,
    caFile: stack.ca.caCert,
  });
  const conn = (await client.connections()).find((c) => c.name === "db-edge");
  if (!conn) throw new Error("db-edge is not listed for the DBA");
  tunnel = await Tunnel.open({
    client,
    connection: conn,
    token: () => dbaToken,
    bind: "127.0.0.1",
    port: 0,
    retry: false,
  });
});

afterAll(async () => {
  for (const a of agents) await a.stop("SIGKILL").catch(() => undefined);
  await tunnel?.close();
  await stack?.stop();
  await new Promise<void>((resolve) => (proxy ? proxy.close(() => resolve()) : resolve()));
  await new Promise<void>((resolve) => (echo ? echo.close(() => resolve()) : resolve()));
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor<T>(
  what: string,
  probe: () => T | undefined,
  timeoutMs = 30_000,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** The agent's JSON log lines. */
function lines(a: BackgroundGw): Array<Record<string, unknown>> {
  return a
    .stdout()
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** `gw agent start` as a service principal; resolves once the broker has welcomed it. */
async function startAgent(): Promise<BackgroundGw> {
  const a = await startGw(
    [
      "agent",
      "start",
      "--broker",
      stack.brokerUrl,
      "--ca-file",
      stack.ca.caCert,
      "--name",
      "edge",
      "--allow",
      `127.0.0.1:${proxyPort}`,
      "--allow",
      `127.0.0.1:${echoPort}`,
      "--json",
    ],
    {
      env: {
        AZURE_TENANT_ID: stack.entra.tenantId,
        AZURE_CLIENT_ID: stack.agent.clientId,
        AZURE_CLIENT_SECRET: stack.agent.secret,
      },
      timeoutMs: 300_000,
    },
  );
  agents.push(a as BackgroundGw);
  await waitFor(`the agent to connect\n${a.stdout()}\n${a.stderr()}`, () =>
    lines(a).find((l) => l["msg"] === "connected"),
  );
  return a as BackgroundGw;
}

async function connect(): Promise<pg.Client & { errors: Error[] }> {
  const c = new pg.Client({
    connectionString: `postgresql://127.0.0.1:${tunnel.address.port}/app?sslmode=disable`,
    connectionTimeoutMillis: 20_000,
  }) as pg.Client & { errors: Error[] };
  c.errors = [];
  c.on("error", (e) => c.errors.push(e));
  await c.connect();
  return c;
}

async function refusal(p: Promise<unknown>): Promise<Error & { code?: string }> {
  const r = await p.then(
    () => undefined,
    (e: unknown) => e as Error & { code?: string },
  );
  if (!r) throw new Error("expected a failure");
  return r;
}

async function agentStatus(token: string): Promise<{ status: number; body: unknown }> {
  const fetch = makeFetch({ caFile: stack.ca.caCert, timeoutMs: 10_000 });
  const res = await fetch(`${stack.brokerUrl}/v1/agents`, {
    headers: { authorization: `Bearer ${token}` },
  });
  return { status: res.status, body: await res.json() };
}

describe("a target behind an agent", () => {
  it("before the agent connects, sessions fail with a clear error, and nothing reaches the target", async () => {
    const err = await refusal(connect());
    expect(err.message).toBe(NOT_CONNECTED);
    expect(err.code).toBe("08006");
    expect(proxied).toBe(0);
  });

  it("through the agent: statements run, the broker records them, and its policy still blocks", async () => {
    const a = await startAgent();
    const welcome = lines(a).find((l) => l["msg"] === "connected")!;
    expect(welcome["connections"]).toEqual([
      { name: "db-edge", host: "127.0.0.1", port: proxyPort, allowed: true },
      { name: "tcp-edge", host: "127.0.0.1", port: echoPort, allowed: true },
    ]);

    const c = await connect();
    await c.query("create table if not exists edge_t (id int primary key, note text)");
    await c.query("insert into edge_t values (1, 'via the agent')");
    const rows = await c.query<{ note: string }>("select note from edge_t where id = $1", [1]);
    expect(rows.rows).toEqual([{ note: "via the agent" }]);
    const blocked = await refusal(c.query("drop table edge_t"));
    expect(blocked.message).toBe(DROP_REASON);
    expect(blocked.code).toBe("42501");
    expect((await c.query("select count(*)::int as n from edge_t")).rows).toEqual([{ n: 1 }]);
    await c.end();

    const sessions = await stack.store.listSessions({ connection: "db-edge" });
    const recorded = (
      await Promise.all(sessions.map((s) => stack.store.listStatements(s.id)))
    ).flat();
    expect(recorded.map((s) => [s.sql, s.decision])).toEqual(
      expect.arrayContaining([
        ["insert into edge_t values (1, 'via the agent')", "allowed"],
        ["select note from edge_t where id = $1", "allowed"],
        ["drop table edge_t", "blocked"],
      ]),
    );

    // Every connection the target saw came through the agent.
    const streams = await waitFor("the agent to log its streams closed", () => {
      const l = lines(a);
      const opened = l.filter((x) => x["msg"] === "stream open").length;
      return opened > 0 && l.filter((x) => x["msg"] === "stream closed").length === opened
        ? opened
        : undefined;
    });
    expect(proxied).toBe(streams);
  });

  it("big messages both ways, and cancel requests, go through the agent too", async () => {
    const c = await connect();
    // One 20 MB protocol message from the broker to the agent (one write of the session).
    const big = "x".repeat(20_000_000);
    const sent = await c.query<{ n: number }>("select length($1::text)::int as n", [big]);
    expect(sent.rows).toEqual([{ n: big.length }]);
    const back = await c.query<{ s: string }>("select repeat('y', 5000000) as s");
    expect(back.rows[0]!.s.length).toBe(5_000_000);

    // A CancelRequest with the key gw gave the client, sent as libpq does (and the connection
    // held open until the broker closes it): the broker forwards it to the target, which it
    // reaches only through the agent.
    const before = proxied;
    const sleeping = refusal(c.query("select pg_sleep(60)"));
    // The test (not the broker) looks at the target directly: the sleep must be running there,
    // or the cancel would come too early and be lost.
    const direct = new pg.Client({ connectionString: stack.pg.url });
    await direct.connect();
    try {
      for (let running = false; !running; await sleep(50)) {
        const r = await direct.query(
          "select 1 from pg_stat_activity where query = 'select pg_sleep(60)' and state = 'active'",
        );
        running = r.rowCount === 1;
      }
    } finally {
      await direct.end();
    }
    const key = c as unknown as { processID: number; secretKey: number };
    const cancel = Buffer.alloc(16);
    cancel.writeInt32BE(16, 0);
    cancel.writeInt32BE(80877102, 4);
    cancel.writeInt32BE(key.processID, 8);
    cancel.writeInt32BE(key.secretKey, 12);
    const s = createConnection({ host: "127.0.0.1", port: tunnel.address.port }, () =>
      s.write(cancel),
    );
    s.on("error", () => undefined);
    s.resume();
    const err = await sleeping;
    expect(err.code).toBe("57014");
    expect(proxied).toBe(before + 1);
    await c.end();
  });

  it("a raw tcp connection goes through the agent too, and is recorded by the broker", async () => {
    const client = new BrokerClient({
      url: stack.brokerUrl,
      token: dbaToken,
      caFile: stack.ca.caCert,
    });
    const conn = (await client.connections()).find((c) => c.name === "tcp-edge")!;
    const t = await Tunnel.open({
      client,
      connection: conn,
      token: () => dbaToken,
      bind: "127.0.0.1",
      port: 0,
      retry: false,
    });
    try {
      const before = echoed;
      const sock = createConnection({ host: "127.0.0.1", port: t.address.port });
      const got = await new Promise<string>((resolve, reject) => {
        let text = "";
        sock.on("data", (d: Buffer) => {
          text += d.toString();
          if (text.length >= 11) resolve(text);
        });
        sock.on("error", reject);
        sock.write("hello agent");
      });
      sock.end();
      expect(got).toBe("hello agent");
      expect(echoed).toBe(before + 1);
      let ended: Awaited<ReturnType<typeof stack.store.listSessions>>[number] | undefined;
      for (let i = 0; i < 200 && !ended; i++) {
        ended = (await stack.store.listSessions({ connection: "tcp-edge" })).find(
          (x) => x.endedAt !== null,
        );
        if (!ended) await sleep(50);
      }
      expect(ended).toMatchObject({ protocol: "tcp", bytesIn: 11, bytesOut: 11 });
    } finally {
      await t.close();
    }
  });

  it("auditors see the agent on GET /v1/agents; others may not", async () => {
    const auditor = await stack.entra.mintAccessToken({ name: "Avery", groups: [GROUP_AUDIT] });
    const ok = await agentStatus(auditor);
    expect(ok.status).toBe(200);
    expect((ok.body as { agents: unknown[] }).agents).toEqual([
      expect.objectContaining({
        name: "edge",
        connected: true,
        description: "the private network",
        identity: expect.objectContaining({ oid: APP_AGENT }),
        allow: [`127.0.0.1:${proxyPort}`, `127.0.0.1:${echoPort}`],
        connections: [
          { name: "db-edge", host: "127.0.0.1", port: proxyPort },
          { name: "tcp-edge", host: "127.0.0.1", port: echoPort },
        ],
      }),
    ]);
    expect((await agentStatus(dbaToken)).status).toBe(403);
  });

  it("killing the agent ends the session in flight; new sessions fail with the clear error", async () => {
    const inFlight = await connect();
    expect((await inFlight.query("select 1 as one")).rows).toEqual([{ one: 1 }]);
    const disconnectsBefore = stack.logged("agent disconnected").length;
    await agents.at(-1)!.stop("SIGKILL");
    await waitFor("the broker to see the agent go", () =>
      stack.logged("agent disconnected").length > disconnectsBefore ? true : undefined,
    );
    await refusal(inFlight.query("select 1"));
    await inFlight.end().catch(() => undefined);

    const before = proxied;
    const err = await refusal(connect());
    expect(err.message).toBe(NOT_CONNECTED);
    expect(proxied).toBe(before);
  });

  it("a restarted agent carries new sessions again", async () => {
    const a = await startAgent();
    const c = await connect();
    expect((await c.query("select note from edge_t")).rows).toEqual([{ note: "via the agent" }]);
    await c.end();

    // Nothing the agent printed holds a token, the service principal's secret or the target's password.
    for (const agent of [...agents, a]) {
      const out = agent.stdout() + agent.stderr();
      expect(out).not.toMatch(/eyJ[\w-]{8,}\./);
      expect(out).not.toContain(stack.agent.secret);
      expect(out).not.toContain(stack.pg.password);
    }
  });
});
