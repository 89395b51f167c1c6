import { spawn } from "node:child_process";
import { Argument, type Command } from "commander";
import { ExitCode, GwError } from "../../errors.js";
import { runningTunnels } from "../../tunnel/detach/state.js";
import { cachedConnections, rememberConnections } from "../completion/cache.js";
import { completionScript, SHELLS, type Shell } from "../completion/generate.js";
import { commandSpec } from "../completion/model.js";
import { brokerClient, brokerUrl } from "../context.js";

/** A cached list older than this is refreshed in the background (and still offered). */
const STALE_MS = 60_000;
/** With no cached list, how long completion may wait for the broker. */
const INLINE_TIMEOUT_MS = 2_000;
/** How long a background refresh may take. */
const REFRESH_TIMEOUT_MS = 10_000;

async function fetchConnections(): Promise<string[]> {
  const client = await brokerClient({});
  const names = (await client.connections()).map((c) => c.name);
  rememberConnections(client.url, names);
  return names;
}

function within<T>(p: Promise<T>, ms: number): Promise<T> {
  return Promise.race([
    p,
    new Promise<T>((_, reject) => setTimeout(() => reject(new Error("timed out")), ms).unref()),
  ]);
}

function print(names: string[]): void {
  if (names.length > 0) process.stdout.write(names.join("\n") + "\n");
}

async function completeConnections(refresh: boolean): Promise<void> {
  let broker: string | undefined;
  try {
    broker = brokerUrl({});
  } catch {
    broker = undefined; // no broker known: offer whatever was cached last
  }
  if (refresh) {
    await within(fetchConnections(), REFRESH_TIMEOUT_MS).catch(() => undefined);
    return;
  }
  const cached = cachedConnections(broker);
  if (cached) {
    print(cached.names);
    if (Date.now() - cached.fetchedAt > STALE_MS && broker !== undefined) {
      // Answer now; the next TAB gets the fresh list.
      const script = process.argv[1];
      if (script)
        spawn(process.execPath, [script, "__complete", "connections", "--refresh"], {
          detached: true,
          stdio: "ignore",
        }).unref();
    }
    return;
  }
  if (broker === undefined) return;
  print(await within(fetchConnections(), INLINE_TIMEOUT_MS).catch(() => []));
}

export function registerCompletion(program: Command): void {
  program
    .command("completion")
    .description("Print the shell completion script for bash, zsh or fish")
    .addArgument(new Argument("<shell>", "bash, zsh or fish").choices(SHELLS))
    .addHelpText(
      "after",
      [
        "",
        "Examples:",
        "  source <(gw completion bash)                         # this shell only",
        "  gw completion bash > ~/.local/share/bash-completion/completions/gw",
        "  gw completion zsh > ~/.local/share/zsh/site-functions/_gw   # a dir in $fpath",
        "  gw completion fish > ~/.config/fish/completions/gw.fish",
        "",
        "./install.sh installs them for you. `gw connect <TAB>` completes your connections from",
        "a list cached in the config dir, refreshed in the background when it is a minute old.",
      ].join("\n"),
    )
    .action((shell: Shell, _opts: unknown, cmd: Command) => {
      const root = cmd.parent;
      if (!root) throw new Error("completion needs the root command");
      process.stdout.write(completionScript(shell, commandSpec(root)));
    });

  // The completion scripts' helper: live names, fast, never an error message.
  program
    .command("__complete", { hidden: true })
    .argument("<what>", "connections | tunnels")
    .option("--refresh", "fetch the list from the broker and cache it; print nothing")
    .action(async (what: string, opts: { refresh?: boolean }) => {
      try {
        if (what === "connections") await completeConnections(opts.refresh === true);
        else if (what === "tunnels") print(runningTunnels().map((t) => t.connection));
        else
          throw new GwError("usage", `nothing to complete for ${what}`, {
            exitCode: ExitCode.usage,
          });
      } catch (err) {
        if (err instanceof GwError && err.code === "usage") throw err;
        // Completion must never print errors into the user's command line.
      }
      // A broker or identity server that is slow to answer must not hold the shell.
      setTimeout(() => process.exit(0), 10).unref();
    });
}
