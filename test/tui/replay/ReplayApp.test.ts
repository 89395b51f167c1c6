/**
 * `gw replay`'s player, rendered by ink into a fake terminal (ink-testing-library): the
 * first statement with its decision and preview, stepping, playing and pausing on the
 * session's real timing (fake timers), speed, jumping to the ends, search with n/N, quitting.
 */
import { render } from "ink-testing-library";
import { createElement as h } from "react";
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import type { Replay } from "../../../src/audit/replay.js";
import { MemoryStore } from "../../../src/store/memory-store.js";
import { ReplayApp } from "../../../src/tui/replay/ReplayApp.js";
import { replayActionFor, replayHelp } from "../../../src/tui/replay/keys.js";
import { delayToNext, initialReplayState, reduce } from "../../../src/tui/replay/state.js";
import { ThemeContext, makeTheme } from "../../../src/tui/theme.js";
import { fixtureReplay, recordFixture } from "../../audit/replay-fixture.js";

const KEY = { left: "\x1b[D", right: "\x1b[C", enter: "\r", escape: "\x1b", backspace: "\x7f" };

let replay: Replay;
beforeAll(async () => {
  const store = new MemoryStore();
  await recordFixture(store);
  replay = await fixtureReplay(store);
});

let app: ReturnType<typeof render> | undefined;
afterEach(() => {
  app?.unmount();
  app = undefined;
  vi.useRealTimers();
});

function start(color = false) {
  app = render(h(ThemeContext.Provider, { value: makeTheme(color) }, h(ReplayApp, { replay })));
  return app;
}

/** Lets ink handle input and render (React schedules with setImmediate, which stays real). */
async function flush(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

async function frame(ok: (f: string) => boolean, what: string): Promise<string> {
  let last = "";
  for (let i = 0; i < 300; i++) {
    await flush();
    last = app?.lastFrame() ?? "";
    if (ok(last)) return last;
  }
  throw new Error(`timed out waiting for ${what}; last frame:\n${last}`);
}

const has =
  (...parts: string[]) =>
  (f: string) =>
    parts.every((p) => f.includes(p));
const press = async (s: string) => {
  app!.stdin.write(s);
  await flush();
};

describe("gw replay player (ink)", () => {
  beforeEach(() => {
    // Only the player's own timers are fake; ink and React keep theirs.
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
  });

  it("shows the session, the timeline and the first statement with its preview and badge", async () => {
    start();
    const f = await frame(has("statement 1/6"), "the first statement");
    expect(f).toContain("gw replay session 3f2c9a1e · Dana DBA on db-prod · psql · agent claude");
    expect(f).toContain("❚❚ paused 1x");
    expect(f).toContain("statement 1/6 · +1.200s of +15.021s · ended: client_closed");
    expect(f).toContain("#1 · +1.200s · 2.50 ms  [allowed]");
    expect(f).toContain("db-prod=> SELECT id, name, balance");
    expect(f).toContain("db-prod-> LIMIT 3;");
    expect(f).toContain(" 10 | carol |      -3");
    expect(f).toContain("(3 rows)");
    expect(f).toContain("Space play/pause · ← → step · - + speed · g G start/end · / search");
    expect(f).toContain("n N next/prev match · q quit");
    // The timeline: the current statement, the error, the blocked one and the approved one.
    const timeline = f.split("\n")[1]!;
    expect(timeline).toMatch(/^─*█─+•─+!─+✕─+✓─+✕─*$/);
  });

  it("steps with the arrow keys and jumps with g and G", async () => {
    start();
    await frame(has("statement 1/6"), "the first statement");
    await press(KEY.right);
    await press(KEY.right);
    let f = await frame(has("statement 3/6"), "statement 3");
    expect(f).toContain('ERROR:  relation "missing_table" does not exist');
    expect(f).toContain("SQLSTATE 42P01");
    await press(KEY.left);
    f = await frame(has("statement 2/6"), "statement 2");
    expect(f).toContain("INSERT 0 1");
    await press("G");
    f = await frame(has("statement 6/6"), "the last statement");
    expect(f).toContain("[DENIED by Dan Denier: not during business hours]");
    await press(KEY.right); // already at the end: stays
    expect(app!.lastFrame()).toContain("statement 6/6");
    await press("g");
    await frame(has("statement 1/6"), "back to the first");
  });

  it("plays on the session's timing, faster with +, and pauses with Space", async () => {
    start();
    await frame(has("statement 1/6"), "the first statement");
    await press(" ");
    await frame(has("▶ playing 1x"), "playing");
    // The INSERT came 2.503 s after the SELECT.
    vi.advanceTimersByTime(2400);
    await flush();
    expect(app!.lastFrame()).toContain("statement 1/6");
    vi.advanceTimersByTime(200);
    await frame(has("statement 2/6"), "the second statement after its gap");
    // Speed 4x: the next gap (0.802 s) takes about 0.2 s.
    await press("+");
    await press("+");
    await frame(has("▶ playing 4x"), "4x");
    vi.advanceTimersByTime(210);
    await frame(has("statement 3/6"), "the third statement at 4x");
    await press(" ");
    await frame(has("❚❚ paused 4x"), "paused");
    vi.advanceTimersByTime(60_000);
    await flush();
    expect(app!.lastFrame()).toContain("statement 3/6");
    // Down to the slowest and back.
    for (let i = 0; i < 8; i++) await press("-");
    await frame(has("❚❚ paused 0.25x"), "0.25x");
    for (let i = 0; i < 9; i++) await press("+");
    await frame(has("❚❚ paused 16x"), "16x");
  });

  it("plays to the end and stops there", async () => {
    start();
    await frame(has("statement 1/6"), "the first statement");
    await press("+"); // 2x
    await press(" ");
    for (let i = 0; i < 6; i++) {
      vi.advanceTimersByTime(3000);
      await flush();
    }
    const f = await frame(has("statement 6/6", "end of the session"), "the end");
    expect(f).toContain("❚❚ paused 2x");
  });

  it("searches with /, and moves between matches with n and N", async () => {
    start();
    await frame(has("statement 1/6"), "the first statement");
    await press("/");
    for (const c of "accounts") await press(c);
    await frame(has("/accounts"), "the search being typed");
    await press(KEY.enter);
    let f = await frame(has("match 1 of 2"), "the first match");
    expect(f).toContain("statement 1/6");
    await press("n");
    f = await frame(has("match 2 of 2"), "the second match");
    expect(f).toContain("statement 4/6");
    expect(f).toContain("db-prod=> DROP TABLE accounts;");
    await press("n");
    await frame(has("match 1 of 2 (wrapped)", "statement 1/6"), "wrapping to the first");
    await press("N");
    await frame(has("match 2 of 2 (wrapped)", "statement 4/6"), "wrapping back");
    // A search that finds nothing says so and stays put.
    await press("/");
    for (const c of "nope") await press(c);
    await press(KEY.enter);
    f = await frame(has("no statement matches “nope”"), "no match");
    expect(f).toContain("statement 4/6");
    // Esc while typing cancels; the text typed does not move anything.
    await press("/");
    await press("g");
    await frame(has("/g"), "typing g into the search");
    await press(KEY.escape);
    f = await frame((x) => !x.includes("/g"), "the search cancelled");
    expect(f).toContain("statement 4/6");
  });

  it("quits with q: the player is gone, keys do nothing more", async () => {
    start();
    await frame(has("statement 1/6"), "the first statement");
    await press("q");
    await press(KEY.right);
    await press(KEY.right);
    expect(app!.lastFrame()).toContain("statement 1/6");
  });
});

describe("replay state and keys", () => {
  it("maps keys per mode, from the one table the help line is drawn from", () => {
    expect(replayActionFor("normal", " ", {})).toEqual({ type: "togglePlay" });
    expect(replayActionFor("normal", "", { rightArrow: true })).toEqual({ type: "step", by: 1 });
    expect(replayActionFor("normal", "+", {})).toEqual({ type: "speed", by: 1 });
    expect(replayActionFor("normal", "N", {})).toEqual({ type: "nextMatch", dir: -1 });
    expect(replayActionFor("search", " ", {})).toEqual({ type: "input", text: " " });
    expect(replayActionFor("search", "q", {})).toEqual({ type: "input", text: "q" });
    expect(replayActionFor("search", "", { return: true })).toEqual({ type: "submitSearch" });
    expect(replayHelp("search").map((x) => x.help)).toEqual(["search", "cancel"]);
  });

  it("waits each gap divided by the speed, idle gaps shortened to 3 s", () => {
    const st = replay.statements;
    expect(delayToNext(st, 0, 1)).toBe(2503);
    expect(delayToNext(st, 0, 4)).toBeCloseTo(625.75);
    expect(delayToNext(st, 3, 1)).toBe(3000); // 4 s of idle, shortened
    expect(delayToNext(st, 5, 1)).toBeNull();
    let s = initialReplayState(st);
    s = reduce(s, { type: "togglePlay" });
    s = reduce(s, { type: "tick" });
    expect(s.index).toBe(1);
  });
});

describe("gw replay player with colours", () => {
  it("renders the same screen with colours on", async () => {
    start(true);
    const f = await frame(has("statement 1/6"), "the first statement");
    expect(f).toContain("db-prod=> SELECT id, name, balance");
    expect(f).toMatch(/2.50 ms +allowed/);
  });
});
