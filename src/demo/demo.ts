/**
 * `gw demo`: the whole product on loopback, in one process.
 *
 *   1. a private CA and a `localhost` certificate (src/demo/certs.ts, no openssl needed);
 *   2. the local Entra-compatible identity server (LOUD banner) with the demo identities;
 *   3. a throwaway PostgreSQL server seeded with a small shop full of fake personal data;
 *   4. a broker on a SQLite store with the demo policy (mask, block, hold);
 *   5. the engineer signed in through the real device-code flow (MSAL, the server approves it
 *      automatically) into a demo-only config dir with a file token store;
 *   6. the tunnel, opened the way `gw connect` opens it.
 *
 * Everything lives in one temp dir; stop() closes it all and removes the dir. The process
 * environment is pointed at the demo config dir (GW_CONFIG_DIR, GW_TOKEN_STORE=file) for the
 * sign-in: call startDemo only in a process that is the demo.
 */
import {
  chmodSync,
  createWriteStream,
  mkdirSync,
  mkdtempSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { Broker } from "../broker/broker.js";
import { createLogger } from "../broker/logger.js";
import { ExitCode, GwError } from "../errors.js";
import { tokenProviderFor } from "../identity/credentials.js";
import { startLocalEntra, type LocalEntra } from "../identity/local-entra/server.js";
import { writeSignIn } from "../identity/sign-in-state.js";
import { openStore } from "../store/open-store.js";
import type { SessionStore } from "../store/types.js";
import { BrokerClient, type BrokerConnectionInfo } from "../tunnel/broker-client.js";
import { Tunnel, type TunnelEvent } from "../tunnel/tunnel.js";
import { firstFreePort } from "../tunnel/port-memory.js";
import { makeDemoCertificates } from "./certs.js";
import { demoBrokerConfig } from "./config.js";
import { demoSeedSql } from "./data.js";
import {
  DEMO_APPROVER,
  DEMO_AUDIENCE,
  DEMO_CLI_CLIENT,
  DEMO_CONNECTION,
  DEMO_ENGINEER,
  DEMO_MCP_AGENT,
  DEMO_TENANT,
} from "./identities.js";
import { simpleQuery } from "./pg-client.js";
import { findPostgresBinDir, startLocalPostgres, type LocalPostgres } from "./postgres.js";

export interface DemoInfo {
  /** The broker's URL (GW_BROKER). */
  broker: string;
  /** The CA that signed the broker's and identity server's certificates (GW_CA_FILE). */
  caFile: string;
  identityServer: string;
  connection: string;
  database: string;
  tunnel: { host: string; port: number };
  /** postgresql://127.0.0.1:PORT/demo */
  psqlUrl: string;
  /** A token file for Alex Approver: `GW_TOKEN=$(cat FILE) gw approve`. */
  approverTokenFile: string;
  /** `source` it to use gw as the signed-in engineer against the demo broker. */
  envFile: string;
  /** `source` it to act as the demo MCP agent (a service principal). */
  agentEnvFile: string;
  /** The engineer's config dir (GW_CONFIG_DIR): sign-in state and the file token store. */
  configDir: string;
  /** The demo's temp dir: removed when the demo stops. */
  dir: string;
  brokerLog: string;
  postgres: { kind: "postgresql" | "pglite"; version: string; port: number };
  engineer: { name: string; username: string };
  approver: { name: string; username: string };
  agent: { clientId: string; objectId: string; name: string };
  /** The connections the engineer may use (for the completion cache). */
  connections: BrokerConnectionInfo[];
  pid: number;
}

export interface DemoProgress {
  /** A step starts or ends ("starting PostgreSQL..."). */
  step(text: string): void;
  /** The identity server's banner: printed, always. */
  banner(text: string): void;
  /** The device code, as `gw login` shows it. */
  deviceCode(verificationUri: string, userCode: string): void;
  /** Something happened on the tunnel. */
  event(e: TunnelEvent): void;
}

export interface DemoOptions {
  /** Local port of the tunnel; default the first free from 5433. */
  port?: number;
  /** Use the embedded PostgreSQL (PGlite) even when a real server is installed. */
  embedded?: boolean;
  progress: DemoProgress;
  /** Aborts the start (Ctrl-C while starting): what was started is stopped. */
  signal?: AbortSignal;
}

export interface Demo {
  info: DemoInfo;
  stop(): Promise<void>;
}

function demoTempRoot(): string {
  // As root the database runs as another user, who must be able to reach its dir: /tmp (1777)
  // is traversable by everyone, a root-only $TMPDIR might not be.
  return process.getuid?.() === 0 ? "/tmp" : tmpdir();
}

function cancelled(): GwError {
  return new GwError("demo_cancelled", "the demo was stopped while starting", {
    exitCode: ExitCode.failure,
  });
}

function writeSecretFile(path: string, text: string): void {
  writeFileSync(path, text, { mode: 0o600 });
  chmodSync(path, 0o600);
}

const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

export async function startDemo(opts: DemoOptions): Promise<Demo> {
  const { progress, signal } = opts;
  const dir = mkdtempSync(join(demoTempRoot(), "gw-demo-"));
  // Traversable (the database's own subdir is the server user's, 0700), not listable.
  chmodSync(dir, 0o711);
  const configDir = join(dir, "config");
  const agentConfigDir = join(dir, "agent-config");
  const secretsDir = join(dir, "secrets");
  const tlsDir = join(dir, "tls");
  for (const d of [configDir, agentConfigDir, secretsDir, tlsDir]) mkdirSync(d, { mode: 0o700 });

  const cleanups: Array<{ what: string; fn: () => Promise<void> | void }> = [];
  const onStop = (what: string, fn: () => Promise<void> | void) => cleanups.push({ what, fn });
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    for (const { what, fn } of cleanups.reverse()) {
      const t0 = Date.now();
      try {
        await fn();
      } catch (err) {
        // keep going: everything else must still be stopped
        if (process.env["GW_DEBUG"])
          process.stderr.write(`demo: stopping ${what}: ${String(err)}\n`);
      }
      if (process.env["GW_DEBUG"])
        process.stderr.write(`demo: stopped ${what} in ${Date.now() - t0} ms\n`);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const check = () => {
    if (signal?.aborted) throw cancelled();
  };

  try {
    // 1. certificates
    const certs = makeDemoCertificates();
    const caFile = join(tlsDir, "ca.crt");
    const certFile = join(tlsDir, "localhost.crt");
    const keyFile = join(tlsDir, "localhost.key");
    writeFileSync(caFile, certs.caPem);
    writeFileSync(certFile, certs.certPem);
    writeSecretFile(keyFile, certs.keyPem);

    // 2. identity server
    progress.step("starting the local identity server");
    const agentSecret = randomBytes(24).toString("base64url");
    const entra: LocalEntra = await startLocalEntra({
      tls: { cert: certFile, key: keyFile },
      tenantId: DEMO_TENANT,
      audience: DEMO_AUDIENCE,
      clientId: DEMO_CLI_CLIENT,
      users: [DEMO_ENGINEER, DEMO_APPROVER],
      clients: [
        {
          type: "confidential",
          clientId: DEMO_MCP_AGENT.clientId,
          objectId: DEMO_MCP_AGENT.objectId,
          displayName: DEMO_MCP_AGENT.displayName,
          roles: [...DEMO_MCP_AGENT.roles],
          secrets: [agentSecret],
        },
      ],
      // The demo signs the engineer in at once: no browser, no waiting.
      autoApprove: { userOid: DEMO_ENGINEER.oid },
      interval: 1,
    });
    onStop("identity server", () => entra.close());
    progress.banner(entra.banner);
    check();

    // 3. database: a real PostgreSQL server when one is installed, else the embedded one.
    const realServer = !opts.embedded && findPostgresBinDir() !== null;
    let pg: LocalPostgres;
    let pgPasswordFile: string | undefined;
    if (realServer) {
      progress.step("starting PostgreSQL and loading the demo data");
      pg = await startLocalPostgres({
        dir: join(dir, "pg"),
        database: "demo",
        watchdogRemoves: dir,
      });
      onStop("postgres", () => pg.stop());
      await simpleQuery(pg, demoSeedSql());
      pgPasswordFile = join(secretsDir, "pg-password");
      writeSecretFile(pgPasswordFile, pg.password);
    } else {
      progress.step(
        opts.embedded
          ? "starting the embedded PostgreSQL (PGlite) and loading the demo data"
          : "no PostgreSQL server is installed: starting the embedded one (PGlite) and loading the demo data",
      );
      const { startEmbeddedPostgres } = await import("./pglite.js");
      pg = await startEmbeddedPostgres(demoSeedSql());
      onStop("embedded postgres", () => pg.stop());
    }
    check();

    // 4. broker
    progress.step("starting the broker");
    const storeFile = join(dir, "broker", "gw.db");
    mkdirSync(join(dir, "broker"), { mode: 0o700 });
    const config = demoBrokerConfig({
      tlsCert: certFile,
      tlsKey: keyFile,
      caFile,
      issuer: entra.issuer,
      audience: entra.audience,
      authority: entra.authority,
      clientId: entra.clientId,
      scope: entra.apiScope,
      storeFile,
      pg: {
        host: pg.host,
        port: pg.port,
        database: pg.database,
        user: pg.user,
        ...(pgPasswordFile ? { passwordFile: pgPasswordFile } : {}),
      },
    });
    const store: SessionStore = await openStore({ sqlite: storeFile });
    onStop("store", () => store.close());
    const brokerLog = join(dir, "broker", "broker.log");
    const logStream = createWriteStream(brokerLog, { flags: "a", mode: 0o600 });
    onStop("broker log", () => new Promise<void>((r) => logStream.end(() => r())));
    const broker = await Broker.start({
      config,
      store,
      listen: { host: "127.0.0.1", port: 0 },
      logger: createLogger({ level: "info", write: (l) => void logStream.write(l + "\n") }),
    });
    onStop("broker", () => broker.close());
    const brokerUrl = broker.url;
    check();

    // 5. the engineer signs in: the real device-code flow, into the demo's own config dir.
    process.env["GW_CONFIG_DIR"] = configDir;
    process.env["GW_TOKEN_STORE"] = "file";
    delete process.env["GW_TOKEN"];
    progress.step(`signing in ${DEMO_ENGINEER.name} with the device code`);
    await signInEngineer(brokerUrl, caFile, progress, signal);
    check();

    // 6. the tunnel
    const provider = tokenProviderFor({ broker: brokerUrl, caFile });
    const client = new BrokerClient({
      url: brokerUrl,
      token: (await provider.getToken()).token,
      caFile,
    });
    const connections = await client.connections();
    const conn = connections.find((c) => c.name === DEMO_CONNECTION);
    if (!conn || conn.database === null)
      throw new Error(`the demo broker does not offer ${DEMO_CONNECTION} to the engineer`);
    const database = conn.database;
    const port = opts.port ?? (await firstFreePort("127.0.0.1", 5433));
    const tunnel = await Tunnel.open({
      client,
      connection: conn,
      token: async () => (await provider.getToken()).token,
      bind: "127.0.0.1",
      port,
      onEvent: (e) => progress.event(e),
    });
    onStop("tunnel", () => tunnel.close());

    // Files for the other roles of the tour.
    const approverTokenFile = join(secretsDir, "approver.token");
    writeSecretFile(
      approverTokenFile,
      (await entra.mintAccessToken(
        {
          oid: DEMO_APPROVER.oid,
          name: DEMO_APPROVER.name,
          preferred_username: DEMO_APPROVER.preferred_username,
          groups: DEMO_APPROVER.groups,
          azp: entra.clientId,
        },
        { lifetimeSeconds: 12 * 3600 },
      )) + "\n",
    );
    const envFile = join(dir, "env.sh");
    writeFileSync(
      envFile,
      [
        "# gw demo: use gw as Erin Engineer against the demo broker (source this file)",
        `export GW_BROKER=${shq(brokerUrl)}`,
        `export GW_CA_FILE=${shq(caFile)}`,
        `export GW_CONFIG_DIR=${shq(configDir)}`,
        "export GW_TOKEN_STORE=file",
        "unset GW_TOKEN",
        "",
      ].join("\n"),
    );
    const agentEnvFile = join(secretsDir, "agent.env");
    writeSecretFile(
      agentEnvFile,
      [
        "# gw demo: act as the demo MCP agent, a service principal (source this file)",
        `export GW_BROKER=${shq(brokerUrl)}`,
        `export GW_CA_FILE=${shq(caFile)}`,
        `export GW_CONFIG_DIR=${shq(agentConfigDir)}`,
        `export AZURE_TENANT_ID=${shq(entra.tenantId)}`,
        `export AZURE_CLIENT_ID=${shq(DEMO_MCP_AGENT.clientId)}`,
        `export AZURE_CLIENT_SECRET=${shq(agentSecret)}`,
        "unset GW_TOKEN",
        "",
      ].join("\n"),
    );
    const address = tunnel.address;
    const info: DemoInfo = {
      broker: brokerUrl,
      caFile,
      identityServer: entra.url,
      connection: conn.name,
      database,
      tunnel: address,
      psqlUrl: `postgresql://${address.host}:${address.port}/${encodeURIComponent(database)}`,
      approverTokenFile,
      envFile,
      agentEnvFile,
      configDir,
      dir,
      brokerLog,
      postgres: { kind: realServer ? "postgresql" : "pglite", version: pg.version, port: pg.port },
      engineer: { name: DEMO_ENGINEER.name, username: DEMO_ENGINEER.preferred_username },
      approver: { name: DEMO_APPROVER.name, username: DEMO_APPROVER.preferred_username },
      agent: {
        clientId: DEMO_MCP_AGENT.clientId,
        objectId: DEMO_MCP_AGENT.objectId,
        name: DEMO_MCP_AGENT.displayName,
      },
      connections,
      pid: process.pid,
    };
    return { info, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** `gw login`'s device-code sign-in, in this process, into the current config dir. */
async function signInEngineer(
  broker: string,
  caFile: string,
  progress: DemoProgress,
  signal: AbortSignal | undefined,
): Promise<void> {
  const { fetchLoginSettings } = await import("../identity/msal/login-settings.js");
  const { openCacheStore } = await import("../identity/token-cache/index.js");
  const { createPublicClient, signInWithDeviceCode } =
    await import("../identity/msal/public-client.js");
  const settings = await fetchLoginSettings(broker, caFile);
  const login = settings.login;
  if (!login) throw new Error("the demo broker publishes no sign-in settings");
  const store = await openCacheStore(broker, { mode: "file" });
  const client = await createPublicClient({
    authority: login.authority,
    clientId: login.clientId,
    caFile,
    store,
  });
  const result = await signInWithDeviceCode(client, {
    scopes: login.scopes,
    signal,
    onPrompt: (p) => progress.deviceCode(p.verificationUri, p.userCode),
  });
  const account = result.account;
  if (!account) throw new Error("the identity server returned no account");
  writeSignIn({
    version: 1,
    kind: "user",
    broker,
    caFile,
    authority: client.authority.authority,
    clientId: login.clientId,
    scopes: login.scopes,
    homeAccountId: account.homeAccountId,
    ...(account.username ? { username: account.username } : {}),
    signedInAt: new Date().toISOString(),
  });
}
