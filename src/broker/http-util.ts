import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { STATUS_CODES } from "node:http";

/** Errors the API reports to callers: a stable code, an HTTP status, a message that says what to do. */
export class ApiError extends Error {
  override name = "ApiError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
    "cache-control": "no-store",
  });
  res.end(text);
}

export function sendError(res: ServerResponse, err: ApiError): void {
  const headers = err.status === 401 ? { "www-authenticate": `Bearer error="invalid_token"` } : {};
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  sendJson(res, err.status, { error: { code: err.code, message: err.message } });
}

/** Refuses a WebSocket upgrade with a plain HTTP response the client can read. */
export function refuseUpgrade(socket: Duplex, err: ApiError): void {
  const body = JSON.stringify({ error: { code: err.code, message: err.message } });
  const lines = [
    `HTTP/1.1 ${err.status} ${STATUS_CODES[err.status] ?? "Error"}`,
    "Content-Type: application/json; charset=utf-8",
    `Content-Length: ${Buffer.byteLength(body)}`,
    "Connection: close",
  ];
  if (err.status === 401) lines.push(`WWW-Authenticate: Bearer error="invalid_token"`);
  socket.end(lines.join("\r\n") + "\r\n\r\n" + body);
}

export function clientAddress(req: IncomingMessage): string | null {
  return req.socket.remoteAddress ?? null;
}
