/**
 * Detached tunnels (`gw connect NAME --detach`): what `gw ps` and `gw disconnect` know of them.
 *
 * Per connection, in the config dir:
 *   tunnels/NAME.json         the tunnel: pid, address, broker, identity, log file (written once
 *                             it listens; removed when it exits)
 *   tunnels/NAME.status.json  its traffic, rewritten every few seconds while it runs
 *   logs/NAME.log             everything it says (appended across runs)
 *
 * Files are 0600 in 0700 dirs: a state file may hold the tunnel's local password.
 */
import {
  chmodSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { configDir } from "../../config/paths.js";
import type { TunnelStats } from "../tunnel.js";

export interface DetachedTunnelState {
  version: 1;
  connection: string;
  pid: number;
  host: string;
  port: number;
  url: string;
  command: string;
  broker: string;
  /** Who the tunnel's connections run as (the token's user name, or app:<id>). */
  identity: string;
  agent: string | null;
  /** The local password clients must give, when the tunnel has one. */
  localPassword: string | null;
  /** ISO time. */
  startedAt: string;
  logFile: string;
}

export interface TunnelStatus extends TunnelStats {
  /** ISO time of this snapshot. */
  updatedAt: string;
}

export function tunnelsDir(): string {
  return join(configDir(), "tunnels");
}

export function logsDir(): string {
  return join(configDir(), "logs");
}

/** File names are connection names (letters, digits, . _ -), with anything else escaped. */
function fileSafe(name: string): string {
  return name.replace(
    /[^A-Za-z0-9._-]/g,
    (c) => `%${c.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );
}

export function statePath(connection: string): string {
  return join(tunnelsDir(), `${fileSafe(connection)}.json`);
}

export function statusPath(connection: string): string {
  return join(tunnelsDir(), `${fileSafe(connection)}.status.json`);
}

export function logPath(connection: string): string {
  return join(logsDir(), `${fileSafe(connection)}.log`);
}

function ensureDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
}

function writeAtomically(path: string, value: unknown): void {
  const tmp = `${path}.${randomBytes(4).toString("hex")}.tmp`;
  writeFileSync(tmp, JSON.stringify(value, null, 2) + "\n", { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

export function ensureLogDir(): void {
  ensureDir(logsDir());
}

export function writeState(state: DetachedTunnelState): void {
  ensureDir(tunnelsDir());
  writeAtomically(statePath(state.connection), state);
}

export function writeStatus(connection: string, stats: TunnelStats): void {
  ensureDir(tunnelsDir());
  const status: TunnelStatus = { ...stats, updatedAt: new Date().toISOString() };
  writeAtomically(statusPath(connection), status);
}

export function readStatus(connection: string): TunnelStatus | null {
  try {
    return JSON.parse(readFileSync(statusPath(connection), "utf8")) as TunnelStatus;
  } catch {
    return null;
  }
}

/** Removes a tunnel's state and status files (its log stays). */
export function removeState(connection: string): void {
  rmSync(statePath(connection), { force: true });
  rmSync(statusPath(connection), { force: true });
}

function readStateFile(path: string): DetachedTunnelState | null {
  try {
    const v = JSON.parse(readFileSync(path, "utf8")) as DetachedTunnelState;
    return v && v.version === 1 && typeof v.pid === "number" && typeof v.connection === "string"
      ? v
      : null;
  } catch {
    return null;
  }
}

/**
 * Whether `pid` is alive and still a gw tunnel (pids are reused: on Linux the command line
 * must still say `connect`).
 */
export function isTunnelProcess(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    return cmdline.includes("connect");
  } catch {
    return true; // no /proc (macOS): the signal probe is all there is
  }
}

/** The detached tunnel of `connection` if it is running; a stale state is removed. */
export function runningTunnel(connection: string): DetachedTunnelState | null {
  const s = readStateFile(statePath(connection));
  if (!s) return null;
  if (isTunnelProcess(s.pid)) return s;
  removeState(connection);
  return null;
}

/** Every running detached tunnel, by connection name; stale states are removed. */
export function runningTunnels(): DetachedTunnelState[] {
  let names: string[];
  try {
    names = readdirSync(tunnelsDir());
  } catch {
    return [];
  }
  const out: DetachedTunnelState[] = [];
  for (const f of names) {
    if (!f.endsWith(".json") || f.endsWith(".status.json")) continue;
    const s = readStateFile(join(tunnelsDir(), f));
    if (!s) continue;
    if (isTunnelProcess(s.pid)) out.push(s);
    else removeState(s.connection);
  }
  return out.sort((a, b) => a.connection.localeCompare(b.connection));
}

/** `preferred_username`, else `name`, else app:<appid> of a token (unverified; for display). */
export function identityOfToken(token: string): string {
  try {
    const claims = JSON.parse(
      Buffer.from(token.split(".")[1] ?? "", "base64url").toString("utf8"),
    ) as Record<string, unknown>;
    if (claims["idtyp"] === "app")
      return `app:${String(claims["azp"] ?? claims["appid"] ?? claims["oid"] ?? "?")}`;
    return String(
      claims["preferred_username"] ?? claims["upn"] ?? claims["name"] ?? claims["oid"] ?? "?",
    );
  } catch {
    return "?";
  }
}
