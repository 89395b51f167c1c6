import { createServer, request as httpRequest, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { statementHash } from "../../src/approvals/rules.js";
import { ApprovalService } from "../../src/approvals/service.js";
import { handleApprovalsRequest } from "../../src/broker/approvals-api.js";
import { sendJson } from "../../src/broker/http-util.js";
import type { Identity } from "../../src/identity/principal.js";
import { MemoryStore } from "../../src/store/memory-store.js";
import { alice, auditor, bob, carol, dave, identity, params, robot } from "./fixtures.js";

const people: Record<string, Identity> = { alice, bob, carol, dave, auditor, robot };

let store: MemoryStore;
let service: ApprovalService;
let server: Server;
let base: string;
/** Identities the server knows beyond the cast (tests add short-lived ones). */
let extra: Record<string, Identity>;

beforeEach(async () => {
  store = new MemoryStore();
  service = new ApprovalService(store);
  extra = {};
  server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    const who = String(req.headers["x-user"] ?? "");
    const id = extra[who] ?? people[who]!;
    handleApprovalsRequest(req, res, url, id, service, who === "auditor", { heartbeatMs: 40 })
      .then((handled) => {
        if (!handled) sendJson(res, 418, { unhandled: true });
      })
      .catch((err: unknown) => {
        if (!res.headersSent) sendJson(res, 500, { thrown: String(err) });
        else res.destroy();
      });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterEach(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  await service.close();
  await store.close();
});

async function call(
  user: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- bodies are checked by expect()
): Promise<{ status: number; headers: Headers; json: any }> {
  const init: RequestInit = { method, headers: { "x-user": user, ...headers } };
  if (body !== undefined) {
    init.body = typeof body === "string" ? body : JSON.stringify(body);
    (init.headers as Record<string, string>)["content-type"] ??= "application/json";
  }
  const res = await fetch(base + path, init);
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: text === "" ? null : JSON.parse(text) };
}

describe("GET /v1/approvals", () => {
  it("lists the pending requests the caller may act on, with what it may do", async () => {
    const dba = await service.request(params());
    const ops = await service.request(params({ approvers: ["group:ops"] }));
    const r = await call("bob", "GET", "/v1/approvals");
    expect(r.status).toBe(200);
    expect(r.headers.get("cache-control")).toBe("no-store");
    expect(r.json.scope).toBe("mine");
    expect(r.json.approvals.map((a: { id: string }) => a.id)).toEqual([dba.id]);
    expect(r.json.approvals[0]).toMatchObject({
      sql: "DELETE FROM orders WHERE id = 42",
      statementHash: statementHash("DELETE FROM orders WHERE id = 42"),
      viewer: { requester: false, canApprove: true, canDeny: true },
    });
    const mine = await call("alice", "GET", "/v1/approvals");
    expect(mine.json.approvals.map((a: { id: string }) => a.id)).toEqual([ops.id, dba.id]);
    expect(mine.json.approvals[0].viewer).toEqual({
      requester: true,
      canApprove: false,
      canDeny: true,
    });
    expect((await call("dave", "GET", "/v1/approvals")).json.approvals).toEqual([]);
  });

  it("shows auditors everything, and lets them narrow it", async () => {
    const a = await service.request(params());
    const b = await service.request(params({ approvers: ["group:ops"] }));
    await service.decide(a.id, bob, "approve");
    const all = await call("auditor", "GET", "/v1/approvals?status=all");
    expect(all.json.scope).toBe("all");
    expect(all.json.approvals.map((x: { id: string }) => x.id)).toEqual([b.id, a.id]);
    expect(all.json.approvals[0].viewer).toEqual({
      requester: false,
      canApprove: false,
      canDeny: false,
    });
    const pending = await call("auditor", "GET", "/v1/approvals");
    expect(pending.json.approvals.map((x: { id: string }) => x.id)).toEqual([b.id]);
    const approved = await call("auditor", "GET", "/v1/approvals?status=approved&limit=1");
    expect(approved.json.approvals.map((x: { id: string }) => x.id)).toEqual([a.id]);
    expect((await call("auditor", "GET", "/v1/approvals?scope=mine")).json).toEqual({
      approvals: [],
      scope: "mine",
    });
  });

  it("refuses scope=all to non-auditors and an unknown status", async () => {
    const r = await call("bob", "GET", "/v1/approvals?scope=all");
    expect(r.status).toBe(403);
    expect(r.json.error.code).toBe("forbidden");
    const s = await call("bob", "GET", "/v1/approvals?status=maybe");
    expect(s.status).toBe(400);
    expect(s.json.error).toMatchObject({ code: "bad_request" });
    expect(s.json.error.message).toMatch(/pending/);
  });
});

describe("GET /v1/approvals/:id", () => {
  it("shows a request to its approvers, its requester and auditors only", async () => {
    const held = await service.request(params({ contextStatements: ["BEGIN"] }));
    const r = await call("carol", "GET", `/v1/approvals/${held.id}`);
    expect(r.status).toBe(200);
    expect(r.json.approval).toEqual({
      ...held.approval,
      viewer: { requester: false, canApprove: true, canDeny: true },
    });
    expect((await call("alice", "GET", `/v1/approvals/${held.id}`)).status).toBe(200);
    expect((await call("auditor", "GET", `/v1/approvals/${held.id}`)).status).toBe(200);
    for (const [who, id] of [
      ["dave", held.id],
      ["robot", held.id], // an app in the group, not named: not an approver
      ["bob", "0000beef"],
    ]) {
      const miss = await call(who!, "GET", `/v1/approvals/${id}`);
      expect(miss.status).toBe(404);
      expect(miss.json.error.code).toBe("approval_not_found");
    }
  });

  it("answers 404 for paths it does not serve, and leaves other paths alone", async () => {
    expect((await call("bob", "GET", "/v1/approvals/a/b/c")).json.error.code).toBe("not_found");
    expect((await call("bob", "GET", "/v1/approvals/%zz")).status).toBe(404);
    expect((await call("bob", "GET", "/v1/approvals/x/approve/y")).status).toBe(404);
    expect((await call("bob", "GET", "/v1/sessions")).json).toEqual({ unhandled: true });
    expect((await call("bob", "GET", "/v1/approvalsx")).json).toEqual({ unhandled: true });
  });

  it("answers 405 with Allow for the wrong method", async () => {
    const held = await service.request(params());
    const r = await call("bob", "GET", `/v1/approvals/${held.id}/approve`);
    expect(r.status).toBe(405);
    expect(r.headers.get("allow")).toBe("POST");
    const p = await call("bob", "POST", "/v1/approvals", {});
    expect(p.status).toBe(405);
    expect(p.headers.get("allow")).toBe("GET, HEAD");
    expect((await call("bob", "DELETE", `/v1/approvals/${held.id}`)).status).toBe(405);
  });

  it("answers 503 when the store is closed", async () => {
    await store.close();
    const r = await call("bob", "GET", "/v1/approvals");
    expect(r.status).toBe(503);
    expect(r.json.error.code).toBe("store_closed");
  });
});

describe("POST /v1/approvals/:id/approve and /deny", () => {
  it("approves, releasing the held statement", async () => {
    const held = await service.request(params());
    const r = await call("bob", "POST", `/v1/approvals/${held.id}/approve`, {
      reason: "ticket OPS-1234",
      statementHash: held.approval.statementHash,
      sessionId: "session-1",
    });
    expect(r.status).toBe(200);
    expect(r.json.approval).toMatchObject({
      status: "approved",
      decisions: [
        { by: { oid: "oid-bob", name: "bob" }, decision: "approve", reason: "ticket OPS-1234" },
      ],
      viewer: { canApprove: false, canDeny: false },
    });
    expect((await held.wait).status).toBe("approved");
  });

  it("approves with an empty body or {}", async () => {
    const a = await service.request(params({ minApprovals: 2 }));
    const noBody = await fetch(`${base}/v1/approvals/${a.id}/approve`, {
      method: "POST",
      headers: { "x-user": "bob" },
    });
    expect(noBody.status).toBe(200);
    const r = await call("carol", "POST", `/v1/approvals/${a.id}/approve`, {});
    expect(r.json.approval.status).toBe("approved");
  });

  it("denies with a reason, and wants one", async () => {
    const held = await service.request(params());
    const none = await call("bob", "POST", `/v1/approvals/${held.id}/deny`, {});
    expect(none.status).toBe(400);
    expect(none.json.error.code).toBe("approval_reason_required");
    expect(none.json.error.hint).toBeDefined();
    const r = await call("bob", "POST", `/v1/approvals/${held.id}/deny`, { reason: "not now" });
    expect(r.status).toBe(200);
    expect(r.json.approval.status).toBe("denied");
    expect(await held.wait).toMatchObject({ status: "denied", reason: "not now" });
  });

  it("answers the service's refusals with their codes", async () => {
    const held = await service.request(params({ minApprovals: 2 }));
    const post = (who: string, action: string, body: unknown = {}) =>
      call(who, "POST", `/v1/approvals/${held.id}/${action}`, body);
    const expectError = async (
      p: ReturnType<typeof post>,
      status: number,
      code: string,
    ): Promise<void> => {
      const r = await p;
      expect([r.status, r.json.error?.code]).toEqual([status, code]);
    };
    await expectError(post("alice", "approve"), 403, "approval_self");
    await expectError(post("dave", "approve"), 404, "approval_not_found"); // cannot see it
    await expectError(post("auditor", "approve"), 403, "approval_not_approver");
    await expectError(
      post("bob", "approve", { statementHash: statementHash("SELECT 1") }),
      409,
      "approval_statement_mismatch",
    );
    expect((await post("bob", "approve")).json.approval.status).toBe("pending"); // 1 of 2
    await expectError(post("bob", "approve"), 409, "approval_duplicate");
    await expectError(
      post("carol", "deny", { reason: "x".repeat(1001) }),
      400,
      "approval_reason_too_long",
    );
    expect((await post("carol", "deny", { reason: "no" })).json.approval.status).toBe("denied");
    await expectError(post("carol", "approve"), 409, "approval_not_pending");
    expect((await held.wait).status).toBe("denied");
  });

  it("answers 400 for a body that is not JSON, or not the right JSON", async () => {
    const held = await service.request(params());
    const path = `/v1/approvals/${held.id}/deny`;
    for (const body of [
      "{not json",
      "[1, 2]",
      '"text"',
      '{"reason": 42}',
      '{"statementHash": "abc"}',
    ]) {
      const r = await call("bob", "POST", path, body);
      expect(r.status).toBe(400);
      expect(r.json.error.code).toBe("bad_request");
    }
    const bad = await call("bob", "POST", path, "{not json");
    expect(bad.json.error.message).toMatch(/not valid JSON/);
    const typed = await call(
      "bob",
      "POST",
      path,
      { reason: "no" },
      { "content-type": "text/plain" },
    );
    expect(typed.status).toBe(415);
    expect((await store.getApproval(held.id))?.status).toBe("pending");
  });

  it("answers 413 for a body over 16 KiB, declared or streamed", async () => {
    const held = await service.request(params());
    const path = `/v1/approvals/${held.id}/deny`;
    const big = JSON.stringify({ reason: "x".repeat(17 * 1024) });
    const declared = await call("bob", "POST", path, big);
    expect(declared.status).toBe(413);
    expect(declared.json.error.code).toBe("payload_too_large");

    // Chunked, without a Content-Length: counted as it arrives.
    const streamed = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(
        `${base}${path}`,
        { method: "POST", headers: { "x-user": "bob", "content-type": "application/json" } },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on("error", reject);
      for (let i = 0; i < 20; i++) req.write("x".repeat(1024));
      req.end();
    });
    expect(streamed).toBe(413);
    expect((await store.getApproval(held.id))?.status).toBe("pending");
  });
});

// --- Server-Sent Events ---------------------------------------------------------------------

interface SseMessage {
  event?: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- checked by expect()
  data?: any;
  comment?: string;
  retry?: number;
}

interface SseClient {
  res: IncomingMessage;
  /** The next message matching `pred` (earlier non-matching ones are dropped). */
  next(pred?: (m: SseMessage) => boolean, timeoutMs?: number): Promise<SseMessage>;
  /** Every message received so far. */
  seen: SseMessage[];
  ended: Promise<void>;
  close(): void;
}

function openEvents(user: string, query = ""): Promise<SseClient> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      `${base}/v1/approvals/events${query}`,
      { headers: { "x-user": user } },
      (res) => {
        res.setEncoding("utf8");
        const queue: SseMessage[] = [];
        const seen: SseMessage[] = [];
        let waiter: (() => void) | undefined;
        let buf = "";
        res.on("data", (chunk: string) => {
          buf += chunk;
          let i: number;
          while ((i = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const m: SseMessage = {};
            for (const line of block.split("\n")) {
              if (line.startsWith(":")) m.comment = line.slice(1).trim();
              else if (line.startsWith("event: ")) m.event = line.slice(7);
              else if (line.startsWith("data: ")) m.data = JSON.parse(line.slice(6));
              else if (line.startsWith("retry: ")) m.retry = Number(line.slice(7));
            }
            queue.push(m);
            seen.push(m);
          }
          waiter?.();
        });
        const ended = new Promise<void>((r) => res.on("close", () => r()));
        resolve({
          res,
          seen,
          ended,
          close: () => req.destroy(),
          async next(pred = () => true, timeoutMs = 2000) {
            const deadline = Date.now() + timeoutMs;
            for (;;) {
              while (queue.length > 0) {
                const m = queue.shift()!;
                if (pred(m)) return m;
              }
              if (Date.now() > deadline) throw new Error("no matching event in time");
              await new Promise<void>((r) => {
                waiter = r;
                setTimeout(r, 50);
              });
            }
          },
        });
      },
    );
    req.on("error", reject);
    req.end();
  });
}

describe("GET /v1/approvals/events", () => {
  it("streams a snapshot, then the caller's events, with heartbeats", async () => {
    const before = await service.request(params());
    const sse = await openEvents("bob");
    expect(sse.res.statusCode).toBe(200);
    expect(sse.res.headers["content-type"]).toBe("text/event-stream; charset=utf-8");
    expect(sse.res.headers["cache-control"]).toBe("no-store");
    const snapshot = await sse.next((m) => m.event === "snapshot");
    expect(snapshot.data.approvals.map((a: { id: string }) => a.id)).toEqual([before.id]);
    expect(snapshot.data.approvals[0].viewer.canApprove).toBe(true);

    await service.request(params({ approvers: ["group:ops"] })); // not bob's: not sent
    const held = await service.request(params());
    const created = await sse.next((m) => m.event !== undefined);
    expect(created.event).toBe("created");
    expect(created.data).toMatchObject({
      type: "created",
      approval: { id: held.id, status: "pending" },
    });

    await service.decide(held.id, carol, "approve");
    const decided = await sse.next((m) => m.event !== undefined);
    expect(decided.data).toMatchObject({
      type: "decided",
      approval: { id: held.id, status: "approved", viewer: { canApprove: false } },
      decision: { by: { oid: "oid-carol" }, decision: "approve" },
    });
    await service.cancel(before.id, "client disconnected");
    expect((await sse.next((m) => m.event !== undefined)).data).toMatchObject({
      type: "cancelled",
      approval: { id: before.id, statusDetail: "client disconnected" },
    });
    expect((await sse.next((m) => m.comment !== undefined)).comment).toBe("heartbeat");
    expect(sse.seen[0]).toEqual({ retry: 5000 });
    sse.close();
  });

  it("sends auditors every event, and their own events to requesters", async () => {
    const audit = await openEvents("auditor");
    const dave = await openEvents("dave");
    await audit.next((m) => m.event === "snapshot");
    await dave.next((m) => m.event === "snapshot");
    const ops = await service.request(params({ approvers: ["group:ops"] }));
    const own = await service.request(params({ requester: people.dave! }));
    expect((await audit.next((m) => m.event === "created")).data.approval.id).toBe(ops.id);
    expect((await audit.next((m) => m.event === "created")).data.approval.id).toBe(own.id);
    const mine = await dave.next((m) => m.event === "created");
    expect(mine.data.approval).toMatchObject({
      id: own.id,
      viewer: { requester: true, canDeny: true },
    });
    audit.close();
    dave.close();
  });

  it("stops feeding a client that has gone", async () => {
    let active = 0;
    const subscribe = service.subscribe.bind(service);
    service.subscribe = (l) => {
      active++;
      const off = subscribe(l);
      return () => {
        active--;
        off();
      };
    };
    const sse = await openEvents("bob");
    await sse.next((m) => m.event === "snapshot");
    expect(active).toBe(1);
    sse.close();
    await sse.ended;
    for (let i = 0; i < 50 && active > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(active).toBe(0);
    await service.request(params()); // no one to write to: must not throw
  });

  it("ends the stream when the caller's sign-in expires", async () => {
    extra.brief = identity("oid-bob", { groups: ["dba"], expiresAt: Date.now() / 1000 + 0.3 });
    const sse = await openEvents("brief");
    await sse.next((m) => m.event === "snapshot");
    expect((await sse.next((m) => m.event === "sign_in_expired")).data).toEqual({});
    await sse.ended;
  });

  it("refuses scope=all to non-auditors before streaming", async () => {
    const r = await call("bob", "GET", "/v1/approvals/events?scope=all");
    expect(r.status).toBe(403);
    expect((await call("bob", "POST", "/v1/approvals/events", {})).status).toBe(405);
  });
});
