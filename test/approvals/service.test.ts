import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { statementHash } from "../../src/approvals/rules.js";
import {
  ApprovalService,
  type ApprovalEvent,
  type ApprovalOutcome,
} from "../../src/approvals/service.js";
import { GwError, isGwError } from "../../src/errors.js";
import { MemoryStore } from "../../src/store/memory-store.js";
import { storeWriteFailed } from "../../src/store/errors.js";
import { SqliteStore } from "../../src/store/sqlite-store.js";
import type { SessionStore } from "../../src/store/types.js";
import { approvalRecord } from "../store/store-suite.js";
import { alice, auditor, bob, carol, dave, guard, params, robot } from "./fixtures.js";

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (isGwError(err)) return err.code;
    throw err;
  }
  throw new Error("expected a rejection");
}

/** The outcome, or "waiting" if the promise has not settled within a few ticks. */
async function peek(p: Promise<ApprovalOutcome>): Promise<ApprovalOutcome | "waiting"> {
  const waiting = new Promise<"waiting">((r) => setTimeout(() => r("waiting"), 20));
  return Promise.race([p, waiting]);
}

const stores: [string, () => SessionStore][] = [
  ["memory", () => new MemoryStore()],
  ["sqlite", () => SqliteStore.open(":memory:")],
];

describe.each(stores)("ApprovalService (%s store)", (_name, makeStore) => {
  let store: SessionStore;
  let service: ApprovalService;
  let events: ApprovalEvent[];
  let errors: unknown[];

  beforeEach(() => {
    store = makeStore();
    errors = [];
    service = new ApprovalService(store, { onError: (err) => errors.push(err) });
    events = [];
    service.subscribe((e) => events.push(e));
  });
  afterEach(async () => {
    await service.close();
    await store.close();
  });

  it("records a pending request and releases the statement when an approver approves", async () => {
    const held = await service.request(params({ contextStatements: ["BEGIN"] }));
    expect(held.id).toMatch(/^[0-9a-f]{8}$/);
    expect(held.approval).toMatchObject({
      status: "pending",
      sessionId: "session-1",
      requester: { oid: "oid-alice", name: "alice", type: "user" },
      statementHash: statementHash("DELETE FROM orders WHERE id = 42"),
      minApprovals: 1,
      contextStatements: ["BEGIN"],
    });
    expect(held.approval.expiresAt - held.approval.createdAt).toBe(60_000);
    expect(held.approval.requester).not.toHaveProperty("groups");
    expect(await store.getApproval(held.id)).toEqual(held.approval);
    expect(await peek(held.wait)).toBe("waiting");

    const after = await service.decide(held.id, bob, "approve", "  checked the WHERE clause  ");
    expect(after.status).toBe("approved");
    expect(after.decisions).toEqual([
      {
        by: { oid: "oid-bob", name: "bob" },
        decision: "approve",
        reason: "checked the WHERE clause",
        at: after.decidedAt,
      },
    ]);
    const outcome = await held.wait;
    expect(outcome.status).toBe("approved");
    expect(outcome.approval).toEqual(after);
    expect(events.map((e) => e.type)).toEqual(["created", "decided"]);
    expect(service.heldCount).toBe(0);
  });

  it("never lets the requester approve their own statement, even as an approver", async () => {
    const held = await service.request(params());
    const err = await service.decide(held.id, alice, "approve").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GwError);
    expect((err as GwError).code).toBe("approval_self");
    expect((err as GwError).hint).toMatch(/group:dba/);
    expect((await store.getApproval(held.id))?.decisions).toEqual([]);
    expect(await peek(held.wait)).toBe("waiting");
  });

  it("lets the requester withdraw their own request by denying it", async () => {
    const held = await service.request(params());
    await service.decide(held.id, alice, "deny", "wrong table, sorry");
    const outcome = await held.wait;
    expect(outcome).toMatchObject({
      status: "denied",
      reason: "wrong table, sorry",
      by: { oid: "oid-alice", name: "alice" },
    });
  });

  it("refuses someone who is not an approver", async () => {
    const held = await service.request(params());
    expect(await codeOf(service.decide(held.id, dave, "approve"))).toBe("approval_not_approver");
    expect(await codeOf(service.decide(held.id, dave, "deny", "no"))).toBe("approval_not_approver");
    expect(await codeOf(service.decide(held.id, auditor, "approve"))).toBe("approval_not_approver");
    expect(await peek(held.wait)).toBe("waiting");
  });

  it("refuses an app that matches only through a group or role, and accepts one named as app:<oid>", async () => {
    const held = await service.request(
      params({ approvers: ["group:dba", "role:Approver", "app:oid-guard"] }),
    );
    expect(await codeOf(service.decide(held.id, robot, "approve"))).toBe(
      "approval_app_not_allowed",
    );
    expect(await codeOf(service.decide(held.id, robot, "deny", "bot says no"))).toBe(
      "approval_app_not_allowed",
    );
    const other = await service.request(params({ approvers: ["group:ops"] }));
    expect(await codeOf(service.decide(other.id, robot, "approve"))).toBe("approval_not_approver");

    await service.decide(held.id, guard, "approve");
    expect((await held.wait).status).toBe("approved");
  });

  it("matches approvers by group, role and user", async () => {
    const byRole = await service.request(params({ approvers: ["role:Approver"] }));
    expect(await codeOf(service.decide(byRole.id, bob, "approve"))).toBe("approval_not_approver");
    await service.decide(byRole.id, carol, "approve");
    expect((await byRole.wait).status).toBe("approved");
    const byUser = await service.request(params({ approvers: ["user:oid-dave"] }));
    await service.decide(byUser.id, dave, "approve");
    expect((await byUser.wait).status).toBe("approved");
  });

  it("needs N distinct approvers: the same person twice counts once", async () => {
    const held = await service.request(params({ minApprovals: 2 }));
    const first = await service.decide(held.id, bob, "approve");
    expect(first.status).toBe("pending");
    expect(await peek(held.wait)).toBe("waiting");
    expect(await codeOf(service.decide(held.id, bob, "approve"))).toBe("approval_duplicate");
    expect(await codeOf(service.decide(held.id, bob, "deny", "changed my mind"))).toBe(
      "approval_duplicate",
    );
    const second = await service.decide(held.id, carol, "approve");
    expect(second.status).toBe("approved");
    expect(second.decisions.map((d) => d.by.oid)).toEqual(["oid-bob", "oid-carol"]);
    expect((await held.wait).status).toBe("approved");
    expect(events.map((e) => [e.type, e.approval.status])).toEqual([
      ["created", "pending"],
      ["decided", "pending"],
      ["decided", "approved"],
    ]);
  });

  it("denies on any single deny, after approvals too", async () => {
    const held = await service.request(params({ minApprovals: 2 }));
    await service.decide(held.id, bob, "approve");
    await service.decide(held.id, carol, "deny", "not during month-end close");
    const outcome = await held.wait;
    expect(outcome).toMatchObject({
      status: "denied",
      reason: "not during month-end close",
      by: { oid: "oid-carol", name: "carol" },
    });
    expect(await codeOf(service.decide(held.id, guard, "approve"))).toBe("approval_not_pending");
  });

  it("wants a reason for a deny, and not an endless one", async () => {
    const held = await service.request(params());
    expect(await codeOf(service.decide(held.id, bob, "deny"))).toBe("approval_reason_required");
    expect(await codeOf(service.decide(held.id, bob, "deny", "   "))).toBe(
      "approval_reason_required",
    );
    expect(await codeOf(service.decide(held.id, bob, "deny", "x".repeat(1001)))).toBe(
      "approval_reason_too_long",
    );
    expect((await store.getApproval(held.id))?.decisions).toEqual([]);
    const ok = await service.decide(held.id, bob, "approve", "");
    expect(ok.decisions[0]!.reason).toBeNull();
  });

  it("refuses a second decision on a decided request, and keeps the first outcome", async () => {
    const held = await service.request(params());
    await service.decide(held.id, bob, "approve");
    expect(await codeOf(service.decide(held.id, carol, "deny", "too late"))).toBe(
      "approval_not_pending",
    );
    expect(await codeOf(service.decide(held.id, bob, "approve"))).toBe("approval_not_pending");
    expect(await service.cancel(held.id, "client disconnected")).toBe(false);
    expect((await held.wait).status).toBe("approved");
    expect((await store.getApproval(held.id))?.status).toBe("approved");
  });

  it("lets exactly one of two racing approvers decide", async () => {
    const held = await service.request(params());
    const results = await Promise.allSettled([
      service.decide(held.id, bob, "approve"),
      service.decide(held.id, carol, "deny", "no"),
    ]);
    expect(results.map((r) => r.status).sort()).toEqual(["fulfilled", "rejected"]);
    const stored = await store.getApproval(held.id);
    expect(stored?.decisions).toHaveLength(1);
    expect((await held.wait).status).toBe(stored?.status);
  });

  it("expires a request nobody decides in time, and refuses decisions after", async () => {
    const held = await service.request(params({ timeoutMs: 40 }));
    const outcome = await held.wait;
    expect(outcome.status).toBe("expired");
    const stored = await store.getApproval(held.id);
    expect(stored).toMatchObject({ status: "expired", decisions: [] });
    expect(stored!.decidedAt).toBeGreaterThanOrEqual(stored!.expiresAt);
    expect(stored!.statusDetail).toMatch(/no decision/);
    expect(events.map((e) => e.type)).toEqual(["created", "expired"]);
    expect(await codeOf(service.decide(held.id, bob, "approve"))).toBe("approval_not_pending");
  });

  it("cancels when the requester goes away, once", async () => {
    const held = await service.request(params());
    expect(await service.cancel(held.id, "client disconnected")).toBe(true);
    expect(await held.wait).toMatchObject({ status: "cancelled", reason: "client disconnected" });
    expect(await service.cancel(held.id, "again")).toBe(false);
    expect(await service.cancel("nope0000", "unknown")).toBe(false);
    expect(await codeOf(service.decide(held.id, bob, "approve"))).toBe("approval_not_pending");
    expect((await store.getApproval(held.id))?.statusDetail).toBe("client disconnected");
    expect(events.map((e) => e.type)).toEqual(["created", "cancelled"]);
  });

  it("cancels when the request's signal aborts, already aborted or later", async () => {
    const ac = new AbortController();
    const held = await service.request(params({ signal: ac.signal }));
    ac.abort("client closed the tunnel");
    expect(await held.wait).toMatchObject({
      status: "cancelled",
      reason: "client closed the tunnel",
    });

    const early = new AbortController();
    early.abort();
    const held2 = await service.request(params({ signal: early.signal }));
    expect(await held2.wait).toMatchObject({
      status: "cancelled",
      reason: "the requester disconnected",
    });
  });

  it("binds a decision to the statement and session it was made on", async () => {
    const held = await service.request(params());
    const wrongHash = statementHash("DELETE FROM orders");
    expect(
      await codeOf(service.decide(held.id, bob, "approve", null, { statementHash: wrongHash })),
    ).toBe("approval_statement_mismatch");
    expect(
      await codeOf(service.decide(held.id, bob, "approve", null, { sessionId: "session-2" })),
    ).toBe("approval_statement_mismatch");
    await service.decide(held.id, bob, "approve", null, {
      statementHash: held.approval.statementHash.toUpperCase(),
      sessionId: "session-1",
    });
    expect((await held.wait).status).toBe("approved");
  });

  it("answers approval_not_found for an unknown id", async () => {
    expect(await codeOf(service.decide("nope0000", bob, "approve"))).toBe("approval_not_found");
  });

  it("lists what an identity may act on, and everything for auditors", async () => {
    const dba = await service.request(params());
    const ops = await service.request(params({ approvers: ["group:ops"], requester: dave }));
    const done = await service.request(params());
    await service.decide(done.id, bob, "approve");
    const ids = async (...args: Parameters<ApprovalService["listFor"]>) =>
      (await service.listFor(...args)).map((a) => a.id);

    expect(await ids(bob)).toEqual([dba.id]);
    expect(await ids(alice)).toEqual([dba.id]); // her own, which she may withdraw
    expect(await ids(dave)).toEqual([ops.id]); // his own
    expect(await ids(robot)).toEqual([]); // apps see only what names them
    expect(await ids(guard)).toEqual([dba.id]);
    expect(await ids(auditor)).toEqual([]);
    expect(await ids(auditor, { all: true })).toEqual([ops.id, dba.id]);
    expect(await ids(auditor, { all: true, status: "all" })).toEqual([done.id, ops.id, dba.id]);
    expect(await ids(bob, { status: "all" })).toEqual([done.id, dba.id]);
    expect(await ids(bob, { status: "approved" })).toEqual([done.id]);
    expect(await ids(auditor, { all: true, limit: 1 })).toEqual([ops.id]);
  });

  it("picks another id when the random one is taken", async () => {
    const taken = approvalRecord({ id: "aaaaaaaa" });
    await store.createApproval(taken);
    const ids = ["aaaaaaaa", "aaaaaaaa", "bbbbbbbb"];
    const s = new ApprovalService(store, { newId: () => ids.shift()! });
    const held = await s.request(params());
    expect(held.id).toBe("bbbbbbbb");
    await s.close();
  });

  it("refuses parameters no request can be made of", async () => {
    for (const bad of [
      params({ approvers: [] }),
      params({ approvers: ["dba"] }),
      params({ minApprovals: 0 }),
      params({ minApprovals: 1.5 }),
      params({ timeoutMs: 0 }),
      params({ timeoutMs: 2 ** 31 }),
      params({ sessionId: "" }),
    ]) {
      expect(await codeOf(service.request(bad))).toBe("approval_invalid");
    }
    expect(await store.listApprovals({})).toEqual([]);
  });

  it("ends stale requests a restarted broker no longer holds", async () => {
    const orphan = approvalRecord({ createdAt: Date.now() - 1000, expiresAt: Date.now() + 60_000 });
    const stale = approvalRecord({ createdAt: Date.now() - 1000, expiresAt: Date.now() - 1 });
    await store.createApproval(orphan);
    await store.createApproval(stale);
    const mine = await service.request(params());
    expect(await service.cancelOrphans()).toBe(2);
    expect((await store.getApproval(orphan.id))?.status).toBe("cancelled");
    expect((await store.getApproval(stale.id))?.status).toBe("expired");
    expect((await store.getApproval(mine.id))?.status).toBe("pending");
    expect(await service.cancelOrphans()).toBe(0);
  });

  it("expires a stale request someone tries to decide", async () => {
    const stale = approvalRecord({ createdAt: Date.now() - 1000, expiresAt: Date.now() - 1 });
    await store.createApproval(stale);
    expect(await codeOf(service.decide(stale.id, bob, "approve"))).toBe("approval_not_pending");
    await new Promise((r) => setTimeout(r, 20));
    expect((await store.getApproval(stale.id))?.status).toBe("expired");
  });

  it("cancels every held statement on close, and refuses new requests", async () => {
    const a = await service.request(params());
    const b = await service.request(params());
    await service.close();
    expect((await a.wait).status).toBe("cancelled");
    expect(await b.wait).toMatchObject({ reason: "the broker is shutting down" });
    expect((await store.getApproval(a.id))?.status).toBe("cancelled");
    expect(await codeOf(service.request(params()))).toBe("approval_unavailable");
  });

  it("keeps going when a listener throws", async () => {
    service.subscribe(() => {
      throw new Error("listener bug");
    });
    const held = await service.request(params());
    await service.decide(held.id, bob, "approve");
    expect((await held.wait).status).toBe("approved");
    expect(errors).toHaveLength(2);
  });

  it("stops calling a listener once it unsubscribes", async () => {
    const seen: string[] = [];
    const off = service.subscribe((e) => seen.push(e.type));
    const held = await service.request(params());
    off();
    await service.decide(held.id, bob, "approve");
    expect(seen).toEqual(["created"]);
  });
});

describe("ApprovalService when the store fails", () => {
  it("rejects the request when it cannot be recorded", async () => {
    const store = new MemoryStore();
    store.createApproval = () => Promise.reject(storeWriteFailed("disk full"));
    const service = new ApprovalService(store);
    expect(await codeOf(service.request(params()))).toBe("store_write_failed");
    expect(service.heldCount).toBe(0);
  });

  it("still releases the statement as expired or cancelled, never approved", async () => {
    const store = new MemoryStore();
    store.setStatus = () => Promise.reject(storeWriteFailed("disk full"));
    const errors: unknown[] = [];
    const service = new ApprovalService(store, { onError: (e) => errors.push(e) });
    const timedOut = await service.request(params({ timeoutMs: 30 }));
    expect((await timedOut.wait).status).toBe("expired");
    const gone = await service.request(params());
    expect(await service.cancel(gone.id, "client disconnected")).toBe(true);
    expect((await gone.wait).status).toBe("cancelled");
    expect(errors).toHaveLength(2);
  });

  it("leaves the statement waiting when a decision cannot be recorded", async () => {
    const store = new MemoryStore();
    store.recordDecision = () => Promise.reject(storeWriteFailed("disk full"));
    const service = new ApprovalService(store);
    const held = await service.request(params({ timeoutMs: 50 }));
    expect(await codeOf(service.decide(held.id, bob, "approve"))).toBe("store_write_failed");
    expect((await held.wait).status).toBe("expired");
  });

  it("does not release a statement on a stored approval that is not for it", async () => {
    const store = new MemoryStore();
    const real = store.recordDecision.bind(store);
    store.recordDecision = async (id, d) => ({ ...(await real(id, d)), sql: "DROP TABLE orders" });
    const errors: unknown[] = [];
    const service = new ApprovalService(store, { onError: (e) => errors.push(e) });
    const held = await service.request(params());
    await service.decide(held.id, bob, "approve");
    expect((await held.wait).status).toBe("cancelled");
    expect(errors).toHaveLength(1);
  });
});
