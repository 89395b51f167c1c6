/**
 * The local identity server's OAuth flows, over real HTTPS: the device-code flow (approved,
 * declined, expired, slow_down, auto-approved, via the login page), refresh tokens (rotation,
 * expiry, revocation), client credentials with a secret, a certificate assertion and a federated
 * assertion, and the real @azure/msal-node against it.
 */
import { createHash, randomUUID, X509Certificate } from "node:crypto";
import { rmSync } from "node:fs";
import { Agent, request } from "node:https";
import {
  ConfidentialClientApplication,
  InteractionRequiredAuthError,
  PublicClientApplication,
  type INetworkModule,
  type NetworkRequestOptions,
  type NetworkResponse,
} from "@azure/msal-node";
import {
  SignJWT,
  createLocalJWKSet,
  decodeJwt,
  exportJWK,
  generateKeyPair,
  importPKCS8,
  jwtVerify,
  type JSONWebKeySet,
  type JWTPayload,
} from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DEMO_USERS,
  FEDERATED_AUDIENCE,
  startLocalEntra,
  type LocalEntra,
} from "../../src/identity/local-entra/server.js";
import { issueCert, makeCa, type IssuedCert, type TestCa } from "../helpers/tls.js";

interface Res {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  body: Record<string, unknown>;
}

function send(
  method: string,
  url: string,
  ca: string,
  body?: string,
  headers: Record<string, string> = {},
): Promise<Res> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, ca, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let parsed: Record<string, unknown> = {};
        if ((res.headers["content-type"] ?? "").startsWith("application/json")) {
          parsed = JSON.parse(text) as Record<string, unknown>;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, body: parsed });
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

const FORM = { "content-type": "application/x-www-form-urlencoded" };

function post(
  url: string,
  ca: string,
  params: Record<string, string>,
  headers: Record<string, string> = {},
): Promise<Res> {
  return send("POST", url, ca, new URLSearchParams(params).toString(), { ...FORM, ...headers });
}

const TEST_GROUP = "44444444-4444-4444-4444-444444444444";
const ALICE = {
  oid: "5a5a5a5a-0000-4000-8000-000000000001",
  name: "Alice Admin",
  preferred_username: "alice@example.test",
  groups: [TEST_GROUP],
  roles: ["gw.admin"],
};
const BOB = {
  oid: "5a5a5a5a-0000-4000-8000-000000000002",
  name: "Bob Builder",
  preferred_username: "bob@example.test",
};
const SECRET_APP = "c0000000-0000-4000-8000-000000000001";
const CERT_APP = "c0000000-0000-4000-8000-000000000002";
const FED_APP = "c0000000-0000-4000-8000-000000000003";
const SECRET = "s3cr3t~value.that-is-long-enough";
const GITHUB = "https://token.actions.githubusercontent.com";
const GITHUB_SUB = "repo:example/gw:ref:refs/heads/main";

/** MSAL's network client over https with a private CA: what the CLI's --ca-file builds. */
class CaNetworkClient implements INetworkModule {
  private readonly agent: Agent;
  constructor(ca: string) {
    this.agent = new Agent({ ca, keepAlive: false });
  }
  sendGetRequestAsync<T>(
    url: string,
    options?: NetworkRequestOptions,
    timeout?: number,
  ): Promise<NetworkResponse<T>> {
    return this.send<T>("GET", url, options, timeout);
  }
  sendPostRequestAsync<T>(
    url: string,
    options?: NetworkRequestOptions,
  ): Promise<NetworkResponse<T>> {
    return this.send<T>("POST", url, options);
  }
  private send<T>(
    method: string,
    url: string,
    options?: NetworkRequestOptions,
    timeout?: number,
  ): Promise<NetworkResponse<T>> {
    return new Promise((resolve, reject) => {
      const req = request(
        url,
        { method, agent: this.agent, headers: options?.headers ?? {}, timeout },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            const headers: Record<string, string> = {};
            for (const [k, v] of Object.entries(res.headers)) {
              if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(", ") : v;
            }
            try {
              resolve({
                headers,
                body: JSON.parse(Buffer.concat(chunks).toString("utf8")) as T,
                status: res.statusCode ?? 0,
              });
            } catch (err) {
              reject(err as Error);
            }
          });
          res.on("error", reject);
        },
      );
      req.on("timeout", () => req.destroy(new Error("timeout")));
      req.on("error", reject);
      req.end(method === "POST" ? (options?.body ?? "") : undefined);
    });
  }
}

let ca: TestCa;
let leaf: IssuedCert;
let clientCert: IssuedCert;
let otherCert: IssuedCert;
let githubKeys: Awaited<ReturnType<typeof generateKeyPair>>;
let githubJwks: JSONWebKeySet;
/** A second local Entra playing an external OIDC issuer, whose JWKS is fetched over HTTPS. */
let external: LocalEntra;
/** The main server: real clock, interval 0, access tokens of 30 s. */
let entra: LocalEntra;

async function jwks(server: LocalEntra): Promise<ReturnType<typeof createLocalJWKSet>> {
  const res = await send("GET", server.jwksUri, ca.caPem);
  return createLocalJWKSet(res.body as unknown as JSONWebKeySet);
}

beforeAll(async () => {
  ca = makeCa();
  leaf = issueCert(ca, { cn: "localhost" });
  clientCert = issueCert(ca, { cn: "cert-app", keyType: "rsa", dns: [], ips: [] });
  otherCert = issueCert(ca, { cn: "other-app", keyType: "rsa", dns: [], ips: [] });
  githubKeys = await generateKeyPair("RS256");
  githubJwks = { keys: [{ ...(await exportJWK(githubKeys.publicKey)), kid: "gh-1", use: "sig" }] };
  external = await startLocalEntra({ tls: { cert: leaf.cert, key: leaf.key }, clients: [] });
  entra = await startLocalEntra({
    tls: { cert: leaf.cert, key: leaf.key },
    interval: 0,
    lifetimes: { accessToken: 30 },
    users: [ALICE, BOB],
    clients: [
      {
        type: "confidential",
        clientId: SECRET_APP,
        objectId: "0b000000-0000-4000-8000-000000000001",
        displayName: "Agent with a secret",
        roles: ["gw.connect"],
        secrets: [SECRET],
      },
      {
        type: "confidential",
        clientId: CERT_APP,
        objectId: "0b000000-0000-4000-8000-000000000002",
        displayName: "Agent with a certificate",
        roles: ["gw.connect", "gw.read"],
        certificates: [clientCert.cert],
      },
      {
        type: "confidential",
        clientId: FED_APP,
        objectId: "0b000000-0000-4000-8000-000000000003",
        displayName: "CI pipeline",
        federatedCredentials: [
          { issuer: GITHUB, subject: GITHUB_SUB },
          { issuer: "__external__", subject: "workload-1" },
        ].map((f) => (f.issuer === "__external__" ? { ...f, issuer: external.issuer } : f)),
      },
    ],
    federatedIssuers: [
      { issuer: GITHUB, jwks: githubJwks },
      { issuer: external.issuer, jwksUri: external.jwksUri, ca: ca.caPem },
    ],
  });
});

afterAll(async () => {
  await entra?.close();
  await external?.close();
  if (ca) rmSync(ca.dir, { recursive: true, force: true });
});

const USER_SCOPE = (e: LocalEntra): string => `${e.apiScope} openid profile offline_access`;

async function startDevice(e: LocalEntra, scope = USER_SCOPE(e)): Promise<Res> {
  return post(e.deviceCodeEndpoint, ca.caPem, { client_id: e.clientId, scope });
}

function poll(e: LocalEntra, deviceCode: string, grantType = "device_code"): Promise<Res> {
  return post(e.tokenEndpoint, ca.caPem, {
    client_id: e.clientId,
    grant_type: grantType,
    device_code: deviceCode,
    client_info: "1",
  });
}

function expectEntraError(res: Res, status: number, error: string, code?: number): void {
  expect(res.status).toBe(status);
  expect(res.body).toMatchObject({
    error,
    error_codes: [expect.any(Number)],
    timestamp: expect.stringMatching(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/),
    trace_id: expect.any(String),
    correlation_id: expect.any(String),
  });
  expect(res.body["error_description"]).toMatch(/^AADSTS\d+: /);
  if (code !== undefined) expect(res.body["error_codes"]).toEqual([code]);
}

describe("device-code flow", () => {
  it("answers the devicecode request like Entra", async () => {
    const res = await startDevice(entra);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      user_code: expect.stringMatching(/^[A-Z0-9]{9}$/),
      device_code: expect.any(String),
      verification_uri: `${entra.url}/devicelogin`,
      expires_in: 900,
      interval: 0,
      message: `To sign in, use a web browser to open the page ${entra.url}/devicelogin and enter the code ${String(res.body["user_code"])} to authenticate.`,
    });
    expect(entra.pendingDeviceCodes().map((p) => p.userCode)).toContain(res.body["user_code"]);
    entra.declineDevice(res.body["user_code"] as string);
  });

  it("refuses unknown clients, confidential clients, missing and bad scopes", async () => {
    const unknown = await post(entra.deviceCodeEndpoint, ca.caPem, {
      client_id: "99999999-0000-0000-0000-000000000000",
      scope: "openid",
    });
    expectEntraError(unknown, 400, "unauthorized_client", 700016);

    const conf = await post(entra.deviceCodeEndpoint, ca.caPem, {
      client_id: SECRET_APP,
      scope: entra.apiScope,
    });
    expectEntraError(conf, 401, "invalid_client", 7000218);

    const noScope = await post(entra.deviceCodeEndpoint, ca.caPem, { client_id: entra.clientId });
    expectEntraError(noScope, 400, "invalid_request", 900144);

    const badScope = await startDevice(entra, `api://${entra.audience}/write openid`);
    expectEntraError(badScope, 400, "invalid_scope", 70011);

    const otherApi = await startDevice(entra, "api://someone-else/access");
    expectEntraError(otherApi, 400, "invalid_resource", 500011);

    const wrongTenant = await post(
      entra.deviceCodeEndpoint.replace(entra.tenantId, "other-tenant"),
      ca.caPem,
      { client_id: entra.clientId, scope: "openid" },
    );
    expectEntraError(wrongTenant, 400, "invalid_request", 90002);

    expectEntraError(
      await send("GET", entra.tokenEndpoint, ca.caPem),
      400,
      "invalid_request",
      900561,
    );
  });

  it("answers authorization_pending, then tokens once approved, then invalid_grant", async () => {
    const start = await startDevice(entra);
    const deviceCode = start.body["device_code"] as string;
    const userCode = start.body["user_code"] as string;

    const pending = await poll(entra, deviceCode);
    expectEntraError(pending, 400, "authorization_pending", 70016);

    entra.approveDevice(userCode, ALICE.oid);
    expect(entra.pendingDeviceCodes().map((p) => p.userCode)).not.toContain(userCode);
    const res = await poll(entra, deviceCode, "urn:ietf:params:oauth:grant-type:device_code");
    expect(res.status).toBe(200);
    expect(res.headers["cache-control"]).toMatch(/no-store/);
    expect(res.body).toMatchObject({
      token_type: "Bearer",
      scope: `${entra.apiScope} openid profile offline_access`,
      expires_in: 30,
      ext_expires_in: 30,
      access_token: expect.any(String),
      refresh_token: expect.any(String),
      id_token: expect.any(String),
      client_info: expect.any(String),
    });

    const keySet = await jwks(entra);
    const at = await jwtVerify(res.body["access_token"] as string, keySet, {
      issuer: entra.issuer,
      audience: entra.audience,
      algorithms: ["RS256"],
    });
    expect(at.payload).toMatchObject({
      aud: entra.audience,
      iss: entra.issuer,
      tid: entra.tenantId,
      oid: ALICE.oid,
      name: ALICE.name,
      preferred_username: ALICE.preferred_username,
      azp: entra.clientId,
      azpacr: "0",
      scp: "access",
      groups: [TEST_GROUP],
      roles: ["gw.admin"],
      idtyp: "user",
      ver: "2.0",
    });
    expect(at.payload.exp! - at.payload.iat!).toBe(30);

    const id = await jwtVerify(res.body["id_token"] as string, keySet, {
      issuer: entra.issuer,
      audience: entra.clientId,
    });
    expect(id.payload).toMatchObject({
      oid: ALICE.oid,
      tid: entra.tenantId,
      name: ALICE.name,
      preferred_username: ALICE.preferred_username,
    });
    expect(id.payload).not.toHaveProperty("scp");

    expect(
      JSON.parse(Buffer.from(res.body["client_info"] as string, "base64url").toString()),
    ).toEqual({ uid: ALICE.oid, utid: entra.tenantId });

    // A redeemed code is dead.
    expectEntraError(await poll(entra, deviceCode), 400, "invalid_grant");
    expect(() => entra.approveDevice(userCode)).toThrow(/already/);
  });

  it("leaves out groups and roles when the user has none, and refuses other clients' codes", async () => {
    const start = await startDevice(entra, `${entra.audience}/access openid`);
    entra.approveDevice(start.body["user_code"] as string, BOB.oid);
    const other = await post(entra.tokenEndpoint, ca.caPem, {
      client_id: SECRET_APP,
      grant_type: "device_code",
      device_code: start.body["device_code"] as string,
    });
    expectEntraError(other, 401, "invalid_client");
    const res = await poll(entra, start.body["device_code"] as string);
    expect(res.status).toBe(200);
    // No offline_access: no refresh token, as Entra.
    expect(res.body).not.toHaveProperty("refresh_token");
    const claims = decodeJwt(res.body["access_token"] as string);
    expect(claims).toMatchObject({ oid: BOB.oid, aud: entra.audience, scp: "access" });
    expect(claims).not.toHaveProperty("groups");
    expect(claims).not.toHaveProperty("roles");
  });

  it("answers authorization_declined, on every poll", async () => {
    const start = await startDevice(entra);
    entra.declineDevice(start.body["user_code"] as string);
    const deviceCode = start.body["device_code"] as string;
    expectEntraError(await poll(entra, deviceCode), 400, "authorization_declined");
    expectEntraError(await poll(entra, deviceCode), 400, "authorization_declined");
    expect(() => entra.approveDevice(start.body["user_code"] as string)).toThrow(/declined/);
  });

  it("answers slow_down when the test hook says so", async () => {
    const start = await startDevice(entra);
    const deviceCode = start.body["device_code"] as string;
    entra.slowDownNextPoll();
    expectEntraError(await poll(entra, deviceCode), 400, "slow_down");
    expectEntraError(await poll(entra, deviceCode), 400, "authorization_pending");
    entra.declineDevice(start.body["user_code"] as string);
  });

  it("answers slow_down to a client that polls faster than the interval", async () => {
    const slow = await startLocalEntra({ tls: { cert: leaf.cert, key: leaf.key }, interval: 1 });
    try {
      const start = await startDevice(slow);
      expect(start.body["interval"]).toBe(1);
      const deviceCode = start.body["device_code"] as string;
      expectEntraError(await poll(slow, deviceCode), 400, "authorization_pending");
      expectEntraError(await poll(slow, deviceCode), 400, "slow_down");
      // The interval is now 6 s (RFC 8628 adds 5 s per slow_down).
      await new Promise((r) => setTimeout(r, 1100));
      expectEntraError(await poll(slow, deviceCode), 400, "slow_down");
    } finally {
      await slow.close();
    }
  });

  it("answers expired_token once expires_in has passed", async () => {
    let now = Date.now();
    const timed = await startLocalEntra({
      tls: { cert: leaf.cert, key: leaf.key },
      interval: 0,
      lifetimes: { deviceCode: 60 },
      clock: () => now,
    });
    try {
      const start = await startDevice(timed);
      expect(start.body["expires_in"]).toBe(60);
      const deviceCode = start.body["device_code"] as string;
      expectEntraError(await poll(timed, deviceCode), 400, "authorization_pending");
      now += 60_000;
      expectEntraError(await poll(timed, deviceCode), 400, "expired_token", 70020);
      expect(timed.pendingDeviceCodes()).toEqual([]);
      expect(() => timed.approveDevice(start.body["user_code"] as string)).toThrow(/expired/);
    } finally {
      await timed.close();
    }
  });

  it("auto-approves in demo mode after the configured number of polls", async () => {
    const demo = await startLocalEntra({
      tls: { cert: leaf.cert, key: leaf.key },
      interval: 0,
      autoApprove: { userOid: DEMO_USERS[1]!.oid, afterPolls: 1 },
    });
    try {
      expect(demo.users).toEqual(DEMO_USERS);
      const start = await startDevice(demo);
      const deviceCode = start.body["device_code"] as string;
      expectEntraError(await poll(demo, deviceCode), 400, "authorization_pending");
      const res = await poll(demo, deviceCode);
      expect(res.status).toBe(200);
      expect(decodeJwt(res.body["access_token"] as string)).toMatchObject({
        oid: DEMO_USERS[1]!.oid,
        name: "Avery Auditor",
        groups: DEMO_USERS[1]!.groups,
      });
      // The default directory has a demo agent with a generated secret.
      const agent = demo.clients.find((c) => c.type === "confidential");
      expect(agent).toMatchObject({ displayName: "Demo Agent", roles: ["gw.connect"] });
      expect(demo.banner).toContain("LOCAL TEST IDENTITY SERVER — NOT MICROSOFT ENTRA ID");
      expect(demo.banner).toContain(demo.url);
      let printed = "";
      demo.printBanner((t) => (printed += t));
      expect(printed).toBe(demo.banner);
    } finally {
      await demo.close();
    }
  });

  it("tells a test about the next device code, and echoes the client's correlation id", async () => {
    const fresh = await startLocalEntra({ tls: { cert: leaf.cert, key: leaf.key }, interval: 0 });
    try {
      const waiting = fresh.waitForDeviceCode(5000);
      const start = await post(
        fresh.deviceCodeEndpoint,
        ca.caPem,
        { client_id: fresh.clientId, scope: USER_SCOPE(fresh) },
        { "client-request-id": "6a2b5b4e-1111-4222-8333-444455556666" },
      );
      const pending = await waiting;
      expect(pending).toMatchObject({
        userCode: start.body["user_code"],
        clientId: fresh.clientId,
        scope: USER_SCOPE(fresh),
        polls: 0,
      });
      const res = await post(
        fresh.tokenEndpoint,
        ca.caPem,
        {
          client_id: fresh.clientId,
          grant_type: "device_code",
          device_code: start.body["device_code"] as string,
        },
        { "client-request-id": "6a2b5b4e-1111-4222-8333-444455556666" },
      );
      expect(res.body["correlation_id"]).toBe("6a2b5b4e-1111-4222-8333-444455556666");
      expect(res.body["error_description"]).toContain(
        "Correlation ID: 6a2b5b4e-1111-4222-8333-444455556666",
      );
      expect(fresh.pendingDeviceCodes()[0]).toMatchObject({ polls: 1 });
      await expect(
        startLocalEntra({ tls: { cert: leaf.cert, key: leaf.key } }).then(async (other) => {
          try {
            return await other.waitForDeviceCode(50);
          } finally {
            await other.close();
          }
        }),
      ).rejects.toThrow(/no device code/);
    } finally {
      await fresh.close();
    }
  });

  it("lets a person approve or decline on the login page", async () => {
    const page = await send("GET", `${entra.deviceLoginUrl}?otc=abc`, ca.caPem);
    expect(page.status).toBe(200);
    expect(page.headers["content-type"]).toMatch(/^text\/html/);
    expect(page.headers["content-security-policy"]).toContain("frame-ancestors 'none'");
    expect(page.text).toContain("LOCAL TEST IDENTITY SERVER — NOT MICROSOFT ENTRA ID");
    expect(page.text).toContain("Alice Admin");
    expect(page.text).toContain("Bob Builder");
    expect(page.text).toContain('value="abc"');
    const csrf = /name="csrf" value="([^"]+)"/.exec(page.text)![1]!;

    const start = await startDevice(entra);
    const userCode = start.body["user_code"] as string;
    const submit = (fields: Record<string, string>): Promise<Res> =>
      post(entra.deviceLoginUrl, ca.caPem, fields);

    const forged = await submit({ otc: userCode, oid: BOB.oid, action: "approve", csrf: "x" });
    expect(forged.status).toBe(403);
    const wrong = await submit({ otc: "NOPE12345", oid: BOB.oid, action: "approve", csrf });
    expect(wrong.status).toBe(400);
    expect(wrong.text).toContain("not valid");

    // People type codes in lower case and with dashes.
    const typed = `${userCode.slice(0, 4).toLowerCase()}-${userCode.slice(4)}`;
    const ok = await submit({ otc: typed, oid: BOB.oid, action: "approve", csrf });
    expect(ok.status).toBe(200);
    expect(ok.text).toContain("Bob Builder");
    expect(ok.text).toContain("LOCAL TEST IDENTITY SERVER");
    const res = await poll(entra, start.body["device_code"] as string);
    expect(decodeJwt(res.body["access_token"] as string)).toMatchObject({ oid: BOB.oid });

    const again = await submit({ otc: userCode, oid: BOB.oid, action: "approve", csrf });
    expect(again.status).toBe(400);
    expect(again.text).toContain("already used");

    const start2 = await startDevice(entra);
    const declined = await submit({
      otc: start2.body["user_code"] as string,
      action: "decline",
      csrf,
    });
    expect(declined.status).toBe(200);
    expect(declined.text).toContain("declined");
    expectEntraError(
      await poll(entra, start2.body["device_code"] as string),
      400,
      "authorization_declined",
    );
  });
});

describe("refresh tokens", () => {
  async function signIn(e: LocalEntra, oid: string): Promise<Record<string, unknown>> {
    const start = await startDevice(e);
    e.approveDevice(start.body["user_code"] as string, oid);
    const res = await poll(e, start.body["device_code"] as string);
    expect(res.status).toBe(200);
    return res.body;
  }

  function refresh(
    e: LocalEntra,
    token: string,
    scope?: string,
    clientId = e.clientId,
  ): Promise<Res> {
    return post(e.tokenEndpoint, ca.caPem, {
      client_id: clientId,
      grant_type: "refresh_token",
      refresh_token: token,
      client_info: "1",
      ...(scope === undefined ? {} : { scope }),
    });
  }

  it("redeems a refresh token for new tokens and a new refresh token", async () => {
    const first = await signIn(entra, ALICE.oid);
    const res = await refresh(entra, first["refresh_token"] as string, USER_SCOPE(entra));
    expect(res.status).toBe(200);
    expect(res.body["refresh_token"]).toEqual(expect.any(String));
    expect(res.body["refresh_token"]).not.toBe(first["refresh_token"]);
    const { payload } = await jwtVerify(res.body["access_token"] as string, await jwks(entra), {
      issuer: entra.issuer,
      audience: entra.audience,
    });
    expect(payload).toMatchObject({ oid: ALICE.oid, scp: "access", idtyp: "user" });
    expect(res.body["id_token"]).toEqual(expect.any(String));

    // Without a scope parameter, the original sign-in's scopes.
    const noScope = await refresh(entra, res.body["refresh_token"] as string);
    expect(noScope.status).toBe(200);
    expect(noScope.body["scope"]).toBe(`${entra.apiScope} openid profile offline_access`);

    // Not for another client, nor garbage.
    expectEntraError(
      await refresh(entra, noScope.body["refresh_token"] as string, undefined, SECRET_APP),
      401,
      "invalid_client",
    );
    expectEntraError(await refresh(entra, "garbage"), 400, "invalid_grant", 9002313);
  });

  it("answers invalid_grant once the user's refresh tokens are revoked", async () => {
    const alice = await signIn(entra, ALICE.oid);
    const bob = await signIn(entra, BOB.oid);
    expect(entra.revokeRefreshTokens(ALICE.oid)).toBeGreaterThan(0);
    const res = await refresh(entra, alice["refresh_token"] as string);
    expectEntraError(res, 400, "invalid_grant", 50173);
    // Entra marks a dead refresh token so that MSAL asks for a new sign-in.
    expect(res.body["suberror"]).toBe("bad_token");
    expect((await refresh(entra, bob["refresh_token"] as string)).status).toBe(200);
  });

  it("rotates: an old token works for the grace period only; tokens expire", async () => {
    const t0 = Date.now();
    let now = t0;
    const timed = await startLocalEntra({
      tls: { cert: leaf.cert, key: leaf.key },
      interval: 0,
      lifetimes: { refreshTokenReuseGrace: 10, refreshToken: 3600 },
      clock: () => now,
    });
    try {
      const first = await signIn(timed, DEMO_USERS[0]!.oid);
      const rt1 = first["refresh_token"] as string;
      const r2 = await refresh(timed, rt1);
      expect(r2.status).toBe(200);
      // Concurrent refreshes with the same token (two silent calls) both work...
      expect((await refresh(timed, rt1)).status).toBe(200);
      now += 10_000;
      // ...but not after the grace period.
      expectEntraError(await refresh(timed, rt1), 400, "invalid_grant", 70000);
      const rt2 = r2.body["refresh_token"] as string;
      now += 3_600_000;
      expectEntraError(await refresh(timed, rt2), 400, "invalid_grant", 700082);
      // Tokens carry the server's clock.
      expect(decodeJwt(r2.body["access_token"] as string).iat).toBe(Math.floor(t0 / 1000));
    } finally {
      await timed.close();
    }
  });
});

describe("client credentials", () => {
  const credentials = (extra: Record<string, string>): Promise<Res> =>
    post(entra.tokenEndpoint, ca.caPem, {
      grant_type: "client_credentials",
      scope: `api://${entra.audience}/.default`,
      ...extra,
    });

  async function verifyApp(res: Res): Promise<JWTPayload> {
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      token_type: "Bearer",
      expires_in: 30,
      ext_expires_in: 30,
      access_token: expect.any(String),
    });
    expect(res.body).not.toHaveProperty("refresh_token");
    expect(res.body).not.toHaveProperty("id_token");
    const { payload } = await jwtVerify(res.body["access_token"] as string, await jwks(entra), {
      issuer: entra.issuer,
      audience: entra.audience,
      algorithms: ["RS256"],
    });
    expect(payload).toMatchObject({ idtyp: "app", tid: entra.tenantId, ver: "2.0" });
    expect(payload.sub).toBe(payload["oid"]);
    expect(payload).not.toHaveProperty("scp");
    expect(payload).not.toHaveProperty("name");
    return payload;
  }

  it("issues app tokens for the right secret, in the body or with HTTP Basic", async () => {
    const payload = await verifyApp(
      await credentials({ client_id: SECRET_APP, client_secret: SECRET }),
    );
    expect(payload).toMatchObject({
      oid: "0b000000-0000-4000-8000-000000000001",
      azp: SECRET_APP,
      azpacr: "1",
      roles: ["gw.connect"],
    });
    const basic = Buffer.from(`${SECRET_APP}:${encodeURIComponent(SECRET)}`).toString("base64");
    const viaBasic = await post(
      entra.tokenEndpoint,
      ca.caPem,
      { grant_type: "client_credentials", scope: `${entra.audience}/.default` },
      { authorization: `Basic ${basic}` },
    );
    await verifyApp(viaBasic);
  });

  it("refuses a wrong secret, a missing one, a public client and bad scopes", async () => {
    expectEntraError(
      await credentials({ client_id: SECRET_APP, client_secret: "wrong" }),
      401,
      "invalid_client",
      7000215,
    );
    expectEntraError(await credentials({ client_id: SECRET_APP }), 401, "invalid_client", 7000216);
    expectEntraError(
      await credentials({ client_id: entra.clientId, client_secret: "x" }),
      401,
      "invalid_client",
      700025,
    );
    expectEntraError(
      await credentials({ client_id: "99999999-0000-0000-0000-000000000000", client_secret: "x" }),
      400,
      "unauthorized_client",
      700016,
    );
    expectEntraError(
      await credentials({ client_id: SECRET_APP, client_secret: SECRET, scope: entra.apiScope }),
      400,
      "invalid_scope",
      1002012,
    );
    expectEntraError(
      await credentials({
        client_id: SECRET_APP,
        client_secret: SECRET,
        scope: "api://unknown-api/.default",
      }),
      400,
      "invalid_resource",
      500011,
    );
    expectEntraError(
      await post(entra.tokenEndpoint, ca.caPem, { grant_type: "password", client_id: SECRET_APP }),
      400,
      "unsupported_grant_type",
      70003,
    );
  });

  const x5tS256 = (cert: IssuedCert): string =>
    createHash("sha256").update(new X509Certificate(cert.certPem).raw).digest("base64url");

  async function certAssertion(
    opts: {
      signWith?: IssuedCert;
      thumbprintOf?: IssuedCert;
      alg?: "PS256" | "RS256";
      sha1?: boolean;
      aud?: string;
      iss?: string;
      exp?: number;
    } = {},
  ): Promise<string> {
    const alg = opts.alg ?? "PS256";
    const key = await importPKCS8((opts.signWith ?? clientCert).keyPem, alg);
    const der = new X509Certificate((opts.thumbprintOf ?? clientCert).certPem).raw;
    const header = opts.sha1
      ? { alg, typ: "JWT", x5t: createHash("sha1").update(der).digest("base64url") }
      : { alg, typ: "JWT", "x5t#S256": x5tS256(opts.thumbprintOf ?? clientCert) };
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ jti: randomUUID() })
      .setProtectedHeader(header)
      .setIssuer(opts.iss ?? CERT_APP)
      .setSubject(opts.iss ?? CERT_APP)
      .setAudience(opts.aud ?? entra.tokenEndpoint)
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(opts.exp ?? now + 600)
      .sign(key);
  }

  const withAssertion = (
    assertion: string,
    clientId: string | undefined = CERT_APP,
  ): Promise<Res> =>
    credentials({
      ...(clientId === undefined ? {} : { client_id: clientId }),
      client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
      client_assertion: assertion,
    });

  it("accepts a certificate assertion (x5t#S256 with PS256, x5t with RS256)", async () => {
    const payload = await verifyApp(await withAssertion(await certAssertion()));
    expect(payload).toMatchObject({
      oid: "0b000000-0000-4000-8000-000000000002",
      azp: CERT_APP,
      azpacr: "2",
      roles: ["gw.connect", "gw.read"],
    });
    await verifyApp(await withAssertion(await certAssertion({ alg: "RS256", sha1: true })));
    // client_id may be left out: the assertion names the client.
    await verifyApp(await withAssertion(await certAssertion(), undefined));
    // Entra accepts a replayed assertion (MSAL reuses them), and so does this server by default.
    const once = await certAssertion();
    await verifyApp(await withAssertion(once));
    await verifyApp(await withAssertion(once));
  });

  it("refuses bad certificate assertions", async () => {
    // Signed with another key than the registered certificate's.
    expectEntraError(
      await withAssertion(await certAssertion({ signWith: otherCert })),
      401,
      "invalid_client",
      700027,
    );
    // A certificate that is not registered.
    const unregistered = await withAssertion(
      await certAssertion({ signWith: otherCert, thumbprintOf: otherCert }),
    );
    expectEntraError(unregistered, 401, "invalid_client", 700027);
    expect(unregistered.body["error_description"]).toContain("not registered");
    // For another audience.
    expectEntraError(
      await withAssertion(await certAssertion({ aud: `${entra.authority}/oauth2/token` })),
      401,
      "invalid_client",
      700027,
    );
    // Expired (beyond the 5 minutes of leeway).
    expectEntraError(
      await withAssertion(await certAssertion({ exp: Math.floor(Date.now() / 1000) - 600 })),
      401,
      "invalid_client",
      700024,
    );
    // Another client's id in client_id.
    expectEntraError(
      await withAssertion(await certAssertion(), SECRET_APP),
      401,
      "invalid_client",
      700021,
    );
    // Wrong assertion type.
    expectEntraError(
      await credentials({
        client_id: CERT_APP,
        client_assertion_type: "jwt",
        client_assertion: await certAssertion(),
      }),
      400,
      "invalid_request",
    );
  });

  it("refuses a replayed assertion when rejectReplayedAssertions is on", async () => {
    const strict = await startLocalEntra({
      tls: { cert: leaf.cert, key: leaf.key },
      audience: entra.audience,
      rejectReplayedAssertions: true,
      clients: [{ type: "confidential", clientId: CERT_APP, certificates: [clientCert.certPem] }],
    });
    try {
      const key = await importPKCS8(clientCert.keyPem, "PS256");
      const now = Math.floor(Date.now() / 1000);
      const assertion = await new SignJWT({ jti: "once" })
        .setProtectedHeader({ alg: "PS256", "x5t#S256": x5tS256(clientCert) })
        .setIssuer(CERT_APP)
        .setSubject(CERT_APP)
        .setAudience(strict.tokenEndpoint)
        .setExpirationTime(now + 300)
        .sign(key);
      const req = (): Promise<Res> =>
        post(strict.tokenEndpoint, ca.caPem, {
          grant_type: "client_credentials",
          scope: `${strict.audience}/.default`,
          client_id: CERT_APP,
          client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
          client_assertion: assertion,
        });
      expect((await req()).status).toBe(200);
      expectEntraError(await req(), 401, "invalid_client", 70002);
    } finally {
      await strict.close();
    }
  });

  async function githubToken(
    claims: { sub?: string; aud?: string } = {},
    key = githubKeys.privateKey,
  ): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ repository: "example/gw" })
      .setProtectedHeader({ alg: "RS256", kid: "gh-1", typ: "JWT" })
      .setIssuer(GITHUB)
      .setSubject(claims.sub ?? GITHUB_SUB)
      .setAudience(claims.aud ?? FEDERATED_AUDIENCE)
      .setIssuedAt(now)
      .setExpirationTime(now + 300)
      .sign(key);
  }

  it("accepts a federated assertion from a trusted issuer (inline JWKS)", async () => {
    const payload = await verifyApp(await withAssertion(await githubToken(), FED_APP));
    expect(payload).toMatchObject({
      oid: "0b000000-0000-4000-8000-000000000003",
      azp: FED_APP,
      azpacr: "2",
    });
    // The app holds no roles: Entra leaves the claim out.
    expect(payload).not.toHaveProperty("roles");
  });

  it("accepts a federated assertion whose issuer's JWKS is fetched over HTTPS", async () => {
    const token = await external.mintAccessToken({
      aud: FEDERATED_AUDIENCE,
      sub: "workload-1",
      idtyp: "app",
    });
    await verifyApp(await withAssertion(token, FED_APP));
    const wrongSub = await external.mintAccessToken({ aud: FEDERATED_AUDIENCE, sub: "workload-2" });
    expectEntraError(await withAssertion(wrongSub, FED_APP), 401, "invalid_client", 70021);
  });

  it("refuses federated assertions that match no federated credential or fail verification", async () => {
    const wrongSub = await withAssertion(
      await githubToken({ sub: "repo:evil/gw:ref:refs/heads/main" }),
      FED_APP,
    );
    expectEntraError(wrongSub, 401, "invalid_client", 70021);
    expect(wrongSub.body["error_description"]).toContain("repo:evil/gw");
    expectEntraError(
      await withAssertion(await githubToken({ aud: "api://something-else" }), FED_APP),
      401,
      "invalid_client",
      70021,
    );
    const forger = await generateKeyPair("RS256");
    expectEntraError(
      await withAssertion(await githubToken({}, forger.privateKey), FED_APP),
      401,
      "invalid_client",
      700027,
    );
    // A trusted issuer's token, but presented for an app that does not trust it.
    expectEntraError(
      await withAssertion(await githubToken(), SECRET_APP),
      401,
      "invalid_client",
      70021,
    );
    // An issuer nobody trusts.
    const stranger = await new SignJWT({})
      .setProtectedHeader({ alg: "RS256" })
      .setIssuer("https://stranger.example")
      .setSubject(GITHUB_SUB)
      .setAudience(FEDERATED_AUDIENCE)
      .setExpirationTime("5m")
      .sign(forger.privateKey);
    expectEntraError(await withAssertion(stranger, FED_APP), 401, "invalid_client", 70021);
  });
});

describe("with the real @azure/msal-node", () => {
  let slow: LocalEntra;
  beforeAll(async () => {
    slow = await startLocalEntra({
      tls: { cert: leaf.cert, key: leaf.key },
      interval: 1,
      lifetimes: { accessToken: 30 },
      users: [ALICE, BOB],
      clients: [
        {
          type: "confidential",
          clientId: SECRET_APP,
          objectId: "0b000000-0000-4000-8000-000000000001",
          roles: ["gw.connect"],
          secrets: [SECRET],
        },
        {
          type: "confidential",
          clientId: CERT_APP,
          objectId: "0b000000-0000-4000-8000-000000000002",
          roles: ["gw.read"],
          certificates: [clientCert.cert],
        },
      ],
    });
  });
  afterAll(async () => {
    await slow?.close();
  });

  const system = (): { networkClient: INetworkModule } => ({
    networkClient: new CaNetworkClient(ca.caPem),
  });

  function publicApp(e: LocalEntra): PublicClientApplication {
    return new PublicClientApplication({
      auth: {
        clientId: e.clientId,
        authority: e.authority,
        knownAuthorities: [`localhost:${e.port}`],
      },
      system: system(),
    });
  }

  it("signs in with acquireTokenByDeviceCode, refreshes silently, and sees revocation", async () => {
    const app = publicApp(slow);
    let message = "";
    const result = await app.acquireTokenByDeviceCode({
      scopes: [slow.apiScope],
      deviceCodeCallback: (r) => {
        message = r.message;
        // Approve after MSAL has polled at least once (authorization_pending, then 1 s wait).
        setTimeout(() => slow.approveDevice(r.userCode, ALICE.oid), 300);
      },
    });
    expect(message).toContain(`${slow.url}/devicelogin`);
    expect(result).not.toBeNull();
    expect(result!.account).toMatchObject({
      homeAccountId: `${ALICE.oid}.${slow.tenantId}`,
      tenantId: slow.tenantId,
      username: ALICE.preferred_username,
      name: ALICE.name,
      environment: `localhost:${slow.port}`,
    });
    expect(result!.scopes).toContain(slow.apiScope);
    const { payload } = await jwtVerify(result!.accessToken, await jwks(slow), {
      issuer: slow.issuer,
      audience: slow.audience,
      algorithms: ["RS256"],
    });
    expect(payload).toMatchObject({ oid: ALICE.oid, scp: "access", idtyp: "user" });

    // expires_in 30 <= MSAL's 300 s margin: every silent call redeems the refresh token.
    const silent = await app.acquireTokenSilent({
      account: result!.account!,
      scopes: [slow.apiScope],
    });
    expect(silent.accessToken).not.toBe(result!.accessToken);
    expect(decodeJwt(silent.accessToken)).toMatchObject({ oid: ALICE.oid, aud: slow.audience });

    slow.revokeRefreshTokens(ALICE.oid);
    const err = await app
      .acquireTokenSilent({ account: result!.account!, scopes: [slow.apiScope] })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(InteractionRequiredAuthError);
    expect((err as InteractionRequiredAuthError).errorCode).toBe("invalid_grant");
  });

  it("ends polling on a declined sign-in", async () => {
    const app = publicApp(slow);
    const err = await app
      .acquireTokenByDeviceCode({
        scopes: [slow.apiScope],
        deviceCodeCallback: (r) => slow.declineDevice(r.userCode),
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(String(err)).toContain("authorization_declined");
  });

  it("gets app tokens with acquireTokenByClientCredential: secret and certificate", async () => {
    const withSecret = new ConfidentialClientApplication({
      auth: {
        clientId: SECRET_APP,
        authority: slow.authority,
        knownAuthorities: [`localhost:${slow.port}`],
        clientSecret: SECRET,
      },
      system: system(),
    });
    const r1 = await withSecret.acquireTokenByClientCredential({
      scopes: [`api://${slow.audience}/.default`],
    });
    expect(decodeJwt(r1!.accessToken)).toMatchObject({
      aud: slow.audience,
      idtyp: "app",
      azp: SECRET_APP,
      roles: ["gw.connect"],
    });

    const withCert = new ConfidentialClientApplication({
      auth: {
        clientId: CERT_APP,
        authority: slow.authority,
        knownAuthorities: [`localhost:${slow.port}`],
        clientCertificate: {
          thumbprintSha256: createHash("sha256")
            .update(new X509Certificate(clientCert.certPem).raw)
            .digest("hex"),
          privateKey: clientCert.keyPem,
        },
      },
      system: system(),
    });
    const r2 = await withCert.acquireTokenByClientCredential({
      scopes: [`${slow.audience}/.default`],
    });
    expect(decodeJwt(r2!.accessToken)).toMatchObject({
      aud: slow.audience,
      idtyp: "app",
      azp: CERT_APP,
      azpacr: "2",
      roles: ["gw.read"],
    });

    const wrong = new ConfidentialClientApplication({
      auth: {
        clientId: SECRET_APP,
        authority: slow.authority,
        knownAuthorities: [`localhost:${slow.port}`],
        clientSecret: "wrong",
      },
      system: system(),
    });
    const err = await wrong
      .acquireTokenByClientCredential({ scopes: [`api://${slow.audience}/.default`] })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(String(err)).toContain("invalid_client");
  });
});
