import type { Command } from "commander";
import { AgentFleet } from "../../agent/fleet.js";
import { AllowList } from "../../agent/allow-list.js";
import { agentLogLine } from "../../agent/event-log.js";
import { agentTokenProvider } from "../../agent/token-source.js";
import { createLogger, scrub, type LogLevel } from "../../broker/logger.js";
import { ExitCode, GwError } from "../../errors.js";
import { VERSION } from "../../version.js";
import { parseBrokerUrls } from "../../tunnel/broker-urls.js";
import { brokerUrl, caFile, type BrokerFlags } from "../context.js";
import { dim, info, red, yellow } from "../output.js";

type AgentStartOptions = BrokerFlags & {
  name: string;
  allow: string[];
  allowAny?: boolean;
  json?: boolean;
};

const collect = (v: string, all: string[]) => [...all, v];

export function registerAgentStart(agent: Command): void {
  agent
    .command("start")
    .description(
      "Dial out to the broker and relay sessions' bytes to targets in this network (no inbound port)",
    )
    .requiredOption("--name <name>", "the agent's name: a key of the broker config's agents")
    .option(
      "--broker <url>",
      "broker URL (or GW_BROKER); several, comma-separated, for replicas: the agent connects to each, and to each address of a name",
    )
    .option(
      "--ca-file <file>",
      "PEM file of a private CA that signed the broker's certificate (or GW_CA_FILE)",
    )
    .option(
      "--allow <host:port>",
      "a target the agent may dial, exactly as the broker's config names it (repeatable)",
      collect,
      [],
    )
    .option("--allow-any", "dial whatever the broker asks for (instead of --allow)")
    .option("--json", "log one JSON object per line on stdout")
    .addHelpText(
      "after",
      [
        "",
        "What runs where: the agent only dials TCP to targets and relays bytes. Sign-in checks,",
        "policy, masking, approvals and recording all stay in the broker; the agent never sees a",
        "target's credentials and does not read what it relays. Connections reach a target through",
        "the agent when the broker's config says `via: <name>` for them.",
        "",
        "The agent signs in as a service principal (its own app registration, listed under the",
        "broker's agents.<name>.identity): GW_TOKEN, else AZURE_TENANT_ID, AZURE_CLIENT_ID and",
        "AZURE_CLIENT_SECRET (or AZURE_CLIENT_CERTIFICATE_PATH or AZURE_FEDERATED_TOKEN_FILE), else",
        "`gw login --service-principal`. Its token is renewed before it expires.",
        "",
        "It refuses to dial anything not given with --allow (or pass --allow-any). When the broker",
        "goes away it reconnects with exponential backoff; sessions in flight end, new ones work",
        "once it is back. See docs/agent.md.",
        "",
        "Examples:",
        "  gw agent start --broker https://gw.example.com --name edge --allow db.internal:5432",
        "  gw agent start --broker https://gw.example.com --name edge --allow-any --json",
        "  gw agent start --broker https://gw-brokers.gw.svc:8443 --name edge --allow db:5432  # every replica",
      ].join("\n"),
    )
    .action(async (opts: AgentStartOptions) => {
      if (!/^[a-z0-9][a-z0-9._-]*$/i.test(opts.name))
        throw new GwError(
          "agent_name_invalid",
          `--name must use letters, digits, . _ - (as the broker's agents keys), not "${opts.name}"`,
          { exitCode: ExitCode.usage },
        );
      const allow = AllowList.parse(opts.allow, opts.allowAny === true);
      const brokers = parseBrokerUrls(brokerUrl(opts));
      const broker = brokers[0]!;
      const ca = caFile(opts);
      const provider = agentTokenProvider({ broker, caFile: ca });
      const json = opts.json === true;
      const jsonLog = createLogger({
        level: "info",
        write: (line) => process.stdout.write(line + "\n"),
        base: { agent: opts.name },
      });
      const say = (level: LogLevel, msg: string, fields: object, text: string) => {
        if (json) return jsonLog.log(level, msg, fields as Record<string, unknown>);
        const stamp = dim(`[${new Date().toTimeString().slice(0, 8)}]`);
        const tone = level === "warn" ? yellow : level === "error" ? red : (s: string) => s;
        info(scrub(`${stamp} ${tone(text)}`));
      };
      say(
        "info",
        "starting",
        { broker, version: VERSION, pid: process.pid, allow: allow.describe() ?? "any" },
        `gw agent ${opts.name} → ${broker} (signs in with ${provider.description}; may dial: ${allow.describe()?.join(", ") ?? "anything"})`,
      );
      const agent = new AgentFleet({
        brokers,
        name: opts.name,
        caFile: ca,
        token: async () => (await provider.getToken()).token,
        allow,
        onEvent: (e, replica) => {
          const line = agentLogLine(e);
          if (!line) return;
          // With several replicas each line says which one it is about.
          const many = agent.size > 1;
          say(
            line.level,
            line.msg,
            many ? { ...line.fields, replica } : line.fields,
            many ? `${line.text} (${replica})` : line.text,
          );
        },
      });
      const stop = () => void agent.stop();
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
      try {
        await agent.run();
      } finally {
        process.off("SIGINT", stop);
        process.off("SIGTERM", stop);
      }
      say("info", "stopped", {}, "agent stopped");
    });
}
