/**
 * `gw approve`'s screen, rendered by ink into a fake terminal (ink-testing-library): the
 * queue, moving, approving, denying with a reason typed inline, a request arriving live, the
 * empty state, refusals from the broker, the feed reconnecting, and a 60-column terminal.
 * The feed and the broker are fakes here; test/e2e/approve-tui.test.ts runs the real thing in
 * a real terminal.
 */
import { render } from "ink-testing-library";
import { createElement as h } from "react";
import { afterEach, describe, expect, it } from "vitest";
import type {
  ApprovalFeedEvent,
  ApprovalView,
  FeedStatus,
} from "../../src/tunnel/approvals-client.js";
import { ApproveApp, type FeedHandlers } from "../../src/tui/approve/ApproveApp.js";
import type { DecisionCommand } from "../../src/tui/approve/state.js";
import { ThemeContext, makeTheme } from "../../src/tui/theme.js";
import { T0, view } from "./fixtures.js";

const KEY = {
  up: "\x1b[A",
  down: "\x1b[B",
  enter: "\r",
  escape: "\x1b",
  backspace: "\x7f",
};

/** A feed the test drives: emit() and status() as the broker's stream would. */
class FakeFeed {
  handlers: FeedHandlers | undefined;
  signal: AbortSignal | undefined;
  watch = (handlers: FeedHandlers, signal: AbortSignal) => {
    this.handlers = handlers;
    this.signal = signal;
    return new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve()));
  };
  emit(e: ApprovalFeedEvent) {
    this.handlers!.onEvent(e);
  }
  status(s: FeedStatus) {
    this.handlers!.onStatus(s);
  }
}

/** The broker's decision endpoint: records commands, answers as told. */
class FakeBroker {
  commands: DecisionCommand[] = [];
  answer: (cmd: DecisionCommand) => Promise<ApprovalView> = () =>
    Promise.reject(new Error("no answer set"));
  decide = (cmd: DecisionCommand) => {
    this.commands.push(cmd);
    return this.answer(cmd);
  };
}

let clock = T0;
let app: ReturnType<typeof render> | undefined;

function start(opts: { color?: boolean } = {}) {
  const feed = new FakeFeed();
  const broker = new FakeBroker();
  app = render(
    h(
      ThemeContext.Provider,
      { value: makeTheme(opts.color ?? false) },
      h(ApproveApp, {
        broker: "https://gw.example.com",
        watch: feed.watch,
        decide: broker.decide,
        now: () => clock,
        tickMs: 20,
      }),
    ),
  );
  return { feed, broker, ui: app };
}

afterEach(() => {
  app?.unmount();
  app = undefined;
  clock = T0;
});

/** The latest frame once `ok` holds (ink renders asynchronously). */
async function frame(ok: (f: string) => boolean, what = "the expected screen"): Promise<string> {
  const deadline = Date.now() + 3000;
  let last = "";
  while (Date.now() < deadline) {
    last = app?.lastFrame() ?? "";
    if (ok(last)) return last;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}; last frame:\n${last}`);
}

async function until(what: string, ok: () => boolean): Promise<void> {
  const deadline = Date.now() + 3000;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const has =
  (...parts: string[]) =>
  (f: string) =>
    parts.every((p) => f.includes(p));
const lacks =
  (...parts: string[]) =>
  (f: string) =>
    parts.every((p) => !f.includes(p));
const type = async (s: string) => {
  app!.stdin.write(s);
  await new Promise((r) => setTimeout(r, 15));
};
const typeChars = async (s: string) => {
  for (const c of s) await type(c);
};

function approved(a: ApprovalView): ApprovalView {
  return {
    ...a,
    status: "approved",
    decisions: [
      { by: { oid: "oid-avery", name: "Avery" }, decision: "approve", reason: null, at: clock },
    ],
    viewer: { requester: false, canApprove: false, canDeny: false },
  };
}

describe("gw approve (ink)", () => {
  it("says what it is connecting to, then what it is waiting for when the queue is empty", async () => {
    const { feed } = start();
    await frame(has("Connecting to https://gw.example.com…"));
    feed.emit({ type: "snapshot", approvals: [] });
    feed.status({ state: "live" });
    const f = await frame(
      has("No requests waiting for you. Watching https://gw.example.com for new ones…"),
    );
    expect(f).toContain("● live");
    expect(f).toContain("0 waiting");
    expect(f).toContain("a approve");
    expect(f).toContain("q quit");
  });

  it("renders the queue with the detail pane of the selected request", async () => {
    const { feed } = start();
    const a = view({
      id: "3f2c9a1e",
      sql: "DELETE FROM orders",
      applicationName: "psql",
      agentLabel: "claude-code",
      expiresAt: T0 + 4 * 60_000 + 48_000,
      createdAt: T0 - 12_000,
    });
    feed.emit({ type: "snapshot", approvals: [a] });
    feed.status({ state: "live" });
    const f = await frame(has("3f2c9a1e", "DELETE FROM orders"));
    expect(f).toMatch(/› 3f2c9a1e Dana DBA \(user\)/);
    expect(f).toContain("db-prod");
    expect(f).toContain("12s");
    expect(f).toContain("4:48");
    expect(f).toContain("requester  Dana DBA · user · app psql · agent claude-code · oid oid-dana");
    expect(f).toContain("reason     a delete or update without WHERE needs an auditor");
    expect(f).toContain("rule       #2 bulk-writes");
    expect(f).toContain("approvers  0 of 1 approved · expires in 4:48 · group:audit");
    expect(f).toContain("2 earlier statements, oldest first:");
    expect(f).toContain("SELECT count(*) FROM orders");
    // The countdown follows the clock.
    clock += 10_000;
    await frame(has("4:38"), "the countdown to move");
    // Enter hides the details, and shows them again.
    await type(KEY.enter);
    await frame(lacks("requester  Dana DBA"), "the details to hide");
    await type(KEY.enter);
    await frame(has("requester  Dana DBA"), "the details to show");
  });

  it("moves with arrows and j/k, and approves the selected request bound to its statement", async () => {
    const { feed, broker } = start();
    const a = view({ id: "aaaa1111", sql: "DELETE FROM first", expiresAt: T0 + 60_000 });
    const b = view({ id: "bbbb2222", sql: "DELETE FROM second", expiresAt: T0 + 120_000 });
    feed.emit({ type: "snapshot", approvals: [a, b] });
    await frame(has("› aaaa1111"));
    await type("j");
    await frame(has("› bbbb2222", "  DELETE FROM second"));
    await type("k");
    await frame(has("› aaaa1111"));
    await type(KEY.down);
    await frame(has("› bbbb2222"));
    let release!: () => void;
    broker.answer = (cmd) =>
      new Promise((r) => (release = () => r(approved(cmd.id === b.id ? b : a))));
    await type("a");
    await frame(has("Approving bbbb2222…", "approve…"));
    await until("the decision to be sent", () => broker.commands.length > 0);
    expect(broker.commands).toEqual([
      {
        seq: 1,
        id: "bbbb2222",
        decision: "approve",
        statementHash: b.statementHash,
        sessionId: b.sessionId,
      },
    ]);
    release();
    const f = await frame(has("Approved bbbb2222; the statement runs now."));
    expect(f).not.toContain("bbbb2222 Dana");
    expect(f).toContain("› aaaa1111");
  });

  it("denies with a reason typed inline; Esc cancels; an empty reason is not sent", async () => {
    const { feed, broker } = start();
    const a = view({ id: "dddd4444", sql: "UPDATE accounts SET balance = 0" });
    feed.emit({ type: "snapshot", approvals: [a] });
    await frame(has("› dddd4444"));
    await type("d");
    await frame(has("Deny dddd4444 — reason:", "⏎ submit · Esc cancel"));
    await typeChars("nope");
    await frame(has("reason: nope"));
    await type(KEY.escape);
    await frame(lacks("Deny dddd4444"), "the input to close");
    expect(broker.commands).toEqual([]);
    await type("d");
    await frame(has("Deny dddd4444 — reason:"));
    await type(KEY.enter);
    await frame(has("A deny needs a reason"));
    expect(broker.commands).toEqual([]);
    broker.answer = () =>
      Promise.resolve({
        ...a,
        status: "denied",
        viewer: { requester: false, canApprove: false, canDeny: false },
      });
    await typeChars("use a WHERE, qx");
    for (let i = 0; i < 4; i++) await type(KEY.backspace);
    await type(KEY.enter);
    await frame(has("Denied dddd4444; the client gets your reason."));
    expect(broker.commands).toEqual([
      {
        seq: 1,
        id: "dddd4444",
        decision: "deny",
        reason: "use a WHERE",
        statementHash: a.statementHash,
        sessionId: a.sessionId,
      },
    ]);
    await frame(has("No requests waiting for you."));
  });

  it("shows a request arriving live, and one decided by someone else leaving", async () => {
    const { feed } = start();
    feed.emit({ type: "snapshot", approvals: [] });
    feed.status({ state: "live" });
    await frame(has("No requests waiting for you."));
    const a = view({ id: "live0001", sql: "TRUNCATE audit_log" });
    feed.emit({ type: "created", approval: a });
    let f = await frame(has("› live0001", "TRUNCATE audit_log"));
    expect(f).toContain("1 waiting");
    feed.emit({
      type: "decided",
      approval: approved(a),
      decision: approved(a).decisions[0]!,
    });
    f = await frame(has("Request live0001 was approved by Avery."));
    expect(f).toContain("No requests waiting for you.");
  });

  it("shows the broker's refusal in the status line", async () => {
    const { feed, broker } = start();
    const a = view({ id: "ssss5555" });
    feed.emit({ type: "snapshot", approvals: [a] });
    await frame(has("› ssss5555"));
    broker.answer = () =>
      Promise.reject(
        Object.assign(new Error("Avery is not one of the approvers of request ssss5555"), {
          code: "approval_not_approver",
          hint: "Its approvers are: group:audit.",
        }),
      );
    await type("a");
    const f = await frame(has("Could not approve ssss5555: Avery is not one of the approvers"));
    expect(f).toContain("› ssss5555");
  });

  it("filters with /, and Esc clears the filter", async () => {
    const { feed } = start();
    feed.emit({
      type: "snapshot",
      approvals: [
        view({ id: "ffff0001", sql: "DELETE FROM orders", expiresAt: T0 + 1000 }),
        view({
          id: "ffff0002",
          sql: "DELETE FROM carts",
          connection: "db-shop",
          expiresAt: T0 + 2000,
        }),
      ],
    });
    await frame(has("ffff0001", "ffff0002"));
    await type("/");
    await typeChars("shop");
    let f = await frame(has("Filter: shop", "1 of 2 waiting"));
    expect(f).not.toContain("ffff0001 ");
    await type(KEY.enter);
    f = await frame(has("› ffff0002", "Esc clear filter"));
    await type(KEY.escape);
    f = await frame(has("ffff0001", "2 waiting"));
    expect(f).not.toContain("clear filter");
  });

  it("says when the feed drops and that it is reconnecting", async () => {
    const { feed } = start();
    feed.emit({ type: "snapshot", approvals: [] });
    feed.status({ state: "live" });
    await frame(has("● live"));
    feed.status({
      state: "reconnecting",
      attempt: 2,
      retryAt: clock + 2000,
      reason: "connection refused",
    });
    const f = await frame(has("feed lost (connection refused); reconnecting in 2s"));
    expect(f).not.toContain("● live");
    feed.status({ state: "live" });
    await frame(has("● live"));
  });

  it("q quits and stops the feed", async () => {
    const { feed } = start();
    feed.emit({ type: "snapshot", approvals: [] });
    await frame(has("No requests waiting"));
    await type("q");
    await new Promise((r) => setTimeout(r, 50));
    expect(feed.signal?.aborted).toBe(true);
  });

  it("fits a 60-column terminal and follows resizes", async () => {
    const { feed, ui } = start();
    const a = view({
      id: "nnnn6666",
      sql: "DELETE FROM a_rather_long_table_name_that_will_not_fit_in_sixty_columns_at_all",
      requester: { oid: "oid-x", name: "Someone With A Long Name", type: "user" },
    });
    feed.emit({ type: "snapshot", approvals: [a] });
    feed.status({ state: "live" });
    await frame(has("› nnnn6666"));
    Object.defineProperty(ui.stdout, "columns", { value: 60, configurable: true });
    Object.defineProperty(ui.stdout, "rows", { value: 16, configurable: true });
    ui.stdout.emit("resize");
    const f = await frame(
      (f) => f.split("\n").every((l) => l.length <= 60) && f.includes("› nnnn6666"),
      "a 60-column frame",
    );
    const lines = f.split("\n");
    expect(lines.length).toBeLessThanOrEqual(15);
    expect(f).toContain("Someone With A Long");
    expect(f).toContain("a approve");
    // The statement wraps in the detail pane instead of being lost.
    expect(f).toContain("sixty_columns");
  });

  it("draws no colour when the theme is off (NO_COLOR)", async () => {
    const plain = start({ color: false });
    plain.feed.emit({ type: "snapshot", approvals: [view({ id: "cccc0001" })] });
    plain.feed.status({ state: "live" });
    const f = await frame(has("› cccc0001"));
    // eslint-disable-next-line no-control-regex
    expect(f).not.toMatch(/\x1b\[(3[0-9]|9[0-7])(;\d+)*m/);
  });
});
