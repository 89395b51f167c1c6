import type { Command } from "commander";
import { registerBrokerCheck } from "./broker-check.js";
import { registerBrokerStart } from "./broker-start.js";

export function registerBroker(program: Command): void {
  const broker = program.command("broker").description("Run and check a gw broker");
  registerBrokerStart(broker);
  registerBrokerCheck(broker);
}
