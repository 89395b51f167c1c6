/**
 * `gw login`, `gw whoami` and `gw logout` as a person runs them: the real CLI (bin/gw, built
 * dist/) in a subprocess, real MSAL, the local Entra-compatible server and an HTTPS broker with
 * a private CA. Build first: `npm run build`.
 *
 * Each test gets its own config dir (GW_CONFIG_DIR) and GW_TOKEN_STORE=file (the keychain has a
 * test of its own: test/identity/token-cache-keychain.test.ts).
 */
import { spawn } from "node:child_process";
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { cliEnv, GW_BIN, runGw, type CliResult } from "../helpers/cli.js";
import {
  SP_CERT,
  SP_FEDERATED,
  SP_SECRET,
  startLoginFixture,
  type LoginFixture,
} from "../identity/login-fixture.js";

let fx: LoginFixture;
/** Added to the identity server's clock: moving it ahead expires device codes. */
let skewMs = 0;
let configDir: string;

beforeAll(async () => {
  fx = await startLoginFixture({ entra: { clock: () => Date.now() + skewMs } });
});
afterAll(async () => {
  await fx?.stop();
});
afterEach(() => {
  skewMs = 0;
  if (configDir) rmSync(configDir, { recursive: true, force: true });
});

function freshConfigDir(): string {
  configDir = mkdtempSync(join(tmpdir(), "gw-login-cfg-"));
  return configDir;
}

/** The environment of every gw run here: no developer state, no ambient Azure identity. */
function env(extra: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  return {
    GW_CONFIG_DIR: configDir,
    GW_TOKEN_STORE: "file",
    AZURE_TENANT_ID: undefined,
    AZURE_CLIENT_ID: undefined,
    AZURE_CLIENT_SECRET: undefined,
    AZURE_CLIENT_CERTIFICATE_PATH: undefined,
    AZURE_FEDERATED_TOKEN_FILE: undefined,
    AZURE_AUTHORITY_HOST: undefined,
    ...extra,
  };
}

const gw = (args: string[], extra: Record<string, string | undefined> = {}) =>
  runGw(args, { env: env(extra), timeoutMs: 60_000 });

interface LoginRun {
  /** The user code the CLI printed. */
  userCode: string;
  /** Polls the server has seen for this code so far. */
  polls(): number;
  stderr(): string;
  kill(signal: NodeJS.Signals): void;
  done: Promise<CliResult>;
}

async function waitFor<T>(what: string, fn: () => T | undefined, timeoutMs = 20_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Starts `gw login`, and resolves once it has printed a code. */
async function startLogin(args: string[] = []): Promise<LoginRun> {
  const child = spawn(
    process.execPath,
    [GW_BIN, "login", "--broker", fx.brokerUrl, "--ca-file", fx.ca.caCert, ...args],
    { env: cliEnv(env()), stdio: ["ignore", "pipe", "pipe"] },
  );
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c));
  child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
  const done = new Promise<CliResult>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(
        new Error(`gw login did not finish\n--- stdout ---\n${stdout}\n--- stderr ---\n${stderr}`),
      );
    }, 60_000);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
  done.catch(() => undefined);
  const userCode = await Promise.race([
    waitFor("the user code", () => /enter the code\s+(\S+)/.exec(stderr)?.[1]),
    done.then((r) => {
      throw new Error(`gw login exited early (${r.code})\n${r.stdout}\n${r.stderr}`);
    }),
  ]);
  const polls = () =>
    fx.entra.pendingDeviceCodes().find((p) => p.userCode === userCode)?.polls ?? -1;
  return { userCode, polls, stderr: () => stderr, kill: (s) => child.kill(s), done };
}

/** Waits until the CLI has polled `n` times (each answered authorization_pending). */
async function afterPolls(run: LoginRun, n: number): Promise<number> {
  return waitFor(`${n} polls`, () => (run.polls() >= n ? run.polls() : undefined));
}

function cacheFiles(): string[] {
  const dir = join(configDir, "token-cache");
  return existsSync(dir) ? readdirSync(dir).map((f) => join(dir, f)) : [];
}

/** Every file gw wrote, concatenated: to check that no secret landed on disk. */
function everythingOnDisk(dir = configDir): string {
  let all = "";
  for (const f of readdirSync(dir, { recursive: true }) as string[]) {
    const p = join(dir, f);
    if (statSync(p).isFile()) all += readFileSync(p, "utf8");
  }
  return all;
}

describe("gw login (device code)", () => {
  it("signs in after several pending polls; the cache file is 0600 with the refresh token; whoami and logout work", async () => {
    freshConfigDir();
    const run = await startLogin();
    // The code and where to enter it, prominently, on stderr.
    expect(run.stderr()).toContain(`To sign in, open  ${fx.entra.deviceLoginUrl}`);
    expect(run.stderr()).toMatch(/and enter the code\s+[A-Z0-9]{9}/);
    const polls = await afterPolls(run, 2);
    expect(polls).toBeGreaterThanOrEqual(2);
    fx.entra.approveDevice(run.userCode);
    const r = await run.done;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(
      `Signed in as Dana DBA (dana@localentra.test), tenant ${fx.entra.tenantId}`,
    );
    expect(r.stdout).toContain(`broker  ${fx.brokerUrl} (it sees you as Dana DBA (user))`);
    // No spinner without a terminal: one plain waiting line instead.
    expect(r.stderr).not.toMatch(/\u280b|\r/);
    expect(r.stderr).toContain("Waiting for the sign-in");

    const files = cacheFiles();
    expect(files).toHaveLength(1);
    expect(statSync(files[0]!).mode & 0o777).toBe(0o600);
    expect(statSync(join(configDir, "token-cache")).mode & 0o777).toBe(0o700);
    const cache = JSON.parse(readFileSync(files[0]!, "utf8")) as {
      RefreshToken: Record<string, { secret: string }>;
    };
    const rts = Object.values(cache.RefreshToken);
    expect(rts).toHaveLength(1);
    expect(rts[0]!.secret.length).toBeGreaterThan(10);

    const state = JSON.parse(readFileSync(join(configDir, "signin.json"), "utf8")) as Record<
      string,
      unknown
    >;
    expect(state).toMatchObject({
      kind: "user",
      broker: fx.brokerUrl,
      caFile: fx.ca.caCert,
      authority: fx.entra.authority,
      clientId: fx.entra.clientId,
      scopes: [fx.entra.apiScope],
      username: "dana@localentra.test",
    });
    expect(JSON.stringify(state)).not.toContain(rts[0]!.secret);

    // whoami: no GW_TOKEN, no --broker: all from the login.
    const who = await gw(["whoami", "--json"]);
    expect(who.code, who.stderr).toBe(0);
    const info = JSON.parse(who.stdout) as Record<string, unknown>;
    expect(info).toMatchObject({
      name: "Dana DBA",
      upn: "dana@localentra.test",
      tenant: fx.entra.tenantId,
      type: "user",
      groups: ["11111111-1111-1111-1111-111111111111"],
      broker: { url: fx.brokerUrl, identity: { name: "Dana DBA", type: "user" }, auditor: false },
    });
    expect(String(info["source"])).toContain(files[0]!);
    const human = await gw(["whoami"]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^Dana DBA \(dana@localentra\.test\)\n/);
    expect(human.stdout).toMatch(/type\s+user/);
    expect(human.stdout).toContain(`${fx.brokerUrl} sees Dana DBA (user)`);

    const out = await gw(["logout"]);
    expect(out.code, out.stderr).toBe(0);
    expect(out.stderr).toContain(`Signed out dana@localentra.test from ${fx.brokerUrl}.`);
    expect(cacheFiles()).toEqual([]);
    expect(existsSync(join(configDir, "signin.json"))).toBe(false);

    const after = await gw(["whoami", "--broker", fx.brokerUrl]);
    expect(after.code).toBe(4);
    expect(after.stderr).toContain("error: you are not signed in");
    const nowhere = await gw(["whoami"]);
    expect(nowhere.code).toBe(4);
    expect(nowhere.stderr).toContain("error: you are not signed in\nhint: Run `gw login --broker");
  });

  it("--json prints the whoami object", async () => {
    freshConfigDir();
    const run = await startLogin(["--json"]);
    await afterPolls(run, 1);
    fx.entra.approveDevice(run.userCode, "aaaaaaaa-0000-4000-8000-000000000002");
    const r = await run.done;
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      name: "Avery Auditor",
      type: "user",
      broker: { url: fx.brokerUrl, identity: { type: "user" } },
    });
    // The code still goes to stderr: a person has to see it.
    expect(r.stderr).toContain(run.userCode);
  });

  it("declined: says so, exit 4", async () => {
    freshConfigDir();
    const run = await startLogin();
    await afterPolls(run, 2);
    fx.entra.declineDevice(run.userCode);
    const r = await run.done;
    expect(r.code).toBe(4);
    expect(r.stderr).toContain("error: the sign-in was declined");
    expect(r.stderr).toContain("hint: Run `gw login` again and approve the request.");
    expect(existsSync(join(configDir, "signin.json"))).toBe(false);
    expect(cacheFiles()).toEqual([]);
  });

  it("expired code: says so, exit 4", async () => {
    freshConfigDir();
    const run = await startLogin(["--json"]);
    await afterPolls(run, 2);
    skewMs = 3600_000; // the server's clock passes the code's expiry: it answers expired_token
    const r = await run.done;
    expect(r.code).toBe(4);
    expect(JSON.parse(r.stdout)).toEqual({
      error: {
        code: "login_code_expired",
        message: "the sign-in code expired before it was used",
        hint: "Run `gw login` again and enter the new code before it expires.",
      },
    });
  });

  it("slow_down: says so, exit 6", async () => {
    freshConfigDir();
    const run = await startLogin();
    await afterPolls(run, 1);
    fx.entra.slowDownNextPoll(1);
    const r = await run.done;
    expect(r.code).toBe(6);
    expect(r.stderr).toContain(
      "error: the identity provider asked gw to poll more slowly (slow_down) and the sign-in stopped",
    );
    expect(r.stderr).toContain("hint: Wait a minute, then run `gw login` again.");
  });

  it("Ctrl-C cancels at once with exit 130", async () => {
    freshConfigDir();
    const run = await startLogin();
    await afterPolls(run, 1);
    const t0 = Date.now();
    run.kill("SIGINT");
    const r = await run.done;
    expect(r.code).toBe(130);
    expect(r.stderr).toContain("sign-in cancelled");
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(existsSync(join(configDir, "signin.json"))).toBe(false);
  });

  it("a broker that cannot be trusted: the broker error, not a sign-in attempt", async () => {
    freshConfigDir();
    const r = await gw(["login", "--broker", fx.brokerUrl]);
    expect(r.code).toBe(6);
    expect(r.stderr).toContain("TLS certificate not trusted");
    expect(r.stderr).toContain("--ca-file");
  });
});

describe("gw login --service-principal", () => {
  const tenant = () => fx.entra.tenantId;
  const base = () => [
    "login",
    "--broker",
    fx.brokerUrl,
    "--ca-file",
    fx.ca.caCert,
    "--service-principal",
  ];

  async function whoamiApp(extra: Record<string, string> = {}): Promise<Record<string, unknown>> {
    const who = await gw(["whoami", "--json"], extra);
    expect(who.code, who.stderr).toBe(0);
    return JSON.parse(who.stdout) as Record<string, unknown>;
  }

  it("with a secret from an environment variable: app token the broker accepts; the secret is never stored", async () => {
    freshConfigDir();
    const secretEnv = { AGENT_SECRET: SP_SECRET.secret };
    const r = await gw(
      [
        ...base(),
        "--tenant",
        tenant(),
        "--client-id",
        SP_SECRET.clientId,
        "--client-secret-env",
        "AGENT_SECRET",
      ],
      secretEnv,
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(
      `Signed in as service principal ${SP_SECRET.clientId}, tenant ${tenant()}`,
    );
    const state = JSON.parse(readFileSync(join(configDir, "signin.json"), "utf8")) as Record<
      string,
      unknown
    >;
    expect(state).toMatchObject({
      kind: "service-principal",
      tenantId: tenant(),
      clientId: SP_SECRET.clientId,
      method: { type: "secret", env: "AGENT_SECRET" },
    });
    expect(everythingOnDisk()).not.toContain(SP_SECRET.secret);
    const info = await whoamiApp(secretEnv);
    expect(info).toMatchObject({
      type: "app",
      oid: SP_SECRET.objectId,
      appId: SP_SECRET.clientId,
      roles: ["gw.connect"],
      broker: { identity: { type: "app", oid: SP_SECRET.objectId } },
    });
    // Without the variable, gw says where the secret was to come from.
    const missing = await gw(["whoami"]);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toContain(
      "error: the service principal's secret is read from the environment variable AGENT_SECRET, which is not set",
    );
  });

  it("with a wrong secret: the credentials are rejected, exit 4", async () => {
    freshConfigDir();
    const r = await gw(
      [
        ...base(),
        "--tenant",
        tenant(),
        "--client-id",
        SP_SECRET.clientId,
        "--client-secret-env",
        "AGENT_SECRET",
      ],
      { AGENT_SECRET: "not-the-secret" },
    );
    expect(r.code).toBe(4);
    expect(r.stderr).toContain(
      "error: the identity provider rejected the service principal's credentials",
    );
    expect(r.stderr).toContain("hint: Check the client secret in $AGENT_SECRET");
    expect(existsSync(join(configDir, "signin.json"))).toBe(false);
  });

  it("with a certificate (PEM with the key): app token the broker accepts", async () => {
    freshConfigDir();
    const r = await gw([
      ...base(),
      "--tenant",
      tenant(),
      "--client-id",
      SP_CERT.clientId,
      "--certificate",
      fx.spCertificatePem,
    ]);
    expect(r.code, r.stderr).toBe(0);
    const info = await whoamiApp();
    expect(info).toMatchObject({
      type: "app",
      oid: SP_CERT.objectId,
      broker: { identity: { type: "app" } },
    });
    expect(everythingOnDisk()).not.toContain("PRIVATE KEY");
  });

  it("with a federated token file, read fresh at every acquisition", async () => {
    freshConfigDir();
    const tokenFile = join(fx.dir, "federated-token");
    writeFileSync(tokenFile, await fx.federatedToken());
    const r = await gw([
      ...base(),
      "--tenant",
      tenant(),
      "--client-id",
      SP_FEDERATED.clientId,
      "--federated-token-file",
      tokenFile,
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(await whoamiApp()).toMatchObject({ type: "app", oid: SP_FEDERATED.objectId });
    // The file is rotated (as Kubernetes and CI runners do): the next run reads the new one...
    writeFileSync(tokenFile, await fx.federatedToken());
    expect(await whoamiApp()).toMatchObject({ type: "app", oid: SP_FEDERATED.objectId });
    // ...and an expired one is refused, so it really was read again.
    writeFileSync(tokenFile, await fx.federatedToken(-600));
    const stale = await gw(["whoami"]);
    expect(stale.code).toBe(4);
    expect(stale.stderr).toContain("rejected the service principal's credentials");
  });

  it("an unknown tenant: says so, exit 3", async () => {
    freshConfigDir();
    const r = await gw(
      [
        ...base(),
        "--tenant",
        "no-such-tenant",
        "--client-id",
        SP_SECRET.clientId,
        "--client-secret-env",
        "S",
      ],
      { S: SP_SECRET.secret },
    );
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('error: the tenant "no-such-tenant" does not exist at localhost:');
  });

  it("usage errors: no credential, two credentials, SP flags without --service-principal", async () => {
    freshConfigDir();
    const none = await gw([...base(), "--tenant", tenant(), "--client-id", SP_SECRET.clientId]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("error: a service principal needs a credential");
    const two = await gw([
      ...base(),
      "--tenant",
      tenant(),
      "--client-id",
      SP_SECRET.clientId,
      "--client-secret-env",
      "X",
      "--certificate",
      fx.spCertificatePem,
    ]);
    expect(two.code).toBe(2);
    expect(two.stderr).toContain("give only one of");
    const stray = await gw(["login", "--broker", fx.brokerUrl, "--tenant", tenant()]);
    expect(stray.code).toBe(2);
    expect(stray.stderr).toContain("--tenant only goes with --service-principal");
  });
});

describe("AZURE_* environment variables", () => {
  it("need no gw login and store nothing: whoami works as the service principal", async () => {
    freshConfigDir();
    const azure = {
      GW_BROKER: fx.brokerUrl,
      GW_CA_FILE: fx.ca.caCert,
      AZURE_TENANT_ID: fx.entra.tenantId,
      AZURE_CLIENT_ID: SP_CERT.clientId,
      AZURE_CLIENT_CERTIFICATE_PATH: fx.spCertificatePem,
    };
    const who = await gw(["whoami", "--json"], azure);
    expect(who.code, who.stderr).toBe(0);
    expect(JSON.parse(who.stdout)).toMatchObject({
      type: "app",
      oid: SP_CERT.objectId,
      source: "AZURE_* environment variables",
      broker: { identity: { type: "app" } },
    });
    expect(readdirSync(configDir)).toEqual([]);
  });

  it("GW_TOKEN wins over everything", async () => {
    freshConfigDir();
    const token = await fx.entra.mintAccessToken({
      name: "Token Person",
      preferred_username: "tp@x.test",
    });
    const who = await gw(["whoami", "--json"], {
      GW_BROKER: fx.brokerUrl,
      GW_CA_FILE: fx.ca.caCert,
      GW_TOKEN: token,
      AZURE_TENANT_ID: fx.entra.tenantId,
      AZURE_CLIENT_ID: SP_SECRET.clientId,
      AZURE_CLIENT_SECRET: SP_SECRET.secret,
    });
    expect(who.code, who.stderr).toBe(0);
    expect(JSON.parse(who.stdout)).toMatchObject({
      name: "Token Person",
      source: "GW_TOKEN",
      type: "user",
    });
  });

  it("whoami degrades gracefully when the broker is unreachable", async () => {
    freshConfigDir();
    const token = await fx.entra.mintAccessToken({ name: "Token Person" });
    const who = await gw(["whoami"], { GW_BROKER: "https://127.0.0.1:1", GW_TOKEN: token });
    expect(who.code, who.stderr).toBe(0);
    expect(who.stdout).toContain("Token Person");
    expect(who.stdout).toMatch(
      /broker\s+https:\/\/127\.0\.0\.1:1 not confirmed: cannot reach the broker/,
    );
  });
});
