import { connect, type Socket } from "node:net";
import type { OpenFailureCode } from "./protocol.js";

export class TargetDialError extends Error {
  override name = "TargetDialError";
  constructor(
    readonly code: OpenFailureCode,
    /** Short and plain: it reaches the client's error message. */
    readonly reason: string,
  ) {
    super(reason);
  }
}

/** A TCP connection to a target in the agent's network, or why there is none. */
export function dialTarget(host: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    socket.setNoDelay(true);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new TargetDialError("timeout", `timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.removeAllListeners("error");
      resolve(socket);
    });
    socket.once("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      socket.destroy();
      reject(describe(err));
    });
  });
}

function describe(err: NodeJS.ErrnoException): TargetDialError {
  switch (err.code) {
    case "ECONNREFUSED":
      return new TargetDialError("refused", "connection refused");
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return new TargetDialError("not_found", "host not found");
    case "ETIMEDOUT":
      return new TargetDialError("timeout", "timed out");
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return new TargetDialError("unreachable", "no route to host");
    default:
      // An errno code names the failure without echoing anything the agent was sent.
      return new TargetDialError("unreachable", err.code ?? "connection failed");
  }
}
