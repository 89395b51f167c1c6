/**
 * What `gw replay` does by protocol: PostgreSQL sessions exactly as before, ssh and http
 * through their own replays, tcp as a summary; --channel and --export checked against what
 * the session has.
 */
import { beforeAll, describe, expect, it } from "vitest";
import type { SessionEvents } from "../../src/audit/client.js";
import { isGwError } from "../../src/errors.js";
import {
  buildSessionReplay,
  checkChannel,
  replayAsciicast,
  replayText,
} from "../../src/replay/session-replay.js";
import { MemoryStore } from "../../src/store/memory-store.js";
import { httpFixture, sessionRecord, sshFixture } from "./protocol-replay-fixture.js";
import { FIXTURE_SESSION, FIXTURE_TRANSCRIPT, recordFixture } from "./replay-fixture.js";

let postgres: SessionEvents;
beforeAll(async () => {
  const store = new MemoryStore();
  await recordFixture(store);
  postgres = {
    session: (await store.getSession(FIXTURE_SESSION))!,
    events: await store.listEvents(FIXTURE_SESSION),
    statements: await store.listStatements(FIXTURE_SESSION),
  };
});

const ssh = (): SessionEvents => ({ ...sshFixture(), statements: [] });
const http = (): SessionEvents => ({ ...httpFixture(), statements: [] });
const tcp = (): SessionEvents => ({ session: sessionRecord("tcp"), events: [], statements: [] });

function usage(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (isGwError(err) && err.exitCode === 2)
      return `${err.message}${err.hint ? ` | ${err.hint}` : ""}`;
    throw err;
  }
  throw new Error("no error");
}

describe("gw replay by protocol", () => {
  it("replays PostgreSQL sessions exactly as before", async () => {
    const r = buildSessionReplay(postgres);
    expect(r.protocol).toBe("postgres");
    expect(await replayText(r)).toBe(FIXTURE_TRANSCRIPT);
    const cast = replayAsciicast(r);
    expect(cast.what).toBe(`6 statements of session ${FIXTURE_SESSION}`);
    expect(cast.text).toContain("DROP TABLE accounts");
  });

  it("picks the ssh, http and tcp replays by the session's protocol", async () => {
    expect(buildSessionReplay(ssh()).protocol).toBe("ssh");
    expect(await replayText(buildSessionReplay(ssh()))).toContain("-- the final screen (30×4):");
    expect(await replayText(buildSessionReplay(http()))).toContain("== POST /invoices");
  });

  it("sums up a tcp session on one screen: it records no content", async () => {
    const text = await replayText(buildSessionReplay(tcp()));
    expect(text).toBe(
      [
        "gw replay · raw TCP session 7c90a1e2-7b4d-4c1a-9e2f-0a1b2c3d4e5f",
        "",
        "  who        Dana DBA (dana@example.com, user)",
        "  connection cache · from 127.0.0.1:50000",
        "  started    2026-01-15 09:30:00 UTC",
        "  ended      2026-01-15 09:30:15 UTC (client_closed)",
        "  duration   15.000s",
        "  bytes in   1.2 KiB (client → target)",
        "  bytes out  5.4 MiB (target → client)",
        "",
        "Content is not recorded for tcp connections: the broker relays the bytes without understanding them, so there is nothing to replay.",
        "",
      ].join("\n"),
    );
    const open = await replayText(
      buildSessionReplay({ ...tcp(), session: sessionRecord("tcp", { endedAt: null }) }),
    );
    expect(open).toContain("  ended      still open\n  duration   —");
  });

  it("checks --channel: ssh only, and a channel the session has", () => {
    expect(() => checkChannel(buildSessionReplay(ssh()), 3)).not.toThrow();
    expect(usage(() => checkChannel(buildSessionReplay(ssh()), 9))).toBe(
      "session 5511a1e2-7b4d-4c1a-9e2f-0a1b2c3d4e5f has no channel 9 | Its channels: " +
        "0 (shell xterm-256color 40×6), 1 (exec make test), 2 (exec sudo reboot), 3 (sftp).",
    );
    expect(usage(() => checkChannel(buildSessionReplay(http()), 0))).toBe(
      "--channel is for ssh sessions; this session is http",
    );
  });

  it("exports an ssh channel with a terminal, and refuses the rest", () => {
    const r = buildSessionReplay(ssh());
    expect(replayAsciicast(r).what).toBe(
      "channel 0 (shell xterm-256color 40×6) of session 5511a1e2-7b4d-4c1a-9e2f-0a1b2c3d4e5f",
    );
    expect(replayAsciicast(r, { channel: 1 }).text).toContain("running 3 tests");
    expect(usage(() => replayAsciicast(r, { channel: 3 }))).toBe(
      "channel 3 of session 5511a1e2-7b4d-4c1a-9e2f-0a1b2c3d4e5f has no terminal to export " +
        "(it ran no shell or command) | Channels with a terminal: 0, 1, 2 (--channel N).",
    );
    expect(usage(() => replayAsciicast(buildSessionReplay(http())))).toContain(
      "asciicast export is for PostgreSQL and ssh sessions; this session is http",
    );
    expect(usage(() => replayAsciicast(buildSessionReplay(tcp())))).toContain(
      "this session is tcp",
    );
  });
});
