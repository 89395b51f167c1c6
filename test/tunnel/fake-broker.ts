/**
 * A stand-in for one broker replica, for the pool and tunnel failover tests: real HTTP(S) and
 * WebSocket servers on a port of their own, whose answers the test sets, and which record what
 * reached them (requests with their Host header and TLS server name, tunnel streams and the
 * control messages sent on them). `kill()` is what a crash looks like from the client: the
 * listener goes and every connection is cut; `restart()` listens on the same address again.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import { readFileSync } from "node:fs";
import { WebSocketServer, type WebSocket } from "ws";

export interface SeenRequest {
  method: string;
  path: string;
  host: string | undefined;
  /** The TLS server name the client sent (https only). */
  servername: string | null;
  authorization: string | undefined;
}

export interface FakeBroker {
  /** http(s)://host:port */
  url: string;
  host: string;
  port: number;
  requests: SeenRequest[];
  /** Tunnel streams accepted. */
  streams: WebSocket[];
  /** Text (control) messages received on tunnel streams. */
  control: unknown[];
  /** Answer for requests other than /readyz and tunnel upgrades; default 200 {ok:true}. */
  answer: (req: IncomingMessage) => { status: number; body: unknown };
  /** Status for tunnel upgrades; 101 accepts (and echoes binary frames). */
  upgradeStatus: number;
  /** Status of /readyz. */
  readyStatus: number;
  kill(): Promise<void>;
  restart(): Promise<void>;
}

export async function startFakeBroker(
  opts: { host?: string; port?: number; tls?: { cert: string; key: string } } = {},
): Promise<FakeBroker> {
  const host = opts.host ?? "127.0.0.1";
  const sockets = new Set<Socket>();
  const wss = new WebSocketServer({ noServer: true });
  const tls = opts.tls
    ? { cert: readFileSync(opts.tls.cert), key: readFileSync(opts.tls.key) }
    : null;
  const fake: FakeBroker = {
    url: "",
    host,
    port: 0,
    requests: [],
    streams: [],
    control: [],
    answer: () => ({ status: 200, body: { ok: true } }),
    upgradeStatus: 101,
    readyStatus: 200,
    kill: async () => undefined,
    restart: async () => undefined,
  };
  const seen = (req: IncomingMessage) => {
    const s = req.socket as Partial<TLSSocket>;
    fake.requests.push({
      method: req.method ?? "GET",
      path: req.url ?? "/",
      host: req.headers.host,
      servername: typeof s.servername === "string" ? s.servername : null,
      authorization: req.headers.authorization,
    });
  };
  const make = (): Server => {
    const handler = (req: IncomingMessage, res: import("node:http").ServerResponse) => {
      seen(req);
      const { status, body } =
        req.url === "/readyz"
          ? { status: fake.readyStatus, body: { status: "x" } }
          : fake.answer(req);
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    const server = tls ? createHttpsServer(tls, handler) : createHttpServer(handler);
    server.on(tls ? "secureConnection" : "connection", (s: Socket) => {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
    });
    server.on("upgrade", (req: IncomingMessage, socket: Socket, head: Buffer) => {
      seen(req);
      if (fake.upgradeStatus !== 101) {
        const body = JSON.stringify({ error: { code: `status_${fake.upgradeStatus}` } });
        socket.end(
          `HTTP/1.1 ${fake.upgradeStatus} No\r\ncontent-type: application/json\r\n` +
            `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
        );
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => {
        fake.streams.push(ws);
        ws.on("message", (data: Buffer, isBinary: boolean) => {
          if (isBinary) ws.send(data, { binary: true });
          else fake.control.push(JSON.parse(data.toString("utf8")));
        });
      });
    });
    return server;
  };
  let server = make();
  const listen = (port: number) =>
    new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen({ host, port }, () => {
        server.off("error", reject);
        resolve();
      });
    });
  await listen(opts.port ?? 0);
  fake.port = (server.address() as { port: number }).port;
  fake.url = `${tls ? "https" : "http"}://${host}:${fake.port}`;
  fake.kill = async () => {
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const s of sockets) s.destroy();
      for (const ws of wss.clients) ws.terminate();
    });
  };
  fake.restart = async () => {
    server = make();
    await listen(fake.port);
  };
  return fake;
}
