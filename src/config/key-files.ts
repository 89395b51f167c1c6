import { dirname, join } from "node:path";
import type { BrokerConfig } from "./schema.js";

/**
 * Where a broker keeps a key it makes on first start: the configured file, else `name` beside
 * the SQLite store (which one broker owns); null where there is no such place (a memory or
 * shared PostgreSQL store), so the caller decides between a throwaway key and an error.
 */
export function brokerKeyFile(
  config: BrokerConfig,
  configured: { file: string } | undefined,
  name: string,
): string | null {
  if (configured) return configured.file;
  if ("sqlite" in config.store && config.store.sqlite !== ":memory:")
    return join(dirname(config.store.sqlite), name);
  return null;
}
