import type { StoreConfig } from "../config/schema.js";
import { readSecret } from "../config/secrets.js";
import { MemoryStore } from "./memory-store.js";
import { PostgresStore, type PostgresStoreOptions } from "./postgres-store.js";
import { SqliteStore, type SqliteStoreOptions } from "./sqlite-store.js";
import { ThreadedStore, threadedStoreAvailable } from "./threaded-store.js";
import type { SessionStore } from "./types.js";

/**
 * Where a broker's SQLite store runs, measured (bench/audit.ts, npm run bench): with
 * audit: strict, every statement waits for an fsync, which on the relaying thread stalls every
 * session (358 µs of that thread per statement with one session, idle machine; 2,910 µs on a
 * loaded one) and on a worker does not (136 µs; 230 µs loaded). With only async connections, the messages to a worker cost more than the SQLite
 * work they move (pgbench -S -c 8 through gw: 3,900 TPS with the worker, 5,300 without).
 */
export function storeThreadFor(config: {
  connections: Record<string, unknown>;
}): "worker" | "same" {
  return Object.values(config.connections).some(
    (c) => (c as { audit?: unknown }).audit === "strict",
  )
    ? "worker"
    : "same";
}

export type OpenStoreOptions = SqliteStoreOptions &
  PostgresStoreOptions & {
    /**
     * SQLite: "same" thread as the sessions (the default), or a "worker" thread (where the
     * compiled worker exists). See storeThreadFor.
     */
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
  // Off the thread that relays sessions when asked, where it can be (a built gw).
  if (opts.thread === "worker" && cfg.sqlite !== ":memory:" && threadedStoreAvailable())
    return ThreadedStore.open(cfg.sqlite, {
      ...(opts.busyTimeoutMs !== undefined ? { busyTimeoutMs: opts.busyTimeoutMs } : {}),
      ...(opts.commitWindowMs !== undefined ? { commitWindowMs: opts.commitWindowMs } : {}),
    });
  return SqliteStore.open(cfg.sqlite, opts);
}
