/**
 * The ssh player, rendered by ink into a fake terminal (ink-testing-library): the terminal
 * screen re-created at the position (seeking across a clear, forward and back, a cursor move,
 * a resize), jumps between events, channels, cropping a screen larger than the terminal,
 * playing on the session's timing (the player's timers are the test's), and quitting.
 */
import { render } from "ink-testing-library";
import { createElement as h } from "react";
import { afterEach, describe, expect, it } from "vitest";
import type { SshEvent } from "../../../src/protocols/ssh/events.js";
import { buildSshReplay, type SshReplay } from "../../../src/replay/ssh-replay.js";
import { sshActionFor, sshHelp } from "../../../src/tui/replay/ssh-keys.js";
import {
  initialSshState,
  nextStop,
  reduceSsh,
  type SshPlayerState,
} from "../../../src/tui/replay/ssh-state.js";
import { SshReplayApp, type Schedule } from "../../../src/tui/replay/SshReplayApp.js";
import { ThemeContext, makeTheme } from "../../../src/tui/theme.js";
import { chainOf, sessionRecord, sshFixture } from "../../audit/protocol-replay-fixture.js";

const KEY = { left: "\x1b[D", right: "\x1b[C", tab: "\t", shiftTab: "\x1b[Z" };

let app: ReturnType<typeof render> | undefined;
afterEach(() => {
  app?.unmount();
  app = undefined;
});

/** The player's timers, run when the test says so. */
class ManualTimers {
  pending: { fn: () => void; ms: number }[] = [];
  schedule: Schedule = (fn, ms) => {
    const item = { fn, ms };
    this.pending.push(item);
    return () => {
      this.pending = this.pending.filter((p) => p !== item);
    };
  };
  /** The delay of the one timer waiting. */
  get delay(): number | undefined {
    return this.pending[this.pending.length - 1]?.ms;
  }
  fire(): void {
    const item = this.pending.pop();
    if (!item) throw new Error("no timer is waiting");
    item.fn();
  }
}

function fixture(): SshReplay {
  const f = sshFixture();
  return buildSshReplay(f.session, f.events);
}

function start(
  replay: SshReplay = fixture(),
  extra: { channel?: number; schedule?: Schedule } = {},
) {
  app = render(
    h(ThemeContext.Provider, { value: makeTheme(false) }, h(SshReplayApp, { replay, ...extra })),
  );
  return app;
}

/** Lets ink, React and the emulator (which parses on real timers) run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise((r) => setTimeout(r, 1));
}

async function frame(ok: (f: string) => boolean, what: string): Promise<string> {
  let last = "";
  for (let i = 0; i < 500; i++) {
    await settle();
    last = app?.lastFrame() ?? "";
    if (ok(last)) return last;
  }
  throw new Error(`timed out waiting for ${what}; last frame:\n${last}`);
}

const has =
  (...parts: string[]) =>
  (f: string) =>
    parts.every((p) => f.includes(p));
const lacks =
  (...parts: string[]) =>
  (f: string) =>
    parts.every((p) => !f.includes(p));
const press = async (s: string) => {
  app!.stdin.write(s);
  await settle();
};
/** The rows inside the screen's frame, without the border. */
const screenRows = (f: string) =>
  f
    .split("\n")
    .filter((l) => l.startsWith("│"))
    .map((l) => l.slice(1, l.lastIndexOf("│")).trimEnd());

describe("gw replay of an ssh session (ink)", () => {
  it("shows the session, its channels, the timeline and the shell's empty screen at the start", async () => {
    start();
    const f = await frame(has("+0.000s of +15.000s"), "the player");
    expect(f).toContain("gw replay session 5511a1e2 · Dana DBA on build-box (ssh) · OpenSSH_9.6");
    expect(f).toContain("❚❚ paused 1x");
    expect(f).toContain(
      "channels [0 shell xterm-256color 40×6 exit 0] · 1 exec · 2 exec ✕ · 3 sftp\n",
    );
    expect(f).toContain("┌─ channel 0 · shell 40×6 ─");
    expect(f).toContain(`└${"─".repeat(40)}┘`);
    expect(screenRows(f)).toEqual(["", "", "", "", "", ""]);
    expect(f).toContain("channel 0 opens at +0.100s");
    // The timeline: the position at the start, then the command, the refusal, sftp, a failure.
    const timeline = f.split("\n")[2]!;
    expect(timeline).toMatch(/^█─+•─+✕─+◆─+!─+✕─+✕─*$/);
    expect(f).toContain(
      "Space play/pause · ← → ±5 s · [ ] prev/next event · - + speed · g G start/end · Tab channel · q quit",
    );
  });

  it("seeks with the arrows: before the clear, after it (cursor move, resize), and back", async () => {
    start();
    await frame(has("+0.000s of"), "the player");
    await press(KEY.right);
    let f = await frame(has("+5.000s of"), "5 s");
    await frame(has("file-1"), "the screen at 5 s");
    f = app!.lastFrame()!;
    expect(screenRows(f)).toEqual(["A", "$ ls", "file-1  file-2", "$", "", ""]);
    await press(KEY.right);
    f = await frame(has("+10.000s of", "red"), "the screen at 10 s");
    // Cleared at 6 s, C put at row 3 column 10 at 7 s, resized to 30×4 at 9 s.
    expect(screenRows(f)).toEqual(["B", "", "         C", "red"]);
    expect(f).toContain("┌─ channel 0 · shell 30×4 ─");
    expect(f).toContain(`└${"─".repeat(30)}┘`);
    expect(f).toContain("+10.000s [1] exec make test");
    // Back to 5 s: the screen from before the clear, at its first size again.
    await press(KEY.left);
    f = await frame(has("+5.000s of", "file-1"), "back at 5 s");
    expect(screenRows(f)).toEqual(["A", "$ ls", "file-1  file-2", "$", "", ""]);
    expect(f).toContain("┌─ channel 0 · shell 40×6 ─");
    // Seeking stops at the ends.
    await press(KEY.left);
    await press(KEY.left);
    await frame(has("+0.000s of"), "the start");
    await press("G");
    f = await frame(has("+15.000s of +15.000s", "red"), "the end");
  });

  it("jumps between marked events with ] and [, and to the ends with g and G", async () => {
    start();
    await frame(has("+0.000s of"), "the player");
    await press("]");
    await frame(has("+10.000s of", "+10.000s [1] exec make test"), "the first event");
    await press("]");
    await frame(
      has("+11.500s of", "[2] exec sudo reboot BLOCKED: sudo needs a second pair of eyes"),
      "the blocked command",
    );
    await press("[");
    await frame(has("+10.000s of"), "back to the command");
    await press("G");
    await frame(has("+15.000s of"), "the end");
    await press("]");
    await frame(has("no later event"), "nothing after the end");
    await press("g");
    await frame(has("+0.000s of", "no event yet"), "the start");
  });

  it("changes channel with Tab: a command's output, and sftp's events", async () => {
    start();
    await frame(has("+0.000s of"), "the player");
    await press("G");
    await press(KEY.tab);
    let f = await frame(has("[1 exec make test exit 0]", "running 3 tests"), "channel 1");
    expect(f).toContain("channels 0 shell · [1 exec make test exit 0] · 2 exec ✕ · 3 sftp\n");
    expect(f).toContain("┌─ channel 1 · exec make test 80×24 ─");
    expect(screenRows(f).slice(0, 3)).toEqual(["running 3 tests", "ok", ""]);
    await press(KEY.tab);
    await press(KEY.tab);
    f = await frame(has("[3 sftp]", "its events so far"), "channel 3");
    expect(f).toContain("+12.500s  [3] sftp write /srv/dist.tgz (1.5 MiB)");
    expect(f).toContain("+13.000s  [3] sftp open /etc/shadow (read) failed: Permission denied");
    // Shift+Tab goes back; the shell's screen is still where it was.
    await press(KEY.shiftTab);
    await press(KEY.shiftTab);
    await press(KEY.shiftTab);
    f = await frame(has("[0 shell", "red"), "back to the shell");
  });

  it("starts on the channel asked for", async () => {
    start(fixture(), { channel: 1 });
    await frame(has("[1 exec make test exit 0]"), "channel 1 first");
  });

  it("crops a screen larger than the terminal around the cursor, and says so", async () => {
    const session = sessionRecord("ssh");
    const lines = Array.from({ length: 40 }, (_, i) => `line ${i + 1}`).join("\r\n");
    const events: SshEvent[] = [
      {
        kind: "shell",
        t: 0,
        channel: 0,
        pty: { term: "xterm", cols: 120, rows: 40 },
        decision: "allowed",
      },
      { kind: "output", t: 1, channel: 0, stream: "stdout", data: lines },
    ];
    start(buildSshReplay(session, chainOf(session, "ssh", events)));
    await press("G");
    const f = await frame(has("line 40"), "the big screen");
    // 100 columns and 24 rows: 98×15 cells fit; the rows around the cursor (on the last line).
    expect(f).toContain(
      "screen 120×40 cropped to 98×15 around the cursor: enlarge the terminal to see all of it",
    );
    const rows = screenRows(f);
    expect(rows).toHaveLength(15);
    expect(rows[0]).toBe("line 26");
    expect(rows[14]).toBe("line 40");
    expect(f).not.toContain("line 25\n");
  });

  it("plays on the session's timing: gaps divided by the speed, idle gaps shortened", async () => {
    const timers = new ManualTimers();
    start(fixture(), { schedule: timers.schedule });
    await frame(has("+0.000s of"), "the player");
    await press(" ");
    await frame(has("▶ playing 1x"), "playing");
    // The first output comes 0.1 s after the shell opens, 0.2 s into the session.
    expect(timers.delay).toBe(200);
    timers.fire();
    await frame(has("+0.200s of", "│A"), "the first output");
    expect(timers.delay).toBe(1800);
    timers.fire();
    await frame(has("+2.000s of", "file-1"), "the ls");
    // 4 s of idle before the clear: shortened to 3 s; at 2x, 1.5 s.
    expect(timers.delay).toBe(3000);
    await press("+");
    await frame(has("▶ playing 2x"), "2x");
    expect(timers.delay).toBe(1500);
    timers.fire();
    await frame(has("+6.000s of", "│B"), "the clear");
    // Space pauses: no timer waits.
    await press(" ");
    await frame(has("❚❚ paused 2x"), "paused");
    expect(timers.pending).toHaveLength(0);
    // At the end, playing stops by itself; Space there starts over.
    await press("G");
    await press(" ");
    await frame(has("▶ playing 2x", "+0.000s of"), "playing from the start");
  });

  it("stops at the end of the session", async () => {
    const timers = new ManualTimers();
    start(fixture(), { schedule: timers.schedule });
    await frame(has("+0.000s of"), "the player");
    await press("]");
    await press("]");
    await press("]");
    await press("]");
    await press("]");
    await press("]");
    await frame(has("+14.000s of"), "the last event");
    await press(" ");
    await frame(has("▶ playing"), "playing");
    // Nothing is marked after 14 s: the next stop is the end, at 15 s.
    expect(timers.delay).toBe(1000);
    timers.fire();
    const f = await frame(has("+15.000s of", "end of the session", "❚❚ paused"), "the end");
    expect(f).toContain("❚❚ paused 1x");
  });

  it("plays a session without channels (only a refused forward) as its timeline", async () => {
    const session = sessionRecord("ssh");
    const events: SshEvent[] = [
      {
        kind: "forward",
        t: 3,
        direction: "remote",
        host: "0.0.0.0",
        port: 8080,
        decision: "denied",
      },
    ];
    start(buildSshReplay(session, chainOf(session, "ssh", events)));
    await frame(has("This session opened no channels."), "the empty player");
    await press("]");
    await frame(has("+3.000s forward remote 0.0.0.0:8080 denied"), "the forward");
  });

  it("quits with q: keys do nothing more", async () => {
    start();
    await frame(has("+0.000s of"), "the player");
    await press("q");
    await press(KEY.right);
    await settle();
    expect(app!.lastFrame()).toContain("+0.000s of");
  });

  it("renders the same screen with colours on", async () => {
    app = render(
      h(ThemeContext.Provider, { value: makeTheme(true) }, h(SshReplayApp, { replay: fixture() })),
    );
    await frame(has("+0.000s of"), "the player");
    await press("G");
    const f = await frame(has("red", "+15.000s of"), "the end");
    expect(f).toContain("B");
    await frame(lacks("seeking…"), "the screen caught up");
  });
});

describe("ssh player state and keys", () => {
  const state = (over: Partial<SshPlayerState> = {}): SshPlayerState => ({
    ...initialSshState({
      durationMs: 15_000,
      markers: [10_000, 2000],
      channels: [0, 3],
      channel: 3,
    }),
    ...over,
  });

  it("maps keys from the table the help line is drawn from", () => {
    expect(sshActionFor(" ", {})).toEqual({ type: "togglePlay" });
    expect(sshActionFor("", { leftArrow: true })).toEqual({ type: "seek", byMs: -5000 });
    expect(sshActionFor("]", {})).toEqual({ type: "event", dir: 1 });
    expect(sshActionFor("", { tab: true })).toEqual({ type: "channel", by: 1 });
    expect(sshActionFor("", { tab: true, shift: true })).toEqual({ type: "channel", by: -1 });
    expect(sshActionFor("x", {})).toBeNull();
    expect(sshHelp().map((x) => x.keys)).toEqual(["Space", "← →", "[ ]", "- +", "g G", "Tab", "q"]);
  });

  it("seeks within the session, between events, and across channels", () => {
    let s = state();
    expect(s.channelIndex).toBe(1);
    expect(s.markers).toEqual([2000, 10_000]);
    s = reduceSsh(s, { type: "seek", byMs: -5000 });
    expect(s.positionMs).toBe(0);
    s = reduceSsh(s, { type: "event", dir: 1 });
    expect(s.positionMs).toBe(2000);
    s = reduceSsh(s, { type: "seek", byMs: 60_000 });
    expect(s.positionMs).toBe(15_000);
    s = reduceSsh(s, { type: "event", dir: -1 });
    expect(s.positionMs).toBe(10_000);
    s = reduceSsh(s, { type: "channel", by: 1 });
    expect(s.channelIndex).toBe(0);
    // Advancing only while playing.
    expect(reduceSsh(s, { type: "advance", toMs: 11_000 }).positionMs).toBe(10_000);
  });

  it("merges stops closer than a frame, and shortens idle gaps", () => {
    const stops = [100, 110, 120, 500, 60_000];
    expect(nextStop(stops, 0, 1)).toEqual({ delayMs: 100, toMs: 100 });
    // 110 and 120 come within one frame (33 ms) of 100: shown together.
    expect(nextStop(stops, 100, 1)).toEqual({ delayMs: 33, toMs: 120 });
    expect(nextStop(stops, 500, 1)).toEqual({ delayMs: 3000, toMs: 60_000 });
    expect(nextStop(stops, 500, 4)).toEqual({ delayMs: 750, toMs: 60_000 });
    expect(nextStop(stops, 60_000, 1)).toBeNull();
  });
});
