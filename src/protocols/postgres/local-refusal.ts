import type { Socket } from "node:net";
import { StartupCode } from "./codes.js";
import { errorResponse } from "./wire.js";

/**
 * Tells a local PostgreSQL client why its connection cannot go through, in its own protocol,
 * instead of a silent close ("server closed the connection unexpectedly" helps nobody).
 * Used by the tunnel when the broker refuses or cannot be reached.
 */
export function refuseLocally(
  socket: Socket,
  already: Buffer[],
  err: { code: string; message: string; hint?: string | undefined },
): void {
  let buf = Buffer.concat(already);
  const timer = setTimeout(() => socket.destroy(), 5000);
  const finish = (write: Buffer | null) => {
    clearTimeout(timer);
    socket.removeListener("data", onData);
    if (write) socket.end(write);
    else socket.end();
  };
  const step = (): void => {
    while (buf.length >= 8) {
      const len = buf.readInt32BE(0);
      const code = buf.readInt32BE(4);
      if (code === StartupCode.sslRequest || code === StartupCode.gssEncRequest) {
        buf = buf.subarray(8);
        socket.write("N");
        continue;
      }
      if (code === StartupCode.cancelRequest) return finish(null);
      if (len > 8 && buf.length < len && len < 10_000) return; // wait for the whole startup packet
      return finish(
        errorResponse({ severity: "FATAL", code: err.code, message: err.message, hint: err.hint }),
      );
    }
  };
  const onData = (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    step();
  };
  socket.on("data", onData);
  socket.on("error", () => clearTimeout(timer));
  socket.resume();
  step();
}
