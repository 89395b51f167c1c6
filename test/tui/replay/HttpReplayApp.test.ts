/**
 * The http player, rendered by ink into a fake terminal: the request list, selecting, a
 * request's details with its masked bodies, scrolling them, moving between requests in the
 * details, back to the list, quitting.
 */
import { render } from "ink-testing-library";
import { createElement as h } from "react";
import { afterEach, describe, expect, it } from "vitest";
import { buildHttpReplay, type HttpReplay } from "../../../src/replay/http-replay.js";
import {
  httpActionFor,
  httpHelp,
  initialHttpState,
  reduceHttp,
} from "../../../src/tui/replay/http-state.js";
import { HttpReplayApp } from "../../../src/tui/replay/HttpReplayApp.js";
import { ThemeContext, makeTheme } from "../../../src/tui/theme.js";
import {
  chainOf,
  httpFixture,
  request,
  sessionRecord,
} from "../../audit/protocol-replay-fixture.js";

const KEY = {
  up: "\x1b[A",
  down: "\x1b[B",
  right: "\x1b[C",
  left: "\x1b[D",
  enter: "\r",
  escape: "\x1b",
};

let app: ReturnType<typeof render> | undefined;
afterEach(() => {
  app?.unmount();
  app = undefined;
});

function fixture(): HttpReplay {
  const f = httpFixture();
  return buildHttpReplay(f.session, f.events);
}

function start(replay: HttpReplay = fixture(), color = false) {
  app = render(h(ThemeContext.Provider, { value: makeTheme(color) }, h(HttpReplayApp, { replay })));
  return app;
}

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

describe("gw replay of an http session (ink)", () => {
  it("lists the requests: time, method, status, decision, duration, size, path", async () => {
    start();
    const f = await frame(has("request 1/5"), "the list");
    expect(f).toContain("gw replay session 4477a1e2 · Dana DBA on billing-api (http) · curl/8.5.0");
    expect(f).toContain("request 1/5 · +0.500s of +16.000s · ended: client_closed");
    expect(f).toContain("     #  time      method   status decision   duration      size  path");
    expect(f).toContain(
      "›    1  +0.500s   GET      200    allowed     12.0 ms      61 B  /invoices/42?expand=lines",
    );
    expect(f).toContain(
      "     3  +4.000s   DELETE   403    BLOCKED     0.00 ms       0 B  /invoices/locked/7",
    );
    expect(f).toContain("     5  +8.000s   WS       101    allowed      3.00 s   4.3 KiB  /live");
    expect(f).toContain("↑ ↓ select · PgUp PgDn page · g G first/last · ⏎ → details · q quit");
  });

  it("opens a request's details with Enter, and goes back with Esc", async () => {
    start();
    await frame(has("request 1/5"), "the list");
    await press(KEY.down);
    await press(KEY.down);
    await frame(has("›    3"), "the third request selected");
    await press(KEY.enter);
    let f = await frame(has("#3 DELETE /invoices/locked/7"), "the details");
    expect(f).toContain("status      403 Forbidden");
    expect(f).toContain("decision    BLOCKED");
    expect(f).toContain("reason      gw: blocked by rule 1 of billing-api: locked invoices stay");
    expect(f).toContain("Esc ← list");
    await press(KEY.escape);
    f = await frame(has("›    3", "method"), "the list again");
    // → opens too; ] moves to the next request's details, [ back.
    await press(KEY.right);
    await press("]");
    f = await frame(has("#4 GET /reports/slow"), "the next request's details");
    expect(f).toContain("error       the target did not answer in 10 s");
    await press("[");
    await press("[");
    f = await frame(has("#2 POST /invoices"), "two back");
    expect(f).toContain('    "amount": "9.99"');
    expect(f).toContain("  created␛[2J");
    await press(KEY.left);
    await frame(has("›    2"), "the list, on the request shown");
  });

  it("scrolls a long body, and says which lines it shows", async () => {
    const session = sessionRecord("http");
    const body = JSON.stringify({ items: Array.from({ length: 40 }, (_, i) => ({ n: i })) });
    const replay = buildHttpReplay(
      session,
      chainOf(session, "http", [
        request({
          t: 1,
          seq: 1,
          path: "/items",
          responseBody: body,
          responseContentType: "application/json",
        }),
      ]),
    );
    start(replay);
    await frame(has("request 1/1"), "the list");
    await press(KEY.enter);
    let f = await frame(has("#1 GET /items"), "the details");
    expect(f).toMatch(/lines 1–19 of \d+/);
    expect(f).not.toContain('"n": 39');
    await press(" ");
    f = await frame(has("lines 20–"), "a page down");
    await press(KEY.down);
    f = await frame(has("lines 21–"), "a line down");
    await press("G");
    f = await frame(has('"n": 39'), "the end of the body");
    const shown = /lines (\d+)–(\d+) of (\d+)/.exec(f)!;
    expect(shown[2]).toBe(shown[3]);
    // Up from the very end moves at once (no scrolling past the end to undo).
    await press(KEY.up);
    await frame((x) => !x.includes(`lines ${shown[1]}–`), "one line up");
  });

  it("says so when the session made no requests", async () => {
    start(buildHttpReplay(sessionRecord("http"), []));
    const f = await frame(has("This session made no requests."), "the empty list");
    expect(f).toContain("no requests · ended: client_closed");
    await press(KEY.enter);
    expect(app!.lastFrame()).toContain("This session made no requests.");
  });

  it("quits with q", async () => {
    start();
    await frame(has("request 1/5"), "the list");
    await press("q");
    await press(KEY.down);
    expect(app!.lastFrame()).toContain("request 1/5");
  });

  it("renders with colours on", async () => {
    start(fixture(), true);
    const f = await frame(has("request 1/5"), "the list");
    expect(f).toContain("/invoices/locked/7");
  });
});

describe("http player state", () => {
  it("selects within the list, pages, and clamps scrolling to the details' length", () => {
    let s = initialHttpState(30);
    s = reduceHttp(s, { type: "page", dir: 1 }, { page: 10, maxScroll: 0 });
    expect(s.selected).toBe(10);
    s = reduceHttp(s, { type: "jump", where: "end" });
    expect(s.selected).toBe(29);
    s = reduceHttp(s, { type: "move", by: 1 });
    expect(s.selected).toBe(29);
    s = reduceHttp(s, { type: "open" });
    s = reduceHttp(s, { type: "page", dir: 1 }, { page: 10, maxScroll: 4 });
    expect(s.scroll).toBe(4);
    s = reduceHttp(s, { type: "request", by: -1 });
    expect([s.selected, s.scroll, s.view]).toEqual([28, 0, "detail"]);
    expect(httpActionFor("detail", "", { escape: true })).toEqual({ type: "back" });
    expect(httpActionFor("list", "", { return: true })).toEqual({ type: "open" });
    expect(httpHelp("detail").map((x) => x.help)).toEqual([
      "scroll",
      "page",
      "top/bottom",
      "prev/next request",
      "list",
      "quit",
    ]);
  });
});
