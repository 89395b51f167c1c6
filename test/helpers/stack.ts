/**
 * The whole data path for integration tests, with real parts: a PostgreSQL server (SCRAM),
 * the local Entra-compatible issuer over HTTPS, a broker over HTTPS on the SQLite store, and
 * tunnels opened the way `gw connect` opens them.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { Broker } from "../../src/broker/broker.js";
import { createLogger } from "../../src/broker/logger.js";
import { brokerConfig, type BrokerConfig } from "../../src/config/schema.js";
import { startLocalEntra, type LocalEntra } from "../../src/identity/local-entra/server.js";
import { SqliteStore } from "../../src/store/sqlite-store.js";
import { BrokerClient } from "../../src/tunnel/broker-client.js";
import { Tunnel, type TunnelEvent } from "../../src/tunnel/tunnel.js";
import { issueCert, makeCa, type IssuedCert, type TestCa } from "./tls.js";
import { startPostgres, type PgServer, type StartPostgresOptions } from "./postgres.js";

export const GROUP_DBA = "11111111-1111-1111-1111-111111111111";
export const GROUP_AUDIT = "22222222-2222-2222-2222-222222222222";
export const APP_AGENT = "33333333-3333-3333-3333-333333333333";

export interface Stack {
  pg: PgServer;
  entra: LocalEntra;
  broker: Broker;
  store: SqliteStore;
  config: BrokerConfig;
  ca: TestCa;
  brokerCert: IssuedCert;
  dir: string;
  /** Every line the broker logged. */
  logs: string[];
  /** Name of the env var that holds the target password. */
  passwordEnv: string;
  tokens: { dba: string; auditor: string; outsider: string; app: string };
  openTunnel(
    token: string,
    connection?: string,
    onEvent?: (e: TunnelEvent) => void,
  ): Promise<Tunnel>;
  client(token: string): BrokerClient;
  stop(): Promise<void>;
}

export interface StackOptions {
  pg?: StartPostgresOptions;
  /** Extra connections, merged into the config (raw YAML-shaped objects). */
  connections?: Record<string, unknown>;
  /** Adjust the raw config before it is validated. */
  mutate?: (raw: Record<string, unknown>) => void;
}

export async function startStack(opts: StackOptions = {}): Promise<Stack> {
  const dir = mkdtempSync(join(tmpdir(), "gw-stack-"));
  const ca = makeCa();
  const brokerCert = issueCert(ca, { cn: "localhost" });
  const pg = await startPostgres(opts.pg);
  const entra = await startLocalEntra({ tls: { cert: brokerCert.cert, key: brokerCert.key } });
  const passwordEnv = `GW_TEST_PG_PASSWORD_${randomBytes(4).toString("hex")}`;
  process.env[passwordEnv] = pg.password;
  const raw: Record<string, unknown> = {
    listen: "127.0.0.1:0",
    tls: { cert: brokerCert.cert, key: brokerCert.key },
    identity: { issuer: entra.issuer, audience: entra.audience, ca: ca.caCert },
    store: { sqlite: join(dir, "gw.db") },
    auditors: [`group:${GROUP_AUDIT}`],
    connections: {
      "db-test": {
        type: "postgres",
        description: "Test database",
        target: {
          host: pg.host,
          port: pg.port,
          database: pg.database,
          user: pg.user,
          password: { env: passwordEnv },
          tls: "disable",
        },
        allow: [`group:${GROUP_DBA}`, `app:${APP_AGENT}`],
      },
      ...opts.connections,
    },
  };
  opts.mutate?.(raw);
  const config = brokerConfig.parse(raw);
  const store = SqliteStore.open(join(dir, "gw.db"));
  const logs: string[] = [];
  const broker = await Broker.start({
    config,
    store,
    listen: { host: "127.0.0.1", port: 0 },
    logger: createLogger({ level: "debug", write: (l) => logs.push(l) }),
  });
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
    outsider: await entra.mintAccessToken({
      name: "Oscar Outsider",
      groups: ["99999999-0000-0000-0000-000000000000"],
    }),
    app: await entra.mintAccessToken({
      idtyp: "app",
      oid: APP_AGENT,
      roles: ["gw.connect"],
      scp: undefined,
      name: undefined,
    }),
  };
  const client = (token: string) =>
    new BrokerClient({
      url: broker.url.replace("127.0.0.1", "localhost"),
      token,
      caFile: ca.caCert,
    });
  const tunnels: Tunnel[] = [];
  return {
    pg,
    entra,
    broker,
    store,
    config,
    ca,
    brokerCert,
    dir,
    logs,
    passwordEnv,
    tokens,
    client,
    async openTunnel(token, connection = "db-test", onEvent) {
      const c = client(token);
      const conns = await c.connections();
      const conn = conns.find((x) => x.name === connection) ?? {
        name: connection,
        type: "postgres" as const,
        description: null,
        database: pg.database,
      };
      const t = await Tunnel.open({
        client: c,
        connection: conn,
        token: () => token,
        bind: "127.0.0.1",
        port: 0,
        ...(onEvent ? { onEvent } : {}),
      });
      tunnels.push(t);
      return t;
    },
    async stop() {
      for (const t of tunnels) await t.close().catch(() => undefined);
      await broker.close();
      await store.close();
      await entra.close();
      await pg.stop();
      delete process.env[passwordEnv];
      rmSync(dir, { recursive: true, force: true });
      rmSync(ca.dir, { recursive: true, force: true });
    },
  };
}

/** A libpq connection string for a tunnel's local port. */
export function tunnelUrl(t: Tunnel, database = "app"): string {
  return `postgresql://127.0.0.1:${t.address.port}/${database}?sslmode=disable`;
}
