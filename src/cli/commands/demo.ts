import type { Command } from "commander";
import { ExitCode, GwError } from "../../errors.js";
import type { TunnelEvent } from "../../tunnel/tunnel.js";
import { bold, dim, green, info, red, yellow } from "../output.js";
import { rememberConnections } from "../completion/cache.js";

function parsePort(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    throw new GwError("port_invalid", `--port must be 0..65535, not ${v}`, {
      exitCode: ExitCode.usage,
    });
  }
  return n;
}

const clock = () => new Date().toTimeString().slice(0, 8);

/** What happens on the demo tunnel, one line each (the tour says what to look for). */
function describeEvent(e: TunnelEvent): string | null {
  switch (e.type) {
    case "session":
      return dim(`[${clock()}] connection #${e.id} opened: session ${e.session}`);
    case "stream_closed":
      return dim(
        `[${clock()}] connection #${e.id} closed (${e.bytesIn} B in, ${e.bytesOut} B out)`,
      );
    case "stream_refused":
      return `${red(`[${clock()}] refused:`)} connection #${e.id}: ${e.error.message}`;
    case "statement_held":
      return (
        `${yellow(`[${clock()}] held:`)} connection #${e.id}: request ${e.request} waits for approval by ${e.approvers.join(", ")}\n` +
        `    ${e.sql.replace(/\s+/g, " ")}\n` +
        `    approve it as Alex Approver: see step 3 above`
      );
    case "statement_decided":
      return e.outcome === "approved"
        ? `${green(`[${clock()}] approved:`)} request ${e.request}${e.by ? ` by ${e.by}` : ""}; the statement runs`
        : `${red(`[${clock()}] ${e.outcome}:`)} request ${e.request}${e.by ? ` by ${e.by}` : ""}${e.reason ? `: ${e.reason}` : ""}`;
    case "broker_unreachable":
      return `${yellow(`[${clock()}] broker unreachable, retrying in ${Math.round(e.retryInMs / 1000)}s`)} (connection #${e.id})`;
    default:
      return null;
  }
}

export function registerDemo(program: Command): void {
  program
    .command("demo")
    .description(
      "Run everything on this machine: an identity server, a broker and a database full of fake PII, signed in, with a tunnel open and a guided tour",
    )
    .option("--json", "print one JSON line with the endpoints (for scripts), then keep running")
    .option("-p, --port <port>", "local port of the tunnel (default: the first free from 5433)")
    .option(
      "--embedded",
      "use the embedded PostgreSQL (PGlite, in-process) even when a PostgreSQL server is installed",
    )
    .addHelpText(
      "after",
      [
        "",
        "Examples:",
        "  gw demo                  # then follow the tour it prints; Ctrl-C removes everything",
        "  gw demo --json           # {broker, caFile, tunnel, psqlUrl, approverTokenFile, configDir, ...}",
        "  gw demo --port 15432",
        "",
        "  gw demo --embedded       # the embedded PostgreSQL (PGlite) instead of a real server",
        "",
        "Needs Node.js 20+, nothing else. With a PostgreSQL server installed (initdb, pg_ctl) the demo",
        "database is a real one; otherwise it is PGlite (PostgreSQL in WebAssembly, in-process).",
        "The identity server is a LOCAL TEST server that signs anyone in: demos and tests only.",
      ].join("\n"),
    )
    .action(async (opts: { json?: boolean; port?: string; embedded?: boolean }) => {
      const json = opts.json === true;
      const port = opts.port === undefined ? undefined : parsePort(opts.port);
      const controller = new AbortController();
      let stopRequested: (() => void) | undefined;
      const stopped = new Promise<void>((resolve) => (stopRequested = resolve));
      const onSignal = () => {
        controller.abort();
        stopRequested?.();
      };
      process.on("SIGINT", onSignal);
      process.on("SIGTERM", onSignal);
      process.on("SIGHUP", onSignal);
      const { startDemo } = await import("../../demo/demo.js");
      let demo;
      try {
        demo = await startDemo({
          ...(port === undefined ? {} : { port }),
          ...(opts.embedded ? { embedded: true } : {}),
          signal: controller.signal,
          progress: {
            step: (t) => {
              if (!json) info(dim(`${t}...`));
            },
            banner: (t) => info(`\n${yellow(t)}\n`),
            deviceCode: (uri, code) => {
              if (!json)
                info(
                  `  To sign in, open  ${bold(uri)}  and enter the code  ${bold(code)}\n` +
                    dim("  (the demo identity server approves it for Erin Engineer by itself)"),
                );
            },
            event: (e) => {
              const line = describeEvent(e);
              if (line !== null) info(line);
            },
          },
        });
      } catch (err) {
        process.off("SIGINT", onSignal);
        process.off("SIGTERM", onSignal);
        process.off("SIGHUP", onSignal);
        if (err instanceof GwError && err.code === "demo_cancelled") {
          info("demo stopped");
          process.exitCode = 130;
          return;
        }
        throw err;
      }
      const d = demo.info;
      try {
        rememberConnections(
          d.broker,
          d.connections.map((c) => c.name),
        );
      } catch {
        // the completion cache is a convenience
      }
      if (json) {
        process.stdout.write(
          JSON.stringify({
            broker: d.broker,
            caFile: d.caFile,
            identityServer: d.identityServer,
            connection: d.connection,
            database: d.database,
            tunnel: d.tunnel,
            psqlUrl: d.psqlUrl,
            approverTokenFile: d.approverTokenFile,
            envFile: d.envFile,
            agentEnvFile: d.agentEnvFile,
            configDir: d.configDir,
            dir: d.dir,
            brokerLog: d.brokerLog,
            postgres: d.postgres,
            pid: d.pid,
          }) + "\n",
        );
      } else {
        info(tour(d));
      }
      await stopped;
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      process.off("SIGHUP", onSignal);
      if (!json) info(dim("\nstopping the demo..."));
      await demo.stop();
      if (!json) info(`demo stopped; ${d.dir} removed`);
    });
}

/** The guided tour: what to type, and what it shows. */
function tour(d: import("../../demo/demo.js").DemoInfo): string {
  const psql = `psql "${d.psqlUrl}"`;
  const approverEnv = `GW_BROKER=${d.broker} GW_CA_FILE=${d.caFile}`;
  const lines = [
    "",
    `${green("gw demo is running.")} Everything is on this machine and in ${d.dir}.`,
    "",
    `  identity server  ${d.identityServer}  ${dim("(local test server: signs anyone in)")}`,
    `  database         ${d.postgres.kind === "pglite" ? "embedded PostgreSQL (PGlite)" : "PostgreSQL"} ${d.postgres.version} on 127.0.0.1:${d.postgres.port}, a shop with fake customers' PII`,
    `  broker           ${d.broker}  ${dim(`(policy "demo"; log: ${d.brokerLog})`)}`,
    `  you              ${d.engineer.name} <${d.engineer.username}>, signed in by device code`,
    `  tunnel           ${bold(d.connection)} on ${d.tunnel.host}:${d.tunnel.port}`,
    "",
    bold("Try it, in another terminal:"),
    "",
    `${bold("1. Masking")}: personal data leaves the broker redacted, by column and by detector`,
    `   ${psql} -c "SELECT id, full_name, email, phone, card_number FROM customers LIMIT 5"`,
    `   ${psql} -c "SELECT id, note FROM orders WHERE note IS NOT NULL LIMIT 5"`,
    "",
    `${bold("2. Blocking")}: DROP and TRUNCATE never reach the database`,
    `   ${psql} -c "DROP TABLE orders"`,
    "",
    `${bold("3. Approval")}: a DELETE without WHERE waits for a person (psql hangs until then)`,
    `   ${psql} -c "DELETE FROM orders"`,
    `   then, as ${d.approver.name}, in a third terminal:`,
    `   ${approverEnv} GW_TOKEN=$(cat ${d.approverTokenFile}) gw approve`,
    dim("   (a full-screen queue; in a script: ... gw approvals approve <request id>)"),
    "",
    `${bold("4. The record")}: every session and statement, with who ran it`,
    `   source ${d.envFile}      ${dim(`# gw now talks to the demo broker as ${d.engineer.name}`)}`,
    "   gw sessions",
    "   gw replay <session-id>",
    "",
    `${bold("5. Agents")}: the same database as the MCP agent service principal (its writes are held)`,
    `   (source ${d.agentEnvFile}; gw connect ${d.connection} --agent claude --port 0)`,
    `   gw mcp config ${d.connection} --client claude   ${dim("# after `source " + d.envFile + "`")}`,
    "",
    dim("Press Ctrl-C to stop the demo; it removes everything it made."),
  ];
  return lines.join("\n");
}
