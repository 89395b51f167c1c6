/**
 * The connection names shell completion offers for `gw connect <TAB>`: a small cache in the
 * config dir, written whenever a command fetches the list from the broker (`gw connect`,
 * `gw demo`, `gw mcp config`, `gw __complete connections`), so completing never waits for the
 * network when it has an answer at hand.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { configDir } from "../../config/paths.js";
import { normalizeBrokerUrl } from "../../tunnel/broker-client.js";

export interface ConnectionsCache {
  broker: string;
  names: string[];
  /** Epoch ms. */
  fetchedAt: number;
}

export function connectionsCachePath(): string {
  return join(configDir(), "cache", "connections.json");
}

export function rememberConnections(broker: string, names: string[]): void {
  const path = connectionsCachePath();
  mkdirSync(join(configDir(), "cache"), { recursive: true, mode: 0o700 });
  const value: ConnectionsCache = {
    broker: normalizeBrokerUrl(broker),
    names: [...new Set(names)].sort(),
    fetchedAt: Date.now(),
  };
  const tmp = `${path}.${randomBytes(4).toString("hex")}.tmp`;
  writeFileSync(tmp, JSON.stringify(value) + "\n", { mode: 0o600 });
  renameSync(tmp, path);
}

/** The cached list for `broker` (any broker when omitted), or null. */
export function cachedConnections(broker?: string): ConnectionsCache | null {
  try {
    const v = JSON.parse(readFileSync(connectionsCachePath(), "utf8")) as ConnectionsCache;
    if (!Array.isArray(v.names) || typeof v.broker !== "string") return null;
    if (broker !== undefined && normalizeBrokerUrl(broker) !== v.broker) return null;
    return v;
  } catch {
    return null;
  }
}
