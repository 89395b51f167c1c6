import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { randomUUID } from "node:crypto";
import { WebSocketServer, type WebSocket } from "ws";
import type { BrokerConfig, ConnectionConfig } from "../config/schema.js";
import { isAllowed, type Identity } from "../identity/principal.js";
import { AuthError, TokenVerifier } from "../identity/verify-token.js";
import { DialError, type DialErrorCode } from "../net/dial.js";
import { wsDuplex } from "../net/ws-duplex.js";
import {
  AGENT_CONTROL_PATH,
  AGENT_STREAM_PREFIX,
  AgentClose,
  type OpenFailureCode,
  type ViaConnection,
} from "../agent/protocol.js";
import { AgentLink } from "./agent-link.js";
import { ApiError, clientAddress, refuseUpgrade } from "./http-util.js";
import type { Logger } from "./logger.js";

export interface AgentHubOptions {
  config: BrokerConfig;
  verify(token: string): Promise<Identity>;
  log: Logger;
  /** Pings on every control channel this often; a channel that missed one is dropped. */
  heartbeatMs?: number;
}

/** One connection's target as an agent sees it (the host and port the broker asks it to dial). */
interface PendingStream {
  link: AgentLink;
  connection: string;
  host: string;
  port: number;
  /** The agent has opened the stream; its upgrade is under way. */
  claimed: boolean;
  resolve(stream: Duplex): void;
  fail(err: DialError): void;
}

export interface AgentStatus {
  name: string;
  description: string | null;
  connected: boolean;
  /** The identity it signed in as (never its token). */
  identity: { oid: string; name: string } | null;
  since: number | null;
  address: string | null;
  version: string | null;
  /** What the agent said it will dial; null: anything. */
  allow: string[] | null;
  streams: number;
  connections: ViaConnection[];
}

/**
 * Where outbound agents (`gw agent start`, docs/agent.md) meet the broker. An agent keeps a
 * control channel here; a session whose connection is configured `via: <agent>` gets its
 * target bytes through `dial`, which asks the agent to dial the target and open a data stream
 * back. The hub only carries bytes: policy, masking and recording stay in the session, on the
 * broker, exactly as for a direct target.
 */
export class AgentHub {
  private readonly wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    maxPayload: 16 << 20,
  });
  /** The live control channel of each agent name (at most one: a newer one replaces it). */
  private readonly links = new Map<string, AgentLink>();
  private readonly pending = new Map<string, PendingStream>();
  private closing = false;

  constructor(private readonly opts: AgentHubOptions) {}

  /** The upgrade paths the hub answers. */
  static handles(pathname: string): boolean {
    return pathname === AGENT_CONTROL_PATH || pathname.startsWith(AGENT_STREAM_PREFIX);
  }

  async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const url = new URL(req.url ?? "/", "http://x");
    if (this.closing)
      return refuseUpgrade(
        socket,
        new ApiError(503, "shutting_down", "the broker is shutting down; retry"),
      );
    let identity: Identity;
    try {
      identity = await this.opts.verify(TokenVerifier.fromHeader(req.headers.authorization));
    } catch (err) {
      this.opts.log.log("warn", "agent refused", {
        path: url.pathname,
        reason: err instanceof AuthError ? err.code : "error",
      });
      return refuseUpgrade(socket, toApiError(err));
    }
    if (url.pathname === AGENT_CONTROL_PATH)
      return this.acceptControl(req, socket, head, url.searchParams.get("name") ?? "", identity);
    const id = decodeURIComponent(url.pathname.slice(AGENT_STREAM_PREFIX.length));
    return this.acceptStream(req, socket, head, id, identity);
  }

  /**
   * A byte stream to `host:port`, dialled by agent `agent` from its network. Rejects with a
   * DialError whose message names the connection, the agent and what went wrong.
   */
  dial(
    agent: string,
    host: string,
    port: number,
    opts: { connection: string; timeoutMs: number },
  ): Promise<Duplex> {
    const link = this.links.get(agent);
    if (!link?.open) {
      return Promise.reject(
        new DialError(
          "agent_not_connected",
          `connection ${opts.connection} goes through agent ${agent}, which is not connected to this broker`,
          `Check that \`gw agent start --name ${agent}\` runs in the target's network and can reach the broker (its log says why not).`,
        ),
      );
    }
    const id = randomUUID();
    return new Promise<Duplex>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          p.fail(
            new DialError(
              "agent_timeout",
              `agent ${agent} did not open a stream to ${host}:${port} for ${opts.connection} within ${opts.timeoutMs} ms`,
              "The target may be slow to accept connections, or the agent overloaded; check the agent's log.",
            ),
          ),
        opts.timeoutMs,
      );
      const settle = () => {
        clearTimeout(timer);
        this.pending.delete(id);
      };
      const p: PendingStream = {
        link,
        connection: opts.connection,
        host,
        port,
        claimed: false,
        resolve: (s) => {
          settle();
          resolve(s);
        },
        fail: (err) => {
          settle();
          reject(err);
        },
      };
      this.pending.set(id, p);
      link.send({
        type: "open",
        stream: id,
        host,
        port,
        connection: opts.connection,
        timeoutMs: opts.timeoutMs,
      });
    });
  }

  /** Every configured agent, connected or not (GET /v1/agents). */
  status(): AgentStatus[] {
    return Object.entries(this.opts.config.agents).map(([name, a]) => {
      const link = this.links.get(name);
      const live = link?.open ? link : undefined;
      return {
        name,
        description: a.description ?? null,
        connected: live !== undefined,
        identity: live ? { oid: live.identity.oid, name: live.identity.name } : null,
        since: live?.connectedAt ?? null,
        address: live?.remoteAddress ?? null,
        version: live?.version ?? null,
        allow: live?.allow ?? null,
        streams: live?.streams.size ?? 0,
        connections: this.viaConnections(name),
      };
    });
  }

  async close(): Promise<void> {
    this.closing = true;
    // 1001 (going away): agents reconnect, with backoff, to whichever broker comes back.
    for (const link of this.links.values()) link.close(1001, "broker shutting down");
    this.links.clear();
    for (const ws of this.wss.clients) ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  private acceptControl(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    name: string,
    identity: Identity,
  ): void {
    const agents = this.opts.config.agents;
    const cfg = Object.hasOwn(agents, name) ? agents[name] : undefined;
    if (!cfg || !this.mayBe(identity, name)) {
      this.opts.log.log("warn", "agent forbidden", {
        agent: name,
        oid: identity.oid,
        type: identity.type,
      });
      // Unknown and forbidden look alike to a caller who may not be that agent.
      return refuseUpgrade(
        socket,
        new ApiError(
          403,
          "agent_forbidden",
          identity.type === "app"
            ? `${identity.name} (app:${identity.oid}) may not register as agent "${name}" (or the broker has no such agent); the broker's config must list it under agents.${name}.identity`
            : `agents sign in as service principals, and ${identity.name} is a person; give the agent an app registration of its own`,
        ),
      );
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      if (this.closing) return ws.close(1001, "broker shutting down");
      const log = this.opts.log.child({ agent: name, oid: identity.oid });
      const link: AgentLink = new AgentLink(ws, {
        name,
        identity,
        remoteAddress: clientAddress(req),
        log,
        verify: (t) => this.opts.verify(t),
        allowed: (id) => this.mayBe(id, name),
        graceMs: this.opts.config.identity.expiryGraceSeconds * 1000,
        heartbeatMs: this.opts.heartbeatMs ?? 20_000,
        onHello: () =>
          link.send({ type: "welcome", agent: name, connections: this.viaConnections(name) }),
        onOpenFailed: (stream, code, reason) => this.openFailed(link, stream, code, reason),
        onClose: () => {
          if (this.links.get(name) === link) this.links.delete(name);
          for (const p of [...this.pending.values()])
            if (p.link === link)
              p.fail(
                new DialError(
                  "agent_disconnected",
                  `agent ${name} disconnected while opening a stream to ${p.host}:${p.port} for ${p.connection}`,
                  "Try again in a moment: the agent reconnects by itself.",
                ),
              );
          log.log("info", "agent disconnected", { streams: link.streams.size });
        },
      });
      const previous = this.links.get(name);
      this.links.set(name, link);
      if (previous) {
        log.log("warn", "agent replaced: a newer control channel took over its name");
        previous.close(AgentClose.replaced, "replaced by a newer connection of the same agent");
      }
      log.log("info", "agent connected", { address: link.remoteAddress });
    });
  }

  private acceptStream(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    id: string,
    identity: Identity,
  ): void {
    const p = this.pending.get(id);
    // The stream id is random and single-use, and only the identity that holds the agent's
    // control channel may answer it: nobody else can splice into a session.
    if (!p || p.claimed || !p.link.open || p.link.identity.oid !== identity.oid) {
      this.opts.log.log("warn", "agent stream refused: nobody waits for it", { oid: identity.oid });
      return refuseUpgrade(
        socket,
        new ApiError(
          404,
          "stream_unknown",
          "no session waits for this stream (it may have timed out)",
        ),
      );
    }
    p.claimed = true;
    this.wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      // Given up on (timed out, agent gone) while the upgrade was under way.
      if (!this.pending.has(id) || !p.link.open) {
        ws.close(AgentClose.unwanted, "no session waits for this stream");
        return;
      }
      p.link.streams.add(ws);
      ws.on("close", () => p.link.streams.delete(ws));
      p.resolve(wsDuplex(ws));
    });
  }

  private openFailed(link: AgentLink, id: string, code: OpenFailureCode, reason: string): void {
    const p = this.pending.get(id);
    if (!p || p.link !== link) return;
    const where = `${p.host}:${p.port}`;
    const via = `agent ${link.name}`;
    const [dialCode, message, hint]: [DialErrorCode, string, string] =
      code === "not_allowed"
        ? [
            "target_not_allowed",
            `${via} refuses to dial ${where} for ${p.connection}: it is not on the agent's allow list`,
            `Start the agent with --allow ${where}, or correct the connection's target.`,
          ]
        : [
            code === "refused"
              ? "target_refused"
              : code === "not_found"
                ? "target_not_found"
                : code === "timeout"
                  ? "target_timeout"
                  : "target_unreachable",
            `cannot reach the target of ${p.connection} at ${where} through ${via} (${reason})`,
            "The target may be down or unreachable from the agent's network; try again later or tell the broker's operators.",
          ];
    p.fail(new DialError(dialCode, message, hint));
  }

  private mayBe(identity: Identity, name: string): boolean {
    const agents = this.opts.config.agents;
    const cfg = Object.hasOwn(agents, name) ? agents[name] : undefined;
    // People never carry other people's sessions: an agent is a service principal.
    return cfg !== undefined && identity.type === "app" && isAllowed(identity, cfg.identity);
  }

  private viaConnections(agent: string): ViaConnection[] {
    const out: ViaConnection[] = [];
    for (const [name, conn] of Object.entries(this.opts.config.connections)) {
      if (viaOf(conn) !== agent) continue;
      const at = targetAddress(conn);
      if (at) out.push({ name, ...at });
    }
    return out;
  }
}

/** The agent a connection goes through, if any (every connection type may have `via`). */
export function viaOf(conn: ConnectionConfig): string | undefined {
  const via = (conn as { via?: unknown }).via;
  return typeof via === "string" ? via : undefined;
}

/** Where a connection's target is: host and port, or the host and port of its URL. */
function targetAddress(conn: ConnectionConfig): { host: string; port: number } | null {
  const t = conn.target as { host?: unknown; port?: unknown; url?: unknown };
  if (typeof t.host === "string" && typeof t.port === "number")
    return { host: t.host, port: t.port };
  if (typeof t.url === "string") {
    try {
      const u = new URL(t.url);
      const port = Number(u.port) || (u.protocol === "https:" ? 443 : 80);
      return { host: u.hostname.replace(/^\[|\]$/g, ""), port };
    } catch {
      return null;
    }
  }
  return null;
}

function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof AuthError) return new ApiError(err.status, err.code, err.message);
  return new ApiError(500, "internal", "internal broker error; see the broker log");
}
