import { render } from "ink";
import { createElement as h, type ReactElement } from "react";
import type { Replay } from "../../audit/replay.js";
import type { HttpReplay } from "../../replay/http-replay.js";
import type { SshReplay } from "../../replay/ssh-replay.js";
import { ThemeContext, colorWanted, makeTheme } from "../theme.js";
import { HttpReplayApp } from "./HttpReplayApp.js";
import { ReplayApp } from "./ReplayApp.js";
import { SshReplayApp } from "./SshReplayApp.js";

/** What to play: a SQL session (the default), an ssh session's terminal, an http session's requests. */
export type Playable =
  | { replay: Replay; ssh?: undefined; http?: undefined }
  | { ssh: SshReplay; channel?: number; replay?: undefined; http?: undefined }
  | { http: HttpReplay; replay?: undefined; ssh?: undefined };

export type RunReplayOptions = Playable & {
  autoplay?: boolean;
  /** Colours; default: unless NO_COLOR is set or TERM is dumb. */
  color?: boolean;
  stdin?: NodeJS.ReadStream;
  stdout?: NodeJS.WriteStream;
};

const ALT_SCREEN_ON = "\x1b[?1049h";
const ALT_SCREEN_OFF = "\x1b[?1049l";

/** The player for what is played. */
export function playerFor(opts: RunReplayOptions): ReactElement {
  const autoplay = opts.autoplay ?? false;
  if (opts.ssh) {
    return h(SshReplayApp, {
      replay: opts.ssh,
      autoplay,
      ...("channel" in opts && opts.channel !== undefined ? { channel: opts.channel } : {}),
    });
  }
  if (opts.http) return h(HttpReplayApp, { replay: opts.http });
  return h(ReplayApp, { replay: opts.replay, autoplay });
}

/** Plays a session full-screen (the terminal's alternate screen, restored on quit). */
export async function runReplay(opts: RunReplayOptions): Promise<void> {
  const stdout = opts.stdout ?? process.stdout;
  const stdin = opts.stdin ?? process.stdin;
  stdout.write(ALT_SCREEN_ON);
  const restore = () => stdout.write(ALT_SCREEN_OFF);
  process.once("exit", restore);
  try {
    const app = render(
      h(ThemeContext.Provider, { value: makeTheme(opts.color ?? colorWanted()) }, playerFor(opts)),
      { stdin, stdout, exitOnCtrlC: false, patchConsole: true },
    );
    await app.waitUntilExit();
    app.cleanup();
  } finally {
    process.off("exit", restore);
    restore();
  }
}
