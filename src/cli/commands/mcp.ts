import {
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  writeFileSync,
  copyFileSync,
} from "node:fs";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { randomBytes } from "node:crypto";
import type { Command } from "commander";
import { Option } from "commander";
import { ExitCode, GwError } from "../../errors.js";
import { runningTunnel } from "../../tunnel/detach/state.js";
import { firstFreePort, rememberedPort, rememberPort } from "../../tunnel/port-memory.js";
import { brokerClient, type BrokerFlags } from "../context.js";
import { rememberConnections } from "../completion/cache.js";
import { dim, info } from "../output.js";

export const MCP_CLIENTS = ["claude", "cursor", "vscode"] as const;
export type McpClient = (typeof MCP_CLIENTS)[number];

/** The MCP server gw points at the tunnel: the reference PostgreSQL server (read-only queries). */
export const MCP_SERVER_PACKAGE = "@modelcontextprotocol/server-postgres";

interface McpOptions extends BrokerFlags {
  client: McpClient;
  write?: boolean;
  file?: string;
  name?: string;
  agent?: string;
  port?: string;
  database?: string;
  env: string[];
  json?: boolean;
}

/** Where each client keeps its MCP servers, and under which key. */
export function clientConfigFile(client: McpClient, cwd = process.cwd()): string {
  const home = homedir();
  if (client === "cursor") return join(home, ".cursor", "mcp.json");
  if (client === "vscode") return join(cwd, ".vscode", "mcp.json");
  if (process.platform === "darwin")
    return join(home, "Library", "Application Support", "Claude", "claude_desktop_config.json");
  if (process.platform === "win32")
    return join(
      process.env["APPDATA"] ?? join(home, "AppData", "Roaming"),
      "Claude",
      "claude_desktop_config.json",
    );
  return join(
    process.env["XDG_CONFIG_HOME"] || join(home, ".config"),
    "Claude",
    "claude_desktop_config.json",
  );
}

const serversKey = (client: McpClient) => (client === "vscode" ? "servers" : "mcpServers");

const shq = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

/** The environment the MCP host must pass on so `gw connect` finds the same sign-in and broker. */
function inheritedEnv(extra: string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const k of ["GW_CONFIG_DIR", "GW_BROKER", "GW_CA_FILE", "GW_TOKEN_STORE"]) {
    const v = process.env[k];
    if (v) env[k] = k === "GW_CONFIG_DIR" || k === "GW_CA_FILE" ? resolve(v) : v;
  }
  // MCP hosts start servers with a minimal PATH: make node (for npx) findable.
  env["PATH"] = [dirname(process.execPath), "/usr/local/bin", "/usr/bin", "/bin"]
    .filter((d, i, a) => a.indexOf(d) === i)
    .join(":");
  for (const kv of extra) {
    const eq = kv.indexOf("=");
    if (eq <= 0)
      throw new GwError("usage", `--env takes NAME=VALUE, not ${kv}`, { exitCode: ExitCode.usage });
    env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return env;
}

export interface McpServerEntry {
  type?: "stdio";
  command: string;
  args: string[];
  env: Record<string, string>;
}

/**
 * The server entry: a shell that makes sure the tunnel runs in the background (labelled as the
 * agent's traffic; `gw connect --detach` is a no-op when it already runs), then becomes the
 * PostgreSQL MCP server pointed at it. gw's own output goes to stderr: stdout is the MCP channel.
 */
export function mcpServerEntry(o: {
  client: McpClient;
  connection: string;
  agent: string;
  port: number;
  url: string;
  env: Record<string, string>;
}): McpServerEntry {
  const gw = [process.execPath, process.argv[1] ?? "gw"].map(shq).join(" ");
  const script =
    `${gw} connect ${shq(o.connection)} --agent ${shq(o.agent)} --port ${o.port} --detach >&2 && ` +
    `exec npx -y ${MCP_SERVER_PACKAGE} ${shq(o.url)}`;
  return {
    ...(o.client === "vscode" ? { type: "stdio" as const } : {}),
    command: "/bin/sh",
    args: ["-c", script],
    env: o.env,
  };
}

function parsePort(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535)
    throw new GwError("port_invalid", `--port must be 1..65535, not ${v}`, {
      exitCode: ExitCode.usage,
    });
  return n;
}

/** Merges `entry` into the client's config file (creating it), keeping everything else. */
export function writeClientConfig(
  file: string,
  client: McpClient,
  name: string,
  entry: McpServerEntry,
): { created: boolean; replaced: boolean; backup: string | null } {
  let doc: Record<string, unknown> = {};
  const exists = existsSync(file);
  if (exists) {
    const text = readFileSync(file, "utf8");
    try {
      doc = text.trim() === "" ? {} : (JSON.parse(text) as Record<string, unknown>);
    } catch {
      throw new GwError("mcp_config_invalid", `${file} is not valid JSON; not touching it`, {
        exitCode: ExitCode.config,
        hint: "Fix it (comments are not JSON), or print the entry without --write and paste it in.",
      });
    }
    if (typeof doc !== "object" || doc === null || Array.isArray(doc))
      throw new GwError("mcp_config_invalid", `${file} does not hold a JSON object`, {
        exitCode: ExitCode.config,
      });
  }
  const key = serversKey(client);
  const servers = (doc[key] ?? {}) as Record<string, unknown>;
  const replaced = name in servers;
  doc[key] = { ...servers, [name]: entry };
  mkdirSync(dirname(file), { recursive: true });
  let backup: string | null = null;
  if (exists) {
    backup = `${file}.gw-backup`;
    copyFileSync(file, backup);
  }
  const tmp = `${file}.${randomBytes(4).toString("hex")}.tmp`;
  writeFileSync(tmp, JSON.stringify(doc, null, 2) + "\n", { mode: 0o600 });
  renameSync(tmp, file);
  return { created: !exists, replaced, backup };
}

export function registerMcp(program: Command): void {
  const mcp = program
    .command("mcp")
    .description("Point AI agents' MCP servers at a gw tunnel")
    .addHelpText(
      "after",
      "\nExamples:\n  gw mcp config db-prod\n  gw mcp config db-prod --client cursor --write\n\nGuide: docs/mcp.md",
    );
  mcp
    .command("config")
    .description(
      "Print (or --write into the client's config) an MCP server entry that uses this connection through a tunnel labelled as agent traffic",
    )
    .argument("<name>", "connection name")
    .addOption(
      new Option("--client <client>", "the MCP client whose config format to use")
        .choices(MCP_CLIENTS)
        .default("claude"),
    )
    .option("--write", "merge the entry into the client's config file (a backup is kept)")
    .option("--file <path>", "the config file to print for / write to (default: the client's)")
    .option("--name <server>", "the MCP server's name in the config (default: gw-<name>)")
    .option("--agent <label>", "the agent label of the tunnel's sessions (default: the client)")
    .option("-p, --port <port>", "the tunnel's local port (default: the remembered one)")
    .option("--database <db>", "the database name (default: asked from the broker)")
    .option(
      "--env <NAME=VALUE>",
      "an environment variable for the server, e.g. AZURE_CLIENT_ID=... (repeatable)",
      (v: string, prev: string[]) => [...prev, v],
      [] as string[],
    )
    .option("--broker <url>", "broker URL (or GW_BROKER)")
    .option("--ca-file <file>", "PEM file of a private CA (or GW_CA_FILE)")
    .option("--json", "print the entry alone, as JSON")
    .addHelpText(
      "after",
      [
        "",
        "Examples:",
        "  gw mcp config db-prod                           # print the Claude Desktop entry",
        "  gw mcp config db-prod --client cursor --write   # merge it into ~/.cursor/mcp.json",
        "  gw mcp config db-prod --client vscode --write   # .vscode/mcp.json of this workspace",
        "  gw mcp config db-prod --env AZURE_TENANT_ID=$T --env AZURE_CLIENT_ID=$C \\",
        "      --env AZURE_CLIENT_SECRET=$S --env GW_CONFIG_DIR=$HOME/.config/gw-agent",
        "",
        `The entry runs \`gw connect NAME --agent LABEL --port PORT --detach\` (a no-op when that`,
        `tunnel already runs), then \`npx -y ${MCP_SERVER_PACKAGE}\` on the tunnel's URL. Every`,
        "statement the agent sends is checked, masked and recorded as the agent's. Guide: docs/mcp.md",
      ].join("\n"),
    )
    .action(async (connection: string, opts: McpOptions) => {
      const client = opts.client;
      const agent = opts.agent ?? client;
      const running = runningTunnel(connection);
      let port: number;
      let url: string;
      if (running && opts.port === undefined) {
        port = running.port;
        url = running.url;
      } else {
        port =
          opts.port !== undefined
            ? parsePort(opts.port)
            : (rememberedPort(connection) ?? (await firstFreePort("127.0.0.1", 5433)));
        let database = opts.database;
        if (database === undefined) {
          const bc = await brokerClient(opts);
          const list = await bc.connections();
          try {
            rememberConnections(
              bc.url,
              list.map((c) => c.name),
            );
          } catch {
            // the completion cache is a convenience
          }
          const conn = list.find((c) => c.name === connection);
          if (!conn)
            throw new GwError(
              "connection_not_found",
              `no connection "${connection}" that you may use on ${bc.url}`,
              {
                exitCode: ExitCode.failure,
                hint: list.length
                  ? `Yours: ${list.map((c) => c.name).join(", ")}.`
                  : "Ask the broker's operators for access.",
              },
            );
          if (conn.type !== "postgres" || conn.database === null)
            throw new GwError(
              "connection_not_postgres",
              `${connection} is a ${conn.type} connection; MCP Postgres servers need a postgres one`,
              { exitCode: ExitCode.usage },
            );
          database = conn.database;
        }
        // The entry names this port: remember it, so `gw connect` uses it too.
        if (opts.port !== undefined || rememberedPort(connection) === undefined)
          rememberPort(connection, port);
        url = `postgresql://127.0.0.1:${port}/${encodeURIComponent(database)}`;
      }
      const serverName = opts.name ?? `gw-${connection}`;
      const entry = mcpServerEntry({
        client,
        connection,
        agent,
        port,
        url,
        env: inheritedEnv(opts.env),
      });
      const file = opts.file ? resolve(opts.file) : clientConfigFile(client);
      if (opts.write) {
        const r = writeClientConfig(file, client, serverName, entry);
        if (opts.json) {
          process.stdout.write(
            JSON.stringify({ file, server: serverName, entry, ...r }, null, 2) + "\n",
          );
          return;
        }
        info(
          `${r.replaced ? "updated" : "added"} MCP server ${serverName} in ${file}${r.created ? " (new file)" : ""}`,
        );
        if (r.backup) info(dim(`previous version: ${r.backup}`));
        info(
          `Restart ${client === "claude" ? "Claude Desktop" : client === "cursor" ? "Cursor" : "VS Code"}; its ${serverName} server opens the tunnel on 127.0.0.1:${port} as agent "${agent}".`,
        );
        return;
      }
      if (opts.json) {
        process.stdout.write(JSON.stringify(entry, null, 2) + "\n");
        return;
      }
      process.stdout.write(
        JSON.stringify({ [serversKey(client)]: { [serverName]: entry } }, null, 2) + "\n",
      );
      info(dim(`\nAdd this to ${file}, or run the same command with --write.`));
      info(
        dim(
          `The server opens the tunnel itself; to run it yourself: gw connect ${connection} --agent ${agent} --port ${port} --detach`,
        ),
      );
    });
}
