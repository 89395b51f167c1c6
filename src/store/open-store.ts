import type { StoreConfig } from "../config/schema.js";
import { readSecret } from "../config/secrets.js";
import { MemoryStore } from "./memory-store.js";
import { PostgresStore, type PostgresStoreOptions } from "./postgres-store.js";
import { SqliteStore, type SqliteStoreOptions } from "./sqlite-store.js";
import { ThreadedStore, threadedStoreAvailable } from "./threaded-store.js";
import type { SessionStore } from "./types.js";

export type OpenStoreOptions = SqliteStoreOptions &
  PostgresStoreOptions & {
    /** SQLite: "worker" (the default where the compiled worker exists) or "same" thread. */
    thread?: "worker" | "same";
  };

/**
 * The store the broker config asks for, ready to use (a PostgreSQL store connected and
 * migrated). Rejects with a GwError `store_unavailable` naming the file, or the PostgreSQL host
 * and database (never the password), with a hint saying what to do; `secret_missing` /
 * `secret_unreadable` when store.postgres names a secret that is not there.
 */
export async function openStore(
  cfg: StoreConfig,
  opts: OpenStoreOptions = {},
): Promise<SessionStore> {
  if ("memory" in cfg) return new MemoryStore();
  if ("postgres" in cfg) {
    const url =
      typeof cfg.postgres === "string" ? cfg.postgres : readSecret(cfg.postgres, "store.postgres");
    return PostgresStore.open(url, opts);
  }
  // Off the thread that relays sessions, where it can be (a built gw; not tests on src/).
  if (opts.thread !== "same" && cfg.sqlite !== ":memory:" && threadedStoreAvailable())
    return ThreadedStore.open(cfg.sqlite, {
      ...(opts.busyTimeoutMs !== undefined ? { busyTimeoutMs: opts.busyTimeoutMs } : {}),
      ...(opts.commitWindowMs !== undefined ? { commitWindowMs: opts.commitWindowMs } : {}),
    });
  return SqliteStore.open(cfg.sqlite, opts);
}
