/**
 * `gw replay` as users run it (bin/gw, built): the plain transcript, JSON, the asciicast
 * export, through the broker's API (as an auditor, and as someone the session is not theirs)
 * and offline from a copy of the SQLite file.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditSigner } from "../../src/audit/signer.js";
import { SqliteStore } from "../../src/store/sqlite-store.js";
import { startAuditApi, type ApiServer } from "../audit/api-server.js";
import { FIXTURE_SESSION, FIXTURE_TRANSCRIPT, recordFixture } from "../audit/replay-fixture.js";
import { runGw } from "../helpers/cli.js";

let dir: string;
let db: string;
let api: ApiServer;
let store: SqliteStore;
const signer = AuditSigner.ephemeral();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "gw-cli-replay-"));
  db = join(dir, "gw.db");
  store = SqliteStore.open(db);
  await recordFixture(store, signer);
  api = await startAuditApi(store, signer);
});
afterAll(async () => {
  await api.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const viaApi = (token: string) => ({ env: { GW_TOKEN: token, GW_BROKER: api.url } });

describe("gw replay", () => {
  it("prints the psql-like transcript with --no-tui (from the broker, by id prefix)", async () => {
    const r = await runGw(["replay", FIXTURE_SESSION.slice(0, 8), "--no-tui"], viaApi("auditor"));
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(FIXTURE_TRANSCRIPT);
  });

  it("prints the transcript when stdout is not a terminal, even without --no-tui", async () => {
    const r = await runGw(["replay", FIXTURE_SESSION], viaApi("dana"));
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(FIXTURE_TRANSCRIPT);
  });

  it("reads a copy of the SQLite file offline with --db", async () => {
    const r = await runGw(["replay", FIXTURE_SESSION, "--db", db, "--no-tui"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(FIXTURE_TRANSCRIPT);
  });

  it("dumps the session, its events and statements with --json", async () => {
    const r = await runGw(["replay", FIXTURE_SESSION, "--json"], viaApi("auditor"));
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as {
      session: { id: string; seal: { eventCount: number } };
      events: { seq: number; kind: string; hash: string; prevHash: string }[];
      statements: unknown[];
    };
    expect(out.session.id).toBe(FIXTURE_SESSION);
    // Four statements ran (a start and a completion each), two were refused (a completion).
    const S = "statement_start";
    const C = "statement";
    expect(out.events.map((e) => e.kind)).toEqual([S, C, S, C, S, C, C, S, C, C]);
    for (let i = 1; i < out.events.length; i++) {
      expect(out.events[i]!.prevHash).toBe(out.events[i - 1]!.hash);
    }
    expect(out.events).toHaveLength(out.session.seal.eventCount);
    expect(out.statements).toHaveLength(6);
  });

  it("exports an asciicast v2 file", async () => {
    const file = join(dir, "session.cast");
    const r = await runGw(
      ["replay", FIXTURE_SESSION, "--export", "asciicast", file],
      viaApi("auditor"),
    );
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(
      `wrote 6 statements of session ${FIXTURE_SESSION} to ${file} (asciicast v2)`,
    );
    const [header, ...events] = readFileSync(file, "utf8").trimEnd().split("\n");
    expect(JSON.parse(header!)).toMatchObject({ version: 2, height: 30 });
    expect(events.join("\n")).toContain("TRUNCATE ledger;");
  });

  it("refuses a bad --export, and a session the caller may not see", async () => {
    const bad = await runGw(["replay", FIXTURE_SESSION, "--export", "mp4"], viaApi("auditor"));
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--export takes a format and a file: --export asciicast FILE");

    const other = await runGw(["replay", FIXTURE_SESSION, "--json"], viaApi("erin"));
    expect(other.code).toBe(1);
    expect(JSON.parse(other.stdout)).toEqual({
      error: {
        code: "session_not_found",
        message: `no session ${FIXTURE_SESSION} that you may see`,
      },
    });

    const missing = await runGw(["replay", "ffffffff", "--db", db]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("no session ffffffff that you may see");
  });
});
