/**
 * The Entra sign-in, end to end, as people and agents use it: the real CLI (bin/gw, built dist/)
 * in subprocesses, the real MSAL, the local Entra-compatible server with 30-second access
 * tokens, an HTTPS broker and a real PostgreSQL. Build first: `npm run build`.
 *
 *   - A person runs `gw login` (device code, approved through the server's API), then
 *     `gw connect`; one PostgreSQL session stays up across three token expiries on the same
 *     backend, because the tunnel refreshes the token (MSAL, refresh-token grants) and sends it
 *     over the open stream. Once the person's refresh tokens are revoked the session keeps
 *     working until the last token expires, then ends (after the grace) with FATAL 28000
 *     "gw: your sign-in expired; run `gw login`", and `gw connect` says why on stderr.
 *   - A service principal from the AZURE_* variables (client secret, no `gw login`) keeps a
 *     session across two expiries: it re-acquires by client credentials.
 *   - A query that reaches the broker between a session's expiry and the broker's expiry timer
 *     ends the session the same way, and the tunnel is told (it was not, once).
 *
 * The first two run concurrently (each is mostly waiting for tokens to expire).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, test } from "vitest";
import { DEMO_USERS } from "../../src/identity/local-entra/server.js";
import { BrokerClient } from "../../src/tunnel/broker-client.js";
import { Tunnel, type TunnelEvent } from "../../src/tunnel/tunnel.js";
import { startGw, startGwUntil, type BackgroundGw } from "../helpers/cli.js";
import { APP_AGENT, GROUP_DBA } from "../helpers/stack.js";
import { startSignedInStack, type SignedInStack } from "../helpers/signed-in-stack.js";

const LIFETIME = 30; // access tokens, seconds
const GRACE = 5; // identity.expiryGraceSeconds
const QUERY_EVERY_MS = 2000;
const DANA = DEMO_USERS[0]!; // Dana DBA, in the group allowed on db-test

let stack: SignedInStack;
const dirs: string[] = [];
const processes: BackgroundGw[] = [];

beforeAll(async () => {
  stack = await startSignedInStack({
    entra: { lifetimes: { accessToken: LIFETIME }, interval: 1 },
    expiryGraceSeconds: GRACE,
  });
});

afterAll(async () => {
  for (const p of processes) await p.stop("SIGKILL").catch(() => undefined);
  await stack?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What `gw connect` prints for a time: local wall clock, HH:MM:SS. */
const clockTime = (ms: number) => new Date(ms).toTimeString().slice(0, 8);

/** A config dir of its own, tokens in a file there: no developer state, no keychain. */
function cliEnv(extra: Record<string, string> = {}): Record<string, string> {
  const dir = mkdtempSync(join(tmpdir(), "gw-login-refresh-"));
  dirs.push(dir);
  return { GW_CONFIG_DIR: dir, GW_TOKEN_STORE: "file", ...extra };
}

async function waitFor<T>(
  what: string | (() => string),
  fn: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 20_000,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > until)
      throw new Error(`timed out waiting for ${typeof what === "string" ? what : what()}`);
    await sleep(100);
  }
}

interface ConnectJson {
  url: string;
  listen: { host: string; port: number };
}

async function gwConnect(args: string[], env: Record<string, string>) {
  const gw = await startGw<ConnectJson>(["connect", "db-test", "--port", "0", "--json", ...args], {
    env,
    // A safety net only: the process must outlive every wait below.
    timeoutMs: 400_000,
  });
  processes.push(gw as BackgroundGw);
  return gw;
}

/** A pg client through the tunnel; errors the server sends while it is idle are collected. */
async function connectClient(gw: BackgroundGw<ConnectJson>) {
  const client = new pg.Client({ connectionString: `${gw.json.url}?sslmode=disable` });
  const asyncErrors: Array<Error & { code?: string }> = [];
  client.on("error", (e) => asyncErrors.push(e));
  await client.connect();
  return { client, asyncErrors };
}

interface QueryResult {
  /** When the answer (or the error) came back, epoch ms. */
  at: number;
  pid?: number;
  error?: Error & { code?: string };
}

async function query(client: pg.Client, n: number): Promise<QueryResult> {
  try {
    const r = await client.query<{ pid: number; n: number }>(
      "select pg_backend_pid() as pid, $1::int as n",
      [n],
    );
    if (r.rows[0]?.n !== n) throw new Error(`wrong answer: ${JSON.stringify(r.rows)}`);
    return { at: Date.now(), pid: r.rows[0].pid };
  } catch (err) {
    return { at: Date.now(), error: err as Error & { code?: string } };
  }
}

/** Queries every QUERY_EVERY_MS for `ms`, stopping at the first error. */
async function queryFor(client: pg.Client, ms: number, first = 0): Promise<QueryResult[]> {
  const results: QueryResult[] = [];
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const r = await query(client, first + results.length);
    results.push(r);
    if (r.error) break;
    await sleep(QUERY_EVERY_MS);
  }
  return results;
}

/** The distinct expiries (seconds) of the fresh tokens the broker took for `oid`. */
function refreshedExpiries(oid: string): number[] {
  const exps = stack.logged("token refreshed", { oid }).map((l) => Number(l["expiresAt"]));
  return [...new Set(exps)].sort((a, b) => a - b);
}

test.concurrent(
  "gw login, then gw connect: one session across three token expiries; revoked, it ends at expiry with 28000",
  async ({ expect }) => {
    const env = cliEnv();

    // 1. gw login: device code, approved through the server's API, as Dana.
    const login = await startGwUntil(
      ["login", "--broker", stack.brokerUrl, "--ca-file", stack.ca.caCert],
      /enter the code\s+(\S+)/,
      { env, timeoutMs: 60_000 },
    );
    processes.push(login as BackgroundGw);
    stack.entra.approveDevice(login.json[1]!, DANA.oid);
    const signedIn = await login.exited;
    expect(signedIn.code, signedIn.stderr).toBe(0);
    expect(signedIn.stdout).toContain(`Signed in as Dana DBA (${DANA.preferred_username})`);

    // 2. gw connect: the broker, CA and tokens all come from the login.
    const gw = await gwConnect([], env);
    expect(gw.json.listen.port).toBeGreaterThan(0);
    const { client, asyncErrors } = await connectClient(gw);

    // 3. Three expiries and more: every query answers, on the same backend (no reconnect).
    const steady = await queryFor(client, (LIFETIME * 3 + 10) * 1000);
    expect(steady.filter((r) => r.error).map((r) => r.error!.message)).toEqual([]);
    expect(steady.length).toBeGreaterThanOrEqual(40);
    const pid = steady[0]!.pid!;
    expect(new Set(steady.map((r) => r.pid))).toEqual(new Set([pid]));
    expect(asyncErrors).toEqual([]);
    // The broker took a fresh token over the open stream at least three times (each a new
    // access token, so a refresh-token grant by the gw connect process), and refused none.
    expect(refreshedExpiries(DANA.oid).length).toBeGreaterThanOrEqual(3);
    expect(stack.logged("refreshed token refused", { oid: DANA.oid })).toEqual([]);
    const open = await stack.store.listSessions({ oid: DANA.oid });
    expect(open).toHaveLength(1);
    expect(open[0]).toMatchObject({ connection: "db-test", endedAt: null, endReason: null });
    expect(gw.stderr()).not.toMatch(/warning|expired/);

    // 4. Revoke Dana's sign-in sessions. Every refresh token ever issued to her is still on the
    // server's books: the one from gw login plus one per refresh-token grant.
    const revoked = stack.entra.revokeRefreshTokens(DANA.oid);
    expect(revoked).toBeGreaterThanOrEqual(1 + 3);

    // Keep querying: the session goes on until the last token expires, then ends.
    const tail = await queryFor(client, (LIFETIME + GRACE + 30) * 1000, steady.length);
    const failed = tail.find((r) => r.error);
    expect(failed, "the session should have ended at expiry + grace").toBeDefined();
    // Nothing extended the session after the revocation: its end is the last accepted token's.
    const lastExp = Math.max(...refreshedExpiries(DANA.oid)) * 1000;
    const beforeExpiry = tail.filter((r) => r.at < lastExp);
    expect(beforeExpiry.length).toBeGreaterThanOrEqual(1);
    expect(beforeExpiry.filter((r) => r.error)).toEqual([]);
    expect(new Set(beforeExpiry.map((r) => r.pid))).toEqual(new Set([pid]));
    expect(failed!.at).toBeGreaterThan(lastExp);
    const fatal = asyncErrors[0] ?? failed!.error!;
    expect(fatal.code).toBe("28000");
    expect(fatal.message).toMatch(/gw: your sign-in expired; run `gw login`/);

    // gw connect says so: one warning when the refresh fails, one line when the session ends.
    await waitFor(
      () => `gw connect to report the ended session; its stderr:\n${gw.stderr()}`,
      () => (/connection #\d+ ended: your sign-in expired/.test(gw.stderr()) ? true : undefined),
    );
    const stderr = gw.stderr();
    expect(stderr.match(/warning: could not refresh your sign-in/g)).toHaveLength(1);
    expect(stderr).toContain("your sign-in has expired or was revoked");
    expect(stderr).toContain(`open sessions end at ${clockTime(lastExp)}`);
    expect(stderr).toContain("Run `gw login` to sign in again.");
    expect(stderr).toMatch(
      /connection #1 ended: your sign-in expired\. Run `gw login`, then reconnect\./,
    );
    // stdout stays the one JSON line.
    expect(gw.stdout().trim().split("\n")).toHaveLength(1);

    const [session, ...others] = await stack.store.listSessions({ oid: DANA.oid });
    expect(others).toEqual([]);
    expect(session!.endReason).toBe("auth_expired");
    expect(stack.logged("sign-in expired; ending the session", { oid: DANA.oid })).toHaveLength(1);

    await client.end().catch(() => undefined);
    const stopped = await gw.stop("SIGINT");
    expect(stopped.code, stopped.stderr).toBe(0);
  },
  240_000,
);

test.concurrent(
  "a service principal from the AZURE_* variables keeps its session across two expiries",
  async ({ expect }) => {
    const env = cliEnv({
      AZURE_TENANT_ID: stack.entra.tenantId,
      AZURE_CLIENT_ID: stack.agent.clientId,
      AZURE_CLIENT_SECRET: stack.agent.secret,
    });
    const gw = await gwConnect(["--broker", stack.brokerUrl, "--ca-file", stack.ca.caCert], env);
    const { client, asyncErrors } = await connectClient(gw);

    const results = await queryFor(client, (LIFETIME * 2 + 10) * 1000);
    expect(results.filter((r) => r.error).map((r) => r.error!.message)).toEqual([]);
    expect(results.length).toBeGreaterThanOrEqual(28);
    expect(new Set(results.map((r) => r.pid)).size).toBe(1);
    expect(asyncErrors).toEqual([]);
    // Re-acquired by client credentials and taken by the broker at least twice.
    expect(refreshedExpiries(APP_AGENT).length).toBeGreaterThanOrEqual(2);
    expect(stack.logged("refreshed token refused", { oid: APP_AGENT })).toEqual([]);
    const sessions = await stack.store.listSessions({ oid: APP_AGENT });
    expect(sessions).toHaveLength(1);
    expect(sessions[0]).toMatchObject({
      identity: { type: "app" },
      endReason: null,
    });
    expect(gw.stderr()).not.toMatch(/warning|expired/);

    await client.end();
    const stopped = await gw.stop("SIGINT");
    expect(stopped.code, stopped.stderr).toBe(0);
    const ended = await waitFor("the session's end to be recorded", async () => {
      const [s] = await stack.store.listSessions({ oid: APP_AGENT });
      return s?.endedAt != null ? s : undefined;
    });
    expect(ended.endReason).toBe("client_closed");
    expect(ended.statementCount).toBe(results.length);
  },
  240_000,
);

test("client data between the expiry and the broker's timer still tells the tunnel why the session ended", async ({
  expect,
}) => {
  // The broker ends an expired session on a timer, or when client data comes in first: a
  // query in between must end it the same way, the tunnel told (gw connect prints it).
  const oid = "88888888-8888-4888-8888-888888888888";
  const now = Math.floor(Date.now() / 1000);
  const lifetime = 2;
  const token = await stack.entra.mintAccessToken(
    { oid, name: "Wendy Window", groups: [GROUP_DBA] },
    { lifetimeSeconds: lifetime, now },
  );
  const events: TunnelEvent[] = [];
  const tunnel = await Tunnel.open({
    client: new BrokerClient({ url: stack.brokerUrl, token, caFile: stack.ca.caCert }),
    connection: { name: "db-test", type: "postgres", description: null, database: "app" },
    token: () => token,
    bind: "127.0.0.1",
    port: 0,
    onEvent: (e) => events.push(e),
  });
  try {
    const client = new pg.Client({
      connectionString: `postgresql://127.0.0.1:${tunnel.address.port}/app?sslmode=disable`,
    });
    client.on("error", () => undefined);
    await client.connect();
    // Just past expiry + grace, before the broker's timer (it fires 50 ms later).
    await sleep((now + lifetime + GRACE) * 1000 + 10 - Date.now());
    const err = (await client.query("select 1").catch((e: unknown) => e)) as Error & {
      code?: string;
    };
    expect(err.code).toBe("28000");
    expect(err.message).toMatch(/gw: your sign-in expired; run `gw login`/);
    await waitFor("the tunnel to hear of the expiry", () =>
      events.some((e) => e.type === "sign_in_expired") ? true : undefined,
    );
    expect(stack.logged("sign-in expired; ending the session", { oid })).toHaveLength(1);
    const [s] = await stack.store.listSessions({ oid });
    expect(s?.endReason).toBe("auth_expired");
  } finally {
    await tunnel.close();
  }
}, 30_000);
