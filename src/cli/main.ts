import { Command, CommanderError } from "commander";
import { VERSION } from "../version.js";
import { reportError } from "./output.js";
import { registerBroker } from "./commands/broker.js";
import { registerAgent } from "./commands/agent.js";
import { registerConnect } from "./commands/connect.js";
import { registerLogin } from "./commands/login.js";
import { registerLogout } from "./commands/logout.js";
import { registerWhoami } from "./commands/whoami.js";
import { registerSessions } from "./commands/sessions.js";
import { registerReplay } from "./commands/replay.js";
import { registerAudit } from "./commands/audit.js";
import { registerApprove } from "./commands/approve.js";
import { registerApprovals } from "./commands/approvals.js";
import { registerPolicy } from "./commands/policy-test.js";
import { registerDemo } from "./commands/demo.js";
import { registerCompletion } from "./commands/completion.js";
import { registerMcp } from "./commands/mcp.js";
import { registerPs } from "./commands/ps.js";
import { registerDisconnect } from "./commands/disconnect.js";
import { registerSshConfig } from "./commands/ssh-config.js";

export function buildProgram(): Command {
  const program = new Command("gw")
    .description(
      "gw: identity-aware tunnels to your databases, with recording, masking and approvals",
    )
    .version(VERSION, "-V, --version")
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride();
  registerLogin(program);
  registerLogout(program);
  registerWhoami(program);
  registerConnect(program);
  registerPs(program);
  registerDisconnect(program);
  registerSshConfig(program);
  registerSessions(program);
  registerReplay(program);
  registerAudit(program);
  registerApprove(program);
  registerApprovals(program);
  registerBroker(program);
  registerAgent(program);
  registerPolicy(program);
  registerMcp(program);
  registerDemo(program);
  registerCompletion(program);
  return program;
}

/** Runs the CLI; returns the process exit code. Every error is reported in one place, here. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  const json = argv.includes("--json");
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    return reportError(err, json);
  }
}
