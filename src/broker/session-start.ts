import type { ApprovalService } from "../approvals/service.js";
import type { AuditService } from "../audit/service.js";
import type { BrokerConfig, ConnectionConfig } from "../config/schema.js";
import type { Identity } from "../identity/principal.js";
import type { Dial } from "../net/dial.js";
import type { ClientChannel, EndReason } from "../protocols/tcp/stream.js";
import type { SessionStore } from "../store/types.js";
import type { Logger } from "./logger.js";

/*
 * What the broker and the per-type session starters (postgres-sessions.ts,
 * protocol-sessions.ts) share: the running session they hand back, what one start needs to
 * know, and what the starters need from the broker.
 */

/** A running session of any connection type, as the broker drives it. */
export interface RunningSession {
  onClientData(buf: Buffer): void;
  onClientClosed(): void;
  /** The broker is going away: tell the client and end. */
  shutdown(): void;
  /** The identity's sign-in lapsed. */
  expire(): void;
}

/** What starting one session needs from the broker. */
export interface SessionContext {
  id: string;
  name: string;
  identity: Identity;
  channel: ClientChannel & { remoteAddress: string | null };
  log: Logger;
  agentLabel: string | null;
  /** True once the sign-in lapsed (the session ends at the next client data). */
  signInExpired: () => boolean;
  /** Tells the tunnel beside the data (session id, held and decided requests). */
  control: (event: Record<string, unknown>) => void;
}

/** What the session starters need from the broker. */
export interface SessionDeps {
  config: BrokerConfig;
  store: SessionStore;
  audit: AuditService;
  approvals: ApprovalService;
  log: Logger;
  /** For a connection with `via`: how its target is reached (through the agent). */
  dial?: (name: string, conn: ConnectionConfig, timeoutMs: number) => Dial | undefined;
}

export const SHUTDOWN_MESSAGE = "gw: the broker is shutting down; reconnect in a moment";
export const EXPIRED_MESSAGE = "gw: your sign-in expired; run `gw login`";

/** The RunningSession of a session that ends with a plain-text message (ssh, http, tcp). */
export function runningSession(session: {
  onClientData(buf: Buffer): void;
  onClientClosed(): void;
  terminate(reason: EndReason, message: string): void;
}): RunningSession {
  return {
    onClientData: (b) => session.onClientData(b),
    onClientClosed: () => session.onClientClosed(),
    shutdown: () => session.terminate("broker_shutdown", SHUTDOWN_MESSAGE),
    expire: () => session.terminate("auth_expired", EXPIRED_MESSAGE),
  };
}

/** A session's last few statements, commands or requests, oldest first, for approvers. */
export class RecentList {
  private readonly items: string[] = [];

  constructor(private readonly keep = 5) {}

  add(text: string): void {
    this.items.push(text);
    if (this.items.length > this.keep) this.items.shift();
  }

  list(): string[] {
    return this.items.slice();
  }
}
