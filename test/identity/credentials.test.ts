/**
 * The TokenProvider behind every command: where the token comes from (GW_TOKEN, `gw login`,
 * AZURE_* variables), silent renewal from the token cache for people, re-acquisition close to
 * expiry for service principals, and "sign in again" once refresh tokens are revoked. Real MSAL
 * against the local Entra-compatible server, with 4-second access tokens so renewals happen
 * within a test.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { GwError } from "../../src/errors.js";
import {
  azureEnvServicePrincipal,
  jwtExpiry,
  renewalMargin,
  tokenProviderFor,
  type TokenProvider,
} from "../../src/identity/credentials.js";
import { createPublicClient, signInWithDeviceCode } from "../../src/identity/msal/public-client.js";
import { writeSignIn, type SignInState } from "../../src/identity/sign-in-state.js";
import { openCacheStore } from "../../src/identity/token-cache/index.js";
import { BrokerClient } from "../../src/tunnel/broker-client.js";
import {
  SP_CERT,
  SP_FEDERATED,
  SP_SECRET,
  startLoginFixture,
  type LoginFixture,
} from "./login-fixture.js";

const LIFETIME = 4;
let fx: LoginFixture;
let configDir: string;
const savedEnv = { ...process.env };

beforeAll(async () => {
  fx = await startLoginFixture({
    entra: { autoApprove: {}, lifetimes: { accessToken: LIFETIME } },
  });
});
afterAll(async () => {
  await fx?.stop();
});
beforeEach(() => {
  configDir = mkdtempSync(join(tmpdir(), "gw-cred-"));
  process.env["GW_CONFIG_DIR"] = configDir;
  process.env["GW_TOKEN_STORE"] = "file";
  for (const k of Object.keys(process.env))
    if (k.startsWith("AZURE_") || k === "GW_TOKEN") delete process.env[k];
});
afterEach(() => {
  rmSync(configDir, { recursive: true, force: true });
  process.env = { ...savedEnv };
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const claims = (t: string) =>
  JSON.parse(Buffer.from(t.split(".")[1]!, "base64url").toString()) as Record<string, unknown>;
const failure = (p: Promise<unknown>) =>
  p.then(
    () => {
      throw new Error("expected a failure");
    },
    (e: unknown) => e as GwError,
  );

/** What `gw login` does for a person: device code (auto-approved here), tokens to the store, signin.json. */
async function signInUser(): Promise<SignInState> {
  const store = await openCacheStore(fx.brokerUrl);
  const client = await createPublicClient({
    authority: fx.entra.authority,
    clientId: fx.entra.clientId,
    caFile: fx.ca.caCert,
    store,
  });
  const r = await signInWithDeviceCode(client, {
    scopes: [fx.entra.apiScope],
    onPrompt: () => undefined,
  });
  const state: SignInState = {
    version: 1,
    kind: "user",
    broker: fx.brokerUrl,
    caFile: fx.ca.caCert,
    authority: fx.entra.authority,
    clientId: fx.entra.clientId,
    scopes: [fx.entra.apiScope],
    homeAccountId: r.account!.homeAccountId,
    signedInAt: new Date().toISOString(),
  };
  writeSignIn(state);
  return state;
}

describe("a person signed in with gw login", () => {
  it("gets tokens silently from the cache (a new process: a new MSAL app), renewed near expiry", async () => {
    await signInUser();
    const p = tokenProviderFor({ broker: fx.brokerUrl });
    expect(p.kind).toBe("user");
    const t1 = await p.getToken();
    expect(claims(t1.token)).toMatchObject({ name: "Dana DBA", idtyp: "user" });
    expect(p.description).toContain("gw login (tokens in ");
    // Fresh: the same token, no request.
    expect((await p.getToken()).token).toBe(t1.token);
    // Past half its (short) life: renewed with the refresh token.
    await sleep((LIFETIME / 2) * 1000 + 300);
    const t2 = await p.getToken();
    expect(t2.token).not.toBe(t1.token);
    expect(t2.expiresOn!.getTime()).toBeGreaterThan(t1.expiresOn!.getTime());
    // The broker accepts it.
    const seen = await new BrokerClient({
      url: fx.brokerUrl,
      token: t2.token,
      caFile: fx.ca.caCert,
    }).whoami();
    expect(seen).toMatchObject({ identity: { name: "Dana DBA", type: "user" } });
  });

  it("revoked refresh tokens → sign_in_expired, 'run gw login again'", async () => {
    await signInUser();
    const p = tokenProviderFor({ broker: fx.brokerUrl });
    await p.getToken();
    fx.entra.revokeRefreshTokens();
    await sleep((LIFETIME / 2) * 1000 + 300);
    const e = await failure(p.getToken());
    expect(e.code).toBe("sign_in_expired");
    expect(e.exitCode).toBe(4);
    expect(e.hint).toBe("Run `gw login` again.");
  });

  it("an account gone from the cache → sign_in_expired", async () => {
    await signInUser();
    rmSync(join(configDir, "token-cache"), { recursive: true });
    const e = await failure(tokenProviderFor({ broker: fx.brokerUrl }).getToken());
    expect(e.code).toBe("sign_in_expired");
  });

  it("concurrent callers share one acquisition", async () => {
    await signInUser();
    const p = tokenProviderFor({ broker: fx.brokerUrl });
    const [a, b, c] = await Promise.all([p.getToken(), p.getToken(), p.getToken()]);
    expect(b.token).toBe(a.token);
    expect(c.token).toBe(a.token);
  });
});

describe("service principals", () => {
  async function renews(p: TokenProvider, oid: string) {
    const t1 = await p.getToken();
    expect(claims(t1.token)).toMatchObject({ idtyp: "app", oid, roles: ["gw.connect"] });
    expect((await p.getToken()).token).toBe(t1.token);
    await sleep((LIFETIME / 2) * 1000 + 300);
    const t2 = await p.getToken();
    expect(t2.token).not.toBe(t1.token);
    return t2;
  }

  it("from signin.json (secret): re-acquired when close to expiry", async () => {
    process.env["SP_SECRET_VAR"] = SP_SECRET.secret;
    writeSignIn({
      version: 1,
      kind: "service-principal",
      broker: fx.brokerUrl,
      caFile: fx.ca.caCert,
      authority: fx.entra.authority,
      clientId: SP_SECRET.clientId,
      scopes: [`api://${fx.entra.audience}/.default`],
      tenantId: fx.entra.tenantId,
      method: { type: "secret", env: "SP_SECRET_VAR" },
      signedInAt: new Date().toISOString(),
    });
    const p = tokenProviderFor({ broker: fx.brokerUrl });
    expect(p.kind).toBe("service-principal");
    await renews(p, SP_SECRET.objectId);
  });

  it("from AZURE_* (certificate), with the authority and scope from the broker's discovery", async () => {
    const env = {
      AZURE_TENANT_ID: fx.entra.tenantId,
      AZURE_CLIENT_ID: SP_CERT.clientId,
      AZURE_CLIENT_CERTIFICATE_PATH: fx.spCertificatePem,
    };
    const p = tokenProviderFor({ broker: fx.brokerUrl, caFile: fx.ca.caCert, env });
    expect(p.kind).toBe("azure-env");
    expect(p.description).toBe("AZURE_* environment variables");
    const t = await renews(p, SP_CERT.objectId);
    expect(claims(t.token)["aud"]).toBe(fx.entra.audience);
  });

  it("from AZURE_* (federated token file): the file is read at every acquisition", async () => {
    const file = join(configDir, "fed-token");
    writeFileSync(file, await fx.federatedToken());
    const p = tokenProviderFor({
      broker: fx.brokerUrl,
      caFile: fx.ca.caCert,
      env: {
        AZURE_TENANT_ID: fx.entra.tenantId,
        AZURE_CLIENT_ID: SP_FEDERATED.clientId,
        AZURE_FEDERATED_TOKEN_FILE: file,
      },
    });
    await p.getToken();
    writeFileSync(file, await fx.federatedToken(-600)); // rotated to an expired one
    await sleep((LIFETIME / 2) * 1000 + 300);
    const e = await failure(p.getToken());
    expect(e.code).toBe("sp_credentials_rejected");
    expect(e.hint).toContain(`the federated token file ${file}`);
    writeFileSync(file, await fx.federatedToken()); // and a good one again
    expect(claims((await p.getToken()).token)["oid"]).toBe(SP_FEDERATED.objectId);
  });
});

describe("where the token comes from", () => {
  const azure = {
    AZURE_TENANT_ID: "t",
    AZURE_CLIENT_ID: "c",
    AZURE_CLIENT_SECRET: "s",
  };
  const userState = (broker: string): SignInState => ({
    version: 1,
    kind: "user",
    broker,
    authority: "https://localhost:1/t",
    clientId: "c",
    scopes: ["api://x/access"],
    homeAccountId: "a.t",
    signedInAt: new Date().toISOString(),
  });

  it("GW_TOKEN first", () => {
    writeSignIn(userState("https://gw.example.com"));
    const p = tokenProviderFor({
      broker: "https://gw.example.com",
      env: { GW_TOKEN: "x.y.z", ...azure },
    });
    expect(p.kind).toBe("env-token");
  });

  it("then gw login for this broker, before ambient AZURE_* variables", () => {
    writeSignIn(userState("https://gw.example.com/"));
    expect(tokenProviderFor({ broker: "https://gw.example.com", env: azure }).kind).toBe("user");
  });

  it("then AZURE_* (with a credential)", () => {
    expect(tokenProviderFor({ broker: "https://gw.example.com", env: azure }).kind).toBe(
      "azure-env",
    );
    expect(azureEnvServicePrincipal({ AZURE_TENANT_ID: "t", AZURE_CLIENT_ID: "c" })).toBeNull();
  });

  it("signed in elsewhere: not_signed_in, naming where", () => {
    writeSignIn(userState("https://other.example.com"));
    let err: GwError | undefined;
    try {
      tokenProviderFor({ broker: "https://gw.example.com", env: {} });
    } catch (e) {
      err = e as GwError;
    }
    expect(err?.code).toBe("not_signed_in");
    expect(err?.hint).toBe(
      "You are signed in to https://other.example.com. Run `gw login --broker https://gw.example.com` to switch.",
    );
  });

  it("nothing at all: not_signed_in", () => {
    expect(() => tokenProviderFor({ broker: "https://gw.example.com", env: {} })).toThrow(
      "you are not signed in",
    );
  });

  it("GW_TOKEN's expiry comes from its exp claim", async () => {
    const token = await fx.entra.mintAccessToken({}, { lifetimeSeconds: 120 });
    const t = await tokenProviderFor({ broker: fx.brokerUrl, env: { GW_TOKEN: token } }).getToken();
    expect(t.expiresOn!.getTime()).toBe(jwtExpiry(token)!.getTime());
  });

  it("renewal margin: 5 minutes for long-lived tokens, half the life of short ones", () => {
    expect(renewalMargin(3600_000)).toBe(300_000);
    expect(renewalMargin(4_000)).toBe(2_000);
  });
});
