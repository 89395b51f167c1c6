/**
 * The detached tunnel's side of `gw connect --detach`: a timestamped log, the state file
 * `gw ps` reads, a status file with its traffic every few seconds, the ready message for the
 * parent, and clean state when it stops.
 */
import type { Tunnel } from "../tunnel.js";
import { reportToParent, timestampLog } from "./process.js";
import {
  identityOfToken,
  logPath,
  removeState,
  runningTunnel,
  writeState,
  writeStatus,
} from "./state.js";

export { runningTunnel };

/** How often the status file (traffic for `gw ps`) is rewritten. */
export const STATUS_INTERVAL_MS = 2000;

export interface DetachedChild {
  /** The tunnel listens: record it and tell the parent. */
  ready(
    tunnel: Tunnel,
    summary: {
      connection: string;
      broker: string;
      url: string;
      command: string;
      localPassword?: string;
      agent?: string;
    },
    token: string,
  ): void;
  /** The tunnel is closing: its state goes. */
  stopping(): void;
}

export function startDetachedChild(connection: string): DetachedChild {
  timestampLog();
  // No terminal to hang up, but a stray SIGHUP (a shell's job control) must not end it.
  process.on("SIGHUP", () => undefined);
  process.stderr.write(`starting tunnel ${connection} (pid ${process.pid})\n`);
  let timer: NodeJS.Timeout | undefined;
  let recorded = false;
  const cleanup = () => {
    if (timer) clearInterval(timer);
    timer = undefined;
    if (recorded) removeState(connection);
    recorded = false;
  };
  // However the process ends (an error, a signal handled elsewhere), its state goes with it.
  process.once("exit", cleanup);
  return {
    ready(tunnel, summary, token) {
      const address = tunnel.address;
      writeState({
        version: 1,
        connection,
        pid: process.pid,
        host: address.host,
        port: address.port,
        url: summary.url,
        command: summary.command,
        broker: summary.broker,
        identity: identityOfToken(token),
        agent: summary.agent ?? null,
        localPassword: summary.localPassword ?? null,
        startedAt: new Date().toISOString(),
        logFile: logPath(connection),
      });
      recorded = true;
      writeStatus(connection, tunnel.stats);
      timer = setInterval(() => {
        try {
          writeStatus(connection, tunnel.stats);
        } catch {
          // a full disk must not end the tunnel
        }
      }, STATUS_INTERVAL_MS);
      reportToParent(summary as unknown as Record<string, unknown>);
    },
    stopping() {
      process.stderr.write("stopping\n");
      cleanup();
    },
  };
}
