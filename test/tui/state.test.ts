/**
 * The approvals queue's reducer on its own: what the feed does to the queue, moving, the
 * inline deny and filter inputs, and the decision round trip (queued command → answer).
 */
import { describe, expect, it } from "vitest";
import {
  decidable,
  initialState,
  reducer,
  selectedRequest,
  visibleRequests,
  type Action,
  type ApproveState,
} from "../../src/tui/approve/state.js";
import { T0, view } from "./fixtures.js";

const run = (s: ApproveState, ...actions: Action[]) => actions.reduce(reducer, s);

function loaded(...approvals: ReturnType<typeof view>[]): ApproveState {
  return run(initialState(T0), { type: "snapshot", approvals });
}

describe("the queue", () => {
  it("starts unloaded and connecting, with details shown", () => {
    const s = initialState(T0);
    expect(s).toMatchObject({
      loaded: false,
      requests: [],
      selectedId: null,
      showDetails: true,
      mode: "list",
      feed: { state: "connecting" },
    });
  });

  it("takes the snapshot's decidable requests, most urgent first, and selects the first", () => {
    const late = view({ id: "late0001", expiresAt: T0 + 600_000 });
    const soon = view({ id: "soon0001", expiresAt: T0 + 60_000 });
    const mine = view({
      id: "mine0001",
      viewer: { requester: true, canApprove: false, canDeny: true },
    });
    const notMine = view({
      id: "none0001",
      viewer: { requester: false, canApprove: false, canDeny: false },
    });
    const s = loaded(late, soon, mine, notMine);
    expect(s.loaded).toBe(true);
    expect(s.requests.map((a) => a.id)).toEqual(["soon0001", "late0001"]);
    expect(s.selectedId).toBe("soon0001");
  });

  it("an approver who has approved an N-of-M request does not see it again", () => {
    const done = view({
      minApprovals: 2,
      viewer: { requester: false, canApprove: false, canDeny: false },
    });
    expect(decidable(done)).toBe(false);
    expect(loaded(done).requests).toEqual([]);
  });

  it("adds a created request live, and selects it when the queue was empty", () => {
    const a = view({ id: "new00001" });
    const s = run(loaded(), { type: "event", event: { type: "created", approval: a } });
    expect(s.requests.map((x) => x.id)).toEqual(["new00001"]);
    expect(s.selectedId).toBe("new00001");
  });

  it("keeps the selection on the same request when another arrives ahead of it", () => {
    const a = view({ id: "aaaa0001", expiresAt: T0 + 300_000 });
    const b = view({ id: "bbbb0001", expiresAt: T0 + 10_000 });
    const s = run(loaded(a), { type: "event", event: { type: "created", approval: b } });
    expect(s.requests.map((x) => x.id)).toEqual(["bbbb0001", "aaaa0001"]);
    expect(s.selectedId).toBe("aaaa0001");
  });

  it("drops a request decided elsewhere, says who decided, and moves the selection to its place", () => {
    const a = view({ id: "aaaa0002", expiresAt: T0 + 1000 });
    const b = view({ id: "bbbb0002", expiresAt: T0 + 2000 });
    const c = view({ id: "cccc0002", expiresAt: T0 + 3000 });
    let s = run(loaded(a, b, c), { type: "move", by: 1 });
    expect(s.selectedId).toBe("bbbb0002");
    const decision = {
      by: { oid: "oid-bob", name: "Bob" },
      decision: "approve" as const,
      reason: null,
      at: T0,
    };
    s = run(s, {
      type: "event",
      event: {
        type: "decided",
        approval: {
          ...b,
          status: "approved",
          decisions: [decision],
          viewer: { requester: false, canApprove: false, canDeny: false },
        },
        decision,
      },
    });
    expect(s.requests.map((x) => x.id)).toEqual(["aaaa0002", "cccc0002"]);
    expect(s.selectedId).toBe("cccc0002");
    expect(s.message).toEqual({ kind: "info", text: "Request bbbb0002 was approved by Bob." });
  });

  it("says when a request expires or is cancelled", () => {
    const a = view({ id: "exp00001" });
    const gone = {
      ...a,
      status: "expired" as const,
      viewer: { requester: false, canApprove: false, canDeny: false },
    };
    let s = run(loaded(a), { type: "event", event: { type: "expired", approval: gone } });
    expect(s.requests).toEqual([]);
    expect(s.selectedId).toBeNull();
    expect(s.message?.text).toBe("Request exp00001 expired before anyone decided.");
    const b = view({ id: "can00001" });
    s = run(loaded(b), {
      type: "event",
      event: {
        type: "cancelled",
        approval: {
          ...b,
          status: "cancelled",
          statusDetail: "the requester disconnected",
          viewer: gone.viewer,
        },
      },
    });
    expect(s.message?.text).toBe("Request can00001 was cancelled (the requester disconnected).");
  });

  it("ignores events about requests it never listed and cannot decide", () => {
    const s0 = loaded(view());
    const other = view({
      status: "approved",
      viewer: { requester: false, canApprove: false, canDeny: false },
    });
    expect(run(s0, { type: "event", event: { type: "expired", approval: other } })).toBe(s0);
  });

  it("a new snapshot (after a reconnect) replaces the queue", () => {
    const a = view({ id: "old00001" });
    const b = view({ id: "new00002" });
    const s = run(loaded(a), { type: "snapshot", approvals: [b] });
    expect(s.requests.map((x) => x.id)).toEqual(["new00002"]);
    expect(s.selectedId).toBe("new00002");
  });

  it("records the feed status and the clock", () => {
    const s = run(
      initialState(T0),
      {
        type: "feed",
        status: {
          state: "reconnecting",
          attempt: 2,
          retryAt: T0 + 1000,
          reason: "connection refused",
        },
      },
      { type: "tick", now: T0 + 5000 },
    );
    expect(s.feed).toMatchObject({ state: "reconnecting", reason: "connection refused" });
    expect(s.now).toBe(T0 + 5000);
  });
});

describe("moving", () => {
  const three = () =>
    loaded(
      view({ id: "one00001", expiresAt: T0 + 1 }),
      view({ id: "two00001", expiresAt: T0 + 2 }),
      view({ id: "thr00001", expiresAt: T0 + 3 }),
    );

  it("moves within bounds", () => {
    let s = three();
    s = run(s, { type: "move", by: -1 });
    expect(s.selectedId).toBe("one00001");
    s = run(s, { type: "move", by: 1 }, { type: "move", by: 1 }, { type: "move", by: 1 });
    expect(s.selectedId).toBe("thr00001");
    s = run(s, { type: "moveTo", where: "first" });
    expect(s.selectedId).toBe("one00001");
    s = run(s, { type: "move", by: 10 });
    expect(s.selectedId).toBe("thr00001");
  });

  it("does nothing on an empty queue", () => {
    const s = loaded();
    expect(run(s, { type: "move", by: 1 })).toBe(s);
  });

  it("toggles the details", () => {
    const s = run(three(), { type: "toggleDetails" });
    expect(s.showDetails).toBe(false);
    expect(run(s, { type: "toggleDetails" }).showDetails).toBe(true);
  });
});

describe("approving", () => {
  it("queues an approve bound to the statement and session shown, marked in flight", () => {
    const a = view({ id: "appr0001" });
    const s = run(loaded(a), { type: "approve" });
    expect(s.outbox).toEqual([
      {
        seq: 1,
        id: "appr0001",
        decision: "approve",
        statementHash: a.statementHash,
        sessionId: a.sessionId,
      },
    ]);
    expect(s.inFlight).toEqual({ appr0001: "approve" });
    expect(s.message).toEqual({ kind: "info", text: "Approving appr0001…" });
    // A second `a` while the first is in flight sends nothing more.
    expect(run(s, { type: "approve" }).outbox).toHaveLength(1);
    const taken = run(s, { type: "commandsTaken", upTo: 1 });
    expect(taken.outbox).toEqual([]);
  });

  it("on success, leaves the queue and says the statement runs", () => {
    const a = view({ id: "appr0002" });
    const after = {
      ...a,
      status: "approved" as const,
      viewer: { requester: false, canApprove: false, canDeny: false },
    };
    const s = run(
      loaded(a),
      { type: "approve" },
      { type: "decisionSucceeded", id: a.id, decision: "approve", approval: after },
    );
    expect(s.requests).toEqual([]);
    expect(s.inFlight).toEqual({});
    expect(s.message).toEqual({
      kind: "success",
      text: "Approved appr0002; the statement runs now.",
    });
    // The feed's decided event for our own decision adds no second message.
    const s2 = run(run(loaded(a), { type: "approve" }), {
      type: "event",
      event: {
        type: "decided",
        approval: after,
        decision: { by: { oid: "me", name: "Me" }, decision: "approve", reason: null, at: T0 },
      },
    });
    expect(s2.message).toEqual({ kind: "info", text: "Approving appr0002…" });
  });

  it("counts N of M when more approvals are needed", () => {
    const a = view({ id: "nofm0001", minApprovals: 2 });
    const after = {
      ...a,
      decisions: [
        { by: { oid: "me", name: "Me" }, decision: "approve" as const, reason: null, at: T0 },
      ],
      viewer: { requester: false, canApprove: false, canDeny: false },
    };
    const s = run(
      loaded(a),
      { type: "approve" },
      { type: "decisionSucceeded", id: a.id, decision: "approve", approval: after },
    );
    expect(s.message?.text).toBe("Approved nofm0001 (1 of 2); waiting for 1 more.");
    expect(s.requests).toEqual([]);
  });

  it("shows the broker's refusal inline and keeps the request", () => {
    const a = view({ id: "self0001" });
    const s = run(
      loaded(a),
      { type: "approve" },
      {
        type: "decisionFailed",
        id: a.id,
        decision: "approve",
        code: "approval_self",
        message: "you cannot approve your own statement (request self0001)",
        hint: "Ask one of its approvers: group:audit.",
      },
    );
    expect(s.message).toEqual({
      kind: "error",
      text: "Could not approve self0001: you cannot approve your own statement (request self0001)",
      hint: "Ask one of its approvers: group:audit.",
    });
    expect(s.requests.map((x) => x.id)).toEqual(["self0001"]);
    expect(s.inFlight).toEqual({});
  });

  it("drops a request the broker says is no longer pending", () => {
    const a = view({ id: "gone0001" });
    const s = run(
      loaded(a),
      { type: "approve" },
      {
        type: "decisionFailed",
        id: a.id,
        decision: "approve",
        code: "approval_not_pending",
        message: "approval request gone0001 is already approved",
      },
    );
    expect(s.requests).toEqual([]);
    expect(s.message?.kind).toBe("error");
  });

  it("refuses locally when the viewer may only deny", () => {
    const a = view({
      id: "deny0001",
      viewer: { requester: false, canApprove: false, canDeny: true },
    });
    const s = run(loaded(a), { type: "approve" });
    expect(s.outbox).toEqual([]);
    expect(s.message?.text).toBe("You cannot approve deny0001; you may deny it.");
  });

  it("has nothing to approve on an empty queue", () => {
    expect(run(loaded(), { type: "approve" }).message?.text).toBe("Nothing to approve.");
  });
});

describe("denying with a reason", () => {
  it("opens the inline input, takes text and backspace, and sends the reason on submit", () => {
    const a = view({ id: "deny0002" });
    let s = run(loaded(a), { type: "denyStart" });
    expect(s.mode).toBe("deny");
    expect(s.denyFor).toBe("deny0002");
    s = run(
      s,
      { type: "input", text: "use a WHERX" },
      { type: "backspace" },
      { type: "input", text: "E\n" },
    );
    expect(s.draft).toBe("use a WHERE");
    s = run(s, { type: "submitInput" });
    expect(s.mode).toBe("list");
    expect(s.outbox).toEqual([
      {
        seq: 1,
        id: "deny0002",
        decision: "deny",
        reason: "use a WHERE",
        statementHash: a.statementHash,
        sessionId: a.sessionId,
      },
    ]);
    const after = {
      ...a,
      status: "denied" as const,
      viewer: { requester: false, canApprove: false, canDeny: false },
    };
    s = run(s, { type: "decisionSucceeded", id: a.id, decision: "deny", approval: after });
    expect(s.message).toEqual({
      kind: "success",
      text: "Denied deny0002; the client gets your reason.",
    });
    expect(s.requests).toEqual([]);
  });

  it("does not send an empty reason", () => {
    const s = run(
      loaded(view()),
      { type: "denyStart" },
      { type: "input", text: "   " },
      { type: "submitInput" },
    );
    expect(s.mode).toBe("deny");
    expect(s.outbox).toEqual([]);
    expect(s.message?.text).toBe("A deny needs a reason: type why, then Enter (Esc cancels).");
  });

  it("Esc cancels without sending", () => {
    const s = run(
      loaded(view()),
      { type: "denyStart" },
      { type: "input", text: "no" },
      { type: "cancelInput" },
    );
    expect(s).toMatchObject({ mode: "list", denyFor: null, draft: "", outbox: [] });
  });

  it("keys typed while denying are text, not commands", () => {
    const s = run(
      loaded(view()),
      { type: "denyStart" },
      { type: "input", text: "q" },
      { type: "input", text: "a" },
    );
    expect(s.draft).toBe("qa");
    expect(s.outbox).toEqual([]);
  });

  it("closes the input when the request is decided elsewhere while the reason is typed", () => {
    const a = view({ id: "race0001" });
    const gone = {
      ...a,
      status: "expired" as const,
      viewer: { requester: false, canApprove: false, canDeny: false },
    };
    const s = run(
      loaded(a),
      { type: "denyStart" },
      { type: "input", text: "hmm" },
      {
        type: "event",
        event: { type: "expired", approval: gone },
      },
    );
    expect(s.mode).toBe("list");
    expect(s.outbox).toEqual([]);
    expect(s.message?.text).toBe(
      "Request race0001 expired before anyone decided. Your deny was not sent.",
    );
  });
});

describe("filtering", () => {
  const queue = () =>
    loaded(
      view({ id: "f0000001", sql: "DELETE FROM orders", expiresAt: T0 + 1 }),
      view({
        id: "f0000002",
        sql: "UPDATE users SET x = 1",
        connection: "db-users",
        expiresAt: T0 + 2,
      }),
      view({
        id: "f0000003",
        sql: "DELETE FROM carts",
        requester: { oid: "o", name: "Robo Agent", type: "app" },
        expiresAt: T0 + 3,
      }),
    );

  it("filters live by sql, requester and connection, case-insensitively", () => {
    let s = run(queue(), { type: "filterStart" }, { type: "input", text: "ROBO" });
    expect(visibleRequests(s).map((a) => a.id)).toEqual(["f0000003"]);
    expect(s.selectedId).toBe("f0000003");
    s = run(s, { type: "submitInput" });
    expect(s.filter).toBe("ROBO");
    expect(s.mode).toBe("list");
    s = run(
      s,
      { type: "filterStart" },
      { type: "backspace" },
      { type: "backspace" },
      { type: "backspace" },
      { type: "backspace" },
      { type: "input", text: "db-users" },
      { type: "submitInput" },
    );
    expect(visibleRequests(s).map((a) => a.id)).toEqual(["f0000002"]);
    s = run(s, { type: "filterStart" });
    expect(s.draft).toBe("db-users");
  });

  it("Esc while typing restores the previous filter; Esc in the list clears it", () => {
    let s = run(
      queue(),
      { type: "filterStart" },
      { type: "input", text: "carts" },
      { type: "submitInput" },
    );
    s = run(s, { type: "filterStart" }, { type: "input", text: "zzz" }, { type: "cancelInput" });
    expect(s.filter).toBe("carts");
    expect(visibleRequests(s).map((a) => a.id)).toEqual(["f0000003"]);
    s = run(s, { type: "clearFilter" });
    expect(visibleRequests(s)).toHaveLength(3);
  });

  it("approves only what is shown", () => {
    const s = run(
      queue(),
      { type: "filterStart" },
      { type: "input", text: "nothing matches" },
      { type: "submitInput" },
      { type: "approve" },
    );
    expect(selectedRequest(s)).toBeNull();
    expect(s.outbox).toEqual([]);
  });
});

describe("keys through the reducer", () => {
  const key = (input: string, k: Record<string, boolean> = {}): Action => ({
    type: "key",
    input,
    key: k,
  });

  it("maps keys with the mode current at that moment: d then text is a reason", () => {
    const s = run(loaded(view({ id: "keys0001" })), key("d"), key("n"), key("o"), key("q"));
    expect(s.mode).toBe("deny");
    expect(s.draft).toBe("noq");
    expect(s.quit).toBe(false);
    const sent = run(s, key("", { return: true }));
    expect(sent.outbox.map((c) => [c.decision, c.reason])).toEqual([["deny", "noq"]]);
  });

  it("j/k and arrows move, Enter toggles details, / filters, q and Ctrl+C quit", () => {
    const s0 = loaded(
      view({ id: "k0000001", expiresAt: T0 + 1 }),
      view({ id: "k0000002", expiresAt: T0 + 2 }),
    );
    expect(run(s0, key("j")).selectedId).toBe("k0000002");
    expect(run(s0, key("", { downArrow: true }), key("", { upArrow: true })).selectedId).toBe(
      "k0000001",
    );
    expect(run(s0, key("", { return: true })).showDetails).toBe(false);
    expect(run(s0, key("/")).mode).toBe("filter");
    expect(run(s0, key("q")).quit).toBe(true);
    expect(run(s0, key("c", { ctrl: true })).quit).toBe(true);
    expect(run(s0, key("x"))).toBe(s0);
  });

  it("Backspace arrives as DEL (ink's delete) and still deletes", () => {
    const s = run(loaded(view()), key("/"), key("a"), key("b"), key("", { delete: true }));
    expect(s.draft).toBe("a");
  });
});

describe("keys arriving together in one read", () => {
  it("are taken one by one: d, the reason and Enter deny", () => {
    const a = view({ id: "fast0001" });
    const s = run(loaded(a), { type: "key", input: "duse a WHERE\r", key: {} });
    expect(s.mode).toBe("list");
    expect(s.outbox.map((c) => [c.id, c.decision, c.reason])).toEqual([
      ["fast0001", "deny", "use a WHERE"],
    ]);
  });

  it("a paste into the filter is text, and DEL in a batch deletes", () => {
    const s = run(
      loaded(view()),
      { type: "key", input: "/", key: {} },
      { type: "key", input: "orderx\x7f", key: {} },
    );
    expect(s.draft).toBe("order");
  });
});
