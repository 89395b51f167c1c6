import { Agent as HttpAgent, type AgentOptions, type ClientRequestArgs } from "node:http";
import { Agent as HttpsAgent, type AgentOptions as HttpsAgentOptions } from "node:https";
import type { Duplex } from "node:stream";

/**
 * HTTP(S) agents whose sockets must be connected (TCP, and TLS for https) within a deadline.
 *
 * A replica that is down does not always refuse: a host that is gone or a firewall that drops
 * packets leaves a connect hanging for the OS's SYN retries (about two minutes), and a broker
 * whose event loop is stuck accepts TCP (the kernel does) but never finishes TLS. Either way a
 * new connection would stall instead of going to another replica. Only the connect is timed:
 * once connected, the broker verifying a token or answering a slow query is not a failure.
 *
 * The deadline is read per connection (0 = none), so a pool can use it only while it has
 * somewhere else to go.
 */
export type ConnectTimeout = () => number;

/** The error a socket is destroyed with; `phase` tells it from a timeout after the request. */
export interface ConnectTimeoutError extends NodeJS.ErrnoException {
  phase: "connect";
}

export function isConnectTimeout(err: unknown): err is ConnectTimeoutError {
  return (err as Partial<ConnectTimeoutError> | null)?.phase === "connect";
}

function arm(socket: Duplex | null | undefined, ms: number, ready: string): void {
  if (!socket || ms <= 0) return;
  const timer = setTimeout(() => {
    const err = new Error(`connect timed out after ${ms} ms`) as ConnectTimeoutError;
    err.code = "ETIMEDOUT";
    err.phase = "connect";
    socket.destroy(err);
  }, ms);
  // The socket keeps the process alive while it connects; the timer need not.
  timer.unref();
  const clear = () => clearTimeout(timer);
  socket.once(ready, clear);
  socket.once("close", clear);
}

export class ConnectTimeoutHttpAgent extends HttpAgent {
  constructor(
    options: AgentOptions,
    private readonly timeout: ConnectTimeout,
  ) {
    super(options);
  }

  override createConnection(
    options: ClientRequestArgs,
    callback?: (err: Error | null, stream: Duplex) => void,
  ): Duplex | null | undefined {
    const socket = super.createConnection(options, callback);
    arm(socket, this.timeout(), "connect");
    return socket;
  }
}

export class ConnectTimeoutHttpsAgent extends HttpsAgent {
  constructor(
    options: HttpsAgentOptions,
    private readonly timeout: ConnectTimeout,
  ) {
    super(options);
  }

  override createConnection(
    options: ClientRequestArgs,
    callback?: (err: Error | null, stream: Duplex) => void,
  ): Duplex | null | undefined {
    const socket = super.createConnection(options, callback);
    arm(socket, this.timeout(), "secureConnect");
    return socket;
  }
}
