import { render } from "ink";
import { createElement as h } from "react";
import type { ApprovalsClient } from "../../tunnel/approvals-client.js";
import { ThemeContext, colorWanted, makeTheme } from "../theme.js";
import { ApproveApp } from "./ApproveApp.js";

export interface RunApproveOptions {
  client: ApprovalsClient;
  /** Colours; default: unless NO_COLOR is set or TERM is dumb. */
  color?: boolean;
  stdin?: NodeJS.ReadStream;
  stdout?: NodeJS.WriteStream;
}

const ALT_SCREEN_ON = "\x1b[?1049h";
const ALT_SCREEN_OFF = "\x1b[?1049l";

/**
 * Runs the approvals queue full-screen (the terminal's alternate screen, restored on quit)
 * until the user quits. Only the requests this person may decide are listed (scope mine).
 */
export async function runApprove(opts: RunApproveOptions): Promise<void> {
  const stdout = opts.stdout ?? process.stdout;
  const stdin = opts.stdin ?? process.stdin;
  const client = opts.client;
  stdout.write(ALT_SCREEN_ON);
  const restore = () => stdout.write(ALT_SCREEN_OFF);
  process.once("exit", restore);
  try {
    const app = render(
      h(
        ThemeContext.Provider,
        { value: makeTheme(opts.color ?? colorWanted()) },
        h(ApproveApp, {
          broker: client.url,
          watch: (handlers, signal) =>
            client.watch({
              scope: "mine",
              signal,
              onEvent: handlers.onEvent,
              onStatus: handlers.onStatus,
            }),
          decide: (cmd) =>
            cmd.decision === "approve"
              ? client.approve(cmd.id, {
                  statementHash: cmd.statementHash,
                  sessionId: cmd.sessionId,
                })
              : client.deny(cmd.id, {
                  reason: cmd.reason ?? "",
                  statementHash: cmd.statementHash,
                  sessionId: cmd.sessionId,
                }),
        }),
      ),
      { stdin, stdout, exitOnCtrlC: false, patchConsole: true },
    );
    // SIGTERM / SIGHUP (the terminal closed) end the UI the way q does, so the screen is
    // restored and the feed closed.
    const stop = () => app.unmount();
    process.once("SIGTERM", stop);
    process.once("SIGHUP", stop);
    try {
      await app.waitUntilExit();
    } finally {
      process.off("SIGTERM", stop);
      process.off("SIGHUP", stop);
      app.cleanup();
    }
  } finally {
    process.off("exit", restore);
    restore();
  }
}
