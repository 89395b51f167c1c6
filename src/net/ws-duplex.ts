import type { Duplex } from "node:stream";
import { createWebSocketStream, type WebSocket } from "ws";

/**
 * A WebSocket as a byte stream that behaves like a TCP socket without half-open: when the far
 * end closes, the stream ends and is destroyed, so 'close' fires. (ws's own stream only ends
 * its readable side, and only once it is read to the end: a protocol session waiting for
 * 'close' would never hear of it.)
 */
export function wsDuplex(ws: WebSocket): Duplex {
  const stream = createWebSocketStream(ws);
  stream.on("end", () => stream.destroy());
  // Nothing left unread: nothing to wait for. (With bytes still buffered, 'end' follows them.)
  ws.once("close", () => {
    if (stream.readableLength === 0) stream.destroy();
  });
  return stream;
}
