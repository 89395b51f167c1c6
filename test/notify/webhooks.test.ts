/**
 * Webhook notifications against a real local HTTP receiver, fed by a real ApprovalService:
 * the generic, Teams (Adaptive Card) and Slack (blocks) payloads, secret headers, retries
 * with backoff after a 500 and after a 429 with Retry-After, giving up, not retrying a 400,
 * and the decision path never waiting on a webhook.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ApprovalService } from "../../src/approvals/service.js";
import { createLogger } from "../../src/broker/logger.js";
import { isGwError } from "../../src/errors.js";
import {
  createNotifier,
  notificationsConfig,
  type NotificationsInput,
  type Notifier,
} from "../../src/notify/index.js";
import { parseRetryAfter } from "../../src/notify/index.js";
import { MemoryStore } from "../../src/store/memory-store.js";
import { alice, bob, params } from "../approvals/fixtures.js";

interface Received {
  at: number;
  method: string;
  path: string;
  headers: IncomingMessage["headers"];
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- payloads are checked by expect()
  json: any;
}

let server: Server;
let base: string;
let received: Received[];
/** How the receiver answers the n-th request (0-based); default 200. */
let respond: (n: number, req: IncomingMessage, res: ServerResponse) => void;
let store: MemoryStore;
let service: ApprovalService;
let logs: string[];
let notifier: Notifier | undefined;
const SECRET_ENV = "GW_TEST_HOOK_TOKEN";
const URL_ENV = "GW_TEST_HOOK_URL";

beforeEach(async () => {
  received = [];
  logs = [];
  respond = (_n, _req, res) => {
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("ok");
  };
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const n = received.length;
      received.push({
        at: Date.now(),
        method: req.method ?? "",
        path: req.url ?? "",
        headers: req.headers,
        json: JSON.parse(Buffer.concat(chunks).toString("utf8") || "null"),
      });
      respond(n, req, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  store = new MemoryStore();
  service = new ApprovalService(store);
  process.env[SECRET_ENV] = "Bearer s3cret-hook-token";
  process.env[URL_ENV] = `${base}/services/T000/B000/XXXXsecretpath`;
});

afterEach(async () => {
  await notifier?.close(100);
  notifier = undefined;
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  await service.close();
  await store.close();
  delete process.env[SECRET_ENV];
  delete process.env[URL_ENV];
});

function start(webhooks: unknown[], opts: Parameters<typeof createNotifier>[2] = {}): Notifier {
  const log = createLogger({ level: "debug", write: (l) => logs.push(l) });
  notifier = createNotifier({ webhooks } as NotificationsInput, log, opts);
  notifier.attach(service);
  return notifier;
}

async function until(what: string, ok: () => boolean, ms = 8000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("payloads", () => {
  it("generic: the event, the request, and the command that approves it; secret headers sent", async () => {
    const n = start([
      {
        url: `${base}/hook`,
        format: "generic",
        headers: { Authorization: { env: SECRET_ENV } },
      },
    ]);
    const held = await service.request(
      params({ contextStatements: ["BEGIN"], agentLabel: "claude-code" }),
    );
    await until("the created notification", () => received.length === 1);
    const r = received[0]!;
    expect(r.method).toBe("POST");
    expect(r.path).toBe("/hook");
    expect(r.headers["content-type"]).toBe("application/json");
    expect(r.headers["authorization"]).toBe("Bearer s3cret-hook-token");
    expect(r.json).toMatchObject({
      event: "created",
      approval: {
        id: held.id,
        connection: "orders",
        requester: { name: "alice", type: "user", oid: "oid-alice" },
        applicationName: "psql",
        agentLabel: "claude-code",
        sql: "DELETE FROM orders WHERE id = 42",
        reason: "DELETE on a protected table",
        approvers: ["group:dba", "app:oid-guard"],
        minApprovals: 1,
        expiresAt: new Date(held.approval.expiresAt).toISOString(),
        status: "pending",
      },
      approveCommand: `gw approvals approve ${held.id}`,
      denyCommand: `gw approvals deny ${held.id} --reason TEXT`,
    });
    await service.decide(held.id, bob, "approve", "looks fine");
    await until("the decided notification", () => received.length === 2);
    expect(received[1]!.json).toMatchObject({
      event: "decided",
      approval: { id: held.id, status: "approved" },
      decision: { by: { name: "bob", oid: "oid-bob" }, decision: "approve", reason: "looks fine" },
    });
    expect(await n.flush(1000)).toBe(true);
    expect(n.stats).toEqual({ delivered: 2, failed: 0, dropped: 0 });
    // The secret header value and the URL never reach the log.
    expect(logs.join("\n")).not.toContain("s3cret-hook-token");
  });

  it("teams: a message with an Adaptive Card 1.4 attachment", async () => {
    start([{ url: { env: URL_ENV }, format: "teams" }]);
    const held = await service.request(params({ sql: "DELETE FROM orders" }));
    await until("the card", () => received.length === 1);
    const msg = received[0]!.json;
    expect(received[0]!.path).toBe("/services/T000/B000/XXXXsecretpath");
    expect(msg.type).toBe("message");
    expect(msg.attachments).toHaveLength(1);
    const att = msg.attachments[0];
    expect(att.contentType).toBe("application/vnd.microsoft.card.adaptive");
    expect(att.content).toMatchObject({ type: "AdaptiveCard", version: "1.4" });
    const body = att.content.body as Record<string, unknown>[];
    expect(body[0]).toMatchObject({
      type: "TextBlock",
      text: "Approval needed: DELETE on orders by alice",
      weight: "Bolder",
    });
    const facts = body.find((b) => b.type === "FactSet") as {
      facts: { title: string; value: string }[];
    };
    expect(facts.facts).toEqual(
      expect.arrayContaining([
        { title: "Request", value: held.id },
        { title: "Requester", value: "alice (user)" },
        { title: "Connection", value: "orders" },
        { title: "Application", value: "psql" },
      ]),
    );
    const text = JSON.stringify(body);
    expect(text).toContain('"fontType":"Monospace"');
    expect(text).toContain("DELETE FROM orders");
    expect(text).toContain(`gw approvals approve ${held.id}`);
    // The webhook's URL holds its secret: logged by name and host only.
    await notifier!.flush(1000);
    expect(logs.join("\n")).not.toContain("XXXXsecretpath");
    expect(logs.join("\n")).toContain('"webhook":"webhooks[0]"');
  });

  it("slack: header, fields, the SQL in a code block, and the approve command in context", async () => {
    start([{ url: `${base}/slack`, format: "slack" }]);
    const held = await service.request(params({ sql: "DELETE FROM t WHERE a < 3 AND b > 1" }));
    await until("the message", () => received.length === 1);
    const msg = received[0]!.json;
    expect(msg.text).toBe("Approval needed: DELETE on orders by alice");
    const types = (msg.blocks as { type: string }[]).map((b) => b.type);
    expect(types).toEqual(["header", "section", "section", "context"]);
    expect(msg.blocks[0]).toEqual({
      type: "header",
      text: {
        type: "plain_text",
        text: "Approval needed: DELETE on orders by alice",
        emoji: false,
      },
    });
    expect(msg.blocks[1].fields).toEqual(
      expect.arrayContaining([
        { type: "mrkdwn", text: `*Request*\n${held.id}` },
        { type: "mrkdwn", text: "*Requester*\nalice (user)" },
      ]),
    );
    expect(msg.blocks[2].text).toEqual({
      type: "mrkdwn",
      text: "```DELETE FROM t WHERE a &lt; 3 AND b &gt; 1```",
    });
    expect(msg.blocks[3].elements[0].text).toContain(`\`gw approvals approve ${held.id}\``);
  });

  it("sends only the events a webhook asks for, and can leave the SQL out", async () => {
    start([
      {
        url: `${base}/decided`,
        format: "generic",
        events: ["decided", "cancelled"],
        includeSql: false,
      },
    ]);
    const held = await service.request(params());
    const other = await service.request(params({ sessionId: "s2" }));
    await service.decide(held.id, bob, "deny", "not today");
    await service.cancel(other.id, "the requester disconnected");
    await until("two notifications", () => received.length === 2);
    await notifier!.flush(1000);
    expect(received.map((r) => r.json.event)).toEqual(["decided", "cancelled"]);
    expect(received[0]!.json.approval.sql).toBeNull();
    expect(received[0]!.json.decision).toMatchObject({ decision: "deny", reason: "not today" });
    expect(received[1]!.json.approval.statusDetail).toBe("the requester disconnected");
  });
});

describe("delivery", () => {
  it("retries after a 500, 0.5 s later, and delivers", async () => {
    respond = (n, _req, res) => {
      res.writeHead(n === 0 ? 500 : 200);
      res.end(n === 0 ? "boom" : "ok");
    };
    const n = start([{ url: `${base}/flaky`, format: "generic" }]);
    await service.request(params());
    await until("the retry", () => received.length === 2);
    const gap = received[1]!.at - received[0]!.at;
    expect(gap).toBeGreaterThanOrEqual(450);
    expect(gap).toBeLessThan(1500);
    expect(await n.flush(2000)).toBe(true);
    expect(n.stats).toMatchObject({ delivered: 1, failed: 0 });
    const retryLog = logs.map((l) => JSON.parse(l)).find((l) => l.msg.includes("retrying"));
    expect(retryLog).toMatchObject({
      status: 500,
      attempt: 1,
      retryInMs: 500,
      host: new URL(base).host,
    });
  });

  it("respects Retry-After on a 429", async () => {
    respond = (n, _req, res) => {
      if (n === 0) res.writeHead(429, { "retry-after": "1" });
      else res.writeHead(204);
      res.end();
    };
    start([{ url: `${base}/limited`, format: "slack" }]);
    await service.request(params());
    await until("the retry", () => received.length === 2);
    expect(received[1]!.at - received[0]!.at).toBeGreaterThanOrEqual(950);
  });

  it("gives up after four attempts with exponential backoff, and logs it without secrets", async () => {
    respond = (_n, _req, res) => {
      res.writeHead(503);
      res.end("down");
    };
    const n = start(
      [
        {
          name: "ops-teams",
          url: { env: URL_ENV },
          format: "teams",
          headers: { "X-Token": { env: SECRET_ENV } },
        },
      ],
      { retryDelaysMs: [20, 40, 80] },
    );
    await service.request(params());
    await until("four attempts", () => received.length === 4);
    expect(await n.flush(2000)).toBe(true);
    const gaps = received.slice(1).map((r, i) => r.at - received[i]!.at);
    expect(gaps[0]).toBeGreaterThanOrEqual(18);
    expect(gaps[1]).toBeGreaterThanOrEqual(38);
    expect(gaps[2]).toBeGreaterThanOrEqual(78);
    expect(n.stats).toMatchObject({ delivered: 0, failed: 1 });
    const text = logs.join("\n");
    const gaveUp = logs
      .map((l) => JSON.parse(l))
      .find((l) => l.msg.startsWith("webhook failed after 4 attempts"));
    expect(gaveUp).toMatchObject({
      webhook: "ops-teams",
      format: "teams",
      status: 503,
      level: "warn",
    });
    expect(text).not.toContain("s3cret-hook-token");
    expect(text).not.toContain("XXXXsecretpath");
  });

  it("does not retry a 400", async () => {
    respond = (_n, _req, res) => {
      res.writeHead(400);
      res.end("invalid_payload");
    };
    const n = start([{ url: `${base}/bad`, format: "slack" }], { retryDelaysMs: [10, 10, 10] });
    await service.request(params());
    await until("one attempt", () => received.length === 1);
    expect(await n.flush(1000)).toBe(true);
    expect(received).toHaveLength(1);
    expect(n.stats.failed).toBe(1);
    expect(logs.join("\n")).toContain("invalid_payload");
  });

  it("never holds up a decision: a webhook that does not answer, a bounded queue", async () => {
    respond = () => {
      // never answers
    };
    const n = start([{ url: `${base}/hang`, format: "generic", timeoutMs: 60_000 }], {
      maxQueue: 2,
    });
    const held = await service.request(params());
    const t0 = Date.now();
    await service.decide(held.id, bob, "approve");
    for (let i = 0; i < 4; i++) await service.request(params({ sessionId: `s${i}` }));
    expect(Date.now() - t0).toBeLessThan(500);
    expect((await held.wait).status).toBe("approved");
    await until("the first delivery to hang", () => received.length === 1);
    // One in flight, two queued, the oldest dropped as more came.
    expect(n.stats.dropped).toBeGreaterThanOrEqual(2);
    expect(logs.join("\n")).toContain("webhook queue full");
    await n.close(50);
  });

  it("the requester's own deny (a withdrawal) is a decided event like any other", async () => {
    start([{ url: `${base}/w`, format: "generic", events: ["decided"] }]);
    const held = await service.request(params());
    await service.decide(held.id, alice, "deny", "wrong table");
    await until("the notification", () => received.length === 1);
    expect(received[0]!.json.decision.by.name).toBe("alice");
  });
});

describe("config", () => {
  it("takes URLs or secret references, and header values only as references", () => {
    expect(
      notificationsConfig.parse({ webhooks: [{ url: "https://example.com/h" }] }).webhooks[0],
    ).toMatchObject({
      format: "generic",
      events: ["created", "decided", "expired", "cancelled"],
      includeSql: true,
    });
    const bad = notificationsConfig.safeParse({
      webhooks: [
        { url: "ftp://x", format: "teams" },
        { url: "https://x", format: "discord" },
        { url: "https://x", headers: { Authorization: "Bearer inline" } },
        { url: "https://x", events: ["approved"] },
      ],
    });
    expect(bad.success).toBe(false);
    const paths = bad.error!.issues.map((i) => i.path.join("."));
    expect(paths).toEqual(
      expect.arrayContaining([
        "webhooks.0.url",
        "webhooks.1.format",
        "webhooks.2.headers.Authorization",
        "webhooks.3.events.0",
      ]),
    );
  });

  it("a missing secret stops createNotifier with the config path, not the value", () => {
    const log = createLogger({ write: () => {} });
    let err: unknown;
    try {
      createNotifier({ webhooks: [{ url: { env: "GW_TEST_NOT_SET_HOOK" } }] }, log);
    } catch (e) {
      err = e;
    }
    expect(isGwError(err)).toBe(true);
    expect((err as Error).message).toBe(
      "notifications.webhooks[0].url: environment variable GW_TEST_NOT_SET_HOOK is not set",
    );
  });

  it("no config, no webhooks: attaching is a no-op", () => {
    const n = createNotifier(undefined, createLogger({ write: () => {} }));
    expect(n.size).toBe(0);
    n.attach(service)();
  });

  it("reads Retry-After as seconds or a date", () => {
    expect(parseRetryAfter("3")).toBe(3000);
    expect(parseRetryAfter(new Date(10_000).toUTCString(), 4000)).toBe(6000);
    expect(parseRetryAfter("soon")).toBeUndefined();
    expect(parseRetryAfter(null)).toBeUndefined();
  });
});
