/**
 * The live feed behind `gw approve` and `gw approvals watch`: the SSE parser, and the client
 * against a local HTTP server that drops the stream, goes silent, refuses the sign-in or
 * answers decisions with the broker's errors.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isGwError, type GwError } from "../../src/errors.js";
import {
  ApprovalsClient,
  SseParser,
  type ApprovalFeedEvent,
  type FeedStatus,
  type SseMessage,
} from "../../src/tunnel/approvals-client.js";
import { view } from "./fixtures.js";

describe("SseParser", () => {
  it("dispatches events on blank lines, joins data lines, skips comments, takes any line ending", () => {
    const got: SseMessage[] = [];
    const p = new SseParser((m) => got.push(m));
    p.push('retry: 5000\n\n: heartbeat\n\nevent: snapshot\ndata: {"a":');
    expect(got).toEqual([]);
    p.push("1}\n\nevent: created\r\ndata: line1\r\ndata:line2\r\n\r");
    p.push("\ndata: plain\rid: 7\r\r\n");
    expect(got).toEqual([
      { event: "snapshot", data: '{"a":1}' },
      { event: "created", data: "line1\nline2" },
      { event: "message", data: "plain", id: "7" },
    ]);
  });

  it("reports an event that grows without end", () => {
    const p = new SseParser(() => {});
    expect(p.push("data: " + "x".repeat(9 * 1024 * 1024))).toBe(false);
  });
});

let server: Server;
let base: string;
let handler: (req: IncomingMessage, res: ServerResponse, n: number) => void;
let requests: IncomingMessage[];

beforeEach(async () => {
  requests = [];
  server = createServer((req, res) => {
    requests.push(req);
    handler(req, res, requests.length);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterEach(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

function sse(res: ServerResponse) {
  res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8" });
  return (event: string, data: unknown) =>
    res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
}

async function until(what: string, ok: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe("ApprovalsClient.watch", () => {
  it("follows the feed, and reconnects with a fresh token after the stream drops", async () => {
    const a = view({ id: "feed0001" });
    const b = view({ id: "feed0002" });
    handler = (_req, res, n) => {
      const send = sse(res);
      if (n === 1) {
        send("snapshot", { approvals: [a] });
        send("created", { type: "created", approval: b });
        setTimeout(() => res.destroy(), 20);
      } else {
        send("snapshot", { approvals: [b] });
      }
    };
    let tokens = 0;
    const client = new ApprovalsClient({ url: base, token: async () => `token-${++tokens}` });
    const events: ApprovalFeedEvent[] = [];
    const statuses: FeedStatus[] = [];
    const ctl = new AbortController();
    const done = client.watch({
      scope: "mine",
      signal: ctl.signal,
      backoff: { initialMs: 30 },
      onEvent: (e) => events.push(e),
      onStatus: (s) => statuses.push(s),
    });
    await until(
      "the second snapshot",
      () => events.filter((e) => e.type === "snapshot").length === 2,
    );
    ctl.abort();
    await done;
    expect(events.map((e) => e.type)).toEqual(["snapshot", "created", "snapshot"]);
    expect((events[1] as { approval: { id: string } }).approval.id).toBe("feed0002");
    expect(statuses.map((s) => s.state)).toEqual([
      "connecting",
      "live",
      "reconnecting",
      "connecting",
      "live",
      "stopped",
    ]);
    const r = statuses[2] as Extract<FeedStatus, { state: "reconnecting" }>;
    expect(r.reason).toMatch(/feed|closed|broke/);
    expect(requests.map((q) => q.url)).toEqual([
      "/v1/approvals/events?scope=mine",
      "/v1/approvals/events?scope=mine",
    ]);
    expect(requests.map((q) => q.headers.authorization)).toEqual([
      "Bearer token-1",
      "Bearer token-2",
    ]);
    expect(requests[0]!.headers.accept).toBe("text/event-stream");
  });

  it("backs off, doubling, while the broker is down, and says so", async () => {
    handler = (_req, res) => {
      res.writeHead(503, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { code: "store_unavailable", message: "store down" } }));
    };
    const client = new ApprovalsClient({ url: base, token: "t" });
    const statuses: FeedStatus[] = [];
    const ctl = new AbortController();
    const t0 = Date.now();
    const done = client.watch({
      signal: ctl.signal,
      backoff: { initialMs: 20, maxMs: 80 },
      onEvent: () => {},
      onStatus: (s) => statuses.push(s),
    });
    await until("four attempts", () => requests.length >= 4);
    ctl.abort();
    await done;
    // 20 + 40 + 80 ms between the four attempts, at least.
    expect(Date.now() - t0).toBeGreaterThanOrEqual(130);
    const waits = statuses
      .filter(
        (s): s is Extract<FeedStatus, { state: "reconnecting" }> => s.state === "reconnecting",
      )
      .map((s) => s.error?.message);
    expect(waits[0]).toBe("the broker failed: store down");
  });

  it("takes a silent stream (no heartbeat) as dead", async () => {
    handler = (_req, res, n) => {
      const send = sse(res);
      send("snapshot", { approvals: [] });
      if (n === 1) return; // then nothing, not even a heartbeat
    };
    const client = new ApprovalsClient({ url: base, token: "t" });
    const statuses: FeedStatus[] = [];
    const ctl = new AbortController();
    const done = client.watch({
      signal: ctl.signal,
      idleTimeoutMs: 100,
      backoff: { initialMs: 10 },
      onEvent: () => {},
      onStatus: (s) => statuses.push(s),
    });
    await until("a reconnect", () => requests.length >= 2);
    ctl.abort();
    await done;
    const r = statuses.find((s) => s.state === "reconnecting") as Extract<
      FeedStatus,
      { state: "reconnecting" }
    >;
    expect(r.reason).toBe("no word from the broker for 0 s");
  });

  it("ends with the error when `fatal` says so (a refused sign-in)", async () => {
    handler = (_req, res) => {
      res.writeHead(401, { "content-type": "application/json" });
      res.end(
        JSON.stringify({ error: { code: "token_expired", message: "the token has expired" } }),
      );
    };
    const client = new ApprovalsClient({ url: base, token: "t" });
    const err = await client.watch({ onEvent: () => {}, fatal: (e) => e.exitCode === 4 }).then(
      () => undefined,
      (e: unknown) => e as GwError,
    );
    expect(isGwError(err)).toBe(true);
    expect(err!.message).toBe("the broker refused your sign-in: the token has expired");
    expect(err!.exitCode).toBe(4);
  });
});

describe("ApprovalsClient decisions", () => {
  it("posts the decision with the statement it is bound to, and keeps the broker's wording on refusal", async () => {
    const bodies: unknown[] = [];
    handler = (req, res) => {
      let text = "";
      req.on("data", (c: Buffer) => (text += c.toString()));
      req.on("end", () => {
        bodies.push(JSON.parse(text));
        res.writeHead(403, { "content-type": "application/json" });
        res.end(
          JSON.stringify({
            error: {
              code: "approval_self",
              message: "you cannot approve your own statement (request abcd1234)",
              hint: "Ask one of its approvers: group:audit. You may deny it to withdraw it.",
            },
          }),
        );
      });
    };
    const client = new ApprovalsClient({ url: base, token: "t" });
    const err = await client
      .approve("abcd1234", { statementHash: "a".repeat(64), sessionId: "s1" })
      .then(
        () => undefined,
        (e: unknown) => e as GwError,
      );
    expect(requests[0]!.method).toBe("POST");
    expect(requests[0]!.url).toBe("/v1/approvals/abcd1234/approve");
    expect(bodies[0]).toEqual({ statementHash: "a".repeat(64), sessionId: "s1" });
    expect(err).toMatchObject({
      code: "approval_self",
      message: "you cannot approve your own statement (request abcd1234)",
      hint: "Ask one of its approvers: group:audit. You may deny it to withdraw it.",
      exitCode: 5,
    });
  });

  it("a not-pending refusal exits 7, a deny sends its reason", async () => {
    handler = (req, res) => {
      req.resume();
      req.on("end", () => {
        res.writeHead(409, { "content-type": "application/json" });
        res.end(
          JSON.stringify({
            error: {
              code: "approval_not_pending",
              message: "approval request x1 is already denied",
            },
          }),
        );
      });
    };
    const client = new ApprovalsClient({ url: base, token: "t" });
    const err = await client.deny("x1", { reason: "no" }).then(
      () => undefined,
      (e: unknown) => e as GwError,
    );
    expect(err).toMatchObject({ code: "approval_not_pending", exitCode: 7 });
  });
});
