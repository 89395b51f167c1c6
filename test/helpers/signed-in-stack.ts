/**
 * The whole data path as a person who ran `gw login` uses it: a real PostgreSQL server, the
 * local Entra-compatible identity server (HTTPS, with its options under the test's control:
 * short token lifetimes, a fast device-code interval), and an HTTPS broker on the SQLite store
 * whose discovery document publishes identity.login for that server, so `gw login`, `gw connect`
 * and service principals from the AZURE_* variables all find it by themselves.
 *
 * Like startStack (test/helpers/stack.ts), but startStack makes its own identity server with
 * default options and publishes no identity.login.
 *
 * The directory is the local server's default: DEMO_USERS (Dana DBA is in GROUP_DBA) and the
 * DEMO_AGENT service principal (object id APP_AGENT, a random secret: see `agentSecret`), both
 * allowed on the `db-test` connection.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { Broker } from "../../src/broker/broker.js";
import { createLogger } from "../../src/broker/logger.js";
import { brokerConfig, type BrokerConfig } from "../../src/config/schema.js";
import {
  DEMO_AGENT,
  startLocalEntra,
  type LocalEntra,
  type LocalEntraOptions,
} from "../../src/identity/local-entra/server.js";
import { SqliteStore } from "../../src/store/sqlite-store.js";
import { APP_AGENT, GROUP_DBA } from "./stack.js";
import { issueCert, makeCa, type TestCa } from "./tls.js";
import { startPostgres, type PgServer, type StartPostgresOptions } from "./postgres.js";

export interface SignedInStack {
  pg: PgServer;
  entra: LocalEntra;
  broker: Broker;
  /** https://127.0.0.1:PORT, what `gw login --broker` is given. */
  brokerUrl: string;
  store: SqliteStore;
  config: BrokerConfig;
  ca: TestCa;
  dir: string;
  /** Every line the broker logged (JSON, debug level and up). */
  logs: string[];
  /** The broker's log lines, parsed, that have `msg` and match `fields`. */
  logged(msg: string, fields?: Record<string, unknown>): Array<Record<string, unknown>>;
  /** DEMO_AGENT's client id and secret, for AZURE_CLIENT_ID / AZURE_CLIENT_SECRET. */
  agent: { clientId: string; objectId: string; secret: string };
  stop(): Promise<void>;
}

export interface SignedInStackOptions {
  pg?: StartPostgresOptions;
  /** The identity server's options (lifetimes, interval, ...); tls is the stack's own. */
  entra?: Partial<Omit<LocalEntraOptions, "tls">>;
  /** identity.expiryGraceSeconds; the broker's default when omitted. */
  expiryGraceSeconds?: number;
  /** Adjust the raw config before it is validated. */
  mutate?: (raw: Record<string, unknown>) => void;
}

export async function startSignedInStack(opts: SignedInStackOptions = {}): Promise<SignedInStack> {
  const dir = mkdtempSync(join(tmpdir(), "gw-signed-in-"));
  const ca = makeCa();
  const cert = issueCert(ca, { cn: "localhost" });
  const entra = await startLocalEntra({ tls: { cert: cert.cert, key: cert.key }, ...opts.entra });
  const agentClient = entra.clients.find((c) => c.clientId === DEMO_AGENT.clientId);
  const secret = agentClient?.type === "confidential" ? agentClient.secrets[0] : undefined;
  if (secret === undefined) {
    await entra.close();
    throw new Error("the local identity server has no DEMO_AGENT secret (pass no `clients`)");
  }
  const pg = await startPostgres(opts.pg);
  const passwordEnv = `GW_TEST_PG_PASSWORD_${randomBytes(4).toString("hex")}`;
  process.env[passwordEnv] = pg.password;
  const raw: Record<string, unknown> = {
    listen: "127.0.0.1:0",
    tls: { cert: cert.cert, key: cert.key },
    identity: {
      issuer: entra.issuer,
      audience: entra.audience,
      ca: ca.caCert,
      ...(opts.expiryGraceSeconds === undefined
        ? {}
        : { expiryGraceSeconds: opts.expiryGraceSeconds }),
      login: { authority: entra.authority, clientId: entra.clientId, scopes: [entra.apiScope] },
    },
    store: { sqlite: join(dir, "gw.db") },
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
  return {
    pg,
    entra,
    broker,
    brokerUrl: broker.url,
    store,
    config,
    ca,
    dir,
    logs,
    logged(msg, fields = {}) {
      return logs
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((l) => l["msg"] === msg && Object.entries(fields).every(([k, v]) => l[k] === v));
    },
    agent: {
      clientId: DEMO_AGENT.clientId,
      objectId: DEMO_AGENT.objectId,
      secret,
    },
    async stop() {
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
