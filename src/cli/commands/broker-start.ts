import type { Command } from "commander";
import { loadConfig } from "../../config/load.js";
import { Broker } from "../../broker/broker.js";
import { openStore, storeThreadFor } from "../../store/open-store.js";
import { ExitCode, GwError } from "../../errors.js";
import { info, printJson } from "../output.js";

export function registerBrokerStart(broker: Command): void {
  broker
    .command("start")
    .description("Run the broker: API, discovery and tunnel endpoint")
    .requiredOption("-c, --config <file>", "broker config (YAML)")
    .option(
      "--listen <host:port>",
      "override the config's listen address (port 0 picks a free port)",
    )
    .option("--json", "print {url} as JSON once listening")
    .addHelpText(
      "after",
      "\nExamples:\n  gw broker start --config broker.yaml\n  gw broker start -c broker.yaml --listen 127.0.0.1:0 --json",
    )
    .action(async (opts: { config: string; listen?: string; json?: boolean }) => {
      const { config } = loadConfig(opts.config);
      let listen: { host: string; port: number } | undefined;
      if (opts.listen) {
        const m = /^(.*):(\d+)$/.exec(opts.listen);
        if (!m)
          throw new GwError("listen_invalid", `--listen must be host:port, not ${opts.listen}`, {
            exitCode: ExitCode.usage,
          });
        listen = { host: m[1]!.replace(/^\[|\]$/g, ""), port: Number(m[2]) };
      }
      const store = await openStore(config.store, { thread: storeThreadFor(config) });
      const broker = await Broker.start({ config, store, ...(listen ? { listen } : {}) }).catch(
        async (err: NodeJS.ErrnoException) => {
          await store.close();
          if (err.code === "EADDRINUSE") {
            throw new GwError(
              "listen_in_use",
              `cannot listen on ${opts.listen ?? config.listen}: address in use`,
              { exitCode: ExitCode.conflict },
            );
          }
          throw err;
        },
      );
      if (opts.json) printJson({ url: broker.url, pid: process.pid });
      else
        info(
          `gw broker listening on ${broker.url} (${Object.keys(config.connections).length} connections)`,
        );
      await new Promise<void>((resolve) => {
        const stop = () => resolve();
        process.once("SIGINT", stop);
        process.once("SIGTERM", stop);
      });
      info("gw broker shutting down");
      await broker.close();
      await store.close();
    });
}
