import type { Command } from "commander";
import { loadConfig } from "../../config/load.js";
import { readSecret } from "../../config/secrets.js";
import { isGwError } from "../../errors.js";
import { ConfigError } from "../../config/load.js";
import { green, info, printJson, yellow } from "../output.js";

export function registerBrokerCheck(broker: Command): void {
  broker
    .command("check")
    .description("Validate a broker config file and report every problem with its path")
    .requiredOption("-c, --config <file>", "broker config (YAML)")
    .option("--json", "print the result as JSON")
    .addHelpText(
      "after",
      "\nExamples:\n  gw broker check --config broker.yaml\n  gw broker check -c broker.yaml --json",
    )
    .action((opts: { config: string; json?: boolean }) => {
      let warnings: { path: string; message: string }[] = [];
      try {
        const { config } = loadConfig(opts.config);
        warnings = Object.entries(config.connections).flatMap(([name, c]) => {
          if (!c.target.password) return [];
          try {
            readSecret(c.target.password, "password");
            return [];
          } catch (err) {
            return [
              {
                path: `connections.${name}.target.password`,
                message: isGwError(err) ? err.message : String(err),
              },
            ];
          }
        });
        const n = Object.keys(config.connections).length;
        if (opts.json) printJson({ ok: true, file: opts.config, connections: n, warnings });
        else {
          for (const w of warnings)
            info(`${yellow("warning:")} ${w.path}: ${w.message} (needed when a session opens)`);
          info(`${green("ok:")} ${opts.config} is valid (${n} connection${n === 1 ? "" : "s"})`);
        }
      } catch (err) {
        if (err instanceof ConfigError && opts.json) {
          printJson({ ok: false, file: err.file, problems: err.problems });
          process.exitCode = err.exitCode;
          return;
        }
        throw err;
      }
    });
}
