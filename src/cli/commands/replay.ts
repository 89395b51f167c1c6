import { writeFileSync } from "node:fs";
import type { Command } from "commander";
import { ExitCode, GwError } from "../../errors.js";
import {
  buildSessionReplay,
  checkChannel,
  replayAsciicast,
  replayText,
} from "../../replay/session-replay.js";
import { colorWanted } from "../../tui/theme.js";
import { printJson } from "../output.js";
import { openAuditSource, type SourceFlags } from "./audit.js";

export function registerReplay(program: Command): void {
  program
    .command("replay")
    .description(
      "Replay a recorded session: SQL statements with their results, an ssh terminal, http requests",
    )
    .argument("<session>", "a session id (or a unique prefix, as `gw sessions` shows it)")
    .option(
      "--no-tui",
      "print text instead of the player: a psql-like transcript; ssh: final screens and an event log; http: requests and bodies",
    )
    .option("--json", "print the session, its events and statements as JSON")
    .option("--export <format-and-file...>", "write the session to a file: asciicast FILE")
    .option("--play", "start playing at once")
    .option(
      "--channel <n>",
      "ssh: the channel to show or export (default: the first shell)",
      parseChannel,
    )
    .option("--db <file>", "read a copy of the broker's SQLite file instead of asking the broker")
    .option("--broker <url>", "broker URL (or GW_BROKER)")
    .option("--ca-file <file>", "PEM file of a private CA (or GW_CA_FILE)")
    .addHelpText(
      "after",
      "\nPlayer keys (SQL): Space play/pause · ←/→ step · +/- speed (0.25x–16x) · g/G start/end ·" +
        " / search · n/N next/previous match · q quit" +
        "\nPlayer keys (ssh): Space play/pause · ←/→ seek 5 s · [/] previous/next event · +/- speed ·" +
        " g/G start/end · Tab channel · q quit" +
        "\nPlayer keys (http): ↑/↓ select · Enter/→ details · Esc/← back · [/] previous/next request · q quit" +
        "\nA tcp session records no content: replay prints its summary." +
        "\n\nExamples:\n  gw replay 3f2c9a1e\n  gw replay 3f2c9a1e --no-tui | less -R\n" +
        "  gw replay 3f2c9a1e --export asciicast session.cast && asciinema play session.cast\n" +
        "  gw replay 5511a1e2 --channel 1 --no-tui   # an ssh session's second channel",
    )
    .action(
      async (
        id: string,
        opts: SourceFlags & {
          tui: boolean;
          json?: boolean;
          export?: string[];
          play?: boolean;
          channel?: number;
        },
      ) => {
        const exportTo = parseExport(opts.export);
        const source = await openAuditSource(opts);
        let data;
        try {
          data = await source.events(id);
        } finally {
          await source.close();
        }
        if (opts.json) return printJson(data);
        const replay = buildSessionReplay(data);
        checkChannel(replay, opts.channel);
        const channel = opts.channel !== undefined ? { channel: opts.channel } : {};
        if (exportTo) {
          const { text, what } = replayAsciicast(replay, channel);
          writeFileSync(exportTo.file, text);
          process.stderr.write(`wrote ${what} to ${exportTo.file} (asciicast v2)\n`);
          return;
        }
        // A tcp session has nothing to play: its summary is the whole replay.
        if (
          !opts.tui ||
          !process.stdout.isTTY ||
          !process.stdin.isTTY ||
          replay.protocol === "tcp"
        ) {
          const color = process.stdout.isTTY === true && colorWanted();
          process.stdout.write(await replayText(replay, { color, ...channel }));
          return;
        }
        const { runReplay } = await import("../../tui/replay/run.js");
        const autoplay = opts.play === true;
        if (replay.protocol === "ssh")
          await runReplay({ ssh: replay.replay, autoplay, ...channel });
        else if (replay.protocol === "http") await runReplay({ http: replay.replay });
        else await runReplay({ replay: replay.replay, autoplay });
      },
    );
}

function parseChannel(value: string): number {
  if (!/^\d+$/.test(value)) {
    throw new GwError("usage", `--channel takes a channel number (0, 1, …), not "${value}"`, {
      exitCode: ExitCode.usage,
    });
  }
  return Number(value);
}

function parseExport(values: string[] | undefined): { format: "asciicast"; file: string } | null {
  if (values === undefined) return null;
  const [format, file, ...rest] = values;
  if (format !== "asciicast" || file === undefined || rest.length > 0) {
    throw new GwError("usage", "--export takes a format and a file: --export asciicast FILE", {
      exitCode: ExitCode.usage,
      hint: "Put the session id before --export: gw replay SESSION --export asciicast session.cast",
    });
  }
  return { format, file };
}
