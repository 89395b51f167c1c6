import type { StoreConfig } from "../config/schema.js";
import { MemoryStore } from "./memory-store.js";
import { SqliteStore, type SqliteStoreOptions } from "./sqlite-store.js";
import type { SessionStore } from "./types.js";

/**
 * The store the broker config asks for. Throws a GwError with code `store_unavailable` (the
 * message names the path, the hint says what to do) when the SQLite file cannot be opened.
 */
export function openStore(cfg: StoreConfig, opts: SqliteStoreOptions = {}): SessionStore {
  if ("memory" in cfg) return new MemoryStore();
  return SqliteStore.open(cfg.sqlite, opts);
}
