import { ExitCode, GwError } from "../errors.js";
import { normalizeBrokerUrl } from "./broker-client.js";

/**
 * The broker URLs a user gave: one, several separated by commas (`--broker a,b`, GW_BROKER),
 * or several flags (commander joins repeated `--broker` with commas, see joinRepeated). The
 * replicas of one broker: same identity settings, same store; any of them serves a tunnel.
 */
export function parseBrokerUrls(value: string | readonly string[]): string[] {
  const parts = (typeof value === "string" ? [value] : value)
    .flatMap((v) => v.split(","))
    .map((v) => v.trim())
    .filter((v) => v !== "");
  if (parts.length === 0) {
    throw new GwError("broker_url_invalid", "no broker URL given", {
      exitCode: ExitCode.usage,
      hint: "Use a URL such as https://gw.example.com; separate several with commas.",
    });
  }
  // The same replica given twice would only be tried twice when it is down.
  return [...new Set(parts.map(normalizeBrokerUrl))];
}

/** A commander option parser that keeps every repeated value, comma-separated. */
export function joinRepeated(value: string, previous: string | undefined): string {
  return previous === undefined ? value : `${previous},${value}`;
}
