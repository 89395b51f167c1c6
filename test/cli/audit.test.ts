/**
 * `gw audit verify`, `gw audit public-key` and `gw sessions` as users run them (bin/gw,
 * built): against the broker's API (auditors see all, others their own) and offline against
 * a copy of the SQLite file with the broker's public key, before and after tampering.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditSigner } from "../../src/audit/signer.js";
import type { VerifyResult } from "../../src/audit/verify.js";
import { SqliteStore } from "../../src/store/sqlite-store.js";
import { startAuditApi, type ApiServer } from "../audit/api-server.js";
import { Clock, DANA, recordSession } from "../audit/fixtures.js";
import { FIXTURE_SESSION, recordFixture } from "../audit/replay-fixture.js";
import { runGw } from "../helpers/cli.js";

const ERIN_SESSION = "e1e1e1e1-0000-4000-8000-000000000001";
const ERIN = { ...DANA, oid: "oid-erin", name: "Erin", upn: "erin@example.com" };

let dir: string;
let db: string;
let pub: string;
let api: ApiServer;
let store: SqliteStore;
const signer = AuditSigner.ephemeral();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "gw-cli-audit-"));
  db = join(dir, "gw.db");
  store = SqliteStore.open(db);
  await recordFixture(store, signer);
  // Erin's session, an hour later, through another agent.
  await recordSession(store, ERIN_SESSION, {
    signer,
    clock: new Clock(Date.UTC(2026, 0, 15, 10, 30)),
    agentLabel: "cursor",
    identity: ERIN,
  });
  api = await startAuditApi(store, signer);
  pub = join(dir, "broker.pub");
});
afterAll(async () => {
  await api.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const viaApi = (token: string) => ({ env: { GW_TOKEN: token, GW_BROKER: api.url } });

describe("gw audit public-key", () => {
  it("prints the broker's Ed25519 public key, or writes it to a file", async () => {
    const r = await runGw(["audit", "public-key"], viaApi("dana"));
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(signer.publicKeyPem);
    const w = await runGw(["audit", "public-key", "--out", pub], viaApi("dana"));
    expect(w.code).toBe(0);
    expect(w.stderr).toContain(`wrote the broker's audit key ${signer.keyId} to ${pub}`);
    expect(readFileSync(pub, "utf8")).toBe(signer.publicKeyPem);
  });
});

describe("gw audit verify", () => {
  it("verifies every session an auditor may see through the broker", async () => {
    const r = await runGw(["audit", "verify"], viaApi("auditor"));
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(
      `${FIXTURE_SESSION}  intact  intact: 10 events, signed by key ${signer.keyId}`,
    );
    expect(r.stdout).toContain(`${ERIN_SESSION}  intact  intact: 8 events`);
    expect(r.stdout).toContain("2 sessions verified");
  });

  it("verifies one session by id prefix, as JSON", async () => {
    const r = await runGw(
      ["audit", "verify", FIXTURE_SESSION.slice(0, 8), "--json"],
      viaApi("dana"),
    );
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { ok: boolean; results: VerifyResult[] };
    expect(out.ok).toBe(true);
    expect(out.results.map((x) => [x.sessionId, x.status])).toEqual([[FIXTURE_SESSION, "intact"]]);
  });

  it("verifies a copy of the database offline with the public key, and names what was changed", async () => {
    await runGw(["audit", "public-key", "--out", pub], viaApi("dana"));
    // A consistent copy of the live database, as an auditor would take one.
    const copy = join(dir, "copy.db");
    const live = new Database(db);
    live.prepare("VACUUM INTO ?").run(copy);
    live.close();

    const clean = await runGw(["audit", "verify", "--db", copy, "--public-key", pub]);
    expect(clean.code).toBe(0);
    expect(clean.stdout).toContain("2 sessions verified");

    const raw = new Database(copy);
    raw
      .prepare(
        "UPDATE events SET body = replace(body, 'TRUNCATE', 'SELECT') WHERE session_id = ? AND kind = 'statement' AND body LIKE '%TRUNCATE%'",
      )
      .run(FIXTURE_SESSION);
    raw.prepare("DELETE FROM events WHERE session_id = ? AND seq = 2").run(ERIN_SESSION);
    raw.close();

    const r = await runGw(["audit", "verify", "--db", copy, "--public-key", pub]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(
      `${FIXTURE_SESSION}  BROKEN  event 10 was edited: its content does not match its hash`,
    );
    expect(r.stdout).toContain(`${ERIN_SESSION}  BROKEN  event 2 was deleted`);
    expect(r.stdout).toContain("2 of 2 sessions not verified");

    const j = await runGw([
      "audit",
      "verify",
      ERIN_SESSION,
      "--db",
      copy,
      "--public-key",
      pub,
      "--json",
    ]);
    expect(j.code).toBe(1);
    const out = JSON.parse(j.stdout) as { ok: boolean; results: VerifyResult[] };
    expect(out.ok).toBe(false);
    expect(out.results[0]!.problems).toEqual([
      { kind: "deleted", seq: 2, message: "event 2 was deleted" },
    ]);
  });

  it("needs the public key offline, and refuses it against the broker", async () => {
    const r = await runGw(["audit", "verify", "--db", db]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("verifying a database offline needs the broker's public key");
    const b = await runGw(["audit", "verify", "--public-key", pub], viaApi("auditor"));
    expect(b.code).toBe(2);
  });
});

describe("gw sessions", () => {
  it("lists sessions with agent and decision counts, and filters them", async () => {
    const all = await runGw(["sessions"], viaApi("auditor"));
    expect(all.code).toBe(0);
    const lines = all.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(
      /^ID\s+STARTED\s+IDENTITY\s+CONNECTION\s+APPLICATION\s+AGENT\s+DURATION\s+STMTS\s+END$/,
    );
    expect(lines).toHaveLength(3);
    expect(lines[1]).toContain(ERIN_SESSION.slice(0, 8));
    expect(lines[1]).toMatch(/Erin\s+db-test\s+psql\s+cursor\s+5s\s+4\s+client_closed$/);
    expect(lines[2]).toContain(FIXTURE_SESSION.slice(0, 8));
    expect(lines[2]).toContain("6 (1 blocked, 1 approved, 1 denied)");
    expect(lines[2]).toMatch(/claude\s+15s/);

    const agent = await runGw(["sessions", "--agent", "cursor", "--json"], viaApi("auditor"));
    expect(
      (JSON.parse(agent.stdout) as { sessions: { id: string }[] }).sessions.map((s) => s.id),
    ).toEqual([ERIN_SESSION]);
    const grep = await runGw(
      ["sessions", "--grep", "truncate LEDGER", "--json"],
      viaApi("auditor"),
    );
    expect(
      (JSON.parse(grep.stdout) as { sessions: { id: string }[] }).sessions.map((s) => s.id),
    ).toEqual([FIXTURE_SESSION]);
    const since = await runGw(
      ["sessions", "--since", "2026-01-15T10:00:00Z", "--json"],
      viaApi("auditor"),
    );
    expect(
      (JSON.parse(since.stdout) as { sessions: { id: string }[] }).sessions.map((s) => s.id),
    ).toEqual([ERIN_SESSION]);
    const user = await runGw(["sessions", "--user", "erin", "--db", db, "--json"]);
    expect(
      (JSON.parse(user.stdout) as { sessions: { id: string }[] }).sessions.map((s) => s.id),
    ).toEqual([ERIN_SESSION]);
    const none = await runGw(["sessions", "--grep", "no such text"], viaApi("auditor"));
    expect(none.stdout).toBe("no sessions match\n");
    const badSince = await runGw(["sessions", "--since", "yesterday-ish"], viaApi("auditor"));
    expect(badSince.code).toBe(2);
  });

  it("shows one session's statements with decisions", async () => {
    const r = await runGw(["sessions", FIXTURE_SESSION.slice(0, 8)], viaApi("dana"));
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`session ${FIXTURE_SESSION}`);
    expect(r.stdout).toContain("Dana DBA (user) on db-prod, agent claude");
    expect(r.stdout).toContain("[approved by Carol Approver]");
    expect(r.stdout).toContain("ERROR 42501 [blocked]");
  });

  it("shows others only their own sessions", async () => {
    const r = await runGw(["sessions", "--json"], viaApi("erin"));
    const out = JSON.parse(r.stdout) as { sessions: { id: string }[]; scope: string };
    expect(out.scope).toBe("own");
    expect(out.sessions.map((s) => s.id)).toEqual([ERIN_SESSION]);
    const theirs = await runGw(["audit", "verify", FIXTURE_SESSION], viaApi("erin"));
    expect(theirs.code).toBe(1);
    expect(theirs.stderr).toContain(`no session ${FIXTURE_SESSION} that you may see`);
    const mine = await runGw(["audit", "verify", "--json"], viaApi("erin"));
    expect(
      (JSON.parse(mine.stdout) as { results: VerifyResult[] }).results.map((x) => x.sessionId),
    ).toEqual([ERIN_SESSION]);
  });
});
