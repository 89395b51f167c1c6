import { homedir } from "node:os";
import { join } from "node:path";

/**
 * Where the CLI keeps its state (remembered ports, sign-in state, the token cache fallback):
 * GW_CONFIG_DIR, else $XDG_CONFIG_HOME/gw, else ~/.config/gw.
 */
export function configDir(): string {
  const explicit = process.env["GW_CONFIG_DIR"];
  if (explicit) return explicit;
  const xdg = process.env["XDG_CONFIG_HOME"];
  return join(xdg && xdg.length > 0 ? xdg : join(homedir(), ".config"), "gw");
}
