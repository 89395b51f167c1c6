/**
 * `gw replay` (the command, in process) on ssh, http and tcp sessions read offline from a
 * SQLite file: the text output per protocol, --channel, and --export asciicast.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Command } from "commander";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { registerReplay } from "../../src/cli/commands/replay.js";
import { isGwError } from "../../src/errors.js";
import { SqliteStore } from "../../src/store/sqlite-store.js";
import type { AuditEvent, SessionRecord } from "../../src/store/types.js";
import { httpFixture, sessionRecord, sshFixture } from "./protocol-replay-fixture.js";

let dir: string;
let db: string;
const ssh = sshFixture();
const http = httpFixture();
const tcp = sessionRecord("tcp");

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "gw-replay-cmd-"));
  db = join(dir, "gw.db");
  const store = SqliteStore.open(db);
  const put = async (s: SessionRecord, events: AuditEvent[]) => {
    await store.createSession({ ...s, endedAt: null, endReason: null });
    for (const e of events) await store.appendEvent(e);
    await store.endSession(s.id, {
      endedAt: s.endedAt,
      endReason: s.endReason,
      endDetail: s.endDetail,
      bytesIn: s.bytesIn,
      bytesOut: s.bytesOut,
      statementCount: s.statementCount,
    });
  };
  await put(ssh.session, ssh.events);
  await put(http.session, http.events);
  await put(tcp, []);
  await store.close();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function replay(...args: string[]): Promise<{ stdout: string; stderr: string }> {
  const program = new Command().exitOverride();
  registerReplay(program);
  let stdout = "";
  let stderr = "";
  const out = vi.spyOn(process.stdout, "write").mockImplementation((chunk) => {
    stdout += String(chunk);
    return true;
  });
  const err = vi.spyOn(process.stderr, "write").mockImplementation((chunk) => {
    stderr += String(chunk);
    return true;
  });
  try {
    await program.parseAsync(["replay", ...args, "--db", db], { from: "user" });
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
  return { stdout, stderr };
}

describe("gw replay on ssh, http and tcp sessions", () => {
  it("prints an ssh session's final screens and event log", async () => {
    const { stdout } = await replay(ssh.session.id.slice(0, 8), "--no-tui");
    expect(stdout).toContain("-- the final screen (30×4):\nB\n\n         C\nred\n");
    expect(stdout).toContain("[2] exec sudo reboot [BLOCKED: sudo needs a second pair of eyes]");
  });

  it("prints one channel with --channel, and refuses one the session does not have", async () => {
    const { stdout } = await replay(ssh.session.id, "--no-tui", "--channel", "1");
    expect(stdout).toContain("== channel 1 · exec make test");
    expect(stdout).not.toContain("== channel 0 ·");
    const failed = await replay(ssh.session.id, "--no-tui", "--channel", "7").catch(
      (e: unknown) => e,
    );
    expect(isGwError(failed) && failed.message).toBe(`session ${ssh.session.id} has no channel 7`);
  });

  it("exports an ssh shell as asciicast", async () => {
    const file = join(dir, "shell.cast");
    const { stderr } = await replay(ssh.session.id, "--export", "asciicast", file);
    expect(stderr).toBe(
      `wrote channel 0 (shell xterm-256color 40×6) of session ${ssh.session.id} to ${file} (asciicast v2)\n`,
    );
    expect(readFileSync(file, "utf8")).toContain('[0.1,"o","A\\r\\n$ "]');
  });

  it("prints an http session's requests and bodies", async () => {
    const { stdout } = await replay(http.session.id, "--no-tui");
    expect(stdout).toContain("-- 5 requests: 4 allowed, 1 blocked");
    expect(stdout).toContain('    "total": 12345678901234567890,');
  });

  it("sums up a tcp session, even without --no-tui", async () => {
    const { stdout } = await replay(tcp.id);
    expect(stdout).toContain("gw replay · raw TCP session");
    expect(stdout).toContain("Content is not recorded for tcp connections");
  });
});
