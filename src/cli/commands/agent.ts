import type { Command } from "commander";
import { registerAgentStart } from "./agent-start.js";

export function registerAgent(program: Command): void {
  const agent = program
    .command("agent")
    .description("Run an outbound agent that relays the broker's sessions into a private network");
  registerAgentStart(agent);
}
