import { writeFileSync } from "node:fs";
import type { Command } from "commander";
import { asciicast } from "../../audit/asciicast.js";
import { buildReplay } from "../../audit/replay.js";
import { transcript } from "../../audit/transcript.js";
import { ExitCode, GwError } from "../../errors.js";
import { colorWanted } from "../../tui/theme.js";
import { printJson } from "../output.js";
import { openAuditSource, type SourceFlags } from "./audit.js";

export function registerReplay(program: Command): void {
  program
    .command("replay")
    .description(
      "Replay a recorded session: its statements one by one, with timing, decisions and result previews",
    )
    .argument("<session>", "a session id (or a unique prefix, as `gw sessions` shows it)")
    .option("--no-tui", "print a plain transcript (psql-like) instead of the player")
    .option("--json", "print the session, its events and statements as JSON")
    .option("--export <format-and-file...>", "write the session to a file: asciicast FILE")
    .option("--play", "start playing at once")
    .option("--db <file>", "read a copy of the broker's SQLite file instead of asking the broker")
    .option("--broker <url>", "broker URL (or GW_BROKER)")
    .option("--ca-file <file>", "PEM file of a private CA (or GW_CA_FILE)")
    .addHelpText(
      "after",
      "\nPlayer keys: Space play/pause · ←/→ step · +/- speed (0.25x–16x) · g/G start/end ·" +
        " / search · n/N next/previous match · q quit" +
        "\n\nExamples:\n  gw replay 3f2c9a1e\n  gw replay 3f2c9a1e --no-tui | less -R\n" +
        "  gw replay 3f2c9a1e --export asciicast session.cast && asciinema play session.cast",
    )
    .action(
      async (
        id: string,
        opts: SourceFlags & { tui: boolean; json?: boolean; export?: string[]; play?: boolean },
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
        const replay = buildReplay(data.session, data.events, data.statements);
        if (exportTo) {
          writeFileSync(exportTo.file, asciicast(replay));
          process.stderr.write(
            `wrote ${replay.statements.length} statement${replay.statements.length === 1 ? "" : "s"} of session ${replay.session.id} to ${exportTo.file} (asciicast v2)\n`,
          );
          return;
        }
        if (!opts.tui || !process.stdout.isTTY || !process.stdin.isTTY) {
          process.stdout.write(
            transcript(replay, { color: process.stdout.isTTY === true && colorWanted() }),
          );
          return;
        }
        const { runReplay } = await import("../../tui/replay/run.js");
        await runReplay({ replay, autoplay: opts.play === true });
      },
    );
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
