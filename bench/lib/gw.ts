/**
 * gw as it runs in production, minus Entra: the local Entra-compatible issuer (in this
 * process: it only serves the JWKS once), a broker over HTTPS on the SQLite store, and a
 * tunnel, both as `bin/gw` subprocesses so that the client, broker and tunnel each have their
 * own process and event loop, as they do for real.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startLocalEntra } from "../../src/identity/local-entra/server.js";
import type { PgServer } from "./postgres.js";
import { onCleanup, readJsonFromService, startService, type Service } from "./proc.js";
import type { BenchCerts } from "./tls.js";

export const CONNECTION = "bench";
/** The same target with a realistic policy and masking attached: what policy costs. */
export const POLICY_CONNECTION = "bench-policy";
const GROUP = "b0b0b0b0-0000-4000-8000-000000000001";
/** Who the tunnels run as: the requester of held statements. */
export const REQUESTER_OID = "b0b0b0b0-0000-4000-8000-000000000101";
/** Someone else in the same group: may approve what the requester's statements wait for. */
export const APPROVER_OID = "b0b0b0b0-0000-4000-8000-000000000102";

/** dist/bench/lib/gw.js → the repository root, where bin/gw lives. */
const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
export const GW_BIN = join(ROOT, "bin", "gw");

export interface Gw {
  brokerUrl: string;
  /** The tunnel's local port: what clients connect to. */
  port: number;
  broker: Service;
  tunnel: Service;
  /** The tunnel to the policy connection. */
  policyPort: number;
  policyTunnel: Service;
  /** A token for APPROVER_OID (not the tunnels' identity: nobody approves their own request). */
  approverToken: string;
}

/** `profileDir`: run broker and tunnel with --cpu-prof, writing .cpuprofile files there on exit. */
export async function startGw(
  base: string,
  pg: PgServer,
  certs: BenchCerts,
  profileDir?: string,
): Promise<Gw> {
  const node = profileDir ? ["--cpu-prof", "--cpu-prof-dir", profileDir] : [];
  const dir = join(base, "gw");
  mkdirSync(dir, { mode: 0o700 });
  const entra = await startLocalEntra({ tls: { cert: certs.cert, key: certs.key } });
  onCleanup("local Entra", () => entra.close());
  // Long-lived: a full run takes a quarter of an hour and tokens are not refreshed here.
  const lifetime = { lifetimeSeconds: 12 * 3600 };
  const token = await entra.mintAccessToken(
    {
      oid: REQUESTER_OID,
      name: "gw bench",
      preferred_username: "bench@example.com",
      groups: [GROUP],
    },
    lifetime,
  );
  const approverToken = await entra.mintAccessToken(
    {
      oid: APPROVER_OID,
      name: "gw bench approver",
      preferred_username: "bench-approver@example.com",
      groups: [GROUP],
    },
    lifetime,
  );

  const passwordFile = join(dir, "target-password");
  writeFileSync(passwordFile, pg.password, { mode: 0o600 });
  const config = {
    listen: "127.0.0.1:0",
    tls: { cert: certs.cert, key: certs.key },
    identity: { issuer: entra.issuer, audience: entra.audience, ca: certs.caCert },
    store: { sqlite: join(dir, "gw.db") },
    connections: {
      [CONNECTION]: {
        type: "postgres",
        description: "gw benchmark",
        target: {
          host: "127.0.0.1",
          port: pg.port,
          database: pg.database,
          user: pg.user,
          password: { file: passwordFile },
          tls: "disable",
        },
        allow: [`group:${GROUP}`],
      },
      [POLICY_CONNECTION]: {
        type: "postgres",
        description: "gw benchmark with a policy",
        target: {
          host: "127.0.0.1",
          port: pg.port,
          database: pg.database,
          user: pg.user,
          password: { file: passwordFile },
          tls: "disable",
        },
        allow: [`group:${GROUP}`],
        policy: "bench",
      },
    },
    policies: {
      bench: {
        onUnparseable: "block",
        rules: [
          { match: { kind: ["drop", "truncate", "do"] }, action: "block", reason: "not here" },
          {
            match: { kind: ["delete", "update"], where: "absent" },
            action: "hold",
            approvers: [`group:${GROUP}`],
          },
          {
            match: { functions: ["pg_read_file", "pg_terminate_backend", "lo_*", "dblink*"] },
            action: "block",
          },
        ],
        mask: {
          // Detectors only: a column rule makes COPY (query) refuse (it cannot tell the
          // columns' tables), and the COPY workload measures masking in the stream.
          detectors: [
            "email",
            "credit_card",
            "iban",
            "us_ssn",
            "phone",
            "jwt",
            "aws_access_key",
            "private_key",
          ],
          strategy: "redact",
        },
      },
    },
  };
  // JSON is YAML.
  const configFile = join(dir, "broker.yaml");
  writeFileSync(configFile, JSON.stringify(config, null, 2));

  const env = { ...process.env, GW_CONFIG_DIR: join(dir, "cli") };
  const broker = startService(
    "gw broker",
    process.execPath,
    [
      ...node,
      GW_BIN,
      "broker",
      "start",
      "--config",
      configFile,
      "--listen",
      "127.0.0.1:0",
      "--json",
    ],
    { env, cwd: dir },
  );
  const { url } = await readJsonFromService<{ url: string }>(broker);

  const tunnel = startService(
    "gw connect",
    process.execPath,
    [
      ...node,
      GW_BIN,
      "connect",
      CONNECTION,
      "--port",
      "0",
      "--json",
      "--broker",
      url,
      "--ca-file",
      certs.caCert,
    ],
    { env: { ...env, GW_TOKEN: token }, cwd: dir },
  );
  const opened = await readJsonFromService<{ listen: { port: number } }>(tunnel);
  const policyTunnel = startService(
    "gw connect (policy)",
    process.execPath,
    [
      ...node,
      GW_BIN,
      "connect",
      POLICY_CONNECTION,
      "--port",
      "0",
      "--json",
      "--broker",
      url,
      "--ca-file",
      certs.caCert,
    ],
    { env: { ...env, GW_TOKEN: token }, cwd: dir },
  );
  const openedPolicy = await readJsonFromService<{ listen: { port: number } }>(policyTunnel);
  return {
    brokerUrl: url,
    port: opened.listen.port,
    broker,
    tunnel,
    policyPort: openedPolicy.listen.port,
    policyTunnel,
    approverToken,
  };
}
