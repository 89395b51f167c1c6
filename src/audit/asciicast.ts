import type { Replay } from "./replay.js";
import { endLine, headerLines, inputLines, outputLines } from "./transcript.js";

/**
 * A session as an asciicast v2 recording (https://docs.asciinema.org/manual/asciicast/v2/):
 * the psql-like transcript, each statement typed at its real offset and answered when it
 * completed. A JSON header line, then one [time, "o", text] line per output.
 */
export interface AsciicastOptions {
  /** ANSI colours in the output (default true: players render them). */
  color?: boolean;
  width?: number;
  height?: number;
}

export function asciicast(r: Replay, opts: AsciicastOptions = {}): string {
  const color = opts.color ?? true;
  const events: [number, string][] = [];
  let last = 0;
  const emit = (ms: number, lines: string[]) => {
    const t = Math.max(last, ms / 1000);
    last = t;
    events.push([round(t), lines.map((l) => l + "\r\n").join("")]);
  };
  emit(0, headerLines(r, { color }));
  for (const s of r.statements) {
    emit(s.offsetMs, ["", ...inputLines(s, r.session.connection, { color })]);
    emit(s.offsetMs + (s.durationMs ?? 0), outputLines(s, { color }));
  }
  emit(r.durationMs, ["", endLine(r, { color })]);

  const widest = events.reduce(
    (m, [, text]) => Math.max(m, ...text.split("\r\n").map((l) => [...stripAnsi(l)].length)),
    0,
  );
  const header = {
    version: 2,
    width: opts.width ?? Math.min(200, Math.max(80, widest)),
    height: opts.height ?? 30,
    timestamp: Math.floor(r.session.startedAt / 1000),
    title: `gw session ${r.session.id} · ${r.session.identity.name} on ${r.session.connection}`,
    env: { TERM: "xterm-256color", SHELL: "/bin/sh" },
  };
  return (
    [JSON.stringify(header), ...events.map((e) => JSON.stringify([e[0], "o", e[1]]))].join("\n") +
    "\n"
  );
}

function round(t: number): number {
  return Math.round(t * 1e6) / 1e6;
}

const ESC = String.fromCharCode(27);
const SGR = new RegExp(`${ESC}\\[[0-9;]*m`, "g");

function stripAnsi(s: string): string {
  return s.replace(SGR, "");
}
