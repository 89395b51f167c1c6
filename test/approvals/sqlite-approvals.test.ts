import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { migrations, SCHEMA_VERSION } from "../../src/store/sqlite-migrations.js";
import { SqliteStore } from "../../src/store/sqlite-store.js";
import {
  approvalRecord,
  decision,
  rejectionCode,
  sessionRecord,
  statementEvent,
} from "../store/store-suite.js";

describe("SqliteStore approvals", () => {
  let dir: string;
  const open: SqliteStore[] = [];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "gw-approvals-"));
  });
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function openAt(path: string): SqliteStore {
    const s = SqliteStore.open(path);
    open.push(s);
    return s;
  }

  it("migrates a version 1 database to the current version, keeping its sessions", async () => {
    const path = join(dir, "gw.db");
    const v1 = new Database(path);
    v1.transaction(() => {
      migrations[0]!.up(v1);
      v1.pragma("user_version = 1");
    })();
    const rec = sessionRecord();
    v1.prepare(
      "INSERT INTO sessions (id, oid, name, upn, type, connection, protocol, application_name, " +
        "client_address, started_at, ended_at, end_reason, end_detail, bytes_in, bytes_out, " +
        "statement_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, 0, 0, 0)",
    ).run(
      rec.id,
      rec.identity.oid,
      rec.identity.name,
      rec.identity.upn,
      rec.identity.type,
      rec.connection,
      rec.protocol,
      rec.applicationName,
      rec.clientAddress,
      rec.startedAt,
    );
    v1.close();

    expect(SCHEMA_VERSION).toBeGreaterThanOrEqual(3);
    const store = openAt(path);
    expect(await store.getSession(rec.id)).toEqual(rec);
    const a = approvalRecord({ sessionId: rec.id });
    await store.createApproval(a);
    await store.recordDecision(a.id, decision("oid-bob", "approve", a.createdAt + 1));
    await store.close();

    const check = new Database(path, { readonly: true });
    expect(check.pragma("user_version", { simple: true })).toBe(SCHEMA_VERSION);
    // Statements recorded before decisions existed read as allowed.
    const cols = check.prepare("PRAGMA table_info(statements)").all() as {
      name: string;
      dflt_value: string;
    }[];
    expect(cols.find((c) => c.name === "decision")?.dflt_value).toBe("'allowed'");
    const tables = check
      .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
      .all()
      .map((r) => (r as { name: string }).name);
    // Approvals' tables beside the sessions', events and the statement text index (v4, v5).
    expect(tables.filter((t) => !t.startsWith("statements_fts"))).toEqual([
      "approval_decisions",
      "approvals",
      "events",
      "sessions",
      "statements",
    ]);
    check.close();
    expect((await openAt(path).getApproval(a.id))?.status).toBe("approved");
  });

  it("keeps nothing of a decision whose write fails halfway, and the rest of its batch", async () => {
    const path = join(dir, "gw.db");
    const store = openAt(path);
    const a = approvalRecord();
    const rec = sessionRecord();
    await store.createApproval(a);
    await store.createSession(rec);
    // The decision row goes in, then the status update is refused by the engine.
    const other = new Database(path);
    other.exec(
      "CREATE TRIGGER refuse BEFORE UPDATE OF status ON approvals " +
        "BEGIN SELECT RAISE(ABORT, 'refused by trigger'); END",
    );
    other.close();
    const decided = store.recordDecision(a.id, decision("oid-bob", "approve", a.createdAt + 1));
    const stmt = store.addStatement(statementEvent(rec.id, 1));
    expect(await rejectionCode(decided)).toBe("store_write_failed");
    await expect(stmt).resolves.toBeUndefined();
    const got = await store.getApproval(a.id);
    expect(got?.status).toBe("pending");
    expect(got?.decisions).toEqual([]);
    expect(await store.listStatements(rec.id)).toHaveLength(1);
  });

  it("keeps approvals and their decisions across close and reopen", async () => {
    const path = join(dir, "gw.db");
    const first = openAt(path);
    const a = approvalRecord({ minApprovals: 2, contextStatements: ["SELECT 1"] });
    const writes = [
      first.createApproval(a),
      first.recordDecision(a.id, decision("oid-bob", "approve", a.createdAt + 1, "ok")),
    ];
    await first.close();
    await Promise.all(writes);
    const got = await openAt(path).getApproval(a.id);
    expect(got).toEqual({
      ...a,
      decisions: [decision("oid-bob", "approve", a.createdAt + 1, "ok")],
    });
  });
});
