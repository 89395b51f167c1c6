/**
 * http connections through the whole data path: curl, `gw connect`'s tunnel, the broker and a
 * local API (test/helpers/test-api.ts) that records what it receives.
 *
 * The credential: the API gets the injected bearer token and API key, never the client's own
 * Authorization; the client never gets the credential back, in headers or bodies, even from
 * an endpoint that echoes it (compressed or not). Masking: JSON fields by path and string
 * values by detectors, with the recording holding only the masked bodies. Streaming: a
 * chunked response and server-sent events reach the client a piece at a time (each piece
 * arrives before the API has even written the next). The recording: one http event and one
 * statement row per request (method, path, status, decision), and `gw audit verify` finds
 * every session's chain intact.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { HttpEvent } from "../../src/protocols/http/session.js";
import { runGw } from "../helpers/cli.js";
import { endedSession, eventually, watchedTunnel, type WatchedTunnel } from "../helpers/ssh-e2e.js";
import { GROUP_DBA, startStack, type Stack } from "../helpers/stack.js";
import { CARD, NOTES_EMAIL, OWNER_SSN, startTestApi, type TestApi } from "../helpers/test-api.js";
import { run } from "../protocols/ssh/harness.js";

const suffix = randomBytes(4).toString("hex");
const TOKEN_ENV = `GW_E2E_HTTP_TOKEN_${suffix}`;
const KEY_ENV = `GW_E2E_HTTP_KEY_${suffix}`;
const TOKEN = `tok-${randomBytes(16).toString("hex")}`;
const API_KEY = `key-${randomBytes(16).toString("hex")}`;
const CLIENT_TOKEN = `client-own-${randomBytes(8).toString("hex")}`;

let api: TestApi;
let stack: Stack;
/** Masks (paths and detectors). */
let masked: WatchedTunnel;
/** No policy: bytes pass, only the credential is scrubbed. */
let plain: WatchedTunnel;
/** Injects only an API key header (no Authorization of its own). */
let keyOnly: WatchedTunnel;

beforeAll(async () => {
  process.env[TOKEN_ENV] = TOKEN;
  process.env[KEY_ENV] = API_KEY;
  api = await startTestApi();
  const target = {
    url: `${api.url}/v1`,
    bearer: { env: TOKEN_ENV },
    headers: { "X-Api-Key": { env: KEY_ENV } },
  };
  const allow = [`group:${GROUP_DBA}`];
  stack = await startStack({
    connections: {
      api: {
        type: "http",
        target,
        allow,
        policy: {
          mask: {
            json: ["$.owner.email", "$..ssn"],
            detectors: ["email", "credit_card"],
          },
        },
      },
      "api-plain": { type: "http", target, allow },
      "api-key-only": {
        type: "http",
        target: { url: `${api.url}/v1`, headers: { "X-Api-Key": { env: KEY_ENV } } },
        allow,
      },
    },
  });
  masked = await watchedTunnel(stack, "api");
  plain = await watchedTunnel(stack, "api-plain");
  keyOnly = await watchedTunnel(stack, "api-key-only");
});

afterAll(async () => {
  await stack?.stop();
  await api?.close();
  delete process.env[TOKEN_ENV];
  delete process.env[KEY_ENV];
});

const base = (t: WatchedTunnel) => `http://127.0.0.1:${t.port}`;

/** curl -sS -v: the body on stdout, the request and response headers on stderr. */
const curl = (...args: string[]) => run("curl", ["-sS", "-v", ...args]);

/** The requests the API received since `from`. */
const seenSince = (from: number) => api.seen.slice(from);

/** The http events of a session, once it has ended. */
async function httpEvents(id: string): Promise<Extract<HttpEvent, { kind: "request" }>[]> {
  await endedSession(stack.store, id);
  return (await stack.store.listEvents(id))
    .map((e) => JSON.parse(e.body) as { type: string; event?: HttpEvent })
    .filter((b) => b.type === "http" && b.event?.kind === "request")
    .map((b) => b.event as Extract<HttpEvent, { kind: "request" }>);
}

/** The session the tunnel's latest stream opened. */
const latest = (t: WatchedTunnel, before: number) =>
  eventually("the stream's session", () =>
    t.sessions.length > before ? t.sessions[t.sessions.length - 1] : undefined,
  );

describe("the credential", () => {
  it("the API gets the injected credential, not the client's; the client never sees it, even echoed", async () => {
    const from = api.seen.length;
    const r = await curl(
      "-H",
      `Authorization: Bearer ${CLIENT_TOKEN}`,
      "-H",
      "X-Api-Key: the-clients-own-key",
      `${base(plain)}/echo`,
    );
    expect(r.code).toBe(0);
    const [got] = seenSince(from);
    expect(got).toMatchObject({
      method: "GET",
      url: "/v1/echo",
      headers: { authorization: `Bearer ${TOKEN}`, "x-api-key": API_KEY },
    });
    expect(got!.headers["host"]).toBe(`127.0.0.1:${api.port}`);
    expect(JSON.stringify(got!.headers)).not.toContain(CLIENT_TOKEN);
    expect(JSON.stringify(got!.headers)).not.toContain("the-clients-own-key");

    // The echo came back with every occurrence overwritten, lengths kept.
    const body = JSON.parse(r.stdout) as { headers: Record<string, string> };
    expect(body.headers["authorization"]).toBe(`Bearer ${"*".repeat(TOKEN.length)}`);
    expect(body.headers["x-api-key"]).toBe("*".repeat(API_KEY.length));
    expect(r.stderr).toContain(`< x-echo-authorization: Bearer ${"*".repeat(TOKEN.length)}`);
    expect(r.stderr).toContain(`< x-echo-api-key: ${"*".repeat(API_KEY.length)}`);
    for (const secret of [TOKEN, API_KEY]) {
      expect(r.stdout).not.toContain(secret);
      expect(r.stderr).not.toContain(secret);
    }
  });

  it("an echo the target compresses does not carry the credential to the client either", async () => {
    const r = await curl("--compressed", `${base(plain)}/echo`);
    expect(r.code).toBe(0);
    const body = JSON.parse(r.stdout) as { headers: Record<string, string> };
    expect(body.headers["authorization"]).toBe(`Bearer ${"*".repeat(TOKEN.length)}`);
    for (const secret of [TOKEN, API_KEY]) {
      expect(r.stdout).not.toContain(secret);
      expect(r.stderr).not.toContain(secret);
    }
  });

  it("a target that compresses whatever was asked: the broker unpacks it to scrub it", async () => {
    const r = await curl(`${base(plain)}/echo-gzip`);
    expect(r.code).toBe(0);
    expect(r.stderr).not.toMatch(/< content-encoding:/i);
    const body = JSON.parse(r.stdout) as { headers: Record<string, string> };
    expect(body.headers["authorization"]).toBe(`Bearer ${"*".repeat(TOKEN.length)}`);
    for (const secret of [TOKEN, API_KEY]) {
      expect(r.stdout).not.toContain(secret);
      expect(r.stderr).not.toContain(secret);
    }
  });

  it("the client's Authorization is dropped even where the connection injects none", async () => {
    const from = api.seen.length;
    const r = await curl("-H", `Authorization: Bearer ${CLIENT_TOKEN}`, `${base(keyOnly)}/echo`);
    expect(r.code).toBe(0);
    const [got] = seenSince(from);
    expect(got!.headers["authorization"]).toBeUndefined();
    expect(got!.headers["x-api-key"]).toBe(API_KEY);
  });

  it("a redirect to the target's own URL comes back as a local path", async () => {
    const r = await curl("-o", "/dev/null", `${base(plain)}/redirect`);
    expect(r.stderr).toMatch(/< location: \/things\/1\r?\n/i);
    expect(r.stderr).not.toContain(`127.0.0.1:${api.port}`);
  });
});

describe("masking", () => {
  it("masks JSON fields by path and strings by detectors; the recording has only masked bodies", async () => {
    const before = masked.sessions.length;
    const r = await curl(`${base(masked)}/things/7?contact=someone@example.org`);
    expect(r.code).toBe(0);
    const body = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(body).toMatchObject({
      id: "7",
      owner: { name: "Ada Lovelace", email: "[redacted]", ssn: "[redacted]" },
      notes: "escalate to [redacted:email] when late",
    });
    expect(body["card"]).toMatch(/^\[redacted:credit_card\]$/);
    // Only masked values change: the big number keeps every digit, the key order stays.
    expect(r.stdout).toContain('"total":12345678901234567890');
    expect(r.stdout.indexOf('"id"')).toBeLessThan(r.stdout.indexOf('"owner"'));
    for (const raw of [api.ownerEmail("7"), NOTES_EMAIL, OWNER_SSN, CARD])
      expect(r.stdout).not.toContain(raw);
    expect(r.stderr).toMatch(/< content-length: \d+/i);

    const id = await latest(masked, before);
    const [ev] = await httpEvents(id);
    expect(ev).toMatchObject({
      kind: "request",
      method: "GET",
      path: "/things/7",
      query: "contact=[redacted:email]",
      status: 200,
      decision: "allowed",
      masked: true,
      responseContentType: "application/json",
    });
    expect(JSON.parse(ev!.responseBody!)).toEqual(body);
    // The statement row people search and approve by: method, path and the masked query.
    expect(await stack.store.listStatements(id)).toEqual([
      expect.objectContaining({
        protocol: "http",
        sql: "GET /things/7?contact=[redacted:email]",
        commandTag: "200",
        decision: "allowed",
      }),
    ]);
    const recorded = (await stack.store.listEvents(id)).map((e) => e.body).join("\n");
    const files = readdirSync(stack.dir)
      .filter((f) => f.startsWith("gw.db"))
      .map((f) => readFileSync(join(stack.dir, f)));
    expect(files.some((f) => f.includes(Buffer.from("escalate to [redacted:email]")))).toBe(true);
    for (const raw of [api.ownerEmail("7"), NOTES_EMAIL, OWNER_SSN, CARD, "someone@example.org"]) {
      expect(recorded).not.toContain(raw);
      for (const f of files) expect(f.includes(Buffer.from(raw))).toBe(false);
    }
  });

  it("a request body is recorded masked too", async () => {
    const before = masked.sessions.length;
    const r = await curl(
      "-H",
      "content-type: application/json",
      "--data",
      JSON.stringify({ contact: "new-owner@customers.example.com", qty: 2 }),
      `${base(masked)}/things`,
    );
    expect(r.code).toBe(0);
    // The API got the body as sent.
    expect(api.seen[api.seen.length - 1]!.body).toContain("new-owner@customers.example.com");
    const [ev] = await httpEvents(await latest(masked, before));
    expect(ev).toMatchObject({ method: "POST", path: "/things", status: 201 });
    expect(ev!.requestBody).toContain("[redacted:email]");
    expect(ev!.requestBody).not.toContain("new-owner@customers.example.com");
    expect(ev!.responseBody).not.toContain("new-owner@customers.example.com");
  });
});

/**
 * Streams `path` through curl -N; each time a piece (`marker(i)`) has reached curl, checks
 * that the API has written exactly i pieces, then lets it write the next one.
 */
async function streamed(
  t: WatchedTunnel,
  path: string,
  marker: (i: number) => RegExp,
): Promise<{ out: string; code: number | null }> {
  const child = spawn("curl", ["-sSN", `${base(t)}${path}`], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
  const exited = new Promise<number | null>((r) => child.on("close", (code) => r(code)));
  try {
    const writtenAtArrival: number[] = [];
    for (let i = 1; i <= api.chunks; i++) {
      await eventually(`piece ${i} at the client (so far: ${JSON.stringify(out)} ${err})`, () =>
        marker(i).test(out) ? true : undefined,
      );
      writtenAtArrival.push(api.gate.written);
      if (i < api.chunks) api.gate.release();
    }
    // Piece i reached the client while the API had written i pieces: nothing waited for the end.
    expect(writtenAtArrival).toEqual(Array.from({ length: api.chunks }, (_, k) => k + 1));
    return { out, code: await exited };
  } finally {
    child.kill();
  }
}

describe("streaming", () => {
  it("a chunked text response arrives line by line, masked by the detectors", async () => {
    api.gate.written = 0;
    const { out, code } = await streamed(
      masked,
      "/stream",
      (i) => new RegExp(`line ${i} of ${api.chunks}: mail \\[redacted:email\\]\\n`),
    );
    expect(code).toBe(0);
    expect(out).not.toMatch(/customers\.example\.com/);
  });

  it("server-sent events arrive one by one, their JSON data masked by path", async () => {
    api.gate.written = 0;
    const { out, code } = await streamed(
      masked,
      "/events",
      (i) => new RegExp(`data: \\{"n":${i},"owner":\\{"email":"\\[redacted\\]"\\}\\}\\n\\n`),
    );
    expect(code).toBe(0);
    expect(out).not.toMatch(/customers\.example\.com/);
  });

  it("without masking, the stream passes through as it comes", async () => {
    api.gate.written = 0;
    const { out } = await streamed(
      plain,
      "/stream",
      (i) =>
        new RegExp(`line ${i} of ${api.chunks}: mail owner-s${i}@customers\\.example\\.com\\n`),
    );
    expect(out.split("\n").filter(Boolean)).toHaveLength(api.chunks);
  });
});

describe("the recording", () => {
  it("one event and one statement row per request, in order; gw audit verify finds every chain intact", async () => {
    const before = masked.sessions.length;
    // Several requests on one keep-alive connection: one session.
    const r = await run("curl", [
      "-sS",
      "-o",
      "/dev/null",
      "-w",
      "%{http_code}\\n",
      `${base(masked)}/things/1`,
      "--next",
      "-sS",
      "-o",
      "/dev/null",
      "-w",
      "%{http_code}\\n",
      "-X",
      "DELETE",
      `${base(masked)}/things/2`,
      "--next",
      "-sS",
      "-o",
      "/dev/null",
      "-w",
      "%{http_code}\\n",
      `${base(masked)}/missing`,
    ]);
    expect(r.stdout.trim().split("\n")).toEqual(["200", "200", "404"]);
    const id = await latest(masked, before);
    const events = await httpEvents(id);
    expect(events.map((e) => [e.seq, e.method, e.path, e.status, e.decision])).toEqual([
      [1, "GET", "/things/1", 200, "allowed"],
      [2, "DELETE", "/things/2", 200, "allowed"],
      [3, "GET", "/missing", 404, "allowed"],
    ]);
    for (const e of events) {
      expect(e.ttfbMs).toEqual(expect.any(Number));
      expect(e.durationMs).toBeGreaterThanOrEqual(e.ttfbMs!);
      expect(e.responseBytes).toBeGreaterThan(0);
    }
    const rows = await stack.store.listStatements(id);
    expect(rows.map((s) => [s.seq, s.protocol, s.sql, s.commandTag, s.decision])).toEqual([
      [1, "http", "GET /things/1", "200", "allowed"],
      [2, "http", "DELETE /things/2", "200", "allowed"],
      [3, "http", "GET /missing", "404", "allowed"],
    ]);
    const session = await stack.store.getSession(id);
    expect(session).toMatchObject({
      connection: "api",
      protocol: "http",
      statementCount: 3,
      identity: { name: "Dana DBA" },
      seal: expect.objectContaining({ algorithm: "ed25519" }),
    });

    // Every session of the three connections, checked by the real CLI as an auditor.
    const all = [...masked.sessions, ...plain.sessions, ...keyOnly.sessions];
    for (const s of all) await endedSession(stack.store, s);
    const v = await runGw(
      [
        "audit",
        "verify",
        ...all,
        "--json",
        "--broker",
        stack.broker.url,
        "--ca-file",
        stack.ca.caCert,
      ],
      { env: { GW_TOKEN: stack.tokens.auditor } },
    );
    expect(v.stderr).toBe("");
    expect(v.code).toBe(0);
    const out = JSON.parse(v.stdout) as {
      ok: boolean;
      results: { sessionId: string; status: string; events: number }[];
    };
    expect(out.ok).toBe(true);
    expect(out.results.map((x) => x.sessionId).sort()).toEqual([...all].sort());
    expect(out.results.every((x) => x.status === "intact")).toBe(true);
    // Each request is two links: request_start (before the target sees it) and request.
    expect(out.results.find((x) => x.sessionId === id)!.events).toBe(6);
  });
});
