import type { Command } from "commander";
import { ExitCode, GwError } from "../../errors.js";
import {
  ApprovalsClient,
  type ApprovalFeedEvent,
  type ApprovalView,
  type FeedStatus,
} from "../../tunnel/approvals-client.js";
import { brokerUrl, caFile, currentToken, type BrokerFlags } from "../context.js";
import { dim, info, printJson } from "../output.js";

/**
 * `gw approvals`: the scriptable side of approvals (list, show, approve, deny, watch).
 * `gw approve` is the interactive queue. Refusals come from the broker with its wording and
 * the exit code of their kind: 5 for approval_self / approval_not_approver /
 * approval_app_not_allowed, 7 for approval_not_pending, 1 for approval_not_found.
 */

/** The approvals API client for these flags; the token is fetched (and renewed) per request. */
export function approvalsClient(flags: BrokerFlags): ApprovalsClient {
  return new ApprovalsClient({
    url: brokerUrl(flags),
    token: () => currentToken(flags),
    caFile: caFile(flags),
  });
}

type Scope = "mine" | "all";

function parseScope(text: string | undefined): Scope | undefined {
  if (text === undefined) return undefined;
  if (text === "mine" || text === "all") return text;
  throw new GwError("usage", `--scope must be mine or all, not "${text}"`, {
    exitCode: ExitCode.usage,
  });
}

function brokerOptions(cmd: Command): Command {
  return cmd
    .option("--broker <url>", "broker URL (or GW_BROKER; default: the one of `gw login`)")
    .option("--ca-file <file>", "PEM file of a private CA (or GW_CA_FILE)");
}

function fmtTime(ms: number): string {
  return new Date(ms).toISOString().replace("T", " ").slice(0, 19) + "Z";
}

function ago(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 172_800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}

function left(ms: number): string {
  if (ms <= 0) return "-";
  const s = Math.ceil(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

const oneLine = (s: string) => s.replace(/\s+/g, " ").trim();
const cut = (s: string, n: number) => (s.length <= n ? s : s.slice(0, n - 1) + "…");
const who = (a: ApprovalView) => `${a.requester.name || a.requester.oid} (${a.requester.type})`;

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows
    .map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  "))
    .join("\n");
}

function approvedCount(a: ApprovalView): number {
  return new Set(a.decisions.filter((d) => d.decision === "approve").map((d) => d.by.oid)).size;
}

/** What happened to a request, in a sentence. */
export function outcomeText(a: ApprovalView): string {
  switch (a.status) {
    case "pending": {
      const n = approvedCount(a);
      return `pending (${n} of ${a.minApprovals} approvals), expires ${fmtTime(a.expiresAt)}`;
    }
    case "approved":
      return `approved by ${a.decisions
        .filter((d) => d.decision === "approve")
        .map((d) => d.by.name)
        .join(", ")}`;
    case "denied": {
      const d = a.decisions.find((x) => x.decision === "deny");
      return `denied by ${d?.by.name ?? "?"}${d?.reason ? `: ${d.reason}` : ""}`;
    }
    case "expired":
      return "expired: nobody decided in time";
    case "cancelled":
      return `cancelled${a.statusDetail ? `: ${a.statusDetail}` : ""}`;
  }
}

export function formatApproval(a: ApprovalView): string {
  const lines = [
    `request ${a.id}  ${outcomeText(a)}`,
    "",
    ...a.sql.split(/\r?\n/).map((l) => `  ${l}`),
    "",
    `  requester    ${who(a)}, oid ${a.requester.oid}`,
    `  application  ${a.applicationName ?? "-"}${a.agentLabel ? `, agent ${a.agentLabel}` : ""}`,
    `  connection   ${a.connection}, session ${a.sessionId}`,
    `  rule         ${a.matchedRule.index >= 0 ? `#${a.matchedRule.index + 1} ` : ""}${a.matchedRule.description}`,
    `  reason       ${a.reason}`,
    `  approvers    ${a.approvers.join(", ")} (${a.minApprovals} needed)`,
    `  asked        ${fmtTime(a.createdAt)}, expires ${fmtTime(a.expiresAt)}`,
  ];
  for (const d of a.decisions) {
    lines.push(
      `  ${d.decision === "approve" ? "approved" : "denied  "}     by ${d.by.name} at ${fmtTime(d.at)}${d.reason ? `: ${d.reason}` : ""}`,
    );
  }
  const ctx = a.contextStatements ?? [];
  if (ctx.length > 0) {
    lines.push("", "  earlier in the session, oldest first:");
    for (const s of ctx) lines.push(`    ${cut(oneLine(s), 200)}`);
  }
  if (a.status === "pending") {
    const can = a.viewer.canApprove
      ? `gw approvals approve ${a.id}   |   gw approvals deny ${a.id} --reason TEXT`
      : a.viewer.requester
        ? `you asked for this; you may withdraw it: gw approvals deny ${a.id} --reason TEXT`
        : a.viewer.canDeny
          ? `gw approvals deny ${a.id} --reason TEXT`
          : "you may not decide this request";
    lines.push("", `  ${can}`);
  }
  return lines.join("\n");
}

/** One line of `watch` for people. */
export function eventLine(
  e: Exclude<ApprovalFeedEvent, { type: "snapshot" }>,
  label: string = e.type,
): string {
  const a = e.approval;
  const t = new Date().toISOString().slice(11, 19);
  const what =
    e.type === "created"
      ? `${who(a)} on ${a.connection}: ${cut(oneLine(a.sql), 120)}`
      : e.type === "decided"
        ? `${e.decision.by.name} ${e.decision.decision === "approve" ? "approved" : "denied"}${e.decision.reason ? ` (${e.decision.reason})` : ""}; now ${a.status}`
        : outcomeText(a);
  return `${t} ${label.padEnd(9)} ${a.id}  ${what}`;
}

function statusLine(s: FeedStatus): string | null {
  if (s.state === "reconnecting") {
    const secs = Math.max(0, Math.round((s.retryAt - Date.now()) / 1000));
    return `gw approvals watch: feed lost (${s.reason}); reconnecting in ${secs}s`;
  }
  if (s.state === "live") return "gw approvals watch: live";
  return null;
}

export function registerApprovals(program: Command): void {
  const approvals = program
    .command("approvals")
    .description("List, show, approve, deny and watch statements held for approval (scriptable)")
    .addHelpText(
      "after",
      "\nFor the interactive queue, run `gw approve`.\n\nExamples:\n" +
        "  gw approvals list\n  gw approvals show 3f2c9a1e\n" +
        "  gw approvals approve 3f2c9a1e --reason 'cleanup ticket OPS-12'\n" +
        "  gw approvals deny 3f2c9a1e --reason 'use a WHERE clause'\n" +
        "  gw approvals watch --json | jq -c 'select(.type == \"created\")'",
    );

  brokerOptions(
    approvals
      .command("list")
      .description("Requests waiting for you (you approve them, or you asked for them)")
      .option("--all", "also requests that are no longer pending (approved, denied, expired…)")
      .option("--scope <scope>", "mine, or all (auditors: everyone's requests)")
      .option("-n, --limit <n>", "at most this many", "50")
      .option("--json", "print JSON"),
  ).action(
    async (
      opts: BrokerFlags & { all?: boolean; scope?: string; limit: string; json?: boolean },
    ) => {
      const scope = parseScope(opts.scope);
      const res = await approvalsClient(opts).list({
        status: opts.all ? "all" : "pending",
        ...(scope ? { scope } : {}),
        limit: Number(opts.limit) || 50,
      });
      if (opts.json) return printJson(res);
      if (res.approvals.length === 0) {
        process.stdout.write(
          opts.all ? "no approval requests\n" : "no approval requests waiting for you\n",
        );
        return;
      }
      const now = Date.now();
      const rows = [
        ["ID", "REQUESTER", "CONNECTION", "STATUS", "AGE", "EXPIRES", "YOU", "STATEMENT"],
      ];
      for (const a of res.approvals) {
        rows.push([
          a.id,
          who(a),
          a.connection,
          a.status,
          ago(now - a.createdAt),
          a.status === "pending" ? left(a.expiresAt - now) : "-",
          a.viewer.requester
            ? "asked"
            : a.viewer.canApprove
              ? "can approve"
              : a.viewer.canDeny
                ? "can deny"
                : "-",
          cut(oneLine(a.sql), 60),
        ]);
      }
      process.stdout.write(table(rows) + "\n");
    },
  );

  brokerOptions(
    approvals
      .command("show")
      .description("One request in full: the statement, who asked, the rule, the session")
      .argument("<id>", "request id (from `gw approvals list`)")
      .option("--json", "print JSON"),
  ).action(async (id: string, opts: BrokerFlags & { json?: boolean }) => {
    const a = await approvalsClient(opts).get(id);
    if (opts.json) return printJson({ approval: a });
    process.stdout.write(formatApproval(a) + "\n");
  });

  brokerOptions(
    approvals
      .command("approve")
      .description("Approve a held statement (it runs once enough approvers have approved)")
      .argument("<id>", "request id")
      .option("--reason <text>", "why, for the audit trail")
      .option("--json", "print JSON"),
  ).action(async (id: string, opts: BrokerFlags & { reason?: string; json?: boolean }) => {
    const a = await approvalsClient(opts).approve(id, { reason: opts.reason });
    if (opts.json) return printJson({ approval: a });
    const stmt = cut(oneLine(a.sql), 80);
    if (a.status === "approved")
      process.stdout.write(`approved ${a.id} (${stmt}): the statement runs now\n`);
    else {
      const n = approvedCount(a);
      process.stdout.write(
        `recorded your approval of ${a.id} (${stmt}): ${n} of ${a.minApprovals}, it waits for ${a.minApprovals - n} more\n`,
      );
    }
  });

  brokerOptions(
    approvals
      .command("deny")
      .description("Deny a held statement; the client gets your reason as its error")
      .argument("<id>", "request id")
      .option("--reason <text>", "why (required): the requester sees it")
      .option("--json", "print JSON"),
  ).action(async (id: string, opts: BrokerFlags & { reason?: string; json?: boolean }) => {
    if (opts.reason === undefined || opts.reason.trim() === "") {
      throw new GwError("approval_reason_required", "a deny needs a reason", {
        exitCode: ExitCode.usage,
        hint: `Say why, for the requester and the audit trail: gw approvals deny ${id} --reason TEXT`,
      });
    }
    const a = await approvalsClient(opts).deny(id, { reason: opts.reason });
    if (opts.json) return printJson({ approval: a });
    process.stdout.write(
      `denied ${a.id} (${cut(oneLine(a.sql), 80)}): the client is told "${opts.reason.trim()}"\n`,
    );
  });

  brokerOptions(
    approvals
      .command("watch")
      .description("Follow requests live (a snapshot, then each event) until interrupted")
      .option("--json", "one JSON object per line: snapshot, created, decided, expired, cancelled")
      .option("--scope <scope>", "mine, or all (auditors: everyone's requests)"),
  ).action(async (opts: BrokerFlags & { json?: boolean; scope?: string }) => {
    const scope = parseScope(opts.scope);
    const client = approvalsClient(opts);
    await currentToken(opts); // not signed in: say so now, not as a reconnect loop
    const ctl = new AbortController();
    const stop = () => ctl.abort();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    try {
      await client.watch({
        ...(scope ? { scope } : {}),
        signal: ctl.signal,
        // A refused sign-in or a forbidden scope does not get better by retrying.
        fatal: (err) =>
          err.exitCode === ExitCode.auth ||
          err.exitCode === ExitCode.forbidden ||
          err.exitCode === ExitCode.usage,
        onStatus: (s) => {
          const line = statusLine(s);
          if (line !== null) info(dim(line));
        },
        onEvent: (e) => {
          if (opts.json) {
            process.stdout.write(JSON.stringify(e) + "\n");
            return;
          }
          if (e.type === "snapshot") {
            if (e.approvals.length === 0)
              process.stdout.write("no approval requests waiting; watching for new ones\n");
            for (const a of e.approvals)
              process.stdout.write(eventLine({ type: "created", approval: a }, "pending") + "\n");
            return;
          }
          process.stdout.write(eventLine(e) + "\n");
        },
      });
    } finally {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
    }
  });
}
