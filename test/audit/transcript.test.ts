/**
 * A recorded session as text: the psql-like transcript (`gw replay --no-tui`), exactly; and
 * as an asciicast v2 file, which the real asciinema must be able to read.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { asciicast } from "../../src/audit/asciicast.js";
import type { Replay } from "../../src/audit/replay.js";
import { previewTable, transcript } from "../../src/audit/transcript.js";
import { MemoryStore } from "../../src/store/memory-store.js";
import { FIXTURE_TRANSCRIPT, fixtureReplay, recordFixture } from "./replay-fixture.js";

let replay: Replay;
beforeAll(async () => {
  const store = new MemoryStore();
  await recordFixture(store);
  replay = await fixtureReplay(store);
});

describe("transcript", () => {
  it("reads like psql: prompt, SQL, result table, tag or error, timing and decision", () => {
    expect(transcript(replay)).toBe(FIXTURE_TRANSCRIPT);
  });

  it("colours only when asked", () => {
    expect(transcript(replay)).not.toContain("\x1b[");
    const coloured = transcript(replay, { color: true });
    expect(coloured).toContain("\x1b[31m[BLOCKED]\x1b[0m");
    expect(coloured).toContain("\x1b[32m[allowed]\x1b[0m");
  });

  it("draws psql's aligned table: centred headers, numbers to the right, NULL empty", () => {
    expect(
      previewTable({
        columns: ["n", "long header", "t"],
        rows: [
          ["1", "x", "multi\nline"],
          ["123", null, "é"],
        ],
        truncated: false,
      }),
    ).toEqual([
      "  n  | long header |     t",
      "-----+-------------+------------",
      "   1 | x           | multi↵line",
      " 123 |             | é",
    ]);
  });
});

describe("asciicast export", () => {
  it("writes a v2 header and time-ordered output events at the real offsets", () => {
    const lines = asciicast(replay).trimEnd().split("\n");
    const header = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(header).toMatchObject({
      version: 2,
      height: 30,
      timestamp: Math.floor(replay.session.startedAt / 1000),
      title: `gw session ${replay.session.id} · Dana DBA on db-prod`,
    });
    expect(header["width"]).toBeGreaterThanOrEqual(80);
    const events = lines.slice(1).map((l) => JSON.parse(l) as [number, string, string]);
    expect(events.every((e) => e[1] === "o")).toBe(true);
    const times = events.map((e) => e[0]);
    expect(times).toEqual([...times].sort((a, b) => a - b));
    // The DROP is typed at +7.506s, the session ends at +15.021s.
    expect(events.find((e) => e[2].includes("DROP TABLE accounts"))![0]).toBe(7.506);
    expect(times[times.length - 1]).toBe(15.021);
  });

  it("plays in the real asciinema (asciinema cat shows the SQL and results)", () => {
    let version: string;
    try {
      version = execFileSync("asciinema", ["--version"], { encoding: "utf8" });
    } catch {
      throw new Error(
        "asciinema is not installed: install the Debian package `asciinema` (apt-get install -y asciinema) to run this test",
      );
    }
    try {
      execFileSync("script", ["--version"], { encoding: "utf8" });
    } catch {
      throw new Error(
        "script(1) is not installed: install the Debian package `bsdutils` (apt-get install -y bsdutils) to run this test",
      );
    }
    expect(version).toMatch(/asciinema/);
    const dir = mkdtempSync(join(tmpdir(), "gw-cast-"));
    try {
      const file = join(dir, "session.cast");
      writeFileSync(file, asciicast(replay));
      // asciinema cat wants a terminal (it opens /dev/tty): give it one with script(1).
      const out = execFileSync(
        "script",
        ["-q", "-e", "-c", `asciinema cat '${file}'`, "/dev/null"],
        {
          encoding: "utf8",
          env: { ...process.env, LC_ALL: "C.UTF-8", LANG: "C.UTF-8" },
        },
      );
      const sgr = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, "g");
      const plain = out.replace(sgr, "").replace(/\r\n/g, "\n");
      for (const sql of [
        "db-prod=> SELECT id, name, balance",
        "db-prod-> LIMIT 3;",
        "db-prod=> DROP TABLE accounts;",
        "db-prod=> TRUNCATE ledger;",
        "DELETE 42",
        " 10 | carol |      -3",
        "[approved by Carol Approver]",
      ]) {
        expect(plain).toContain(sql);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
