import type { Duplex } from "node:stream";

/**
 * Opens a byte stream to `host:port` some other way than a direct TCP connect: through an
 * outbound agent in the target's network (docs/agent.md). Protocol sessions take one in their
 * target and use it instead of net.connect; TLS to the target, when configured, runs over it.
 */
export type Dial = (host: string, port: number) => Promise<Duplex>;

export type DialErrorCode =
  /** No agent of that name has a control channel to this broker. */
  | "agent_not_connected"
  /** The agent went away while the stream was being opened. */
  | "agent_disconnected"
  /** The agent did not answer in time. */
  | "agent_timeout"
  /** The agent's own allow list does not have the target. */
  | "target_not_allowed"
  | "target_refused"
  | "target_not_found"
  | "target_timeout"
  | "target_unreachable";

/**
 * Why a dial failed. The message is for the person at the client (it names the connection, the
 * agent and the target, never a credential); `code` is stable, for logs and tests.
 */
export class DialError extends Error {
  override name = "DialError";
  constructor(
    readonly code: DialErrorCode,
    message: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}
