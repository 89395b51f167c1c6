/**
 * An http session replayed from its chain: the requests in arrival order (one that started
 * but never completed included), the request list and details as the transcript and the
 * player show them, bodies indented without changing a digit, recorded control bytes shown
 * harmlessly.
 */
import { describe, expect, it } from "vitest";
import { buildHttpReplay, type HttpReplay } from "../../src/replay/http-replay.js";
import {
  bodyLines,
  httpTranscript,
  indentJson,
  requestDetailLines,
  requestRow,
} from "../../src/replay/http-transcript.js";
import { printable } from "../../src/replay/printable.js";
import {
  T0,
  chainIsValid,
  chainOf,
  httpFixture,
  request,
  sessionRecord,
} from "./protocol-replay-fixture.js";

function replay(): HttpReplay {
  const f = httpFixture();
  return buildHttpReplay(f.session, f.events);
}

describe("buildHttpReplay", () => {
  it("lists the requests of a valid chain in the order they arrived", () => {
    const f = httpFixture();
    expect(chainIsValid(f.session, f.events)).toBe(true);
    const r = buildHttpReplay(f.session, f.events);
    expect(r.requests.map((e) => [e.ms, e.event.kind, e.event.seq, e.unfinished])).toEqual([
      [500, "request", 1, false],
      [2000, "request", 2, false],
      [4000, "request", 3, false],
      [6000, "request", 4, false],
      [8000, "websocket", 5, false],
    ]);
    // The slow request ends after the session's recorded end: the duration covers it.
    expect(r.durationMs).toBe(16_000);
  });

  it("pairs request_start with its request, and keeps one that never completed", () => {
    const session = sessionRecord("http");
    const events = chainOf(session, "http", [
      {
        kind: "request_start",
        t: 1,
        seq: 1,
        method: "PUT",
        path: "/a",
        query: "",
        decision: "approved",
        at: T0 + 1000,
      },
      request({ t: 1, seq: 1, method: "PUT", path: "/a", decision: "approved", durationMs: 30 }),
      {
        kind: "request_start",
        t: 3,
        seq: 2,
        method: "DELETE",
        path: "/b",
        query: "x=1",
        decision: "allowed",
        at: T0 + 3000,
      },
    ]);
    const r = buildHttpReplay(session, events);
    expect(r.requests.map((e) => [e.event.seq, e.unfinished, e.event.status])).toEqual([
      [1, false, 200],
      [2, true, null],
    ]);
    const detail = requestDetailLines(r.requests[1]!).join("\n");
    expect(detail).toContain("status      no response sent");
    expect(detail).toContain(
      "-- no outcome recorded: it was sent to the target, but the session ended before it completed",
    );
  });
});

describe("http transcript (--no-tui)", () => {
  it("prints the request list, then each request with its details and bodies", () => {
    const text = httpTranscript(replay());
    expect(text).toContain("-- 5 requests: 4 allowed, 1 blocked");
    expect(text).toContain(
      "   #  time      method   status decision   duration      size  path\n" +
        "   1  +0.500s   GET      200    allowed     12.0 ms      61 B  /invoices/42?expand=lines\n" +
        "   2  +2.000s   POST     201    allowed     48.0 ms       9 B  /invoices\n" +
        "   3  +4.000s   DELETE   403    BLOCKED     0.00 ms       0 B  /invoices/locked/7\n" +
        "   4  +6.000s   GET      502    allowed     10.00 s       0 B  /reports/slow\n" +
        "   5  +8.000s   WS       101    allowed      3.00 s   4.3 KiB  /live\n",
    );
    expect(text).toContain(
      [
        "== GET /invoices/42?expand=lines",
        "status      200 OK",
        "decision    allowed",
        "at          2026-01-15 09:30:00 UTC (+0.500s into the session)",
        "query       expand=lines",
        "timings     first byte 8.00 ms · total 12.0 ms",
        "request     0 B",
        "response    61 B · application/json · masked",
        "-- response body:",
        "  {",
        '    "id": 42,',
        '    "total": 12345678901234567890,',
        '    "customer": {',
        '      "email": "[redacted]"',
        "    },",
        '    "lines": []',
        "  }",
      ].join("\n"),
    );
    // Why it was blocked; the error of the one the target failed; the WebSocket's bytes.
    expect(text).toContain(
      "decision    BLOCKED\nreason      gw: blocked by rule 1 of billing-api: locked invoices stay",
    );
    expect(text).toContain("error       the target did not answer in 10 s");
    expect(text).toContain("frames      300 B from the client, 4.0 KiB to it (not inspected)");
    // A body's escape sequence is shown, not sent to the terminal.
    expect(text).toContain("  created␛[2J");
    expect(text).not.toContain("\x1b");
  });

  it("colours statuses and decisions only when asked", () => {
    const text = httpTranscript(replay(), { color: true });
    expect(text).toContain("\x1b[31m403    \x1b[0m\x1b[31mBLOCKED  \x1b[0m");
    expect(httpTranscript(replay())).not.toContain("\x1b[");
  });

  it("says so for a session without requests", () => {
    const session = sessionRecord("http");
    const text = httpTranscript(buildHttpReplay(session, []));
    expect(text).toContain("-- 0 requests");
    expect(text).not.toContain("method");
  });
});

describe("bodies", () => {
  it("indents JSON without parsing its values: big numbers and escapes stay as recorded", () => {
    expect(indentJson('{"a":[1,2,{}],"b":"x\\"y,{}","n":12345678901234567890.50}')).toBe(
      '{\n  "a": [\n    1,\n    2,\n    {}\n  ],\n  "b": "x\\"y,{}",\n  "n": 12345678901234567890.50\n}',
    );
  });

  it("keeps bodies that are cut, or not JSON, as they came", () => {
    expect(bodyLines('{"a":1', "application/json", true)).toEqual(['  {"a":1']);
    expect(bodyLines("line 1\r\nline 2", "text/plain", false)).toEqual(["  line 1", "  line 2"]);
    expect(bodyLines('{"a":1}\n{"b":2}', "application/x-ndjson", false)).toEqual([
      '  {"a":1}',
      '  {"b":2}',
    ]);
  });

  it("shows control characters as pictures", () => {
    expect(printable("a\x1b[31mb\x07\tc\nd\x9b")).toBe("a␛[31mb␇\tc\nd\\x9b");
  });

  it("draws one row per request for the player's list", () => {
    const e = replay().requests[2]!;
    expect(requestRow(e)).toBe(
      "   3  +4.000s   DELETE   403    BLOCKED     0.00 ms       0 B  /invoices/locked/7",
    );
  });
});
