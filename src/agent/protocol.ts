import { z } from "zod";

/*
 * The agent protocol, between `gw agent start` (in a private network) and the broker's agent
 * hub (src/broker/agent-hub.ts). The agent dials out; nothing dials in.
 *
 *   control: one WebSocket per agent, GET /v1/agent/control?name=NAME, Bearer <agent token>.
 *            JSON text frames both ways (below); ws pings both ways keep it honest.
 *   streams: one WebSocket per target connection, GET /v1/agent/stream/<id>, same bearer:
 *            binary frames carry the target's bytes, nothing else.
 *
 * The agent opens with `hello` (its version and allow list); the broker answers `welcome`.
 * A session needs a target: the broker sends `open` with a fresh random stream id; the agent
 * checks its allow list, dials the target and opens the stream with that id (or answers
 * `open_failed`). The broker pairs the stream with the waiting session by id and identity.
 */

export const AGENT_CONTROL_PATH = "/v1/agent/control";
export const AGENT_STREAM_PREFIX = "/v1/agent/stream/";

/** WebSocket close codes of the control channel (4000-4999 are the application's). */
export const AgentClose = {
  /** Another process registered under the same name; this one must not fight it for the name. */
  replaced: 4001,
  /** The agent's token expired and no fresh one came: reconnect with a new token. */
  signInExpired: 4002,
  /** The agent sent something the broker does not understand. */
  protocolError: 4003,
  /** A stream arrived that nobody waits for any more (the session gave up). */
  unwanted: 4004,
} as const;

/** Why the agent did not open a stream; the broker turns it into the client's error. */
export const openFailureCode = z.enum([
  "not_allowed",
  "refused",
  "not_found",
  "timeout",
  "unreachable",
]);
export type OpenFailureCode = z.infer<typeof openFailureCode>;

const hostName = z.string().min(1).max(255);
const portNumber = z.number().int().min(1).max(65535);

// --- agent → broker ----------------------------------------------------------------------------

export const agentMessage = z.discriminatedUnion("type", [
  /** First message: who is speaking and what it will dial (null: anything, --allow-any). */
  z.object({
    type: z.literal("hello"),
    version: z.string().max(64),
    allow: z.array(z.string().max(300)).max(1000).nullable(),
  }),
  /** A fresh token for the same identity, before the current one expires. */
  z.object({
    type: z.literal("token"),
    token: z
      .string()
      .min(1)
      .max(64 * 1024),
  }),
  z.object({
    type: z.literal("open_failed"),
    stream: z.string().min(1).max(64),
    code: openFailureCode,
    /** A short reason ("connection refused"); shown to the client, so the agent keeps it plain. */
    reason: z.string().max(200),
  }),
]);
export type AgentMessage = z.infer<typeof agentMessage>;

// --- broker → agent ----------------------------------------------------------------------------

export interface ViaConnection {
  name: string;
  host: string;
  port: number;
}

export const brokerMessage = z.discriminatedUnion("type", [
  /** The answer to `hello`: the connections configured through the agent, for its log. */
  z.object({
    type: z.literal("welcome"),
    agent: z.string(),
    connections: z.array(z.object({ name: z.string(), host: hostName, port: portNumber })),
  }),
  z.object({
    type: z.literal("open"),
    stream: z.string().min(1).max(64),
    host: hostName,
    port: portNumber,
    /** For the agent's log only. */
    connection: z.string().optional(),
    timeoutMs: z.number().int().positive(),
  }),
  z.object({ type: z.literal("token_accepted"), expiresAt: z.number() }),
  z.object({ type: z.literal("token_rejected"), code: z.string(), message: z.string() }),
]);
export type BrokerMessage = z.infer<typeof brokerMessage>;

/** Parses one text frame; null when it is not a message of `schema` (newer peers may send more). */
export function parseMessage<T>(schema: z.ZodType<T>, data: Buffer | string): T | null {
  let raw: unknown;
  try {
    raw = JSON.parse(typeof data === "string" ? data : data.toString("utf8"));
  } catch {
    return null;
  }
  const r = schema.safeParse(raw);
  return r.success ? r.data : null;
}
