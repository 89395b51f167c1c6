import type { Command } from "commander";
import { decodeJwt } from "jose";
import { ExitCode, GwError, isGwError } from "../../errors.js";
import { BrokerClient } from "../../tunnel/broker-client.js";
import { brokerUrl, caFile, tokenProvider, type BrokerFlags } from "../context.js";
import * as out from "../output.js";
import { printJson } from "../output.js";

// Colour only when stdout itself is a terminal: `gw whoami | grep` gets plain text.
const tty = () => process.stdout.isTTY === true;
const bold = (s: string) => (tty() ? out.bold(s) : s);
const dim = (s: string) => (tty() ? out.dim(s) : s);
const yellow = (s: string) => (tty() ? out.yellow(s) : s);
const green = (s: string) => (tty() ? out.green(s) : s);

/** Colours for text on stdout: only when stdout is a terminal. */
export function stdoutColors() {
  return { bold, dim, yellow, green };
}

/** Who the token says you are (decoded locally, not verified) and what the broker sees. */
export interface WhoamiInfo {
  name: string | null;
  upn: string | null;
  oid: string | null;
  tenant: string | null;
  type: "user" | "app";
  /** The client application the token was issued to. */
  appId: string | null;
  groups: string[];
  roles: string[];
  scopes: string[];
  /** ISO time the token expires, or null when it does not say. */
  expiresOn: string | null;
  /** Where the token came from: GW_TOKEN, gw login (...), AZURE_* environment variables. */
  source: string;
  broker: {
    url: string;
    /** The broker's GET /v1/whoami, when it could be asked. */
    identity?: Record<string, unknown>;
    auditor?: boolean;
    error?: { code: string; message: string };
  };
}

const str = (v: unknown): string | null => (typeof v === "string" && v !== "" ? v : null);
const strs = (v: unknown): string[] =>
  Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];

export async function describeToken(
  token: string,
  expiresOn: Date | null,
  source: string,
  broker: { url: string; caFile?: string | undefined },
): Promise<WhoamiInfo> {
  let claims: Record<string, unknown> = {};
  try {
    claims = decodeJwt(token);
  } catch {
    // not a JWT (an opaque token): the broker's view below is all there is
  }
  const exp = typeof claims["exp"] === "number" ? new Date(claims["exp"] * 1000) : expiresOn;
  const info: WhoamiInfo = {
    name: str(claims["name"]) ?? str(claims["app_displayname"]),
    upn: str(claims["preferred_username"]) ?? str(claims["upn"]),
    oid: str(claims["oid"]),
    tenant: str(claims["tid"]),
    type: claims["idtyp"] === "app" ? "app" : "user",
    appId: str(claims["azp"]) ?? str(claims["appid"]),
    groups: strs(claims["groups"]),
    roles: strs(claims["roles"]),
    scopes: str(claims["scp"])?.split(" ") ?? [],
    expiresOn: exp ? exp.toISOString() : null,
    source,
    broker: { url: broker.url },
  };
  try {
    const client = new BrokerClient({ url: broker.url, token, caFile: broker.caFile });
    info.broker.url = client.url;
    const seen = await client.whoami();
    const identity = seen["identity"];
    if (identity && typeof identity === "object")
      info.broker.identity = identity as Record<string, unknown>;
    if (typeof seen["auditor"] === "boolean") info.broker.auditor = seen["auditor"];
  } catch (err) {
    info.broker.error = isGwError(err)
      ? { code: err.code, message: err.message }
      : { code: "broker_unreachable", message: err instanceof Error ? err.message : String(err) };
  }
  return info;
}

function localTime(iso: string): string {
  const d = new Date(iso);
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}

function inMinutes(iso: string): string {
  const ms = Date.parse(iso) - Date.now();
  if (ms <= 0) return "expired";
  const m = Math.round(ms / 60_000);
  return m < 1 ? "in less than a minute" : m < 120 ? `in ${m} min` : `in ${Math.round(m / 60)} h`;
}

/** The human form of WhoamiInfo, one "label  value" per line. */
export function formatWhoami(info: WhoamiInfo): string {
  const who =
    info.type === "app"
      ? `${info.name ?? "service principal"} ${dim(`(app ${info.appId ?? info.oid ?? "?"})`)}`
      : `${info.name ?? info.upn ?? info.oid ?? "unknown user"}${info.upn && info.name ? ` (${info.upn})` : ""}`;
  const rows: [string, string][] = [
    ["type", info.type === "app" ? "app (service principal)" : "user"],
    ["object id", info.oid ?? "-"],
    ["tenant", info.tenant ?? "-"],
  ];
  if (info.type === "user")
    rows.push(["groups", info.groups.length ? info.groups.join(", ") : "-"]);
  rows.push(["roles", info.roles.length ? info.roles.join(", ") : "-"]);
  rows.push([
    "token",
    info.expiresOn
      ? `expires ${localTime(info.expiresOn)} (${inMinutes(info.expiresOn)}), from ${info.source}`
      : `from ${info.source}`,
  ]);
  const b = info.broker;
  if (b.identity) {
    const name = typeof b.identity["name"] === "string" ? b.identity["name"] : "?";
    const type = typeof b.identity["type"] === "string" ? b.identity["type"] : "?";
    rows.push(["broker", `${b.url} sees ${name} (${type})${b.auditor ? ", auditor" : ""}`]);
  } else {
    rows.push([
      "broker",
      `${b.url} ${yellow("not confirmed")}: ${b.error?.message ?? "no answer"}`,
    ]);
  }
  const width = Math.max(...rows.map(([k]) => k.length));
  return [bold(who), ...rows.map(([k, v]) => `  ${dim(k.padEnd(width))}  ${v}`)].join("\n");
}

export function registerWhoami(program: Command): void {
  program
    .command("whoami")
    .description("Show who you are signed in as, and what the broker sees")
    .option("--broker <url>", "broker URL (or GW_BROKER; default: the one of `gw login`)")
    .option("--ca-file <file>", "PEM file of a private CA (or GW_CA_FILE)")
    .option("--json", "print JSON")
    .addHelpText("after", "\nExamples:\n  gw whoami\n  gw whoami --json | jq .groups")
    .action(async (opts: BrokerFlags & { json?: boolean }) => {
      try {
        brokerUrl(opts);
      } catch (err) {
        // No broker anywhere, not even from a login: that is "not signed in" to the asker.
        if (isGwError(err) && err.code === "broker_unknown")
          throw new GwError("not_signed_in", "you are not signed in", {
            exitCode: ExitCode.auth,
            hint: "Run `gw login --broker https://gw.example.com`, or set GW_TOKEN and GW_BROKER.",
          });
        throw err;
      }
      const provider = tokenProvider(opts);
      const { token, expiresOn } = await provider.getToken();
      const info = await describeToken(token, expiresOn, provider.description, {
        url: brokerUrl(opts),
        caFile: caFile(opts),
      });
      if (opts.json) printJson(info);
      else process.stdout.write(formatWhoami(info) + "\n");
    });
}
