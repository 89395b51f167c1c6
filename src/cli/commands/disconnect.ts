import type { Command } from "commander";
import { ExitCode, GwError } from "../../errors.js";
import {
  isTunnelProcess,
  removeState,
  runningTunnel,
  runningTunnels,
  type DetachedTunnelState,
} from "../../tunnel/detach/state.js";
import { info, printJson } from "../output.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** SIGTERM, wait for the tunnel to close its connections and exit, SIGKILL if it will not. */
async function stop(t: DetachedTunnelState, timeoutMs: number): Promise<"stopped" | "killed"> {
  try {
    process.kill(t.pid, "SIGTERM");
  } catch {
    removeState(t.connection);
    return "stopped";
  }
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (!isTunnelProcess(t.pid)) {
      removeState(t.connection);
      return "stopped";
    }
    await sleep(50);
  }
  try {
    process.kill(t.pid, "SIGKILL");
  } catch {
    // it went in the meantime
  }
  removeState(t.connection);
  return "killed";
}

export function registerDisconnect(program: Command): void {
  program
    .command("disconnect")
    .description("Stop tunnels running in the background (gw connect --detach)")
    .argument("[name...]", "connection names (see gw ps)")
    .option("-a, --all", "stop every background tunnel")
    .option("--json", "print what was stopped as JSON")
    .addHelpText(
      "after",
      [
        "",
        "Examples:",
        "  gw disconnect db-prod",
        "  gw disconnect --all",
        "",
        "Open sessions through the tunnel end (their clients see the connection close).",
      ].join("\n"),
    )
    .action(async (names: string[], opts: { all?: boolean; json?: boolean }) => {
      if (opts.all && names.length > 0)
        throw new GwError("usage", "give connection names or --all, not both", {
          exitCode: ExitCode.usage,
        });
      if (!opts.all && names.length === 0)
        throw new GwError("usage", "which tunnel? give its name, or --all", {
          exitCode: ExitCode.usage,
          hint: "gw ps lists the tunnels running in the background.",
        });
      let targets: DetachedTunnelState[];
      if (opts.all) targets = runningTunnels();
      else {
        targets = [];
        for (const n of names) {
          const t = runningTunnel(n);
          if (!t) {
            const running = runningTunnels().map((r) => r.connection);
            throw new GwError("tunnel_not_running", `no background tunnel for ${n}`, {
              exitCode: ExitCode.failure,
              hint: running.length
                ? `Running: ${running.join(", ")}.`
                : "None is running (gw ps). A tunnel in a terminal stops with Ctrl-C there.",
            });
          }
          targets.push(t);
        }
      }
      const results = await Promise.all(
        targets.map(async (t) => ({
          connection: t.connection,
          pid: t.pid,
          result: await stop(t, 10_000),
        })),
      );
      if (opts.json) return printJson(results);
      if (results.length === 0) info("no tunnels running in the background");
      for (const r of results)
        info(
          `disconnected ${r.connection} (pid ${r.pid}${r.result === "killed" ? ", killed after 10 s" : ""})`,
        );
    });
}
