/**
 * A small HTTP API for the http connection tests: a node http server on 127.0.0.1, port 0,
 * that records every request it receives (method, URL, headers, body) and serves
 *
 *   GET    /v1/things/:id   JSON with an owner (email, ssn), notes with an address, a card
 *   POST   /v1/things       the JSON body back, with an id
 *   DELETE /v1/things/:id   { deleted: id } (status 200)
 *   GET    /v1/echo         the request headers as JSON, Authorization and X-Api-Key echoed
 *                           in response headers too (an API that reflects the credential);
 *                           gzip-compressed when the request accepts gzip
 *   GET    /v1/echo-gzip    the same, always gzip-compressed (whatever the request accepts)
 *   GET    /v1/stream       text/plain, chunked: `chunks` lines, each after the test released
 *                           the previous one (see `gate`), so the test knows a line reached it
 *                           before the next one even exists
 *   GET    /v1/events       server-sent events: JSON data with an owner's email, gated likewise
 *   GET    /v1/redirect     302 to the API's own /v1/things/1 (absolute URL)
 */
import {
  createServer,
  type IncomingHttpHeaders,
  type Server,
  type ServerResponse,
} from "node:http";
import type { AddressInfo } from "node:net";
import { gzipSync } from "node:zlib";

export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** The streaming endpoints' chunks, released one by one by the test. */
export class Gate {
  private waiting: (() => void) | null = null;
  private credit = 0;
  /** Chunks written so far (by any streaming response). */
  written = 0;

  /** Lets the server write its next chunk. */
  release(): void {
    if (this.waiting) {
      const w = this.waiting;
      this.waiting = null;
      w();
    } else this.credit++;
  }

  /** The server waits here before each chunk after the first. */
  wait(): Promise<void> {
    if (this.credit > 0) {
      this.credit--;
      return Promise.resolve();
    }
    return new Promise((r) => (this.waiting = r));
  }
}

export interface TestApi {
  /** http://127.0.0.1:PORT */
  url: string;
  port: number;
  seen: SeenRequest[];
  gate: Gate;
  /** Lines (or events) a streaming response sends. */
  chunks: number;
  /** The raw owner email the things endpoint serves for `id`. */
  ownerEmail(id: string): string;
  close(): Promise<void>;
}

export const OWNER_SSN = "078-05-1120";
export const NOTES_EMAIL = "escalations@billing.example.com";
export const CARD = "4111 1111 1111 1111";

export async function startTestApi(opts: { chunks?: number } = {}): Promise<TestApi> {
  const seen: SeenRequest[] = [];
  const gate = new Gate();
  const chunks = opts.chunks ?? 5;
  const ownerEmail = (id: string) => `owner-${id}@customers.example.com`;
  const sockets = new Set<import("node:net").Socket>();

  const json = (res: ServerResponse, status: number, body: unknown, extra = {}) => {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      "content-type": "application/json; charset=utf-8",
      "content-length": Buffer.byteLength(text),
      ...extra,
    });
    res.end(text);
  };

  const server: Server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on("data", (d: Buffer) => parts.push(d));
    req.on("end", () => {
      const body = Buffer.concat(parts).toString("utf8");
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
      void handle(req.method!, new URL(req.url!, "http://x").pathname, body, req.headers, res);
    });
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });

  async function handle(
    method: string,
    path: string,
    body: string,
    headers: IncomingHttpHeaders,
    res: ServerResponse,
  ): Promise<void> {
    const thing = /^\/v1\/things\/([^/]+(?:\/[^/]+)*)$/.exec(path);
    if (method === "GET" && thing) {
      const id = thing[1]!;
      // Written by hand: the big number must survive masking digit for digit.
      const text =
        `{"id":"${id}","owner":{"name":"Ada Lovelace","email":"${ownerEmail(id)}","ssn":"${OWNER_SSN}"},` +
        `"notes":"escalate to ${NOTES_EMAIL} when late","card":"${CARD}","total":12345678901234567890}`;
      res.writeHead(200, {
        "content-type": "application/json",
        "content-length": Buffer.byteLength(text),
      });
      return void res.end(text);
    }
    if (method === "DELETE" && thing) return json(res, 200, { deleted: thing[1] });
    if (method === "POST" && path === "/v1/things")
      return json(res, 201, { id: "new-1", received: JSON.parse(body || "null") as unknown });
    if (method === "GET" && (path === "/v1/echo" || path === "/v1/echo-gzip")) {
      const text = JSON.stringify({ headers });
      const reflect = {
        "x-echo-authorization": String(headers["authorization"] ?? ""),
        "x-echo-api-key": String(headers["x-api-key"] ?? ""),
      };
      if (path === "/v1/echo-gzip" || /\bgzip\b/.test(String(headers["accept-encoding"] ?? ""))) {
        const z = gzipSync(text);
        res.writeHead(200, {
          "content-type": "application/json",
          "content-encoding": "gzip",
          "content-length": z.length,
          ...reflect,
        });
        return void res.end(z);
      }
      return json(res, 200, { headers }, reflect);
    }
    if (method === "GET" && path === "/v1/redirect") {
      res.writeHead(302, { location: `${url}/v1/things/1` });
      return void res.end();
    }
    if (method === "GET" && (path === "/v1/stream" || path === "/v1/events")) {
      const sse = path === "/v1/events";
      res.writeHead(200, {
        "content-type": sse ? "text/event-stream" : "text/plain; charset=utf-8",
        "cache-control": "no-cache",
      });
      for (let i = 1; i <= chunks; i++) {
        if (i > 1) await gate.wait();
        if (res.destroyed) return;
        res.write(
          sse
            ? `event: thing\ndata: ${JSON.stringify({ n: i, owner: { email: ownerEmail(`s${i}`) } })}\n\n`
            : `line ${i} of ${chunks}: mail ${ownerEmail(`s${i}`)}\n`,
        );
        gate.written++;
      }
      return void res.end();
    }
    json(res, 404, { error: "not found", path });
  }

  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    port,
    seen,
    gate,
    chunks,
    ownerEmail,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
