import Conf from "conf";
import { createServer } from "node:net";
import { configDir } from "../config/paths.js";

/**
 * Remembers the local port each connection was given, so configs and MCP servers pointing at
 * it keep working across `gw connect` runs.
 */
interface PortStore {
  ports: Record<string, number>;
}

function store(): Conf<PortStore> {
  return new Conf<PortStore>({
    projectName: "gw",
    configName: "ports",
    defaults: { ports: {} },
    cwd: configDir(),
  });
}

export function rememberedPort(connection: string): number | undefined {
  return store().get("ports")[connection];
}

export function rememberPort(connection: string, port: number): void {
  const s = store();
  s.set("ports", { ...s.get("ports"), [connection]: port });
}

function isFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once("error", () => resolve(false));
    srv.listen({ host, port, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/** First use of a connection: the first free port from the protocol's customary base. */
export async function firstFreePort(host: string, base: number): Promise<number> {
  const taken = new Set(Object.values(store().get("ports")));
  for (let p = base; p < base + 200; p++) {
    if (!taken.has(p) && (await isFree(host, p))) return p;
  }
  return 0;
}
