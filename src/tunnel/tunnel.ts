import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { WebSocket } from "ws";
import { ExitCode, GwError } from "../errors.js";
import { refusalBody } from "../net/http-client.js";
import { refuseLocally } from "../protocols/postgres/local-refusal.js";
import type { BrokerClient, BrokerConnectionInfo } from "./broker-client.js";
import { httpError, tunnelPath, unreachable } from "./broker-client.js";
import type { BrokerEndpoint } from "./broker-endpoints.js";
import {
  failoverStatus,
  failsOver,
  failureReason,
  isNetworkFailure,
  statusReason,
} from "./broker-failures.js";
import { unreachableAll, type BrokerPool } from "./broker-pool.js";
import { TokenRefresher } from "./token-refresher.js";

/**
 * The local end of a tunnel: a TCP listener whose every accepted connection becomes one
 * WebSocket stream to the broker (binary frames: the client's bytes; text frames: control).
 *
 * One stream per connection keeps TCP backpressure end to end and lets a load balancer spread
 * connections over broker replicas. TLS sessions are resumed through a shared agent, so a new
 * stream costs little more than the WebSocket upgrade.
 *
 * Given several replicas (the client's BrokerPool), each new stream goes to one that is up; a
 * stream that cannot be opened on one (refused, reset, TLS failure, 5xx, no TCP/TLS connect
 * within the pool's connect deadline) is opened on the next at once, so the local client only
 * sees a slower connect. Open streams stay where they are: they end with their replica.
 */
const HIGH_WATER = 1 << 20;
const SEND_OPTS = { binary: true, compress: false } as const;
const zeroMask = (mask: Buffer) => mask.fill(0);

export type TunnelEvent =
  /** `broker`: the replica the stream went to (its URL, and address when it has several). */
  | { type: "stream_open"; id: number; broker: string }
  | { type: "session"; id: number; session: string }
  | { type: "stream_refused"; id: number; error: GwError }
  | { type: "stream_closed"; id: number; bytesIn: number; bytesOut: number }
  /** A fresh token went to the open streams. */
  | { type: "token_refreshed"; expiresAt: number | null; streams: number }
  /** Getting a fresh token failed; open sessions end when the current one expires. */
  | { type: "token_refresh_failed"; error: unknown; expiresAt: number | null }
  /** The broker refused a refreshed token for one stream (kept the old one). */
  | { type: "token_rejected"; id: number; code: string; message: string }
  /** The broker ended a stream's session because its sign-in expired. */
  | { type: "sign_in_expired"; id: number }
  /** One of this stream's statements waits for approval. */
  | {
      type: "statement_held";
      id: number;
      request: string;
      sql: string;
      approvers: string[];
      expiresAt: number | null;
    }
  /** The broker could not be reached for a new connection: it is tried again after retryInMs. */
  | { type: "broker_unreachable"; id: number; attempt: number; retryInMs: number; error: GwError }
  /** ... and was decided: approved, denied, expired or cancelled. */
  | {
      type: "statement_decided";
      id: number;
      request: string;
      outcome: string;
      by?: string;
      reason?: string | null;
    };

export interface TunnelOptions {
  client: BrokerClient;
  connection: BrokerConnectionInfo;
  /** Called for every new stream, so a refreshed token is used as soon as it exists. */
  token: () => string | Promise<string>;
  bind: string;
  port: number;
  onEvent?: (e: TunnelEvent) => void;
  /** Labels the sessions as an AI agent's (recordings and policies tell agents from people). */
  agentLabel?: string | undefined;
  /**
   * A broker that cannot be reached (down, restarting, answering 502/503/504) is tried again for
   * a new connection, with exponential backoff, while the local client waits: a tunnel outlives
   * a broker restart. Default { initialDelayMs: 1000, maxDelayMs: 10000, maxWaitMs: 60000 };
   * false refuses at once.
   */
  retry?: { initialDelayMs?: number; maxDelayMs?: number; maxWaitMs?: number } | false;
  /**
   * Runs on every accepted connection before its stream is opened (the local access guard,
   * src/tunnel/local-password.ts): resolves with the bytes to send to the broker first, or null
   * when it has answered the client itself and closed the connection.
   */
  gate?: (socket: Socket) => Promise<Buffer[] | null>;
}

/** Traffic through a tunnel since it opened; open streams included. */
export interface TunnelStats {
  streamsTotal: number;
  streamsOpen: number;
  bytesIn: number;
  bytesOut: number;
}

const RETRYABLE_STATUS = new Set([502, 503, 504]);

export class Tunnel {
  private readonly streams = new Set<{ socket: Socket; ws: WebSocket | null }>();
  private nextId = 1;
  private readonly pool: BrokerPool;
  private readonly refresher: TokenRefresher;
  private readonly gating = new Set<Socket>();
  private readonly totals = { streams: 0, bytesIn: 0, bytesOut: 0 };

  private constructor(
    private readonly server: Server,
    private readonly opts: TunnelOptions,
  ) {
    this.pool = opts.client.pool;
    // A fresh token goes to every open stream, whichever replica it is on: each is its own
    // WebSocket, and every replica verifies tokens the same way.
    this.refresher = new TokenRefresher(opts.token, {
      onToken: (token, expiresAt) => {
        // Streams opened with an older token get the new one beside their data.
        const msg = JSON.stringify({ type: "token", token });
        let n = 0;
        for (const s of this.streams) {
          if (s.ws?.readyState === WebSocket.OPEN) {
            s.ws.send(msg);
            n++;
          }
        }
        if (n > 0) this.opts.onEvent?.({ type: "token_refreshed", expiresAt, streams: n });
      },
      onError: (error, expiresAt) =>
        this.opts.onEvent?.({ type: "token_refresh_failed", error, expiresAt }),
    });
    server.on("connection", (socket) => this.accept(socket));
  }

  static async open(opts: TunnelOptions): Promise<Tunnel> {
    const server = createServer({ noDelay: true, pauseOnConnect: true });
    await new Promise<void>((resolve, reject) => {
      server.once("error", (err: NodeJS.ErrnoException) => {
        if (err.code === "EADDRINUSE") {
          reject(
            new GwError("port_in_use", `port ${opts.port} on ${opts.bind} is already in use`, {
              exitCode: ExitCode.conflict,
              hint: `Another program (or another gw connect) listens there. Pass --port N for another port, or --port 0 for any free one.`,
            }),
          );
        } else if (err.code === "EACCES") {
          reject(
            new GwError("port_denied", `not allowed to listen on ${opts.bind}:${opts.port}`, {
              exitCode: ExitCode.conflict,
              hint: "Use a port above 1023.",
            }),
          );
        } else if (err.code === "EADDRNOTAVAIL") {
          reject(
            new GwError("bind_invalid", `cannot listen on ${opts.bind}: no such local address`, {
              exitCode: ExitCode.usage,
            }),
          );
        } else reject(err);
      });
      server.listen({ host: opts.bind, port: opts.port, exclusive: true }, () => resolve());
    });
    return new Tunnel(server, opts);
  }

  get address(): { host: string; port: number } {
    const a = this.server.address() as AddressInfo;
    return { host: a.address, port: a.port };
  }

  get activeStreams(): number {
    return this.streams.size;
  }

  get stats(): TunnelStats {
    return {
      streamsTotal: this.totals.streams,
      streamsOpen: this.streams.size,
      bytesIn: this.totals.bytesIn,
      bytesOut: this.totals.bytesOut,
    };
  }

  async close(): Promise<void> {
    this.refresher.stop();
    for (const s of this.gating) s.destroy();
    const closing: WebSocket[] = [];
    for (const s of this.streams) {
      if (s.ws) {
        s.ws.close(1001);
        closing.push(s.ws);
      }
      s.socket.destroy();
    }
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    // A broker that does not answer the close handshake (a session waiting on an approval, a
    // broker that is gone) would keep the socket, and the process, for ws's 30 s close timeout.
    const until = Date.now() + 500;
    while (closing.some((ws) => ws.readyState !== WebSocket.CLOSED) && Date.now() < until)
      await new Promise((r) => setTimeout(r, 20));
    for (const ws of closing) if (ws.readyState !== WebSocket.CLOSED) ws.terminate();
  }

  private accept(socket: Socket): void {
    const gate = this.opts.gate;
    if (!gate) return this.serve(socket, []);
    socket.on("error", () => undefined);
    this.gating.add(socket);
    gate(socket).then(
      (first) => {
        this.gating.delete(socket);
        if (first !== null && !socket.destroyed) this.serve(socket, first);
      },
      () => {
        this.gating.delete(socket);
        socket.destroy();
      },
    );
  }

  private serve(socket: Socket, first: Buffer[]): void {
    const id = this.nextId++;
    const entry: { socket: Socket; ws: WebSocket | null } = { socket, ws: null };
    this.streams.add(entry);
    this.totals.streams++;
    const early: Buffer[] = [...first];
    let bytesIn = 0;
    let bytesOut = 0;
    let refused = false;
    const emit = (e: TunnelEvent) => this.opts.onEvent?.(e);
    socket.setNoDelay(true);
    const onEarly = (c: Buffer) => early.push(c);
    socket.on("data", onEarly);
    socket.resume();
    socket.on("error", () => undefined);

    const refuse = (err: GwError) => {
      // A client that is gone cannot be told anything (and refuseLocally's timer would
      // keep the process alive for nothing).
      if (refused || socket.destroyed) return;
      refused = true;
      socket.off("data", onEarly);
      emit({ type: "stream_refused", id, error: err });
      if (this.opts.connection.type === "postgres") {
        refuseLocally(socket, early, {
          code:
            err.exitCode === ExitCode.auth || err.exitCode === ExitCode.forbidden
              ? "28000"
              : "08006",
          message: `gw: ${err.message}`,
          hint: err.hint,
        });
      } else socket.destroy();
    };

    // A client that leaves before its stream is open: abandon the stream, so no half-open
    // stream (and idle broker session) outlives it. Once open, the 'open' handler's own
    // close listener ends the stream.
    let retryTimer: NodeJS.Timeout | undefined;
    const startedAt = Date.now();
    const retry = this.opts.retry === false ? null : (this.opts.retry ?? {});
    socket.once("close", () => {
      if (retryTimer !== undefined) {
        clearTimeout(retryTimer);
        retryTimer = undefined;
        this.streams.delete(entry);
        return;
      }
      const ws = entry.ws;
      if (ws === null || ws.readyState === WebSocket.CLOSED) this.streams.delete(entry);
      else if (ws.readyState === WebSocket.CONNECTING) {
        refused = true;
        ws.terminate();
      }
    });

    /**
     * The broker cannot be reached (or is restarting): try again later while the client waits,
     * unless the client left or the wait would run too long. Returns false to refuse now.
     */
    let attempt = 0;
    const later = (err: GwError): boolean => {
      if (retry === null || socket.destroyed || refused) return false;
      attempt++;
      const delay = Math.min(
        (retry.initialDelayMs ?? 1000) * 2 ** (attempt - 1),
        retry.maxDelayMs ?? 10_000,
      );
      if (Date.now() + delay - startedAt > (retry.maxWaitMs ?? 60_000)) return false;
      emit({ type: "broker_unreachable", id, attempt, retryInMs: delay, error: err });
      retryTimer = setTimeout(() => {
        retryTimer = undefined;
        if (socket.destroyed) return void this.streams.delete(entry);
        open();
      }, delay);
      return true;
    };

    // token() may throw (not signed in): that must refuse this stream, not crash the process.
    const open = () =>
      this.refresher.token().then(
        (token) => {
          if (socket.destroyed) return void this.streams.delete(entry);
          this.pool
            .candidates()
            .then((candidates) => dial(token, candidates, 0, []))
            .catch((err: unknown) => {
              this.streams.delete(entry);
              refuse(unreachable(this.pool.url, err));
            });
        },
        (err: unknown) => {
          this.streams.delete(entry);
          refuse(
            err instanceof GwError
              ? err
              : new GwError("token_unavailable", String(err), { exitCode: ExitCode.auth }),
          );
        },
      );

    /**
     * Opens the stream on candidates[i]. A replica that does not answer (or answers 5xx) is
     * marked down and the next one is dialled at once; when none is left, the broker is tried
     * again later (see `later`) or the client is refused. Answers about the caller (401, 403,
     * 404) refuse at once, as the same answer would come from every replica.
     */
    const dial = (
      token: string,
      candidates: BrokerEndpoint[],
      i: number,
      failures: Array<{ endpoint: BrokerEndpoint; error: unknown }>,
    ) => {
      if (socket.destroyed) return void this.streams.delete(entry);
      const endpoint = candidates[i]!;
      const target =
        endpoint.dialUrl.replace(/^http/, "ws") + tunnelPath(this.opts.connection.name);
      const url = this.opts.agentLabel
        ? `${target}?agent=${encodeURIComponent(this.opts.agentLabel)}`
        : target;
      const ws = new WebSocket(url, {
        // Host keeps the broker's name when one of its addresses is dialled.
        headers: { authorization: `Bearer ${token}`, ...endpoint.headers },
        perMessageDeflate: false,
        // Masking exists for browsers on shared proxies; over TLS from a CLI it only costs a
        // copy and an XOR per frame. An all-zero mask is valid and lets ws skip both.
        generateMask: zeroMask,
        // The pool's agent: the CA to trust, cached TLS sessions, the connect deadline.
        agent: this.pool.streamAgent(endpoint),
        ...(endpoint.servername ? { servername: endpoint.servername } : {}),
        handshakeTimeout: 15_000,
        maxPayload: 256 * 1024 * 1024,
      });
      entry.ws = ws;
      /** This attempt failed and another one is under way: its events are no longer ours. */
      let superseded = false;
      /** This attempt's outcome is decided; the errors terminate() raises are noise. */
      let settled = false;
      const gone = () => refused || socket.destroyed;
      /** This replica failed: the next one, else later, else refuse with `err`. */
      const next = (reason: string, err: GwError, retryable: boolean) => {
        this.pool.failed(endpoint, reason);
        superseded = true;
        if (i + 1 < candidates.length) return dial(token, candidates, i + 1, failures);
        if (retryable && later(err)) return;
        superseded = false;
        refuse(err);
      };
      ws.on("unexpected-response", (_req, res) => {
        void refusalBody(res).then((body) => {
          settled = true;
          ws.terminate();
          const status = res.statusCode ?? 500;
          const err = httpError(endpoint.label, status, body);
          if (gone() || !failoverStatus(status, "tunnel")) return refuse(err);
          next(statusReason(status, body), err, RETRYABLE_STATUS.has(status));
        });
      });
      ws.on("error", (err) => {
        if (settled || ws.readyState === WebSocket.OPEN) return;
        settled = true;
        if (gone()) return;
        failures.push({ endpoint, error: err });
        if (!failsOver(err)) return refuse(unreachable(endpoint.label, err));
        next(failureReason(err), unreachableAll(failures), isNetworkFailure(err));
      });
      ws.on("open", () => {
        this.pool.succeeded(endpoint);
        emit({ type: "stream_open", id, broker: endpoint.label });
        socket.off("data", onEarly);
        for (const c of early) {
          bytesIn += c.length;
          this.totals.bytesIn += c.length;
          ws.send(c, SEND_OPTS);
        }
        early.length = 0;
        const raw = (ws as unknown as { _socket?: Socket })._socket;
        raw?.on("drain", () => socket.resume());
        socket.on("data", (c: Buffer) => {
          bytesIn += c.length;
          this.totals.bytesIn += c.length;
          ws.send(c, SEND_OPTS);
          if (ws.bufferedAmount > HIGH_WATER) socket.pause();
        });
        socket.on("drain", () => ws.resume());
        socket.on("end", () => ws.close(1000));
        socket.on("close", () => {
          if (ws.readyState === WebSocket.OPEN) ws.close(1000);
        });
      });
      ws.on("message", (data: Buffer, isBinary: boolean) => {
        if (isBinary) {
          bytesOut += data.length;
          this.totals.bytesOut += data.length;
          if (!socket.write(data)) ws.pause();
          return;
        }
        try {
          const msg = JSON.parse(data.toString("utf8")) as {
            type?: string;
            id?: string;
            code?: string;
            message?: string;
          };
          if (msg.type === "session" && typeof msg.id === "string")
            emit({ type: "session", id, session: msg.id });
          else if (msg.type === "token_rejected")
            emit({
              type: "token_rejected",
              id,
              code: String(msg.code),
              message: String(msg.message),
            });
          else if (msg.type === "sign_in_expired") emit({ type: "sign_in_expired", id });
          else if (msg.type === "statement_held") {
            const m = msg as {
              request?: unknown;
              sql?: unknown;
              approvers?: unknown;
              expiresAt?: unknown;
            };
            emit({
              type: "statement_held",
              id,
              request: String(m.request),
              sql: String(m.sql ?? ""),
              approvers: Array.isArray(m.approvers) ? m.approvers.map(String) : [],
              expiresAt: typeof m.expiresAt === "number" ? m.expiresAt : null,
            });
          } else if (msg.type === "statement_decided") {
            const m = msg as {
              request?: unknown;
              outcome?: unknown;
              by?: unknown;
              reason?: unknown;
            };
            emit({
              type: "statement_decided",
              id,
              request: String(m.request),
              outcome: String(m.outcome),
              ...(typeof m.by === "string" ? { by: m.by } : {}),
              ...(typeof m.reason === "string" ? { reason: m.reason } : {}),
            });
          }
        } catch {
          // Unknown control messages are ignored: newer brokers may send more.
        }
      });
      ws.on("close", () => {
        if (superseded) return;
        this.streams.delete(entry);
        if (!refused) {
          socket.end();
          emit({ type: "stream_closed", id, bytesIn, bytesOut });
        }
      });
    };
    open();
  }
}
