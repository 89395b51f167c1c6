/**
 * The device-code sign-in with real MSAL against the local Entra-compatible server, and every
 * way it can fail, each mapped to its own GwError. A new MSAL application per test (MSAL
 * remembers throttling per instance for a minute).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PublicClientApplication } from "@azure/msal-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GwError } from "../../src/errors.js";
import { resolveAuthority } from "../../src/identity/msal/authority.js";
import { mapMsalError } from "../../src/identity/msal/errors.js";
import { GwNetworkClient } from "../../src/identity/msal/network-client.js";
import {
  createPublicClient,
  signInWithDeviceCode,
  type DeviceCodePrompt,
} from "../../src/identity/msal/public-client.js";
import { FileStore } from "../../src/identity/token-cache/index.js";
import { issueCert, makeCa, type TestCa } from "../helpers/tls.js";
import { startLoginFixture, type LoginFixture } from "./login-fixture.js";

let fx: LoginFixture;
let skewMs = 0;

beforeAll(async () => {
  fx = await startLoginFixture({ entra: { clock: () => Date.now() + skewMs } });
});
afterAll(async () => {
  await fx?.stop();
});

async function until<T>(fn: () => T | undefined, timeoutMs = 20_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Starts a sign-in and resolves with the prompt and the pending result. */
async function startSignIn(signal?: AbortSignal, store?: FileStore) {
  const client = await createPublicClient({
    authority: fx.entra.authority,
    clientId: fx.entra.clientId,
    caFile: fx.ca.caCert,
    store,
  });
  let prompt: DeviceCodePrompt | undefined;
  const result = signInWithDeviceCode(client, {
    scopes: [fx.entra.apiScope],
    signal,
    onPrompt: (p) => (prompt = p),
  });
  result.catch(() => undefined);
  const p = await until(() => prompt);
  const polls = () =>
    fx.entra.pendingDeviceCodes().find((c) => c.userCode === p.userCode)?.polls ?? -1;
  return { client, prompt: p, result, polls };
}

const failure = (p: Promise<unknown>) =>
  p.then(
    () => {
      throw new Error("expected a failure");
    },
    (e: unknown) => e as GwError,
  );

describe("signInWithDeviceCode", () => {
  it("returns tokens after several authorization_pending polls, and saves them in the store", async () => {
    const dir = mkdtempSync(join(tmpdir(), "gw-dc-"));
    try {
      const store = new FileStore(join(dir, "cache.json"));
      const s = await startSignIn(undefined, store);
      expect(s.prompt.verificationUri).toBe(fx.entra.deviceLoginUrl);
      expect(s.prompt.interval).toBe(1);
      await until(() => (s.polls() >= 3 ? true : undefined));
      fx.entra.approveDevice(s.prompt.userCode);
      const r = await s.result;
      expect(r.account?.username).toBe("dana@localentra.test");
      expect(r.account?.tenantId).toBe(fx.entra.tenantId);
      const claims = JSON.parse(
        Buffer.from(r.accessToken.split(".")[1]!, "base64url").toString(),
      ) as Record<string, unknown>;
      expect(claims).toMatchObject({ aud: fx.entra.audience, idtyp: "user", name: "Dana DBA" });
      const saved = JSON.parse((await store.read())!) as { RefreshToken: object; Account: object };
      expect(Object.keys(saved.RefreshToken)).toHaveLength(1);
      expect(Object.keys(saved.Account)).toHaveLength(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("declined → login_declined", async () => {
    const s = await startSignIn();
    await until(() => (s.polls() >= 2 ? true : undefined));
    fx.entra.declineDevice(s.prompt.userCode);
    const e = await failure(s.result);
    expect(e.code).toBe("login_declined");
    expect(e.exitCode).toBe(4);
  });

  it("expired on the server → login_code_expired", async () => {
    const s = await startSignIn();
    await until(() => (s.polls() >= 2 ? true : undefined));
    skewMs = 3600_000;
    try {
      const e = await failure(s.result);
      expect(e.code).toBe("login_code_expired");
    } finally {
      skewMs = 0;
    }
  });

  it("slow_down → login_slow_down", async () => {
    const s = await startSignIn();
    await until(() => (s.polls() >= 1 ? true : undefined));
    fx.entra.slowDownNextPoll(1);
    const e = await failure(s.result);
    expect(e.code).toBe("login_slow_down");
    expect(e.exitCode).toBe(6);
  });

  it("aborting cancels at once (login_cancelled), without waiting for the next poll", async () => {
    const ac = new AbortController();
    const s = await startSignIn(ac.signal);
    await until(() => (s.polls() >= 1 ? true : undefined));
    const t0 = Date.now();
    ac.abort();
    const e = await failure(s.result);
    expect(e.code).toBe("login_cancelled");
    expect(Date.now() - t0).toBeLessThan(200);
  });
});

describe("authority problems, each with its own message", () => {
  let other: TestCa;
  beforeAll(() => {
    other = makeCa();
  });
  afterAll(() => rmSync(other.dir, { recursive: true, force: true }));

  const resolveErr = (authority: string, caFile?: string) =>
    failure(resolveAuthority(authority, new GwNetworkClient({ caFile })));

  it("an untrusted certificate → identity_tls, pointing at --ca-file", async () => {
    const e = await resolveErr(fx.entra.authority, other.caCert);
    expect(e.code).toBe("identity_tls");
    expect(e.message).toMatch(
      /^the TLS certificate of the identity provider at localhost:\d+ is not trusted \(/,
    );
    expect(e.hint).toContain("--ca-file");
  });

  it("nobody listening → identity_unreachable", async () => {
    const e = await resolveErr("https://localhost:1/tenant", fx.ca.caCert);
    expect(e.code).toBe("identity_unreachable");
    expect(e.message).toBe("cannot reach the identity provider at localhost:1: connection refused");
  });

  it("an unknown tenant → unknown_tenant", async () => {
    const e = await resolveErr(`${fx.entra.url}/not-a-tenant`, fx.ca.caCert);
    expect(e.code).toBe("unknown_tenant");
    expect(e.message).toContain('the tenant "not-a-tenant" does not exist');
  });

  it("an issuer on another host than the authority → identity_issuer_mismatch", async () => {
    // Same server, reached as 127.0.0.1: its document names https://localhost:PORT/... as issuer.
    const e = await resolveErr(
      `https://127.0.0.1:${fx.entra.port}/${fx.entra.tenantId}`,
      fx.ca.caCert,
    );
    expect(e.code).toBe("identity_issuer_mismatch");
    expect(e.hint).toContain("identity settings");
  });

  it("http authorities are refused before any request", async () => {
    const e = await resolveErr(`http://localhost:${fx.entra.port}/${fx.entra.tenantId}`);
    expect(e.code).toBe("authority_insecure");
  });

  it("MSAL's opaque endpoints_resolution_error is explained from the wire trace", async () => {
    // MSAL on its own (no pre-flight), with the network client trusting the wrong CA.
    const net = new GwNetworkClient({ caFile: other.caCert });
    const app = new PublicClientApplication({
      auth: {
        clientId: fx.entra.clientId,
        authority: fx.entra.authority,
        knownAuthorities: [`localhost:${fx.entra.port}`],
      },
      system: { networkClient: net },
    });
    const raw = await app
      .acquireTokenByDeviceCode({
        scopes: [fx.entra.apiScope],
        deviceCodeCallback: () => undefined,
      })
      .then(
        () => undefined,
        (err: unknown) => err as { errorCode?: string },
      );
    expect(raw?.errorCode).toBe("endpoints_resolution_error");
    const e = mapMsalError(raw, { flow: "device-code", net, authority: fx.entra.authority });
    expect(e.code).toBe("identity_tls");

    // And when the trace has nothing to say: the generic message still names the suspects.
    const bare = mapMsalError(raw, { flow: "device-code", authority: fx.entra.authority });
    expect(bare.code).toBe("identity_endpoints");
    expect(bare.hint).toContain("--ca-file");
    expect(bare.hint).toContain("identity settings");
  });
});

describe("throttling (HTTP 429)", () => {
  let server: Server;
  let base: string;
  let tlsCa: TestCa;
  /** What the fake identity provider does: throttle discovery, or the device-code request. */
  let mode: "discovery" | "devicecode" = "discovery";

  beforeAll(async () => {
    tlsCa = makeCa();
    const cert = issueCert(tlsCa, { cn: "localhost" });
    server = createServer({ cert: cert.certPem, key: cert.keyPem }, (req, res) => {
      const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
        res.writeHead(status, { "content-type": "application/json", ...headers });
        res.end(JSON.stringify(body));
      };
      const throttle = () =>
        send(
          429,
          { error: "temporarily_unavailable", error_description: "AADSTS50196: throttled" },
          { "retry-after": "42" },
        );
      if (req.url?.includes("openid-configuration")) {
        if (mode === "discovery") return throttle();
        const t = `${base}/t1`;
        return send(200, {
          issuer: `${t}/v2.0`,
          token_endpoint: `${t}/oauth2/v2.0/token`,
          authorization_endpoint: `${t}/oauth2/v2.0/authorize`,
          device_authorization_endpoint: `${t}/oauth2/v2.0/devicecode`,
          jwks_uri: `${t}/discovery/v2.0/keys`,
          end_session_endpoint: `${t}/oauth2/v2.0/logout`,
        });
      }
      return throttle();
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    base = `https://localhost:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    rmSync(tlsCa.dir, { recursive: true, force: true });
  });

  it("on discovery → identity_throttled with the Retry-After", async () => {
    mode = "discovery";
    const e = await failure(
      resolveAuthority(`${base}/t1`, new GwNetworkClient({ caFile: tlsCa.caCert })),
    );
    expect(e.code).toBe("identity_throttled");
    expect(e.hint).toBe("Wait 42 s and try again.");
  });

  it("on the device-code request → identity_throttled", async () => {
    mode = "devicecode";
    const client = await createPublicClient({
      authority: `${base}/t1`,
      clientId: "c",
      caFile: tlsCa.caCert,
    });
    const e = await failure(
      signInWithDeviceCode(client, { scopes: ["api://x/access"], onPrompt: () => undefined }),
    );
    expect(e.code).toBe("identity_throttled");
    expect(e.message).toContain("(HTTP 429)");
  });
});
