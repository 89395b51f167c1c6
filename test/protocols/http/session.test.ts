/**
 * The http session end to end without the broker: curl (and node's http client, and a
 * WebSocket client) talk to HttpSession through a socket-backed channel; HttpSession proxies
 * to a local test API. Policy runs through the compiled http policy with a scripted approvals
 * service; masking through the real detectors.
 */
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createServer, request as httpRequest, type IncomingMessage, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { gzipSync } from "node:zlib";
import type { AddressInfo } from "node:net";
import { WebSocket, WebSocketServer } from "ws";
import type { HeldStatement } from "../../../src/approvals/service.js";
import { httpConnection } from "../../../src/protocols/http/config.js";
import { CompiledHttpPolicy } from "../../../src/protocols/http/policy.js";
import {
  HttpSession,
  httpTargetFromConfig,
  type HttpEvent,
  type HttpTarget,
} from "../../../src/protocols/http/session.js";
import type { HoldDeps } from "../../../src/protocols/tcp/rules.js";
import { issueCert, makeCa } from "../../helpers/tls.js";
import { run, startHarness, until, type Harness } from "../ssh/harness.js";

const TOKEN = "tok-" + "s3cr3t-value-0123456789";
const API_KEY = "key-" + "abcdefabcdef9876";
process.env["GW_TEST_HTTP_TOKEN"] = TOKEN;
process.env["GW_TEST_HTTP_KEY"] = API_KEY;

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage["headers"];
  body: string;
}
const seen: Seen[] = [];
let api: Server;
let apiUrl: string;
let release: (() => void) | null = null;
const events: HttpEvent[] = [];
const harnesses: Harness[] = [];

/** A scripted approvals service: each request waits for the test to decide. */
const approvals: {
  pending: { sql: string; decide: (ok: boolean) => void }[];
  request: HoldDeps["approvals"]["request"];
} = {
  pending: [],
  request: async (p) => {
    let decide!: (ok: boolean) => void;
    const wait = new Promise<Awaited<HeldStatement["wait"]>>((resolve) => {
      decide = (ok) =>
        resolve(
          ok
            ? ({ status: "approved", approval: {} } as never)
            : ({
                status: "denied",
                reason: "not now",
                by: { oid: "d", name: "Dana" },
                approval: {},
              } as never),
        );
    });
    approvals.pending.push({ sql: p.sql, decide });
    return { id: "ab12cd34", approval: { expiresAt: Date.now() + 60_000 } as never, wait };
  },
};

async function nextHold() {
  await until(() => approvals.pending.length > 0, "a held request");
  return approvals.pending.shift()!;
}

const config = (apiBase: string, policy: Record<string, unknown> | undefined = defaultPolicy) =>
  httpConnection.parse({
    type: "http",
    target: {
      url: apiBase,
      bearer: { env: "GW_TEST_HTTP_TOKEN" },
      headers: { "X-Api-Key": { env: "GW_TEST_HTTP_KEY" } },
    },
    allow: ["group:devs"],
    ...(policy ? { policy } : {}),
  });

const defaultPolicy = {
  approvers: ["group:leads"],
  rules: [
    {
      match: { method: "DELETE", path: "/items/locked/**" },
      action: "block",
      reason: "locked items stay",
    },
    { match: { method: ["DELETE"], path: "/items/*" }, action: "hold" },
  ],
  mask: { json: ["$.owner.email", "$..ssn"], detectors: ["email"], maxBodyBytes: 4096 },
  websocket: "allow",
};

async function harness(cfg = config(apiUrl), target?: HttpTarget): Promise<Harness> {
  const compiled = new CompiledHttpPolicy(cfg.policy, "api");
  const h = await startHarness(
    (ch, ends) =>
      new HttpSession(ch, {
        target: target ?? httpTargetFromConfig("api", cfg.target),
        hooks: {
          onStart: async () => undefined,
          onEvent: (e) => void events.push(e),
          onEnd: (i) => void ends.push(i),
        },
        policy: compiled.forSession({
          approvals,
          identity: { oid: "o1", name: "Ada", type: "user" },
          sessionId: "s1",
          connection: "api",
          log: { log: () => undefined },
        }),
        masking: compiled.masking,
        websocket: compiled.websocket,
        recordBodyBytes: compiled.recordBodyBytes,
        log: { log: () => undefined },
      }),
  );
  harnesses.push(h);
  return h;
}

let main: Harness;
const url = (h: Harness, path: string) => `http://127.0.0.1:${h.port}${path}`;

function curl(args: string[]) {
  return run("curl", ["-sS", "--max-time", "20", ...args]);
}

/** Splits `curl -i` output into status, headers and body. */
function parseCurl(out: string): { status: number; headers: Record<string, string>; body: string } {
  const blocks = out.split("\r\n\r\n");
  // Skip informational (1xx) blocks.
  while (blocks.length > 1 && /^HTTP\/1\.1 1\d\d/.test(blocks[0]!)) blocks.shift();
  const [head, ...rest] = blocks;
  const lines = head!.split("\r\n");
  const status = Number(lines[0]!.split(" ")[1]);
  const headers: Record<string, string> = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(":");
    headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
  }
  return { status, headers, body: rest.join("\r\n\r\n") };
}

const OWNER = `{"owner": {"name": "Ada", "email": "ada@example.com"}, "note": "write to bob@example.org",
 "items": [{"id": 12345678901234567890, "ssn": "123-45-6789"}, {"id": 2, "deep": {"ssn": "987-65-4321"}}], "nothing": null}`;

beforeAll(async () => {
  api = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (d: Buffer) => chunks.push(d));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
      const path = req.url!.split("?")[0]!;
      if (path === "/v1/echo") {
        // Echoes what it got, credential included: the client must still not see it.
        res.writeHead(200, {
          "content-type": "application/json",
          "x-echo-auth": String(req.headers.authorization),
        });
        res.end(
          JSON.stringify({
            authorization: req.headers.authorization,
            apiKey: req.headers["x-api-key"],
            body,
          }),
        );
      } else if (path === "/v1/owner") {
        res.writeHead(200, { "content-type": "application/json; charset=utf-8" });
        res.end(OWNER);
      } else if (path.startsWith("/v1/items/") && req.method === "DELETE") {
        res.writeHead(204);
        res.end();
      } else if (path === "/v1/stream") {
        res.writeHead(200, { "content-type": "text/plain" });
        res.write("first line for carol@example.com\n");
        release = () => {
          res.write("second line\n");
          res.end("last without newline dave@example.com");
        };
      } else if (path === "/v1/events") {
        res.writeHead(200, { "content-type": "text/event-stream" });
        res.write(`data: {"owner": {"email": "x@example.com"}, "n": 1}\n\n`);
        res.end(`event: note\ndata: plain text for eve@example.com\n\n`);
      } else if (path === "/v1/notjson") {
        res.writeHead(200, { "content-type": "application/json" });
        res.end('{"owner": {"email": "leak@example.com"');
      } else if (path === "/v1/big") {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ filler: "x".repeat(10_000), email: "big@example.com" }));
      } else if (path === "/v1/gzip") {
        res.writeHead(200, { "content-type": "application/json", "content-encoding": "gzip" });
        res.end(gzipSync(OWNER));
      } else if (path === "/v1/binary") {
        res.writeHead(200, { "content-type": "application/octet-stream" });
        res.end(Buffer.from([0, 1, 2, 255, 0x40]));
      } else if (path === "/v1/redirect") {
        res.writeHead(302, { location: `${apiUrl}/owner?x=1` });
        res.end();
      } else {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ ok: true, method: req.method, url: req.url }));
      }
    });
  });
  const wss = new WebSocketServer({ server: api });
  wss.on("connection", (ws, req) => {
    seen.push({ method: "WS", url: req.url!, headers: req.headers, body: "" });
    ws.on("message", (m: Buffer) => ws.send(`echo:${m.toString()}`));
  });
  await new Promise<void>((r) => api.listen(0, "127.0.0.1", r));
  apiUrl = `http://127.0.0.1:${(api.address() as AddressInfo).port}/v1`;
  main = await harness();
});

afterAll(async () => {
  for (const h of harnesses) await h.close();
  api?.closeAllConnections();
  await new Promise((r) => api?.close(r));
});

describe("credentials", () => {
  test("the target gets the stored credential, the client's own is dropped, and the client never sees it", async () => {
    const r = await curl([
      "-i",
      "-H",
      "Authorization: Bearer client-own-token",
      url(main, "/echo"),
    ]);
    const res = parseCurl(r.stdout);
    expect(res.status).toBe(200);
    const last = seen.filter((s) => s.url === "/v1/echo").pop()!;
    expect(last.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(last.headers["x-api-key"]).toBe(API_KEY);
    expect(last.headers.host).toBe(new URL(apiUrl).host);
    // The API echoed the credential; the broker overwrote it, keeping lengths.
    expect(r.stdout).not.toContain(TOKEN);
    expect(r.stdout).not.toContain(API_KEY);
    expect(JSON.parse(res.body).authorization).toBe(`Bearer ${"*".repeat(TOKEN.length)}`);
    expect(res.headers["x-echo-auth"]).toBe(`Bearer ${"*".repeat(TOKEN.length)}`);
    const all = Buffer.concat(main.sent);
    expect(all.includes(Buffer.from(TOKEN))).toBe(false);
    expect(all.includes(Buffer.from(API_KEY))).toBe(false);
    expect(JSON.stringify(events)).not.toContain(TOKEN);
  });

  test("basic auth is injected the same way", async () => {
    process.env["GW_TEST_HTTP_PW"] = "basic-password-42";
    const cfg = httpConnection.parse({
      type: "http",
      target: { url: apiUrl, basic: { user: "svc", password: { env: "GW_TEST_HTTP_PW" } } },
      allow: ["group:devs"],
    });
    const h = await harness(cfg);
    const r = await curl([url(h, "/echo")]);
    const last = seen.filter((s) => s.url === "/v1/echo").pop()!;
    expect(last.headers.authorization).toBe(
      `Basic ${Buffer.from("svc:basic-password-42").toString("base64")}`,
    );
    expect(r.stdout).not.toContain("basic-password-42");
    expect(r.stdout).not.toContain(Buffer.from("svc:basic-password-42").toString("base64"));
  });
});

describe("masking", () => {
  test("JSON fields by path, string values by detectors; everything else byte for byte", async () => {
    const r = await curl(["-i", url(main, "/owner")]);
    const res = parseCurl(r.stdout);
    expect(res.status).toBe(200);
    expect(res.body).not.toContain("ada@example.com");
    expect(res.body).not.toContain("bob@example.org");
    expect(res.body).not.toContain("123-45-6789");
    expect(res.body).not.toContain("987-65-4321");
    const doc = JSON.parse(res.body);
    expect(doc.owner).toEqual({ name: "Ada", email: "[redacted]" });
    expect(doc.note).toBe("write to [redacted:email]");
    expect(doc.items[0].ssn).toBe("[redacted]");
    expect(doc.items[1].deep.ssn).toBe("[redacted]");
    // Untouched values keep their exact text (a re-serialise would round this number).
    expect(res.body).toContain('"id": 12345678901234567890');
    expect(Number(res.headers["content-length"])).toBe(Buffer.byteLength(res.body));
    const ev = events
      .filter(
        (e): e is Extract<HttpEvent, { kind: "request" }> =>
          e.kind === "request" && e.path === "/owner",
      )
      .pop()!;
    expect(ev).toMatchObject({ method: "GET", status: 200, decision: "allowed", masked: true });
    expect(ev.responseBody).toBe(res.body);
    expect(ev.ttfbMs).toBeGreaterThanOrEqual(0);
    expect(ev.durationMs).toBeGreaterThanOrEqual(ev.ttfbMs!);
  });

  test("compressed JSON is unpacked and masked", async () => {
    const r = await curl(["--compressed", url(main, "/gzip")]);
    expect(JSON.parse(r.stdout).owner.email).toBe("[redacted]");
  });

  test("a JSON body that cannot be parsed is not forwarded (502)", async () => {
    const r = parseCurl((await curl(["-i", url(main, "/notjson")])).stdout);
    expect(r.status).toBe(502);
    expect(JSON.parse(r.body).message).toMatch(/says it is JSON but is not/);
    expect(r.body).not.toContain("leak@example.com");
  });

  test("a JSON body over the masking limit is not forwarded (502)", async () => {
    const r = parseCurl((await curl(["-i", url(main, "/big")])).stdout);
    expect(r.status).toBe(502);
    expect(JSON.parse(r.body).message).toMatch(/larger than the masking limit/);
  });

  test("binary bodies pass through untouched", async () => {
    const got = await new Promise<Buffer>((resolve, reject) => {
      httpRequest(url(main, "/binary"), (res) => {
        const c: Buffer[] = [];
        res.on("data", (d: Buffer) => c.push(d));
        res.on("end", () => resolve(Buffer.concat(c)));
      })
        .on("error", reject)
        .end();
    });
    expect([...got]).toEqual([0, 1, 2, 255, 0x40]);
  });

  test("server-sent events: JSON data by path, text by detectors", async () => {
    const r = await curl(["-N", url(main, "/events")]);
    expect(r.stdout).toContain(`data: {"owner": {"email": "[redacted]"}, "n": 1}`);
    expect(r.stdout).toContain("data: plain text for [redacted:email]");
    expect(r.stdout).not.toContain("@example.com");
  });
});

describe("streaming", () => {
  test("a chunked response streams through, masked line by line", async () => {
    const first = await new Promise<{ chunk: string; rest: Promise<string> }>((resolve, reject) => {
      httpRequest(url(main, "/stream"), (res) => {
        expect(res.headers["transfer-encoding"]).toBe("chunked");
        let all = "";
        const rest = new Promise<string>((r) => res.on("end", () => r(all)));
        res.once("data", (d: Buffer) => {
          all += d.toString();
          res.on("data", (d2: Buffer) => (all += d2.toString()));
          resolve({ chunk: d.toString(), rest });
        });
      })
        .on("error", reject)
        .end();
    });
    // The first line arrived while the target had not finished.
    expect(first.chunk).toBe("first line for [redacted:email]\n");
    expect(release).not.toBeNull();
    release!();
    const all = await first.rest;
    expect(all).toBe(
      "first line for [redacted:email]\nsecond line\nlast without newline [redacted:email]",
    );
  });

  test("with curl too", async () => {
    const p = curl(["-N", url(main, "/stream")]);
    await until(
      () => release !== null && seen.filter((s) => s.url === "/v1/stream").length >= 2,
      "the stream to start",
    );
    release!();
    const r = await p;
    expect(r.stdout).toBe(
      "first line for [redacted:email]\nsecond line\nlast without newline [redacted:email]",
    );
  });
});

describe("policy", () => {
  test("a blocked DELETE gets 403 with the reason and never reaches the target", async () => {
    const before = seen.length;
    const r = parseCurl((await curl(["-i", "-X", "DELETE", url(main, "/items/locked/9")])).stdout);
    expect(r.status).toBe(403);
    expect(JSON.parse(r.body)).toEqual({
      error: "blocked",
      message: "gw: blocked by rule 1 of the http policy of api: locked items stay",
    });
    expect(seen.length).toBe(before);
    expect(events).toContainEqual(
      expect.objectContaining({
        kind: "request",
        method: "DELETE",
        path: "/items/locked/9",
        status: 403,
        decision: "blocked",
      }),
    );
  });

  test("dot segments and escapes do not get around a rule", async () => {
    const before = seen.length;
    const a = parseCurl(
      (await curl(["-i", "--path-as-is", "-X", "DELETE", url(main, "/public/../items/locked/%39")]))
        .stdout,
    );
    expect(a.status).toBe(403);
    const b = parseCurl(
      (await curl(["-i", "-X", "DELETE", url(main, "/items/%6cocked/1")])).stdout,
    );
    expect(b.status).toBe(403);
    expect(seen.length).toBe(before);
  });

  test("a method-override header is judged too", async () => {
    const r = parseCurl(
      (
        await curl([
          "-i",
          "-X",
          "POST",
          "-H",
          "X-HTTP-Method-Override: DELETE",
          url(main, "/items/locked/2"),
        ])
      ).stdout,
    );
    expect(r.status).toBe(403);
  });

  test("a held DELETE waits for approval, then goes through", async () => {
    const p = curl(["-i", "-X", "DELETE", url(main, "/items/7")]);
    const h = await nextHold();
    expect(h.sql).toBe("DELETE /items/7");
    expect(seen.some((s) => s.url === "/v1/items/7")).toBe(false);
    h.decide(true);
    const r = parseCurl((await p).stdout);
    expect(r.status).toBe(204);
    expect(r.headers["x-gw-notice"]).toContain("waiting for approval of request ab12cd34");
    expect(seen.some((s) => s.method === "DELETE" && s.url === "/v1/items/7")).toBe(true);
    expect(events).toContainEqual(
      expect.objectContaining({
        kind: "request",
        method: "DELETE",
        path: "/items/7",
        status: 204,
        decision: "approved",
      }),
    );
  });

  test("a held request with a body: the approver sees it, and exactly it is sent", async () => {
    const p = curl([
      "-i",
      "-X",
      "DELETE",
      "-H",
      "content-type: application/json",
      "--data",
      '{"why":"cleanup"}',
      url(main, "/items/8"),
    ]);
    const h = await nextHold();
    expect(h.sql).toMatch(
      /^DELETE \/items\/8\n\n\{"why":"cleanup"\}\n\(body: 17 bytes, sha256 [0-9a-f]{64}\)$/,
    );
    h.decide(true);
    expect(parseCurl((await p).stdout).status).toBe(204);
    expect(seen.filter((s) => s.url === "/v1/items/8").pop()!.body).toBe('{"why":"cleanup"}');
  });

  test("a denied held DELETE gets 403 with who denied it", async () => {
    const p = curl(["-i", "-X", "DELETE", url(main, "/items/9")]);
    const h = await nextHold();
    h.decide(false);
    const r = parseCurl((await p).stdout);
    expect(r.status).toBe(403);
    expect(JSON.parse(r.body).message).toBe("gw: request ab12cd34 was denied by Dana: not now");
    expect(seen.some((s) => s.url === "/v1/items/9")).toBe(false);
  });
});

describe("recording", () => {
  test("method, path, status, timings and bodies (masked) per request", async () => {
    await curl([
      "-X",
      "POST",
      "-H",
      "content-type: application/json",
      "--data",
      '{"contact":"zed@example.com"}',
      url(main, "/anything?token=abc&mail=q@example.com"),
    ]);
    const ev = events
      .filter(
        (e): e is Extract<HttpEvent, { kind: "request" }> =>
          e.kind === "request" && e.path === "/anything",
      )
      .pop()!;
    expect(ev).toMatchObject({
      method: "POST",
      status: 200,
      decision: "allowed",
      requestBytes: 29,
    });
    expect(ev.query).toBe("token=abc&mail=[redacted:email]");
    expect(ev.requestBody).toBe('{"contact":"[redacted:email]"}');
    expect(JSON.parse(ev.responseBody!)).toEqual({
      ok: true,
      method: "POST",
      url: "/v1/anything?token=abc&mail=[redacted:email]",
    });
  });

  test("a redirect to the target's own URL becomes a local path", async () => {
    const r = parseCurl((await curl(["-i", url(main, "/redirect")])).stdout);
    expect(r.status).toBe(302);
    expect(r.headers["location"]).toBe("/owner?x=1");
  });

  test("a target that cannot be reached: 502 with a clear message", async () => {
    const dead = await harness(config("http://127.0.0.1:1/v1", undefined));
    const r = parseCurl((await curl(["-i", url(dead, "/x")])).stdout);
    expect(r.status).toBe(502);
    expect(JSON.parse(r.body).message).toBe(
      "gw: the target api (127.0.0.1:1) could not be reached (ECONNREFUSED)",
    );
  });
});

describe("websocket", () => {
  test("upgrades pass through with the credential injected, recorded as metadata", async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${main.port}/socket`);
    const reply = await new Promise<string>((resolve, reject) => {
      ws.on("open", () => ws.send("hello"));
      ws.on("message", (m: Buffer) => resolve(m.toString()));
      ws.on("error", reject);
    });
    expect(reply).toBe("echo:hello");
    const up = seen.filter((s) => s.method === "WS").pop()!;
    expect(up.url).toBe("/v1/socket");
    expect(up.headers.authorization).toBe(`Bearer ${TOKEN}`);
    ws.close();
    await until(
      () => events.some((e) => e.kind === "websocket" && e.status === 101),
      "the websocket event",
    );
    const ev = events.find((e) => e.kind === "websocket")!;
    expect(ev).toMatchObject({ path: "/socket", decision: "allowed" });
  });

  test("refused when the policy masks and does not allow them", async () => {
    const cfg = config(apiUrl, { ...defaultPolicy, websocket: undefined });
    const h = await harness(cfg);
    const ws = new WebSocket(`ws://127.0.0.1:${h.port}/socket`);
    const status = await new Promise<number>((resolve) => {
      ws.on("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
      ws.on("error", () => resolve(-1));
    });
    expect(status).toBe(403);
  });
});

describe("tls to the target", () => {
  test("a private CA and a client certificate (mutual TLS)", async () => {
    const ca = makeCa();
    const server = issueCert(ca, { cn: "api" });
    const client = issueCert(ca, { cn: "gw-broker", dns: [], ips: [] });
    const tlsApi = createHttpsServer(
      {
        cert: server.certPem,
        key: server.keyPem,
        ca: ca.caPem,
        requestCert: true,
        rejectUnauthorized: true,
      },
      (req, res) => {
        const peer = (
          req.socket as unknown as { getPeerCertificate(): { subject?: { CN?: string } } }
        ).getPeerCertificate();
        res.writeHead(200, { "content-type": "application/json" });
        res.end(
          JSON.stringify({
            cn: peer.subject?.CN,
            auth: req.headers.authorization === `Bearer ${TOKEN}`,
          }),
        );
      },
    );
    await new Promise<void>((r) => tlsApi.listen(0, "127.0.0.1", r));
    try {
      const base = `https://127.0.0.1:${(tlsApi.address() as AddressInfo).port}`;
      const cfg = httpConnection.parse({
        type: "http",
        target: {
          url: base,
          bearer: { env: "GW_TEST_HTTP_TOKEN" },
          ca: ca.caCert,
          clientCert: { cert: client.cert, key: client.key },
        },
        allow: ["group:devs"],
      });
      const h = await harness(cfg);
      const r = await curl([url(h, "/who")]);
      expect(JSON.parse(r.stdout)).toEqual({ cn: "gw-broker", auth: true });
      // Without the CA the target is not trusted.
      const noCa = await harness(cfg, {
        ...httpTargetFromConfig("api", cfg.target),
        ca: undefined,
      });
      const bad = parseCurl((await curl(["-i", url(noCa, "/who")])).stdout);
      expect(bad.status).toBe(502);
      expect(JSON.parse(bad.body).message).toMatch(/certificate the broker does not trust/);
    } finally {
      tlsApi.closeAllConnections();
      await new Promise((r) => tlsApi.close(r));
    }
  });
});
