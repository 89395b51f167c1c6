import type { Command } from "commander";
import { ExitCode, GwError } from "../../errors.js";
import { type BrokerFlags } from "../context.js";
import { approvalsClient } from "./approvals.js";

export function registerApprove(program: Command): void {
  program
    .command("approve")
    .description("Review held statements live and approve or deny them (full-screen)")
    .option("--broker <url>", "broker URL (or GW_BROKER; default: the one of `gw login`)")
    .option("--ca-file <file>", "PEM file of a private CA (or GW_CA_FILE)")
    .addHelpText(
      "after",
      "\nKeys: ↑/↓ or j/k move · a approve · d deny (type a reason, Enter; Esc cancels)\n" +
        "      Enter details · / filter · q quit\n" +
        "\nIn scripts, use `gw approvals list|show|approve|deny|watch`.",
    )
    .action(async (opts: BrokerFlags) => {
      if (!process.stdin.isTTY || !process.stdout.isTTY) {
        throw new GwError("not_a_terminal", "gw approve needs a terminal", {
          exitCode: ExitCode.usage,
          hint: "In scripts use `gw approvals list`, `gw approvals approve ID`, `gw approvals deny ID --reason TEXT` or `gw approvals watch --json`.",
        });
      }
      const client = approvalsClient(opts);
      // Sign-in and reachability problems are reported here, before the screen takes over;
      // a feed that drops later is reconnected inside the queue. ink and react load only here.
      await client.list({ status: "pending", scope: "mine", limit: 1 });
      const { runApprove } = await import("../../tui/approve/run.js");
      await runApprove({ client });
    });
}
