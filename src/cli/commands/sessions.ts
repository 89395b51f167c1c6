import type { Command } from "commander";
import type { SessionRecord, StatementEvent } from "../../store/types.js";
import { brokerClient, type BrokerFlags } from "../context.js";
import { dim, printJson } from "../output.js";

function fmtTime(ms: number): string {
  return new Date(ms).toISOString().replace("T", " ").slice(0, 19);
}

function fmtDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows
    .map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  "))
    .join("\n");
}

export function registerSessions(program: Command): void {
  program
    .command("sessions")
    .description("List recorded sessions (auditors see all, others their own), or show one")
    .argument("[id]", "a session id: show its statements")
    .option("--connection <name>", "only sessions of this connection")
    .option("-n, --limit <n>", "at most this many sessions", "50")
    .option("--broker <url>", "broker URL (or GW_BROKER)")
    .option("--ca-file <file>", "PEM file of a private CA (or GW_CA_FILE)")
    .option("--json", "print JSON")
    .addHelpText(
      "after",
      "\nExamples:\n  gw sessions\n  gw sessions --connection db-prod --json\n  gw sessions 3f2c9a1e-...",
    )
    .action(
      async (
        id: string | undefined,
        opts: BrokerFlags & { connection?: string; limit: string; json?: boolean },
      ) => {
        const client = await brokerClient(opts);
        if (id) {
          const { session, statements } = (await client.session(id)) as {
            session: SessionRecord;
            statements: StatementEvent[];
          };
          if (opts.json) return printJson({ session, statements });
          process.stdout.write(
            `session ${session.id}\n  ${session.identity.name} (${session.identity.type}) on ${session.connection}, ` +
              `${fmtTime(session.startedAt)}${session.endedAt ? ` for ${fmtDuration(session.endedAt - session.startedAt)}, ${session.endReason}` : ", live"}\n\n`,
          );
          for (const s of statements) {
            const outcome = s.errorCode ? `ERROR ${s.errorCode}` : (s.commandTag ?? "");
            process.stdout.write(
              `${dim(`#${s.seq} +${fmtDuration(s.at - session.startedAt)} ${s.durationMs.toFixed(1)}ms`)} ${outcome}\n  ${s.sql.replace(/\n/g, "\n  ")}\n`,
            );
          }
          return;
        }
        const res = await client.sessions({
          connection: opts.connection,
          limit: Number(opts.limit) || 50,
        });
        const sessions = res.sessions as SessionRecord[];
        if (opts.json) return printJson(res);
        if (sessions.length === 0) {
          process.stdout.write(`no sessions${res.scope === "own" ? " of yours" : ""} yet\n`);
          return;
        }
        const rows = [
          [
            "ID",
            "STARTED",
            "IDENTITY",
            "TYPE",
            "CONNECTION",
            "APPLICATION",
            "DURATION",
            "STMTS",
            "END",
          ],
        ];
        for (const s of sessions) {
          rows.push([
            s.id.slice(0, 8),
            fmtTime(s.startedAt),
            s.identity.name,
            s.identity.type,
            s.connection,
            s.applicationName ?? "",
            s.endedAt ? fmtDuration(s.endedAt - s.startedAt) : "live",
            String(s.statementCount),
            s.endReason ?? "",
          ]);
        }
        process.stdout.write(table(rows) + "\n");
      },
    );
}
