/**
 * Every way a bearer token can be wrong, against the real stack: the API answers 401 with a
 * stable error code, the tunnel upgrade is refused before any session exists or any byte
 * reaches PostgreSQL, and a PostgreSQL client on an open tunnel gets a FATAL 28000 that says
 * why instead of a silent close. Then authorization (403, groups overage) and key rotation.
 */
import { execFile } from "node:child_process";
import { createPublicKey } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { decodeJwt, decodeProtectedHeader, generateKeyPair, SignJWT } from "jose";
import pg from "pg";
import { WebSocket } from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Broker } from "../../src/broker/broker.js";
import { createLogger } from "../../src/broker/logger.js";
import type { BrokerConfig } from "../../src/config/schema.js";
import { startLocalEntra, type LocalEntra } from "../../src/identity/local-entra/server.js";
import { AuthError, TokenVerifier } from "../../src/identity/verify-token.js";
import { makeFetch } from "../../src/net/http-client.js";
import { MemoryStore } from "../../src/store/memory-store.js";
import { BrokerClient, notSignedIn } from "../../src/tunnel/broker-client.js";
import { Tunnel } from "../../src/tunnel/tunnel.js";
import { GROUP_DBA, startStack, type Stack } from "../helpers/stack.js";

const execFileP = promisify(execFile);

let stack: Stack;
let caPem: string;
/** A tunnel whose token is whatever `current` says (null: not signed in). */
let badTunnel: Tunnel;
let current: string | null = null;
/** A tunnel with the DBA's valid token: the control that shows what a real session leaves. */
let goodTunnel: Tunnel;

const DB_TEST = { name: "db-test", type: "postgres" as const, description: null, database: "app" };

beforeAll(async () => {
  stack = await startStack({ pg: { settings: { log_connections: "on" } } });
  caPem = readFileSync(stack.ca.caCert, "utf8");
  badTunnel = await Tunnel.open({
    client: stack.client(stack.tokens.dba),
    connection: DB_TEST,
    token: () => {
      if (current === null) throw notSignedIn();
      return current;
    },
    bind: "127.0.0.1",
    port: 0,
  });
  goodTunnel = await stack.openTunnel(stack.tokens.dba);
});

afterAll(async () => {
  await badTunnel?.close();
  await stack?.stop();
});

// --- helpers -------------------------------------------------------------------------------

interface ApiAnswer {
  status: number;
  body: { error?: { code: string; message: string }; [k: string]: unknown };
  wwwAuthenticate: string | null;
}

async function api(path: string, authorization: string | null, url = stack.broker.url) {
  const fetch = makeFetch({ caFile: stack.ca.caCert });
  const res = await fetch(url + path, {
    headers: authorization === null ? {} : { authorization },
  });
  return {
    status: res.status,
    body: (await res.json()) as ApiAnswer["body"],
    wwwAuthenticate: res.headers.get("www-authenticate"),
  } satisfies ApiAnswer;
}

/** Attempts the tunnel upgrade; the status and JSON body of a refusal, or 101 when it opened. */
function upgrade(
  authorization: string | null,
  connection = "db-test",
): Promise<{ status: number; body?: { error: { code: string; message: string } } }> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const ws = new WebSocket(`${stack.broker.url.replace(/^http/, "ws")}/v1/tunnel/${connection}`, {
      ca: caPem,
      perMessageDeflate: false,
      headers: authorization === null ? {} : { authorization },
    });
    ws.on("unexpected-response", (_req, res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        settled = true;
        resolve({
          status: res.statusCode ?? 0,
          body: JSON.parse(Buffer.concat(chunks).toString("utf8")) as {
            error: { code: string; message: string };
          },
        });
        ws.terminate();
      });
    });
    ws.on("open", () => {
      settled = true;
      resolve({ status: 101 });
      ws.close(1000);
    });
    ws.on("error", (err) => {
      if (!settled) reject(err);
    });
  });
}

/** Lines PostgreSQL logged for incoming connections (log_connections = on). */
function pgConnections(): number {
  return readFileSync(stack.pg.logFile, "utf8")
    .split("\n")
    .filter((l) => l.includes("connection received:")).length;
}

async function sessionCount(): Promise<number> {
  return (await stack.store.listSessions({ limit: 1000 })).length;
}

interface PgFailure {
  code?: string;
  severity?: string;
  message: string;
  hint?: string;
}

/** Connects a pg client to a local port; resolves with the error it got (fails if none). */
async function pgRefusal(port: number): Promise<PgFailure> {
  const c = new pg.Client({
    host: "127.0.0.1",
    port,
    user: "anyone",
    database: "app",
    ssl: false,
    connectionTimeoutMillis: 20_000,
  });
  c.on("error", () => undefined);
  try {
    await c.connect();
  } catch (err) {
    return err as PgFailure;
  }
  await c.end();
  throw new Error("the connection was accepted");
}

async function pgQuery(port: number, sql: string): Promise<unknown[]> {
  const c = new pg.Client({ host: "127.0.0.1", port, user: "anyone", database: "app" });
  await c.connect();
  try {
    return (await c.query(sql)).rows;
  } finally {
    await c.end();
  }
}

/** A real session through the good tunnel: one more PG connection and one more session. */
async function controlSession(): Promise<void> {
  expect(await pgQuery(goodTunnel.address.port, "select 1 as one")).toEqual([{ one: 1 }]);
}

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
const now = () => Math.floor(Date.now() / 1000);

// --- the bad tokens ------------------------------------------------------------------------

interface BadCase {
  name: string;
  /** The Authorization header sent to the API and the upgrade (null: none). */
  header: string | null;
  /** What the tunnel sends (null: the CLI has no token). */
  token: string | null;
  code: string;
  /** What the message to the PostgreSQL client must say. */
  reason: RegExp;
}

type Maker = (s: Stack) => Promise<Omit<BadCase, "name" | "code" | "reason">>;

const bearer =
  (mint: (s: Stack) => Promise<string>): Maker =>
  async (s) => {
    const token = await mint(s);
    return { header: `Bearer ${token}`, token };
  };

/** The claims of a valid DBA token, to re-sign or tamper with. */
async function dbaClaims(s: Stack): Promise<Record<string, unknown>> {
  return decodeJwt(await s.entra.mintAccessToken({ groups: [GROUP_DBA] })) as Record<
    string,
    unknown
  >;
}

const BAD: { name: string; code: string; reason: RegExp; make: Maker }[] = [
  {
    name: "no Authorization header",
    code: "token_missing",
    reason: /not signed in/,
    make: async () => ({ header: null, token: null }),
  },
  {
    name: "a header that is not Bearer <jwt>",
    code: "token_malformed",
    reason: /not a JWT/,
    make: async () => ({ header: "Basic ZGFuYTpodW50ZXIy", token: "not-a-jwt" }),
  },
  {
    name: "an expired token (beyond the 30 s tolerance)",
    code: "token_expired",
    reason: /expired/,
    make: bearer((s) =>
      s.entra.mintAccessToken(
        { groups: [GROUP_DBA] },
        { now: now() - 3600 - 90, lifetimeSeconds: 3600 },
      ),
    ),
  },
  {
    name: "a token for another audience",
    code: "token_wrong_audience",
    reason: /audience/,
    make: bearer((s) =>
      s.entra.mintAccessToken({ aud: "api://another-application", groups: [GROUP_DBA] }),
    ),
  },
  {
    name: "a token from another tenant",
    code: "token_wrong_issuer",
    reason: /another issuer or tenant/,
    make: bearer((s) => {
      const tid = "0ther000-0000-0000-0000-000000000000";
      return s.entra.mintAccessToken({
        iss: `${s.entra.url}/${tid}/v2.0`,
        tid,
        groups: [GROUP_DBA],
      });
    }),
  },
  {
    name: "a token signed by another RSA key under the issuer's kid",
    code: "token_bad_signature",
    reason: /signature/,
    make: bearer(async (s) => {
      const { privateKey } = await generateKeyPair("RS256");
      return new SignJWT(await dbaClaims(s))
        .setProtectedHeader({ alg: "RS256", typ: "JWT", kid: s.entra.keys.current.kid })
        .sign(privateKey);
    }),
  },
  {
    name: "a tampered payload (groups added to a signed token)",
    code: "token_bad_signature",
    reason: /signature/,
    make: bearer(async (s) => {
      const signed = await s.entra.mintAccessToken({ groups: [] });
      const [h, p, sig] = signed.split(".");
      const claims = JSON.parse(Buffer.from(p!, "base64url").toString("utf8")) as Record<
        string,
        unknown
      >;
      return `${h}.${b64({ ...claims, groups: [GROUP_DBA] })}.${sig}`;
    }),
  },
  {
    name: "alg: none (an unsigned token)",
    code: "token_bad_algorithm",
    reason: /algorithm/,
    make: bearer(async (s) => `${b64({ alg: "none", typ: "JWT" })}.${b64(await dbaClaims(s))}.`),
  },
  {
    name: "HS256 with the issuer's public key as the HMAC secret",
    code: "token_bad_algorithm",
    reason: /algorithm/,
    make: bearer(async (s) => {
      const pub = createPublicKey({ key: s.entra.keys.current.publicJwk, format: "jwk" });
      const secret = Buffer.from(pub.export({ type: "spki", format: "pem" }));
      return new SignJWT(await dbaClaims(s))
        .setProtectedHeader({ alg: "HS256", typ: "JWT", kid: s.entra.keys.current.kid })
        .sign(secret);
    }),
  },
  {
    name: "a kid the issuer does not publish",
    code: "token_unknown_key",
    reason: /key the identity provider does not publish/,
    make: bearer((s) =>
      s.entra.mintAccessToken({ groups: [GROUP_DBA] }, { header: { kid: "no-such-key" } }),
    ),
  },
  {
    name: "nbf in the future",
    code: "token_not_yet_valid",
    reason: /not valid yet/,
    make: bearer((s) => s.entra.mintAccessToken({ groups: [GROUP_DBA], nbf: now() + 600 })),
  },
  {
    name: "an id_token (audience: the client app)",
    code: "token_wrong_audience",
    reason: /audience/,
    make: bearer((s) => s.entra.mintIdToken({ groups: [GROUP_DBA] })),
  },
  {
    name: "an id_token with the API as audience",
    code: "token_not_access_token",
    reason: /not an access token/,
    make: bearer((s) => s.entra.mintIdToken({ aud: s.entra.audience, groups: [GROUP_DBA] })),
  },
];

const made = new Map<string, BadCase>();
beforeAll(async () => {
  for (const c of BAD)
    made.set(c.name, { name: c.name, code: c.code, reason: c.reason, ...(await c.make(stack)) });
});

// --- tests ---------------------------------------------------------------------------------

describe("a valid token (the control)", () => {
  it("lists the connection, opens the tunnel, and a session reaches PostgreSQL", async () => {
    const a = await api("/v1/connections", `Bearer ${stack.tokens.dba}`);
    expect(a.status).toBe(200);
    expect((a.body["connections"] as { name: string }[]).map((c) => c.name)).toEqual(["db-test"]);
    expect((await upgrade(`Bearer ${stack.tokens.dba}`)).status).toBe(101);

    const conns = pgConnections();
    const sessions = await sessionCount();
    await controlSession();
    expect(pgConnections()).toBe(conns + 1);
    expect(await sessionCount()).toBe(sessions + 1);
  });
});

describe.each(BAD.map((c) => [c.name, c.code] as const))("%s", (name, code) => {
  it(`GET /v1/connections: 401 ${code}`, async () => {
    const c = made.get(name)!;
    const a = await api("/v1/connections", c.header);
    expect(a.status).toBe(401);
    expect(a.body.error?.code).toBe(code);
    expect(a.body.error?.message.length).toBeGreaterThan(10);
    expect(a.wwwAuthenticate).toMatch(/^Bearer /);
    if (c.token) expect(JSON.stringify(a.body)).not.toContain(c.token);
  });

  it("the tunnel upgrade is refused with 401: no session, nothing reaches PostgreSQL", async () => {
    const c = made.get(name)!;
    const conns = pgConnections();
    const sessions = await sessionCount();
    const logFrom = stack.logs.length;

    const u = await upgrade(c.header);
    expect(u.status).toBe(401);
    expect(u.body?.error.code).toBe(code);
    expect(
      stack.logs
        .slice(logFrom)
        .some((l) => l.includes('"msg":"tunnel refused"') && l.includes(`"reason":"${code}"`)),
    ).toBe(true);

    expect(pgConnections()).toBe(conns);
    expect(await sessionCount()).toBe(sessions);
    // A real session after it adds exactly one of each: the refusal added none, even late.
    await controlSession();
    expect(pgConnections()).toBe(conns + 1);
    expect(await sessionCount()).toBe(sessions + 1);
  });

  it("a PostgreSQL client on the tunnel gets FATAL 28000 naming the reason", async () => {
    const c = made.get(name)!;
    const conns = pgConnections();
    const sessions = await sessionCount();
    current = c.token;
    const e = await pgRefusal(badTunnel.address.port);
    expect(e.code).toBe("28000");
    expect(e.severity).toBe("FATAL");
    expect(e.message).toMatch(/^gw: /);
    expect(e.message).toMatch(c.reason);
    expect(e.hint).toMatch(/gw login|GW_TOKEN/);
    if (c.token) expect(e.message).not.toContain(c.token);

    await controlSession();
    expect(pgConnections()).toBe(conns + 1);
    expect(await sessionCount()).toBe(sessions + 1);
  });
});

describe("psql on a tunnel with an expired token", () => {
  it("prints the broker's reason, not 'server closed the connection unexpectedly'", async () => {
    current = made.get("an expired token (beyond the 30 s tolerance)")!.token;
    const err = await execFileP(
      join(stack.pg.binDir, "psql"),
      [`postgresql://127.0.0.1:${badTunnel.address.port}/app`, "-XAtc", "select 1"],
      { env: { ...process.env, PGUSER: "anyone", PGPASSWORD: "", PGCONNECT_TIMEOUT: "20" } },
    ).then(
      () => {
        throw new Error("psql succeeded");
      },
      (e: { code?: number; stderr?: string }) => e,
    );
    expect(err.code).toBe(2);
    expect(err.stderr).toContain(
      "FATAL:  gw: the broker refused your sign-in: the token has expired",
    );
    expect(err.stderr).toMatch(/HINT: .*gw login/);
    expect(err.stderr).not.toMatch(/closed the connection unexpectedly/);
  });
});

describe("authorization", () => {
  it("a valid token without an allowed group: the connection is not listed, the tunnel is 403", async () => {
    const token = stack.tokens.outsider;
    const who = await api("/v1/whoami", `Bearer ${token}`);
    expect(who.status).toBe(200);
    const list = await api("/v1/connections", `Bearer ${token}`);
    expect(list.status).toBe(200);
    expect(list.body["connections"]).toEqual([]);

    const conns = pgConnections();
    const sessions = await sessionCount();
    const u = await upgrade(`Bearer ${token}`);
    expect(u.status).toBe(403);
    expect(u.body?.error.code).toBe("forbidden");
    expect(u.body?.error.message).toContain('may not use connection "db-test"');
    // An unknown connection looks the same: no probing for names.
    const unknown = await upgrade(`Bearer ${token}`, "db-secret");
    expect(unknown.status).toBe(403);
    expect(unknown.body?.error.code).toBe("forbidden");

    current = token;
    const e = await pgRefusal(badTunnel.address.port);
    expect(e.code).toBe("28000");
    expect(e.message).toContain('Oscar Outsider may not use connection "db-test"');

    await controlSession();
    expect(pgConnections()).toBe(conns + 1);
    expect(await sessionCount()).toBe(sessions + 1);
  });

  it.each([
    [
      "_claim_names",
      {
        groups: undefined,
        _claim_names: { groups: "src1" },
        _claim_sources: {
          src1: { endpoint: "https://graph.windows.net/tenant/users/oid/getMemberObjects" },
        },
      },
    ],
    ["hasgroups", { groups: undefined, hasgroups: true }],
  ])("groups overage (%s): 403 groups_overage on the API and the tunnel", async (_n, claims) => {
    const token = await stack.entra.mintAccessToken(claims);
    const a = await api("/v1/connections", `Bearer ${token}`);
    expect(a.status).toBe(403);
    expect(a.body.error?.code).toBe("groups_overage");
    expect(a.body.error?.message).toMatch(/too many groups/);

    const conns = pgConnections();
    const sessions = await sessionCount();
    const u = await upgrade(`Bearer ${token}`);
    expect(u.status).toBe(403);
    expect(u.body?.error.code).toBe("groups_overage");

    current = token;
    const e = await pgRefusal(badTunnel.address.port);
    expect(e.code).toBe("28000");
    expect(e.message).toMatch(/too many groups/);

    await controlSession();
    expect(pgConnections()).toBe(conns + 1);
    expect(await sessionCount()).toBe(sessions + 1);
  });
});

describe("signing key rotation", () => {
  // A separate issuer, so rotating its keys cannot disturb the tests above.
  let entra: LocalEntra;
  let broker: Broker;
  let store: MemoryStore;
  let identity: BrokerConfig["identity"];
  const tunnels: Tunnel[] = [];

  beforeAll(async () => {
    entra = await startLocalEntra({
      tls: { cert: stack.brokerCert.cert, key: stack.brokerCert.key },
    });
    identity = { ...stack.config.identity, issuer: entra.issuer, audience: entra.audience };
    store = new MemoryStore();
    broker = await Broker.start({
      config: { ...stack.config, identity },
      store,
      listen: { host: "127.0.0.1", port: 0 },
      logger: createLogger({ level: "error", write: () => undefined }),
      verifier: new TokenVerifier(identity, { jwksCooldownMs: 0 }),
    });
  });

  afterAll(async () => {
    for (const t of tunnels) await t.close();
    await broker?.close();
    await store?.close();
    await entra?.close();
  });

  async function codeOf(p: Promise<unknown>): Promise<string | null> {
    try {
      await p;
      return null;
    } catch (err) {
      if (err instanceof AuthError) return err.code;
      throw err;
    }
  }

  it("TokenVerifier: a token with the new kid is accepted after a refetch; the old one still is", async () => {
    const v = new TokenVerifier(identity, { jwksCooldownMs: 0 });
    const before = await entra.mintAccessToken({ groups: [GROUP_DBA] });
    expect((await v.verify(before)).groups).toEqual([GROUP_DBA]);

    const oldKid = entra.keys.current.kid;
    const newKid = await entra.rotateKeys();
    expect(newKid).not.toBe(oldKid);
    const after = await entra.mintAccessToken({ groups: [GROUP_DBA], name: "After Rotation" });
    expect(decodeProtectedHeader(after).kid).toBe(newKid);
    expect((await v.verify(after)).name).toBe("After Rotation");
    expect((await v.verify(before)).groups).toEqual([GROUP_DBA]);
    // A kid nobody publishes is still refused after the refetch.
    const stray = await entra.mintAccessToken({}, { header: { kid: "stray" } });
    expect(await codeOf(v.verify(stray))).toBe("token_unknown_key");
  });

  it("TokenVerifier: within the refetch cooldown an unknown kid is refused, not fetched again", async () => {
    const v = new TokenVerifier(identity, { jwksCooldownMs: 10 * 60_000 });
    expect(await codeOf(v.verify(await entra.mintAccessToken({ groups: [GROUP_DBA] })))).toBeNull();
    await entra.rotateKeys();
    const next = await entra.mintAccessToken({ groups: [GROUP_DBA] });
    expect(await codeOf(v.verify(next))).toBe("token_unknown_key");
  });

  it("the broker accepts the new kid on the API and the tunnel", async () => {
    const first = await entra.mintAccessToken({ groups: [GROUP_DBA] });
    expect((await api("/v1/connections", `Bearer ${first}`, broker.url)).status).toBe(200);
    const newKid = await entra.rotateKeys();
    const second = await entra.mintAccessToken({ groups: [GROUP_DBA], name: "Rotated Rita" });
    expect(decodeProtectedHeader(second).kid).toBe(newKid);
    const a = await api("/v1/connections", `Bearer ${second}`, broker.url);
    expect(a.status).toBe(200);
    expect((a.body["connections"] as { name: string }[]).map((c) => c.name)).toEqual(["db-test"]);

    const t = await Tunnel.open({
      client: new BrokerClient({ url: broker.url, token: second, caFile: stack.ca.caCert }),
      connection: DB_TEST,
      token: () => second,
      bind: "127.0.0.1",
      port: 0,
    });
    tunnels.push(t);
    expect(await pgQuery(t.address.port, "select 42 as n")).toEqual([{ n: 42 }]);
    const sessions = await store.listSessions({});
    expect(sessions.map((s) => s.identity.name)).toEqual(["Rotated Rita"]);
  });
});

describe("the broker log", () => {
  it("holds no token, valid or not, that was sent to it", () => {
    const log = stack.logs.join("\n");
    expect(log).toContain('"msg":"tunnel refused"');
    const sent = [...Object.values(stack.tokens), ...[...made.values()].map((c) => c.token)];
    for (const t of sent) {
      if (t === null || t.split(".").length !== 3) continue;
      expect(log.includes(t), "a token is in the broker log").toBe(false);
      const sig = t.split(".")[2]!;
      if (sig) expect(log.includes(sig), "a token's signature is in the broker log").toBe(false);
    }
  });
});
