import { rmSync } from "node:fs";
import { get } from "node:https";
import {
  createLocalJWKSet,
  decodeProtectedHeader,
  errors,
  jwtVerify,
  type JSONWebKeySet,
} from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KeySet } from "../../src/identity/local-entra/keys.js";
import { startLocalEntra, type LocalEntra } from "../../src/identity/local-entra/server.js";
import { issueCert, makeCa, type TestCa } from "../helpers/tls.js";

interface Fetched {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
}

/** GET over HTTPS trusting only the test CA (Node 20's fetch cannot take a CA). */
function getJson(url: string, ca: string): Promise<Fetched> {
  return new Promise((resolve, reject) => {
    get(url, { ca }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        try {
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: JSON.parse(Buffer.concat(chunks).toString("utf8")),
          });
        } catch (err) {
          reject(err);
        }
      });
      res.on("error", reject);
    }).on("error", reject);
  });
}

describe("local Entra-compatible identity server", () => {
  let ca: TestCa;
  let entra: LocalEntra;

  beforeAll(async () => {
    ca = makeCa();
    const leaf = issueCert(ca, { cn: "localhost" });
    entra = await startLocalEntra({ tls: { cert: leaf.cert, key: leaf.key } });
  });
  afterAll(async () => {
    await entra?.close();
    if (ca) rmSync(ca.dir, { recursive: true, force: true });
  });

  const jwks = async (): Promise<JSONWebKeySet> =>
    (await getJson(entra.jwksUri, ca.caPem)).body as JSONWebKeySet;

  it("publishes Entra's discovery document under https://localhost:PORT/{tenant}", async () => {
    expect(entra.url).toMatch(/^https:\/\/localhost:\d+$/);
    expect(entra.authority).toBe(`${entra.url}/${entra.tenantId}`);
    expect(entra.issuer).toBe(`${entra.authority}/v2.0`);

    const res = await getJson(
      `${entra.url}/${entra.tenantId}/v2.0/.well-known/openid-configuration`,
      ca.caPem,
    );
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toMatch(/^application\/json/);
    expect(res.body).toMatchObject({
      issuer: entra.issuer,
      authorization_endpoint: `${entra.authority}/oauth2/v2.0/authorize`,
      token_endpoint: `${entra.authority}/oauth2/v2.0/token`,
      device_authorization_endpoint: `${entra.authority}/oauth2/v2.0/devicecode`,
      jwks_uri: `${entra.authority}/discovery/v2.0/keys`,
      id_token_signing_alg_values_supported: ["RS256"],
      subject_types_supported: ["pairwise"],
    });
    expect((res.body as { response_types_supported: string[] }).response_types_supported).toContain(
      "code",
    );
  });

  it("answers unknown paths with 404 JSON, and other tenants like Entra does", async () => {
    const missing = await getJson(`${entra.url}/nope`, ca.caPem);
    expect(missing.status).toBe(404);
    expect(missing.body).toMatchObject({ error: "not_found" });

    const other = await getJson(
      `${entra.url}/00000000-0000-0000-0000-000000000000/discovery/v2.0/keys`,
      ca.caPem,
    );
    expect(other.status).toBe(400);
    expect(other.body).toMatchObject({ error: "invalid_tenant" });
  });

  it("mints user access tokens that verify against the published JWKS", async () => {
    const keySet = await jwks();
    expect(keySet.keys).toHaveLength(1);
    expect(keySet.keys[0]).toMatchObject({
      kty: "RSA",
      use: "sig",
      kid: expect.any(String),
      e: "AQAB",
    });
    expect(keySet.keys[0]).not.toHaveProperty("d");

    const groups = ["11111111-1111-1111-1111-111111111111"];
    const token = await entra.mintAccessToken({
      oid: "22222222-2222-2222-2222-222222222222",
      name: "Ada",
      groups,
    });
    expect(decodeProtectedHeader(token)).toEqual({
      alg: "RS256",
      kid: keySet.keys[0]!.kid,
      typ: "JWT",
    });

    const { payload } = await jwtVerify(token, createLocalJWKSet(keySet), {
      issuer: entra.issuer,
      audience: entra.audience,
      algorithms: ["RS256"],
    });
    expect(payload).toMatchObject({
      oid: "22222222-2222-2222-2222-222222222222",
      tid: entra.tenantId,
      azp: entra.clientId,
      name: "Ada",
      scp: "access",
      groups,
      idtyp: "user",
      ver: "2.0",
    });
    expect(payload.sub).not.toBe(payload.oid); // pairwise, as in Entra
    expect(payload.exp! - payload.iat!).toBe(3600);
    expect(payload.nbf).toBe(payload.iat);
  });

  it("mints app tokens with roles and no scp, and honours overrides and lifetime", async () => {
    const keySet = createLocalJWKSet(await jwks());
    const app = await entra.mintAccessToken({ idtyp: "app", roles: ["Gw.Connect"] });
    const { payload } = await jwtVerify(app, keySet, {
      issuer: entra.issuer,
      audience: entra.audience,
    });
    expect(payload).toMatchObject({ idtyp: "app", roles: ["Gw.Connect"], sub: payload.oid });
    expect(payload).not.toHaveProperty("scp");
    expect(payload).not.toHaveProperty("name");

    const noTid = await entra.mintAccessToken({ tid: undefined, aud: "api://other" });
    const verified = await jwtVerify(noTid, keySet, { audience: "api://other" });
    expect(verified.payload).not.toHaveProperty("tid");

    const expired = await entra.mintAccessToken(
      {},
      { now: Math.floor(Date.now() / 1000) - 7200, lifetimeSeconds: 60 },
    );
    await expect(jwtVerify(expired, keySet)).rejects.toBeInstanceOf(errors.JWTExpired);
  });

  it("mints ID tokens for the client application", async () => {
    const idToken = await entra.mintIdToken({ nonce: "n-1" });
    const { payload } = await jwtVerify(idToken, createLocalJWKSet(await jwks()), {
      issuer: entra.issuer,
      audience: entra.clientId,
    });
    expect(payload).toMatchObject({ nonce: "n-1", tid: entra.tenantId, ver: "2.0" });
  });

  it("after rotateKeys, new tokens carry a new kid, and old and new keys are both published", async () => {
    const before = await entra.mintAccessToken();
    const oldKid = decodeProtectedHeader(before).kid;
    const newKid = await entra.rotateKeys();
    expect(newKid).not.toBe(oldKid);

    const after = await entra.mintAccessToken();
    expect(decodeProtectedHeader(after).kid).toBe(newKid);

    const keySet = await jwks();
    expect(keySet.keys.map((k) => k.kid)).toEqual([oldKid, newKid]);
    const local = createLocalJWKSet(keySet);
    await jwtVerify(after, local, { issuer: entra.issuer, audience: entra.audience });
    await jwtVerify(before, local, { issuer: entra.issuer, audience: entra.audience });

    // A kid the server never had does not verify.
    const forged = await entra.mintAccessToken({}, { header: { kid: "not-a-key" } });
    await expect(jwtVerify(forged, local)).rejects.toBeInstanceOf(errors.JWKSNoMatchingKey);
  });
});

describe("KeySet", () => {
  it("keeps rotated-out keys published for retainSeconds, then drops them", async () => {
    let now = 1_000_000;
    const keys = await KeySet.create({ retainSeconds: 600, now: () => now });
    const first = keys.current.kid;
    now += 10;
    const second = (await keys.rotate()).kid;
    expect(keys.current.kid).toBe(second);
    expect(keys.jwks().keys.map((k) => k.kid)).toEqual([first, second]);
    now += 600;
    expect(keys.jwks().keys.map((k) => k.kid)).toEqual([second]);
    expect(keys.find(first)).toBeUndefined();
  });
});
