import type { Command } from "commander";
import { readStatus, runningTunnels } from "../../tunnel/detach/state.js";
import { dim, printJson } from "../output.js";

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

/** "14:03:22" today, "2025-01-06 14:03" before, and how long ago. */
function since(iso: string): string {
  const t = new Date(iso);
  const age = Math.max(0, Math.round((Date.now() - t.getTime()) / 1000));
  const ago =
    age < 60
      ? `${age}s`
      : age < 3600
        ? `${Math.floor(age / 60)}m`
        : age < 86400
          ? `${Math.floor(age / 3600)}h${String(Math.floor((age % 3600) / 60)).padStart(2, "0")}m`
          : `${Math.floor(age / 86400)}d`;
  const sameDay = t.toDateString() === new Date().toDateString();
  const when = sameDay
    ? t.toTimeString().slice(0, 8)
    : `${t.toISOString().slice(0, 10)} ${t.toTimeString().slice(0, 5)}`;
  return `${when} (${ago} ago)`;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows
    .map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  "))
    .join("\n");
}

export function registerPs(program: Command): void {
  program
    .command("ps")
    .description("List the tunnels running in the background (gw connect --detach)")
    .option("--json", "print JSON")
    .addHelpText(
      "after",
      [
        "",
        "Examples:",
        "  gw connect db-prod --detach && gw ps",
        "  gw ps --json | jq '.[] | {connection, port, bytesIn, bytesOut}'",
        "",
        "Traffic (bytes from local clients IN, to them OUT) is what each tunnel last wrote to its",
        "status file, every 2 seconds. Logs are in the config dir's logs/ (see the LOG column).",
      ].join("\n"),
    )
    .action((opts: { json?: boolean }) => {
      const tunnels = runningTunnels().map((t) => {
        const status = readStatus(t.connection);
        return {
          connection: t.connection,
          host: t.host,
          port: t.port,
          pid: t.pid,
          identity: t.identity,
          agent: t.agent,
          broker: t.broker,
          url: t.url,
          startedAt: t.startedAt,
          localPassword: t.localPassword !== null,
          logFile: t.logFile,
          bytesIn: status?.bytesIn ?? 0,
          bytesOut: status?.bytesOut ?? 0,
          streamsOpen: status?.streamsOpen ?? 0,
          streamsTotal: status?.streamsTotal ?? 0,
          statusAt: status?.updatedAt ?? null,
        };
      });
      if (opts.json) return printJson(tunnels);
      if (tunnels.length === 0) {
        process.stdout.write("no tunnels running in the background\n");
        process.stderr.write(dim("start one with: gw connect NAME --detach\n"));
        return;
      }
      const rows = [["NAME", "PORT", "PID", "IDENTITY", "SINCE", "TRAFFIC IN/OUT", "CONNS", "LOG"]];
      for (const t of tunnels) {
        rows.push([
          t.connection,
          `${t.host === "127.0.0.1" ? "" : `${t.host}:`}${t.port}`,
          String(t.pid),
          t.agent ? `${t.identity} (agent ${t.agent})` : t.identity,
          since(t.startedAt),
          `${bytes(t.bytesIn)} / ${bytes(t.bytesOut)}`,
          `${t.streamsOpen} open, ${t.streamsTotal} total`,
          t.logFile,
        ]);
      }
      process.stdout.write(table(rows) + "\n");
    });
}
