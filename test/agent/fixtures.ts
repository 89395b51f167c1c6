/**
 * A broker's agent hub on a real HTTP server (port 0), with a stand-in token verifier so the
 * tests control identities and expiry without an identity server: tokens are JWT-shaped (the
 * agent reads `exp` to schedule refreshes) and the verifier decodes them. Real TCP targets,
 * real WebSockets, real agents.
 */
import { createServer as createHttpServer, type Server } from "node:http";
import {
  createServer as createTcpServer,
  type AddressInfo,
  type Server as TcpServer,
} from "node:net";
import type { Duplex } from "node:stream";
import { Agent, type AgentEvent, type AgentOptions } from "../../src/agent/agent.js";
import { AllowList } from "../../src/agent/allow-list.js";
import { AgentHub } from "../../src/broker/agent-hub.js";
import { createLogger } from "../../src/broker/logger.js";
import { brokerConfig, type BrokerConfig } from "../../src/config/schema.js";
import type { Identity } from "../../src/identity/principal.js";
import { AuthError } from "../../src/identity/verify-token.js";

export const APP_EDGE = "aaaaaaaa-0000-4000-8000-000000000001";
export const APP_OTHER = "bbbbbbbb-0000-4000-8000-000000000002";
export const USER_DANA = "cccccccc-0000-4000-8000-000000000003";

/** A JWT-shaped token the stand-in verifier accepts until `exp` (epoch seconds). */
export function token(
  who: { oid: string; type: "app" | "user"; name?: string },
  lifetimeSeconds = 3600,
): string {
  const exp = Math.floor(Date.now() / 1000) + lifetimeSeconds;
  const part = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url");
  return `${part({ alg: "none" })}.${part({ ...who, exp, n: Math.random() })}.sig`;
}

export const tokens = {
  edge: (lifetime?: number) => token({ oid: APP_EDGE, type: "app", name: "edge-agent" }, lifetime),
  other: () => token({ oid: APP_OTHER, type: "app", name: "other-app" }),
  dana: () => token({ oid: USER_DANA, type: "user", name: "Dana DBA" }),
};

async function verify(t: string): Promise<Identity> {
  const part = t.split(".")[1];
  if (!part || t.endsWith(".bad")) throw new AuthError("token_bad_signature", "bad signature");
  const p = JSON.parse(Buffer.from(part, "base64url").toString("utf8")) as {
    oid: string;
    type: "app" | "user";
    name?: string;
    exp: number;
  };
  if (p.exp * 1000 < Date.now()) throw new AuthError("token_expired", "the token has expired");
  return {
    oid: p.oid,
    tid: "tenant",
    name: p.name ?? p.oid,
    upn: undefined,
    type: p.type,
    groups: [],
    roles: [],
    expiresAt: p.exp,
  };
}

export function hubConfig(extra: { expiryGraceSeconds?: number } = {}): BrokerConfig {
  return brokerConfig.parse({
    identity: {
      issuer: "https://issuer.example/tenant/v2.0",
      audience: "api",
      expiryGraceSeconds: extra.expiryGraceSeconds ?? 30,
    },
    store: { memory: true },
    agents: {
      edge: { identity: [`app:${APP_EDGE}`], description: "the edge network" },
      spare: { identity: [`app:${APP_OTHER}`] },
    },
    connections: {
      "db-edge": {
        type: "postgres",
        via: "edge",
        target: { host: "db.internal", port: 5432, database: "app", user: "gw" },
        allow: ["group:dba"],
      },
      "db-direct": {
        type: "postgres",
        target: { host: "127.0.0.1", port: 5432, database: "app", user: "gw" },
        allow: ["group:dba"],
      },
    },
  });
}

export interface HubServer {
  hub: AgentHub;
  server: Server;
  url: string;
  port: number;
  logs: string[];
  close(): Promise<void>;
}

/** A hub behind an HTTP server; `port` reuses a port (a broker coming back). */
export async function startHub(
  opts: { config?: BrokerConfig; heartbeatMs?: number; port?: number; host?: string } = {},
): Promise<HubServer> {
  const logs: string[] = [];
  const hub = new AgentHub({
    config: opts.config ?? hubConfig(),
    verify,
    log: createLogger({ level: "debug", write: (l) => logs.push(l) }),
    ...(opts.heartbeatMs ? { heartbeatMs: opts.heartbeatMs } : {}),
  });
  const server = createHttpServer((_req, res) => res.writeHead(404).end());
  server.on("upgrade", (req, socket: Duplex, head: Buffer) => {
    socket.on("error", () => socket.destroy());
    void hub.upgrade(req, socket, head);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, opts.host ?? "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    hub,
    server,
    url: `http://${opts.host ?? "127.0.0.1"}:${port}`,
    port,
    logs,
    async close() {
      await hub.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A TCP echo server that counts the connections it accepted. */
export async function startEcho(): Promise<{
  server: TcpServer;
  port: number;
  accepted: () => number;
  close(): Promise<void>;
}> {
  let n = 0;
  const server = createTcpServer((s) => {
    n++;
    s.on("error", () => undefined);
    s.pipe(s);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    accepted: () => n,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
      }),
  };
}

/** A port nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const s = createTcpServer();
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", () => resolve()));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** An in-process agent, its events, and a way to wait for one. */
export interface RunningAgent {
  agent: Agent;
  events: AgentEvent[];
  /** run()'s outcome: null when it resolved, else the error. */
  outcome: Promise<unknown>;
  /** The first event of `type` (matching) at index `from` or later; default: from now on. */
  next<T extends AgentEvent["type"]>(
    type: T,
    match?: (e: Extract<AgentEvent, { type: T }>) => boolean,
    from?: number,
  ): Promise<Extract<AgentEvent, { type: T }>>;
}

export function runAgent(
  url: string,
  opts: Partial<AgentOptions> & { allowed?: string[] } = {},
): RunningAgent {
  const events: AgentEvent[] = [];
  const waiters: Array<() => void> = [];
  const { allowed, ...rest } = opts;
  const agent = new Agent({
    broker: url,
    name: "edge",
    token: () => tokens.edge(),
    allow: allowed ? AllowList.parse(allowed, false) : AllowList.any(),
    backoff: { initialMs: 50, maxMs: 400 },
    ...rest,
    onEvent: (e) => {
      events.push(e);
      rest.onEvent?.(e);
      for (const w of waiters.splice(0)) w();
    },
  });
  const outcome = agent.run().then(
    () => null,
    (err: unknown) => err,
  );
  agents.push(agent);
  return {
    agent,
    events,
    outcome,
    next(type, match, start = events.length) {
      return new Promise((resolve) => {
        let i = start;
        const check = () => {
          for (; i < events.length; i++) {
            const e = events[i]!;
            if (e.type === type && (!match || match(e as never))) {
              resolve(e as never);
              return;
            }
          }
          waiters.push(check);
        };
        check();
      });
    },
  };
}

const agents: Agent[] = [];

/** Stops every agent runAgent started. */
export async function stopAgents(): Promise<void> {
  for (const a of agents.splice(0)) await a.stop();
}

/** Reads from a stream until `n` bytes came. */
export function readBytes(s: Duplex, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const onData = (c: Buffer) => {
      chunks.push(c);
      got += c.length;
      if (got >= n) {
        s.off("data", onData);
        resolve(Buffer.concat(chunks));
      }
    };
    s.on("data", onData);
    s.once("error", reject);
  });
}
