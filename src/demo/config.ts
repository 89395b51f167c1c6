/**
 * The demo broker's configuration: one connection to the demo database under a policy that
 * shows what gw does on the data path.
 */
import { brokerConfig, type BrokerConfig } from "../config/schema.js";
import { DEMO_APPROVER, DEMO_CONNECTION, DEMO_GROUP_IDS, DEMO_MCP_AGENT } from "./identities.js";

export interface DemoConfigInput {
  tlsCert: string;
  tlsKey: string;
  caFile: string;
  issuer: string;
  audience: string;
  authority: string;
  clientId: string;
  scope: string;
  storeFile: string;
  pg: { host: string; port: number; database: string; user: string; passwordFile?: string };
}

/** The policy: what the tour demonstrates (docs/policy.md explains every field). */
export const DEMO_POLICY = {
  description: "gw demo: mask personal data, block destruction, hold unbounded writes",
  default: "allow",
  onUnparseable: "block",
  approvers: [`group:${DEMO_GROUP_IDS.approvers}`],
  timeout: "10m",
  rules: [
    {
      name: "no-destruction",
      match: { kind: ["drop", "truncate"] },
      action: "block",
      reason: "DROP and TRUNCATE are never allowed on this database",
    },
    {
      name: "unbounded-writes",
      match: { kind: ["update", "delete"], where: "absent" },
      action: "hold",
      reason: "an UPDATE or DELETE without WHERE needs an approver",
    },
    {
      name: "agent-writes",
      match: { agent: ["*"], kind: ["insert", "update", "delete", "merge", "copy-from"] },
      action: "hold",
      reason: "an AI agent's writes need a human",
    },
  ],
  mask: {
    // Column rules: always masked, whatever the value looks like.
    columns: ["public.customers.card_number", "*.*.ssn"],
    // Detectors: found in any text value, in any column (notes, free text, joins, expressions).
    detectors: ["email", "credit_card", "phone", "iban", "us_ssn"],
    strategy: "redact",
  },
} as const;

export function demoBrokerConfig(i: DemoConfigInput): BrokerConfig {
  return brokerConfig.parse({
    listen: "127.0.0.1:0",
    tls: { cert: i.tlsCert, key: i.tlsKey },
    identity: {
      issuer: i.issuer,
      audience: i.audience,
      ca: i.caFile,
      login: { authority: i.authority, clientId: i.clientId, scopes: [i.scope] },
    },
    store: { sqlite: i.storeFile },
    auditors: [`group:${DEMO_GROUP_IDS.approvers}`, `user:${DEMO_APPROVER.oid}`],
    connections: {
      [DEMO_CONNECTION]: {
        type: "postgres",
        description: "the demo shop database (fake customers with PII)",
        target: {
          host: i.pg.host,
          port: i.pg.port,
          database: i.pg.database,
          user: i.pg.user,
          ...(i.pg.passwordFile ? { password: { file: i.pg.passwordFile } } : {}),
          tls: "disable",
        },
        allow: [
          `group:${DEMO_GROUP_IDS.engineers}`,
          `group:${DEMO_GROUP_IDS.approvers}`,
          `app:${DEMO_MCP_AGENT.objectId}`,
        ],
        policy: "demo",
      },
    },
    policies: { demo: DEMO_POLICY },
  });
}
