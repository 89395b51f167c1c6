/**
 * An ssh session replayed from its chain: the channels and timeline marks read from the
 * events, the terminal re-created by the emulator at any moment (clears, cursor moves,
 * resizes, seeking backwards), the --no-tui transcript, and the asciicast export, which the
 * real asciinema must play.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { SshEvent } from "../../src/protocols/ssh/events.js";
import { screenText } from "../../src/replay/screen.js";
import { sshAsciicast } from "../../src/replay/ssh-asciicast.js";
import {
  buildSshReplay,
  defaultChannel,
  terminalOf,
  type SshReplay,
} from "../../src/replay/ssh-replay.js";
import { eventLog, sshTranscript } from "../../src/replay/ssh-transcript.js";
import { TerminalReplayer, type TerminalSpec } from "../../src/replay/terminal-replayer.js";
import {
  CLEAR,
  chainIsValid,
  chainOf,
  sessionRecord,
  sshEvents,
  sshFixture,
} from "./protocol-replay-fixture.js";

function replay(): SshReplay {
  const f = sshFixture();
  return buildSshReplay(f.session, f.events);
}

/** The screen's rows as text at `ms`, trailing blank rows dropped. */
async function screenAt(t: TerminalReplayer, ms: number): Promise<string[]> {
  const s = await t.screenAt(ms);
  if (!s) throw new Error("superseded");
  const rows = screenText(s);
  while (rows.length > 0 && rows[rows.length - 1] === "") rows.pop();
  return rows;
}

const spec = (frames: TerminalSpec["frames"], cols = 20, rows = 4): TerminalSpec => ({
  frames,
  cols,
  rows,
  convertEol: false,
});

describe("buildSshReplay", () => {
  it("reads a valid chain into channels, marks and a duration", () => {
    const f = sshFixture();
    expect(chainIsValid(f.session, f.events)).toBe(true);
    const r = buildSshReplay(f.session, f.events);
    expect(r.durationMs).toBe(15_000);
    expect(
      r.channels.map((c) => [c.channel, c.kind, c.decision, c.exit?.code ?? null, c.outputEvents]),
    ).toEqual([
      [0, "shell", "allowed", 0, 5],
      [1, "exec", "allowed", 0, 1],
      [2, "exec", "blocked", 1, 0],
      [3, "sftp", "allowed", null, 0],
    ]);
    expect(r.channels[0]!.pty).toEqual({ term: "xterm-256color", cols: 40, rows: 6 });
    expect(r.markers.map((m) => [m.ms, m.kind, m.label])).toEqual([
      [10_000, "exec", "exec make test"],
      [11_500, "refused", "exec sudo reboot BLOCKED: sudo needs a second pair of eyes"],
      [12_500, "sftp", "sftp write /srv/dist.tgz (1.5 MiB)"],
      [13_000, "error", "sftp open /etc/shadow (read) failed: Permission denied"],
      [13_500, "refused", "forward local db.internal:5432 denied"],
      [14_000, "refused", "refused x11: X11 forwarding is not relayed"],
    ]);
    expect(defaultChannel(r)).toBe(0);
  });

  it("orders events by their own clock, and skips bodies of other types", () => {
    const session = sessionRecord("ssh", { endedAt: null, endReason: null });
    const events = chainOf(session, "ssh", [
      { kind: "output", t: 2, channel: 0, stream: "stdout", data: "late" },
      { kind: "output", t: 1, channel: 0, stream: "stdout", data: "early" },
    ]);
    events.push({ ...events[0]!, seq: 3, body: "not json" });
    const r = buildSshReplay(session, events);
    expect(r.events.map((e) => e.ms)).toEqual([1000, 2000]);
    // Still open: the duration runs to the last event.
    expect(r.durationMs).toBe(2000);
    // No shell: the first channel with output is the one to show.
    expect(defaultChannel(r)).toBe(0);
  });

  it("gives the emulator a channel's output and resizes, with the pty's size", () => {
    const r = replay();
    const shell = terminalOf(r, 0);
    expect(shell).toMatchObject({ cols: 40, rows: 6, convertEol: false });
    expect(
      shell.frames.map((f) => ("resize" in f ? `r${f.resize.cols}x${f.resize.rows}` : f.ms)),
    ).toEqual([200, 2000, 6000, 7000, "r30x4", 9500]);
    // A command without a pty: 80×24, bare \n treated as a tty would.
    expect(terminalOf(r, 1)).toMatchObject({ cols: 80, rows: 24, convertEol: true });
  });
});

describe("TerminalReplayer (seeking lands on the right screen)", () => {
  it("shows the screen before a clear, after it, and before it again (a backward seek)", async () => {
    const t = new TerminalReplayer(
      spec([
        { ms: 100, data: "A\r\n" },
        { ms: 5000, data: `${CLEAR}B` },
      ]),
    );
    try {
      expect(await screenAt(t, 0)).toEqual([]);
      expect(await screenAt(t, 4999)).toEqual(["A"]);
      expect(await screenAt(t, 5000)).toEqual(["B"]);
      expect(await screenAt(t, 100)).toEqual(["A"]);
      expect(await screenAt(t, 60_000)).toEqual(["B"]);
    } finally {
      t.dispose();
    }
  });

  it("moves the cursor as the program did, and reports where it is", async () => {
    const t = new TerminalReplayer(
      spec([
        { ms: 0, data: "first\r\nsecond" },
        // Up one row, to column 3, overwrite; then save, jump to row 4 col 5, write.
        { ms: 10, data: "\x1b[A\x1b[3GXY\x1b[4;5HZ" },
      ]),
    );
    try {
      expect(await screenAt(t, 0)).toEqual(["first", "second"]);
      const s = (await t.screenAt(10))!;
      expect(screenText(s)).toEqual(["fiXYt", "second", "", "    Z"]);
      expect(s.cursor).toMatchObject({ x: 5, y: 3, visible: true });
      // The cursor hidden (DECTCEM) and shown again.
      const hidden = new TerminalReplayer(spec([{ ms: 0, data: "\x1b[?25lx" }]));
      expect((await hidden.screenAt(0))!.cursor.visible).toBe(false);
      hidden.dispose();
    } finally {
      t.dispose();
    }
  });

  it("applies resizes in order with the output around them", async () => {
    const t = new TerminalReplayer(
      spec(
        [
          { ms: 0, data: "0123456789" },
          { ms: 10, resize: { cols: 5, rows: 2 } },
          { ms: 20, data: "\r\nabcdefgh" },
        ],
        10,
        3,
      ),
    );
    try {
      let s = (await t.screenAt(0))!;
      expect([s.cols, s.rows]).toEqual([10, 3]);
      s = (await t.screenAt(10))!;
      expect([s.cols, s.rows]).toEqual([5, 2]);
      s = (await t.screenAt(20))!;
      // 8 characters on a 5-column line wrap; 2 rows show the last two.
      expect(screenText(s)).toEqual(["abcde", "fgh"]);
      // Back before the resize: a fresh terminal of the first size.
      s = (await t.screenAt(5))!;
      expect([s.cols, s.rows]).toEqual([10, 3]);
      expect(screenText(s)[0]).toBe("0123456789");
    } finally {
      t.dispose();
    }
  });

  it("keeps colours and the alternate screen", async () => {
    const t = new TerminalReplayer(
      spec([
        { ms: 0, data: "\x1b[1;31mred\x1b[0m \x1b[38;5;200mpink\x1b[0m \x1b[38;2;1;2;3mrgb" },
        { ms: 10, data: "\x1b[?1049h\x1b[Hvim" },
        { ms: 20, data: "\x1b[?1049l" },
      ]),
    );
    try {
      const s = (await t.screenAt(0))!;
      const styled = s.lines[0]!.filter((c) => c.ch !== " ");
      expect(styled[0]!.style).toEqual({ fg: "red", bold: true });
      expect(styled[3]!.style).toEqual({ fg: "ansi256(200)" });
      expect(styled[7]!.style).toEqual({ fg: "#010203" });
      const alt = (await t.screenAt(10))!;
      expect(alt.altScreen).toBe(true);
      expect(screenText(alt)[0]).toBe("vim");
      const back = (await t.screenAt(20))!;
      expect(back.altScreen).toBe(false);
      expect(screenText(back)[0]).toBe("red pink rgb");
    } finally {
      t.dispose();
    }
  });

  it("answers only the latest of overlapping seeks", async () => {
    const t = new TerminalReplayer(
      spec([
        { ms: 0, data: "A" },
        { ms: 10, data: "B" },
      ]),
    );
    try {
      const first = t.screenAt(0);
      const second = t.screenAt(10);
      expect(await first).toBeNull();
      expect(screenText((await second)!)[0]).toBe("AB");
    } finally {
      t.dispose();
    }
  });
});

describe("ssh transcript (--no-tui)", () => {
  it("prints each channel's final screen or output, and the event log", async () => {
    const text = await sshTranscript(replay());
    expect(text).not.toContain("\x1b");
    expect(text).toContain(
      "-- Dana DBA (dana@example.com, user) on build-box (ssh) · client OpenSSH_9.6",
    );
    expect(text).toContain("-- 4 channels, 2 commands, 2 file operations, 3 refused");
    // The shell's last screen, through the emulator: cleared, C placed by the cursor move.
    expect(text).toContain(
      [
        "== channel 0 · shell xterm-256color 40×6 · +0.100s–+14.500s · exit 0 · 57 B of output",
        "-- the final screen (30×4):",
        "B",
        "",
        "         C",
        "red",
      ].join("\n"),
    );
    expect(text).not.toContain("file-1");
    expect(text).toContain(
      "== channel 1 · exec make test · +10.000s–+11.000s · exit 0 · 19 B of output\nrunning 3 tests\nok\n",
    );
    expect(text).toContain(
      "== channel 2 · exec sudo reboot · blocked · +11.500s–+11.500s · exit 1\n(it never ran)",
    );
    expect(text).toContain("-- session ended +15.000s: client_closed");
  });

  it("logs commands with decisions and exit codes, file operations, refusals and forwards", () => {
    expect(eventLog(replay())).toEqual([
      " +0.100s  [0] shell xterm-256color 40×6 [allowed]",
      "+10.000s  [1] exec make test [allowed] → exit 0 after 1.00 s",
      "+11.500s  [2] exec sudo reboot [BLOCKED: sudo needs a second pair of eyes]",
      "+12.000s  [3] subsystem sftp [allowed]",
      "+12.500s  [3] sftp write /srv/dist.tgz (1.5 MiB)",
      "+13.000s  [3] sftp open /etc/shadow (read) failed: Permission denied",
      "+13.500s      forward local db.internal:5432 [DENIED]",
      "+14.000s  [0] refused x11: X11 forwarding is not relayed",
      "+14.500s  [0] shell exit 0 after 14.40 s",
    ]);
    // One channel, up to a moment (what the player lists for an sftp channel).
    expect(eventLog(replay(), { channel: 3, untilMs: 12_500 })).toEqual([
      "+12.000s  [3] subsystem sftp [allowed]",
      "+12.500s  [3] sftp write /srv/dist.tgz (1.5 MiB)",
    ]);
  });

  it("prints only the chosen channel's screen with --channel, and recorded control bytes harmlessly", async () => {
    const session = sessionRecord("ssh");
    const events: SshEvent[] = [
      ...sshEvents(),
      {
        kind: "exec",
        t: 14.6,
        channel: 4,
        command: "echo \x1b]0;pwned\x07",
        pty: false,
        decision: "denied",
      },
    ];
    const r = buildSshReplay(session, chainOf(session, "ssh", events));
    const text = await sshTranscript(r, { channel: 1 });
    expect(text).toContain("== channel 1 ·");
    expect(text).not.toContain("== channel 0 ·");
    // The log is whole; the escape sequence in the command is shown, not sent.
    expect(text).toContain("[4] exec echo ␛]0;pwned␇ [DENIED]");
    expect(text).not.toContain("\x1b");
  });

  it("says so when nothing was recorded (a pruned session)", async () => {
    const session = sessionRecord("ssh", { prunedAt: Date.UTC(2026, 3, 1) });
    const text = await sshTranscript(buildSshReplay(session, []));
    expect(text).toContain("-- 0 channels\n");
    expect(text).toContain("-- its events were removed by retention on 2026-04-01 00:00:00 UTC");
    expect(text).toContain("-- events\n(no events recorded)\n");
  });

  it("colours decisions only when asked", async () => {
    const text = await sshTranscript(replay(), { color: true });
    expect(text).toContain("\x1b[31m[BLOCKED: sudo needs a second pair of eyes]\x1b[0m");
    expect(text).toContain("\x1b[32m[allowed]\x1b[0m");
  });
});

describe("ssh asciicast export", () => {
  it("writes the first shell through toAsciicast, timed from the channel's start", () => {
    const lines = sshAsciicast(replay())!.trimEnd().split("\n");
    expect(JSON.parse(lines[0]!)).toMatchObject({
      version: 2,
      width: 40,
      height: 6,
      env: { TERM: "xterm-256color" },
    });
    const events = lines.slice(1).map((l) => JSON.parse(l) as [number, string, string]);
    expect(events[0]).toEqual([0.1, "o", "A\r\n$ "]);
    expect(events).toContainEqual([8.9, "r", "30x4"]);
  });

  it("turns bare \\n into \\r\\n for a command without a pty; null for sftp", () => {
    const cast = sshAsciicast(replay(), 1)!;
    expect(cast).toContain('"running 3 tests\\r\\nok\\r\\n"');
    expect(sshAsciicast(replay(), 3)).toBeNull();
  });

  // Skipped (not failed) where asciinema or script(1) is missing: the format is checked above;
  // this proves a real player reads it. Install with: apt-get install -y asciinema bsdutils.
  it.skipIf(!hasTools("asciinema", "script"))(
    "plays in the real asciinema (asciinema cat shows the terminal's text)",
    () => {
      const dir = mkdtempSync(join(tmpdir(), "gw-ssh-cast-"));
      try {
        const file = join(dir, "shell.cast");
        writeFileSync(file, sshAsciicast(replay())!);
        const out = execFileSync(
          "script",
          ["-q", "-e", "-c", `asciinema cat '${file}'`, "/dev/null"],
          {
            encoding: "utf8",
            env: { ...process.env, LC_ALL: "C.UTF-8", LANG: "C.UTF-8" },
          },
        );
        for (const text of ["A\r\n$ ", "file-1  file-2", "\x1b[3;10HC", "red"]) {
          expect(out).toContain(text);
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});

function hasTools(...names: string[]): boolean {
  return names.every((name) => {
    try {
      execFileSync(name, ["--version"], { stdio: "ignore" });
      return true;
    } catch {
      return false;
    }
  });
}
