import type { Command } from "commander";
import { buildReplay, decisionLabel } from "../../audit/replay.js";
import { parseTimeFilter } from "../../audit/source.js";
import { fmtMs, fmtOffset } from "../../audit/transcript.js";
import type { SessionRecord } from "../../store/types.js";
import { dim, printJson } from "../output.js";
import { openAuditSource, type SourceFlags } from "./audit.js";

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

/** "12", or "12 (1 blocked, 2 approved)" when policy did more than allow. */
function statementsCell(s: SessionRecord): string {
  const d = s.decisions;
  if (!d) return String(s.statementCount);
  const extra = (["blocked", "approved", "denied"] as const)
    .filter((k) => d[k] > 0)
    .map((k) => `${d[k]} ${k}`);
  return extra.length > 0 ? `${s.statementCount} (${extra.join(", ")})` : String(s.statementCount);
}

type Flags = SourceFlags & {
  connection?: string;
  user?: string;
  agent?: string;
  application?: string;
  since?: string;
  until?: string;
  grep?: string;
  limit: string;
  json?: boolean;
};

export function registerSessions(program: Command): void {
  program
    .command("sessions")
    .description(
      "List and search recorded sessions (auditors see all, others their own), or show one",
    )
    .argument("[id]", "a session id (or a unique prefix): show its statements")
    .option("--connection <name>", "only sessions of this connection")
    .option("--user <who>", "only sessions of this identity: oid, upn, name, or the upn before @")
    .option("--agent <label>", "only sessions with this agent label")
    .option("--application <name>", "only sessions with this application_name")
    .option("--since <when>", "only sessions started since: a duration ago (2h, 7d) or a date")
    .option("--until <when>", "only sessions started before this")
    .option("--grep <text>", "only sessions that ran a statement containing this text")
    .option("-n, --limit <n>", "at most this many sessions", "50")
    .option("--db <file>", "read a copy of the broker's SQLite file instead of asking the broker")
    .option("--broker <url>", "broker URL (or GW_BROKER)")
    .option("--ca-file <file>", "PEM file of a private CA (or GW_CA_FILE)")
    .option("--json", "print JSON")
    .addHelpText(
      "after",
      "\nExamples:\n  gw sessions\n  gw sessions --connection db-prod --since 2h\n" +
        "  gw sessions --agent claude --grep 'DELETE FROM orders' --json\n  gw sessions 3f2c9a1e",
    )
    .action(async (id: string | undefined, opts: Flags) => {
      const source = await openAuditSource(opts);
      try {
        if (id) return await showOne(source, id, opts.json === true);
        const now = Date.now();
        const res = await source.sessions({
          connection: opts.connection,
          user: opts.user,
          agent: opts.agent,
          application: opts.application,
          since: opts.since === undefined ? undefined : parseTimeFilter("--since", opts.since, now),
          until: opts.until === undefined ? undefined : parseTimeFilter("--until", opts.until, now),
          grep: opts.grep,
          limit: Number(opts.limit) || 50,
        });
        if (opts.json) return printJson(res);
        if (res.sessions.length === 0) {
          const filtered = [
            opts.connection,
            opts.user,
            opts.agent,
            opts.application,
            opts.since,
            opts.until,
            opts.grep,
          ].some((x) => x !== undefined);
          process.stdout.write(
            filtered
              ? "no sessions match\n"
              : `no sessions${res.scope === "own" ? " of yours" : ""} yet\n`,
          );
          return;
        }
        const rows = [
          [
            "ID",
            "STARTED",
            "IDENTITY",
            "CONNECTION",
            "APPLICATION",
            "AGENT",
            "DURATION",
            "STMTS",
            "END",
          ],
        ];
        for (const s of res.sessions) {
          rows.push([
            s.id.slice(0, 8),
            fmtTime(s.startedAt),
            s.identity.type === "app" ? `${s.identity.name} (app)` : s.identity.name,
            s.connection,
            s.applicationName ?? "",
            s.agentLabel ?? "",
            s.endedAt ? fmtDuration(s.endedAt - s.startedAt) : "live",
            statementsCell(s),
            (s.endReason ?? "") + (s.prunedAt !== undefined ? " (pruned)" : ""),
          ]);
        }
        process.stdout.write(table(rows) + "\n");
      } finally {
        await source.close();
      }
    });
}

async function showOne(
  source: Awaited<ReturnType<typeof openAuditSource>>,
  id: string,
  json: boolean,
): Promise<void> {
  const data = await source.session(id);
  if (json) return printJson(data);
  const { session } = data;
  const replay = buildReplay(session, [], data.statements);
  process.stdout.write(
    `session ${session.id}\n  ${session.identity.name} (${session.identity.type}) on ${session.connection}` +
      (session.agentLabel ? `, agent ${session.agentLabel}` : "") +
      `, ${fmtTime(session.startedAt)}` +
      (session.endedAt
        ? ` for ${fmtDuration(session.endedAt - session.startedAt)}, ${session.endReason}`
        : ", live") +
      "\n\n",
  );
  if (session.prunedAt !== undefined) {
    process.stdout.write(
      dim(`its statements were removed by retention on ${fmtTime(session.prunedAt)}\n`),
    );
  }
  for (const s of replay.statements) {
    const outcome = s.errorCode ? `ERROR ${s.errorCode}` : (s.commandTag ?? "");
    process.stdout.write(
      `${dim(`#${s.n ?? "?"} ${fmtOffset(s.offsetMs)} ${fmtMs(s.durationMs)}`)} ${outcome} [${decisionLabel(s)}]\n  ${s.sql.replace(/\n/g, "\n  ")}\n`,
    );
  }
}
