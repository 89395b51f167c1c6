/**
 * Tokens on live tunnels: the tunnel sends fresh tokens over its open streams before the old
 * ones expire, so one PostgreSQL session outlives many tokens; without a fresh token the session
 * ends at expiry with the documented error; a token of another identity never extends it.
 *
 * Tokens here live 8 s (grace 2 s) so three expiries fit in a short test; the real-MSAL path
 * with 30-second tokens is covered by the CLI sign-in tests.
 */
import { afterAll, beforeAll, expect, test } from "vitest";
import pg from "pg";
import { GROUP_DBA, startStack, tunnelUrl, type Stack } from "../helpers/stack.js";
import { Tunnel, type TunnelEvent } from "../../src/tunnel/tunnel.js";

const LIFETIME = 8;
const USER = {
  oid: "44444444-4444-4444-4444-444444444444",
  name: "Rhea Refresh",
  groups: [GROUP_DBA],
};
let stack: Stack;

beforeAll(async () => {
  stack = await startStack({
    mutate: (raw) => {
      (raw["identity"] as Record<string, unknown>)["expiryGraceSeconds"] = 2;
    },
  });
});

afterAll(async () => {
  await stack?.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function openTunnel(source: () => Promise<string>, events: TunnelEvent[]): Promise<Tunnel> {
  const first = await source();
  const client = stack.client(first);
  return Tunnel.open({
    client,
    connection: { name: "db-test", type: "postgres", description: null, database: "app" },
    token: source,
    bind: "127.0.0.1",
    port: 0,
    onEvent: (e) => events.push(e),
  });
}

test("one session stays up across three token expiries, on the same backend", async () => {
  const events: TunnelEvent[] = [];
  let minted = 0;
  const source = async () => {
    minted++;
    return stack.entra.mintAccessToken(USER, { lifetimeSeconds: LIFETIME });
  };
  const tunnel = await openTunnel(source, events);
  const c = new pg.Client({ connectionString: tunnelUrl(tunnel) });
  await c.connect();
  const pid = (await c.query("select pg_backend_pid() as pid")).rows[0].pid as number;
  const started = Date.now();
  let queries = 0;
  while (Date.now() - started < LIFETIME * 3 * 1000 + 4000) {
    const r = await c.query("select pg_backend_pid() as pid, $1::int as n", [queries]);
    expect(r.rows[0]).toEqual({ pid, n: queries });
    queries++;
    await sleep(1000);
  }
  await c.end();
  await tunnel.close();
  expect(queries).toBeGreaterThan(LIFETIME * 3);
  // Fresh tokens reached the open stream at least three times, and the broker took each one.
  expect(events.filter((e) => e.type === "token_refreshed").length).toBeGreaterThanOrEqual(3);
  expect(events.filter((e) => e.type === "token_rejected")).toEqual([]);
  expect(minted).toBeGreaterThanOrEqual(4);
  const sessions = await stack.store.listSessions({ oid: USER.oid });
  expect(sessions).toHaveLength(1);
  expect(sessions[0]!.statementCount).toBe(queries + 1);
}, 90_000);

test("without a fresh token the session ends at expiry with 28000 'your sign-in expired'", async () => {
  const events: TunnelEvent[] = [];
  let revoked = false;
  const source = async () => {
    if (revoked) throw new Error("invalid_grant: the refresh token was revoked");
    return stack.entra.mintAccessToken(
      { ...USER, oid: "55555555-5555-5555-5555-555555555555" },
      { lifetimeSeconds: LIFETIME },
    );
  };
  const tunnel = await openTunnel(source, events);
  const c = new pg.Client({ connectionString: tunnelUrl(tunnel) });
  const asyncErrors: Error[] = [];
  c.on("error", (e) => asyncErrors.push(e));
  await c.connect();
  await c.query("select 1");
  revoked = true;
  // Wait past expiry + grace; the broker ends the session by itself.
  await sleep((LIFETIME + 2 + 2) * 1000);
  const err = (await c.query("select 1").catch((e: unknown) => e)) as Error & { code?: string };
  expect(err).toBeInstanceOf(Error);
  const fatal = (asyncErrors[0] ?? err) as Error & { code?: string };
  expect(fatal.code).toBe("28000");
  expect(fatal.message).toMatch(/gw: your sign-in expired; run `gw login`/);
  expect(events.some((e) => e.type === "token_refresh_failed")).toBe(true);
  expect(events.some((e) => e.type === "sign_in_expired")).toBe(true);
  await tunnel.close();
  const [s] = await stack.store.listSessions({ oid: "55555555-5555-5555-5555-555555555555" });
  expect(s?.endReason).toBe("auth_expired");
}, 60_000);

test("a fresh token of another identity is refused and does not extend the session", async () => {
  const events: TunnelEvent[] = [];
  let swap = false;
  const owner = { ...USER, oid: "66666666-6666-6666-6666-666666666666" };
  const intruder = { ...USER, oid: "77777777-7777-7777-7777-777777777777" };
  const source = async () =>
    stack.entra.mintAccessToken(swap ? intruder : owner, { lifetimeSeconds: LIFETIME });
  const tunnel = await openTunnel(source, events);
  const c = new pg.Client({ connectionString: tunnelUrl(tunnel) });
  const asyncErrors: Error[] = [];
  c.on("error", (e) => asyncErrors.push(e));
  await c.connect();
  swap = true;
  await sleep((LIFETIME + 2 + 2) * 1000);
  const rejected = events.filter((e) => e.type === "token_rejected");
  expect(rejected.length).toBeGreaterThanOrEqual(1);
  expect(rejected[0]).toMatchObject({ code: "identity_mismatch" });
  const err = (await c.query("select 1").catch((e: unknown) => e)) as Error;
  expect(err).toBeInstanceOf(Error);
  expect(((asyncErrors[0] ?? err) as Error & { code?: string }).code).toBe("28000");
  await tunnel.close();
  const [s] = await stack.store.listSessions({ oid: owner.oid });
  expect(s?.endReason).toBe("auth_expired");
  expect(await stack.store.listSessions({ oid: intruder.oid })).toEqual([]);
}, 60_000);
