/**
 * Broker replicas sharing one PostgreSQL store, with real parts: one PostgreSQL server (SCRAM)
 * that is both the target (database `app`) and the shared store (database `gw_store`), the
 * local Entra-compatible issuer over HTTPS, one broker config file that every replica uses
 * (the same audit key file, the store URL in an environment variable), and replicas started
 * either in this process (Broker.start) or as `gw broker start` child processes, which a test
 * can SIGKILL.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import pg from "pg";
import { Broker } from "../../src/broker/broker.js";
import { createLogger } from "../../src/broker/logger.js";
import type { ReplicaTimings } from "../../src/broker/replicas.js";
import { loadConfig } from "../../src/config/load.js";
import type { BrokerConfig } from "../../src/config/schema.js";
import { startLocalEntra, type LocalEntra } from "../../src/identity/local-entra/server.js";
import { PostgresStore } from "../../src/store/postgres-store.js";
import { BrokerClient } from "../../src/tunnel/broker-client.js";
import { Tunnel } from "../../src/tunnel/tunnel.js";
import { startGwUntil, type BackgroundGw, type CliResult } from "./cli.js";
import { startPostgres, type PgServer } from "./postgres.js";
import { APP_AGENT, GROUP_AUDIT, GROUP_DBA } from "./stack.js";
import { issueCert, makeCa, type TestCa } from "./tls.js";

export interface InProcessReplica {
  broker: Broker;
  store: PostgresStore;
  logs: string[];
  stop(): Promise<void>;
}

export interface ChildReplica {
  /** https://127.0.0.1:PORT */
  url: string;
  pid: number;
  /** Sends the signal and resolves once the process is gone. */
  stop(signal?: NodeJS.Signals): Promise<CliResult>;
  /** Everything it printed (stderr: its log). */
  output(): string;
}

export interface ReplicaStack {
  pg: PgServer;
  /** The shared store's URL (with its password). */
  storeUrl: string;
  entra: LocalEntra;
  ca: TestCa;
  dir: string;
  configFile: string;
  config: BrokerConfig;
  tokens: { dba: string; auditor: string };
  /** A replica in this process, on its own PostgresStore. */
  startInProcess(opts?: { replicas?: ReplicaTimings }): Promise<InProcessReplica>;
  /** A replica as a `gw broker start` child process (run `npm run build` first). */
  startChild(): Promise<ChildReplica>;
  openTunnel(brokerUrl: string, token: string): Promise<Tunnel>;
  /** A JSON request to a replica's HTTP API. */
  api(
    brokerUrl: string,
    token: string,
    method: string,
    path: string,
    body?: unknown,
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- bodies are checked by expect()
  ): Promise<{ status: number; json: any }>;
  stop(): Promise<void>;
}

/** `connections` and `policies` are merged into the config every replica uses. */
export async function startReplicaStack(
  opts: { policies?: Record<string, unknown>; policy?: string } = {},
): Promise<ReplicaStack> {
  const dir = mkdtempSync(join(tmpdir(), "gw-replicas-"));
  const ca = makeCa();
  const cert = issueCert(ca, { cn: "localhost" });
  const server = await startPostgres();
  const admin = new pg.Client({ connectionString: server.url });
  await admin.connect();
  await admin.query("CREATE DATABASE gw_store");
  await admin.end();
  const storeUrl = server.url.replace(/\/app$/, "/gw_store");
  const entra = await startLocalEntra({ tls: { cert: cert.cert, key: cert.key } });
  const suffix = randomBytes(4).toString("hex");
  const passwordEnv = `GW_TEST_PG_PASSWORD_${suffix}`;
  const storeEnv = `GW_TEST_STORE_URL_${suffix}`;
  process.env[passwordEnv] = server.password;
  process.env[storeEnv] = storeUrl;
  const raw = {
    listen: "127.0.0.1:0",
    tls: { cert: cert.cert, key: cert.key },
    identity: { issuer: entra.issuer, audience: entra.audience, ca: ca.caCert },
    store: { postgres: { env: storeEnv } },
    signingKey: { file: join(dir, "audit-signing-key.pem") },
    auditors: [`group:${GROUP_AUDIT}`],
    connections: {
      "db-test": {
        type: "postgres",
        target: {
          host: server.host,
          port: server.port,
          database: server.database,
          user: server.user,
          password: { env: passwordEnv },
          tls: "disable",
        },
        allow: [`group:${GROUP_DBA}`, `app:${APP_AGENT}`],
        ...(opts.policy ? { policy: opts.policy } : {}),
      },
    },
    policies: opts.policies ?? {},
  };
  const configFile = join(dir, "broker.json");
  writeFileSync(configFile, JSON.stringify(raw, null, 2));
  const { config } = loadConfig(configFile);
  const tokens = {
    dba: await entra.mintAccessToken({
      name: "Dana DBA",
      preferred_username: "dana@example.com",
      groups: [GROUP_DBA],
    }),
    auditor: await entra.mintAccessToken({
      name: "Avery Auditor",
      preferred_username: "avery@example.com",
      groups: [GROUP_AUDIT, GROUP_DBA],
    }),
  };
  const caPem = readFileSync(ca.caCert);
  const tunnels: Tunnel[] = [];
  const inProcess: InProcessReplica[] = [];
  const children: BackgroundGw<RegExpMatchArray>[] = [];
  const local = (url: string) => url.replace("127.0.0.1", "localhost");

  return {
    pg: server,
    storeUrl,
    entra,
    ca,
    dir,
    configFile,
    config,
    tokens,
    async startInProcess(o = {}) {
      const store = await PostgresStore.open(storeUrl);
      const logs: string[] = [];
      const broker = await Broker.start({
        config,
        store,
        listen: { host: "127.0.0.1", port: 0 },
        logger: createLogger({ level: "debug", write: (l) => logs.push(l) }),
        ...(o.replicas ? { replicas: o.replicas } : {}),
      });
      let stopped = false;
      const r: InProcessReplica = {
        broker,
        store,
        logs,
        async stop() {
          if (stopped) return;
          stopped = true;
          await broker.close();
          await store.close();
        },
      };
      inProcess.push(r);
      return r;
    },
    async startChild() {
      const p = await startGwUntil(
        ["broker", "start", "--config", configFile, "--listen", "127.0.0.1:0"],
        /gw broker listening on (https:\/\/\S+)/,
        // The CLI helper drops GW_* variables; the target password and store URL are two.
        { env: { [passwordEnv]: server.password, [storeEnv]: storeUrl }, timeoutMs: 600_000 },
      );
      children.push(p);
      return {
        url: p.json[1]!,
        pid: p.pid,
        stop: (signal?: NodeJS.Signals) => p.stop(signal),
        output: () => p.stdout() + p.stderr(),
      };
    },
    async openTunnel(brokerUrl, token) {
      const client = new BrokerClient({ url: local(brokerUrl), token, caFile: ca.caCert });
      const t = await Tunnel.open({
        client,
        connection: {
          name: "db-test",
          type: "postgres",
          description: null,
          database: server.database,
        },
        token: () => token,
        bind: "127.0.0.1",
        port: 0,
      });
      tunnels.push(t);
      return t;
    },
    api(brokerUrl, token, method, path, body) {
      const url = new URL(path, local(brokerUrl));
      const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      return new Promise((resolve, reject) => {
        const req = httpsRequest(
          url,
          {
            method,
            ca: caPem,
            headers: {
              authorization: `Bearer ${token}`,
              accept: "application/json",
              ...(payload
                ? { "content-type": "application/json", "content-length": payload.length }
                : {}),
            },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("end", () => {
              const text = Buffer.concat(chunks).toString("utf8");
              resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : undefined });
            });
          },
        );
        req.on("error", reject);
        req.end(payload);
      });
    },
    async stop() {
      for (const t of tunnels) await t.close().catch(() => undefined);
      for (const c of children) await c.stop("SIGKILL").catch(() => undefined);
      for (const r of inProcess) await r.stop().catch(() => undefined);
      await entra.close();
      await server.stop();
      delete process.env[passwordEnv];
      delete process.env[storeEnv];
      rmSync(dir, { recursive: true, force: true });
      rmSync(ca.dir, { recursive: true, force: true });
    },
  };
}
