import { STATUS_CODES } from "node:http";
import { fmtClock, fmtMs, fmtOffset, painter } from "../audit/transcript.js";
import { sessionEndLine, sessionHeaderLines } from "./header.js";
import type { HttpEntry, HttpReplay } from "./http-replay.js";
import { oneLine, printable } from "./printable.js";
import { fmtBytes } from "./ssh-replay.js";

/**
 * An http session as text: the request list (one row each, as the player shows it) and each
 * request's details with its masked bodies. The same lines feed the player's detail view.
 */
export interface HttpTranscriptOptions {
  color?: boolean;
}

type Paint = ReturnType<typeof painter>;

export function httpTranscript(r: HttpReplay, opts: HttpTranscriptOptions = {}): string {
  const paint = painter(opts.color === true);
  const lines = sessionHeaderLines(r.session, summary(r), opts);
  if (r.requests.length > 0) {
    lines.push("", paint("bold", requestHeader()));
    for (const e of r.requests) lines.push(requestRow(e, paint));
    for (const e of r.requests) {
      lines.push("", paint("bold", `== ${titleOf(e)}`), ...requestDetailLines(e, opts));
    }
  }
  lines.push("", sessionEndLine(r.session, opts));
  return lines.join("\n") + "\n";
}

function summary(r: HttpReplay): string {
  const n = r.requests.length;
  const counts = new Map<string, number>();
  for (const e of r.requests) counts.set(e.event.decision, (counts.get(e.event.decision) ?? 0) + 1);
  return (
    `${n} request${n === 1 ? "" : "s"}` +
    (n > 0 ? `: ${[...counts].map(([k, v]) => `${v} ${k}`).join(", ")}` : "")
  );
}

/** "GET /invoices/42?expand=lines", "WebSocket /live" */
export function titleOf(e: HttpEntry): string {
  const ev = e.event;
  const method = ev.kind === "websocket" ? "WebSocket" : ev.method;
  return oneLine(`${method} ${ev.path}${ev.query ? `?${ev.query}` : ""}`);
}

const COLS = { n: 4, time: 10, method: 9, status: 7, decision: 9, duration: 10, size: 10 };

export function requestHeader(): string {
  return (
    "#".padStart(COLS.n) +
    "  " +
    "time".padEnd(COLS.time) +
    "method".padEnd(COLS.method) +
    "status".padEnd(COLS.status) +
    "decision".padEnd(COLS.decision) +
    "duration".padStart(COLS.duration) +
    "size".padStart(COLS.size) +
    "  path"
  );
}

/** One request as a row: number, time, method, status, decision, duration, response size, path. */
export function requestRow(e: HttpEntry, paint: Paint = painter(false)): string {
  const ev = e.event;
  const method = ev.kind === "websocket" ? "WS" : ev.method;
  const size = ev.kind === "websocket" ? ev.bytesIn + ev.bytesOut : ev.responseBytes;
  const loud = ev.decision === "blocked" || ev.decision === "denied";
  const status = String(ev.status ?? "—").padEnd(COLS.status);
  return (
    String(ev.seq).padStart(COLS.n) +
    "  " +
    fmtOffset(e.ms).padEnd(COLS.time) +
    oneLine(method)
      .slice(0, COLS.method - 1)
      .padEnd(COLS.method) +
    paint(ev.status !== null && ev.status >= 400 ? "red" : "green", status) +
    paint(
      loud ? "red" : ev.decision === "approved" ? "yellow" : "dim",
      (loud ? ev.decision.toUpperCase() : ev.decision).padEnd(COLS.decision),
    ) +
    fmtMs(ev.durationMs).padStart(COLS.duration) +
    fmtBytes(size).padStart(COLS.size) +
    "  " +
    oneLine(ev.path + (ev.query ? `?${ev.query}` : ""))
  );
}

/** Everything recorded about one request, bodies included (masked as the client exchanged them). */
export function requestDetailLines(e: HttpEntry, opts: HttpTranscriptOptions = {}): string[] {
  const paint = painter(opts.color === true);
  const ev = e.event;
  const loud = ev.decision === "blocked" || ev.decision === "denied";
  const statusText =
    ev.status === null
      ? "no response sent"
      : `${ev.status} ${STATUS_CODES[ev.status] ?? ""}`.trim();
  const out = [
    `status      ${paint(ev.status !== null && ev.status >= 400 ? "red" : "green", statusText)}`,
    `decision    ${paint(loud ? "red" : ev.decision === "approved" ? "yellow" : "green", loud ? ev.decision.toUpperCase() : ev.decision)}`,
  ];
  if (ev.reason) out.push(`reason      ${paint(loud ? "red" : "dim", oneLine(ev.reason))}`);
  out.push(`at          ${fmtClock(ev.at)} (${fmtOffset(e.ms)} into the session)`);
  if (ev.query) out.push(`query       ${oneLine(ev.query)}`);
  if (ev.kind === "websocket") {
    out.push(
      `duration    ${fmtMs(ev.durationMs)}`,
      `frames      ${fmtBytes(ev.bytesIn)} from the client, ${fmtBytes(ev.bytesOut)} to it (not inspected)`,
    );
  } else {
    out.push(
      `timings     ${ev.ttfbMs === null ? "" : `first byte ${fmtMs(ev.ttfbMs)} · `}total ${fmtMs(ev.durationMs)}`,
      `request     ${fmtBytes(ev.requestBytes)}${ev.requestContentType ? ` · ${oneLine(ev.requestContentType)}` : ""}`,
      `response    ${fmtBytes(ev.responseBytes)}${ev.responseContentType ? ` · ${oneLine(ev.responseContentType)}` : ""}${ev.masked ? " · masked" : ""}`,
    );
  }
  if (ev.error) out.push(`error       ${paint("red", oneLine(ev.error))}`);
  if (e.unfinished) {
    out.push(
      paint(
        "yellow",
        "-- no outcome recorded: it was sent to the target, but the session ended before it completed",
      ),
    );
  }
  if (ev.kind === "request") {
    const truncated = ev.bodiesTruncated === true;
    for (const [name, body, type] of [
      ["request body", ev.requestBody, ev.requestContentType],
      ["response body", ev.responseBody, ev.responseContentType],
    ] as const) {
      if (body === undefined || body === "") continue;
      out.push(
        paint("dim", `-- ${name}${truncated ? " (cut at the recording limit)" : ""}:`),
        ...bodyLines(body, type, truncated),
      );
    }
  }
  return out;
}

/** A body as lines: JSON indented (its text kept, numbers and all), anything else as it came. */
export function bodyLines(body: string, contentType: string | null, truncated: boolean): string[] {
  const json = contentType !== null && /[/+]json\b|ndjson|jsonl/i.test(contentType);
  let text = body;
  if (json && !truncated && !/ndjson|jsonl/i.test(contentType ?? "")) {
    try {
      JSON.parse(body);
      text = indentJson(body);
    } catch {
      // Not whole JSON: shown as recorded.
    }
  }
  return printable(text.replace(/\r\n?/g, "\n"))
    .split("\n")
    .map((l) => `  ${l}`);
}

/**
 * Valid JSON re-indented by two spaces without parsing its values, so big integers and
 * escapes print exactly as recorded.
 */
export function indentJson(text: string): string {
  let out = "";
  let depth = 0;
  let inString = false;
  const nl = () => "\n" + "  ".repeat(depth);
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (inString) {
      out += c;
      if (c === "\\") out += text[++i] ?? "";
      else if (c === '"') inString = false;
      continue;
    }
    switch (c) {
      case '"':
        inString = true;
        out += c;
        break;
      case "{":
      case "[": {
        // An empty object or array stays on its line.
        let j = i + 1;
        while (j < text.length && /\s/.test(text[j]!)) j++;
        if (text[j] === (c === "{" ? "}" : "]")) {
          out += c + text[j];
          i = j;
          break;
        }
        depth++;
        out += c + nl();
        break;
      }
      case "}":
      case "]":
        depth--;
        out += nl() + c;
        break;
      case ",":
        out += "," + nl();
        break;
      case ":":
        out += ": ";
        break;
      case " ":
      case "\t":
      case "\n":
      case "\r":
        break;
      default:
        out += c;
    }
  }
  return out;
}
