import type { Command } from "commander";
import { ExitCode, GwError } from "../../errors.js";
import { Tunnel, type TunnelEvent } from "../../tunnel/tunnel.js";
import type { BrokerConnectionInfo } from "../../tunnel/broker-client.js";
import { pinBrokerSshKey, sshPinOptions, type PinnedKey } from "../ssh-host-pin.js";
import { firstFreePort, rememberPort, rememberedPort } from "../../tunnel/port-memory.js";
import { brokerClient, brokerPool, currentToken, type BrokerFlags } from "../context.js";
import { joinRepeated } from "../../tunnel/broker-urls.js";
import type { BrokerPool, BrokerPoolEvent } from "../../tunnel/broker-pool.js";
import { bold, dim, green, info, red, yellow } from "../output.js";
import { rememberConnections } from "../completion/cache.js";
import { localPasswordGate, newLocalPassword } from "../../tunnel/local-password.js";
import { isDetachedChild, spawnDetached } from "../../tunnel/detach/process.js";
import { runningTunnel, startDetachedChild } from "../../tunnel/detach/child.js";

type ConnectOptions = BrokerFlags & {
  port?: string;
  bind: string;
  json?: boolean;
  agent?: string;
  detach?: boolean;
  localPassword?: boolean;
  acceptNewHostKey?: boolean;
};

/** `gw connect --detach` in the foreground process: start the background one and report it. */
async function connectDetached(name: string, opts: ConnectOptions): Promise<void> {
  const json = opts.json === true;
  const running = runningTunnel(name);
  if (running) {
    // Idempotent, so MCP configs and scripts can say "make sure it runs".
    const { localPassword: _secret, ...shown } = running;
    if (json) printJsonLine({ ...shown, detached: true, alreadyRunning: true });
    else
      info(
        `${bold(name)} already runs in the background (pid ${running.pid}) on ${running.host}:${running.port}\n\n  ${running.command}\n\n${dim(`log: ${running.logFile} · stop it: gw disconnect ${name}`)}`,
      );
    return;
  }
  const started = await spawnDetached(
    name,
    process.argv.slice(2).filter((a) => a !== "--detach" && a !== "-d"),
  );
  const r = started.ready;
  if (json) return printJsonLine({ ...r, logFile: started.logFile, detached: true });
  const listen = r["listen"] as { host: string; port: number };
  info(`${bold(name)} via ${String(r["broker"])}`);
  info(`listening on ${listen.host}:${listen.port} in the background (pid ${started.pid})`);
  info("");
  info(`  ${String(r["command"])}`);
  info("");
  info(dim(`log: ${started.logFile}`));
  info(dim(`see it: gw ps · stop it: gw disconnect ${name}`));
}

/** The tunnel's description as one line of JSON (the process keeps running after it). */
function printJsonLine(value: unknown): void {
  process.stdout.write(JSON.stringify(value) + "\n");
}

/** Local wall-clock time, HH:MM:SS. */
function clockTime(ms: number): string {
  return new Date(ms).toTimeString().slice(0, 8);
}

const DEFAULT_BASE_PORT: Record<string, number> = { postgres: 5433, ssh: 2222, http: 8080 };

function parsePort(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    throw new GwError("port_invalid", `--port must be 0..65535, not ${v}`, {
      exitCode: ExitCode.usage,
    });
  }
  return n;
}

export function registerConnect(program: Command): void {
  program
    .command("connect")
    .description("Open a local port tunnelled through the broker to a connection")
    .argument("<name>", "connection name (see the broker's connections)")
    .option(
      "-p, --port <port>",
      "local port (default: remembered per connection; 0 = any free port)",
    )
    .option("--bind <address>", "local address to listen on", "127.0.0.1")
    .option(
      "--broker <url>",
      "broker URL (or GW_BROKER); a broker's replicas: repeat it, or separate URLs with commas",
      joinRepeated,
    )
    .option(
      "--ca-file <file>",
      "PEM file of a private CA that signed the broker's certificate (or GW_CA_FILE)",
    )
    .option("--json", "print one JSON object describing the tunnel, then keep running")
    .option(
      "--agent <name>",
      "label this tunnel's sessions as an AI agent's (e.g. the MCP server's name)",
    )
    .option(
      "-d, --detach",
      "run in the background (survives the terminal; see gw ps, stop with gw disconnect)",
    )
    .option(
      "--local-password",
      "local clients must give a random per-tunnel password (for shared machines)",
    )
    .option(
      "--accept-new-host-key",
      "ssh connections: accept a broker SSH host key that differs from the pinned one",
    )
    .addHelpText(
      "after",
      [
        "",
        "Examples:",
        "  gw connect db-prod",
        '  psql "postgresql://127.0.0.1:5433/app"',
        "  gw connect db-prod --port 0 --json",
        "  gw connect db-prod --detach                  # background; gw ps, gw disconnect db-prod",
        "  gw connect db-prod --agent claude --detach   # an MCP server's tunnel (gw mcp config)",
        "  gw connect db-prod --local-password          # other local users cannot ride the tunnel",
        "  gw connect prod-box                          # ssh: then ssh -p 2222 deploy@127.0.0.1",
        "  gw connect internal-api                      # http: then curl http://127.0.0.1:8080/",
        "  gw connect db-prod --broker https://gw-a --broker https://gw-b  # replicas: failover",
        "",
        "When the broker restarts or is briefly unreachable, each new local connection retries it",
        "with backoff (up to a minute) while the tunnel keeps listening.",
        "",
        "Several brokers (replicas: several --broker, URLs separated by commas in --broker or",
        "GW_BROKER, or one name with several addresses): each new local connection goes to one",
        "that is up, the last that worked first. One that refuses, fails (5xx) or does not connect",
        "within 1 s is skipped until it answers again, and the connection goes to the next at once.",
        "Connections open on a replica that goes down end with it.",
      ].join("\n"),
    )
    .action(async (name: string, opts: ConnectOptions) => {
      if (opts.detach && !isDetachedChild()) return connectDetached(name, opts);
      // A detached tunnel's output is its log: what a person at a terminal would see.
      const detached = isDetachedChild() ? startDetachedChild(name) : null;
      // Said whatever the output mode (stderr): a replica going away concerns the person.
      brokerPool(opts).onChange((e) => info(describePoolEvent(e)));
      const client = await brokerClient(opts);
      const connections = await client.connections();
      try {
        rememberConnections(
          client.url,
          connections.map((c) => c.name),
        );
      } catch {
        // the completion cache is a convenience
      }
      const conn = connections.find((c) => c.name === name);
      if (!conn) {
        const names = connections.map((c) => c.name).join(", ");
        throw new GwError(
          "connection_not_found",
          `no connection "${name}" that you may use on ${client.url}`,
          {
            exitCode: ExitCode.failure,
            hint: names
              ? `Yours: ${names}.`
              : "You may use no connections on this broker; ask its operators for access.",
          },
        );
      }
      const explicit = opts.port !== undefined;
      let port = explicit
        ? parsePort(opts.port!)
        : (rememberedPort(name) ??
          (await firstFreePort(opts.bind, DEFAULT_BASE_PORT[conn.type] ?? 15000)));
      const json = opts.json === true && detached === null;
      // Sign-in trouble is said once per failure streak, not at every retry.
      let refreshFailing = false;
      const onEvent = (e: TunnelEvent) => {
        // Sessions about to end (or ended) for the sign-in concern the person whatever the
        // output mode: stderr, with --json too (stdout keeps its one JSON line).
        if (e.type === "token_refresh_failed") {
          if (refreshFailing) return;
          refreshFailing = true;
          const why = e.error instanceof Error ? e.error.message : String(e.error);
          const when =
            e.expiresAt === null
              ? "when your current sign-in expires"
              : `at ${clockTime(e.expiresAt)}, when your current sign-in expires`;
          info(
            `${yellow("warning:")} could not refresh your sign-in (${why}); open sessions end ${when}. Run \`gw login\` to sign in again.`,
          );
          return;
        }
        if (e.type === "token_refreshed" && refreshFailing) {
          refreshFailing = false;
          info(`${green("sign-in refreshed:")} open sessions continue.`);
          return;
        }
        if (e.type === "sign_in_expired") {
          info(
            red(
              `[${clockTime(Date.now())}] connection #${e.id} ended: your sign-in expired. Run \`gw login\`, then reconnect.`,
            ),
          );
          return;
        }
        // A held statement: the person (or the agent's operator) waits on someone; say who.
        if (e.type === "statement_held") {
          info(
            `${yellow(`[${clockTime(Date.now())}] held:`)} connection #${e.id}: request ${e.request} waits for approval by ${e.approvers.join(", ")}` +
              `${e.expiresAt ? ` (until ${clockTime(e.expiresAt)})` : ""}\n    ${e.sql.replace(/\s+/g, " ")}`,
          );
          return;
        }
        if (e.type === "broker_unreachable") {
          info(
            `${yellow(`[${clockTime(Date.now())}] broker unreachable, retrying in ${Math.max(1, Math.round(e.retryInMs / 1000))}s`)} (connection #${e.id}, attempt ${e.attempt}): ${e.error.message}`,
          );
          return;
        }
        if (e.type === "statement_decided") {
          const text =
            e.outcome === "approved"
              ? green(`[${clockTime(Date.now())}] approved:`) +
                ` request ${e.request}; the statement runs`
              : red(`[${clockTime(Date.now())}] ${e.outcome}:`) +
                ` request ${e.request}${e.by ? ` by ${e.by}` : ""}${e.reason ? `: ${e.reason}` : ""}`;
          info(text);
          return;
        }
        if (json) return;
        if (e.type === "session")
          info(
            dim(
              `[${new Date().toLocaleTimeString()}] connection #${e.id} opened: session ${e.session}`,
            ),
          );
        else if (e.type === "stream_closed")
          info(
            dim(
              `[${new Date().toLocaleTimeString()}] connection #${e.id} closed (${e.bytesIn} B in, ${e.bytesOut} B out)`,
            ),
          );
        else if (e.type === "stream_refused")
          info(`${red("refused:")} connection #${e.id}: ${e.error.message}`);
      };
      if (opts.localPassword && conn.type !== "postgres")
        throw new GwError(
          "local_password_unsupported",
          `--local-password works for postgres connections; ${name} is ${conn.type}`,
          { exitCode: ExitCode.usage },
        );
      const localPassword = opts.localPassword ? newLocalPassword() : null;
      // Before listening: a changed broker host key must stop the tunnel, not the first ssh.
      const sshPin =
        conn.type === "ssh"
          ? await pinBrokerSshKey(client, { accept: opts.acceptNewHostKey === true })
          : null;
      const tunnel = await Tunnel.open({
        client,
        connection: conn,
        token: () => currentToken(opts),
        bind: opts.bind,
        port,
        onEvent,
        agentLabel: opts.agent,
        ...(localPassword
          ? {
              gate: localPasswordGate(localPassword, {
                onRefused: (why) =>
                  info(`${red(`[${clockTime(Date.now())}] refused a local client:`)} ${why}`),
              }),
            }
          : {}),
      });
      const requested = port;
      port = tunnel.address.port;
      // --port 0 asks for any free port this once: not a choice to remember.
      if (!explicit || requested !== 0) rememberPort(name, port);
      const host = tunnel.address.host.includes(":")
        ? `[${tunnel.address.host}]`
        : tunnel.address.host;
      const { url, command } = howToUse(conn, host, port, localPassword, sshPin);
      const summary = {
        connection: name,
        type: conn.type,
        broker: client.url,
        brokers: client.pool.status(),
        listen: { host: tunnel.address.host, port },
        url,
        command,
        pid: process.pid,
        ...(localPassword ? { localPassword } : {}),
        ...(opts.agent ? { agent: opts.agent } : {}),
        ...(sshPin ? { sshHostKey: { fingerprint: sshPin.fingerprint, alias: sshPin.alias } } : {}),
      };
      detached?.ready(tunnel, summary, await currentToken(opts));
      if (json) {
        // One line: a script reading a process that keeps running reads up to the newline.
        printJsonLine(summary);
      } else {
        info(`${bold(name)}${conn.description ? ` (${conn.description})` : ""} via ${client.url}`);
        if (client.pool.endpoints.length > 1) info(dim(replicasLine(client.pool)));
        info(`listening on ${host}:${port}`);
        info("");
        info(`  ${command}`);
        info("");
        if (sshPin)
          info(
            dim(
              `The broker's SSH host key is ${sshPin.fingerprint}${sshPin.firstSeen ? " (pinned now)" : " (pinned)"}; ` +
                `\`gw ssh-config ${name}\` prints a stanza for ~/.ssh/config.`,
            ),
          );
        info(
          dim(
            detached
              ? "Running in the background: gw disconnect to stop it."
              : "Press Ctrl-C to close the tunnel.",
          ),
        );
      }
      await new Promise<void>((resolve) => {
        process.once("SIGINT", resolve);
        process.once("SIGTERM", resolve);
      });
      detached?.stopping();
      await tunnel.close();
      if (!json) info("tunnel closed");
    });
}

/** The client command a person runs against the local port, by connection type. */
function howToUse(
  conn: BrokerConnectionInfo,
  host: string,
  port: number,
  localPassword: string | null,
  pin: PinnedKey | null,
): { url: string; command: string } {
  switch (conn.type) {
    case "postgres": {
      const credentials = localPassword ? `gw:${localPassword}@` : "";
      const url = `postgresql://${credentials}${host}:${port}/${encodeURIComponent(conn.database ?? "")}`;
      return { url, command: `psql "${url}"` };
    }
    case "ssh": {
      const user = conn.user ? `${conn.user}@` : "";
      const opts = pin
        ? sshPinOptions(pin)
            .filter((o) => o !== "-o")
            .map((o) => `-o ${o}`)
        : [];
      return {
        url: `ssh://${user}${host}:${port}`,
        command: ["ssh", "-p", String(port), ...opts, `${user}${host}`].join(" "),
      };
    }
    case "http": {
      const url = `http://${host}:${port}/`;
      return { url, command: `curl ${url}` };
    }
    case "tcp":
      return { url: `tcp://${host}:${port}`, command: `nc ${host} ${port}` };
  }
}

/** "broker https://a:8443 is unreachable (ECONNREFUSED); using https://b:8443", timestamped. */
function describePoolEvent(e: BrokerPoolEvent): string {
  const at = `[${clockTime(Date.now())}]`;
  if (e.type === "up") return `${green(`${at} broker ${e.endpoint.label} answers again`)}`;
  const then = e.next ? `using ${e.next.label}` : "no other broker is up; new connections retry";
  return `${yellow(`${at} broker ${e.endpoint.label} is unreachable (${e.reason});`)} ${then}`;
}

/** The replicas a tunnel may use, for the banner. */
function replicasLine(pool: BrokerPool): string {
  const list = pool.endpoints.map((e) => e.label).join(", ");
  return `brokers: ${list} (each new connection goes to one that is up)`;
}
