import { render } from "ink";
import { createElement as h } from "react";
import type { Replay } from "../../audit/replay.js";
import { ThemeContext, colorWanted, makeTheme } from "../theme.js";
import { ReplayApp } from "./ReplayApp.js";

export interface RunReplayOptions {
  replay: Replay;
  autoplay?: boolean;
  /** Colours; default: unless NO_COLOR is set or TERM is dumb. */
  color?: boolean;
  stdin?: NodeJS.ReadStream;
  stdout?: NodeJS.WriteStream;
}

const ALT_SCREEN_ON = "\x1b[?1049h";
const ALT_SCREEN_OFF = "\x1b[?1049l";

/** Plays a session full-screen (the terminal's alternate screen, restored on quit). */
export async function runReplay(opts: RunReplayOptions): Promise<void> {
  const stdout = opts.stdout ?? process.stdout;
  const stdin = opts.stdin ?? process.stdin;
  stdout.write(ALT_SCREEN_ON);
  const restore = () => stdout.write(ALT_SCREEN_OFF);
  process.once("exit", restore);
  try {
    const app = render(
      h(
        ThemeContext.Provider,
        { value: makeTheme(opts.color ?? colorWanted()) },
        h(ReplayApp, { replay: opts.replay, autoplay: opts.autoplay ?? false }),
      ),
      { stdin, stdout, exitOnCtrlC: false, patchConsole: true },
    );
    await app.waitUntilExit();
    app.cleanup();
  } finally {
    process.off("exit", restore);
    restore();
  }
}
