import type { Command } from "commander";
import { loadConfig } from "../../config/load.js";
import { readSecret } from "../../config/secrets.js";
import { isGwError } from "../../errors.js";
import { ConfigError } from "../../config/load.js";
import type { ConnectionConfig } from "../../config/schema.js";
import { checkHttpTarget } from "../../protocols/http/check.js";
import { checkSshTarget } from "../../protocols/ssh/check.js";
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
        warnings = Object.entries(config.connections).flatMap(([name, c]) =>
          targetWarnings(name, c),
        );
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

/** What cannot be known until a session opens, but can be checked now: secrets, keys, files. */
function targetWarnings(name: string, c: ConnectionConfig): { path: string; message: string }[] {
  const at = `connections.${name}.target`;
  switch (c.type) {
    case "postgres": {
      if (!c.target.password) return [];
      try {
        readSecret(c.target.password, "password");
        return [];
      } catch (err) {
        return [{ path: `${at}.password`, message: isGwError(err) ? err.message : String(err) }];
      }
    }
    case "ssh":
      return checkSshTarget(name, c.target).map((m) => splitPath(m, at));
    case "http":
      return checkHttpTarget(name, c.target).map((m) => splitPath(m, at));
    case "tcp":
      return [];
  }
}

/** The checks write "path: message"; keep the two apart for --json. */
function splitPath(message: string, fallback: string): { path: string; message: string } {
  const m = /^(connections\.[^:\s]+): (.*)$/s.exec(message);
  return m ? { path: m[1]!, message: m[2]! } : { path: fallback, message };
}
