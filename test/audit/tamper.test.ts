/**
 * Tamper evidence on a real SQLite file: a session recorded and sealed by the recorder, then
 * the file edited directly (as someone with write access to the disk would), then verified
 * from a fresh read-only open. Every change is caught and named: the session and the event.
 */
import { createPublicKey, generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { eventHash } from "../../src/audit/chain.js";
import { AuditService, verifySessionIn } from "../../src/audit/service.js";
import type { VerifyResult } from "../../src/audit/verify.js";
import { brokerConfig } from "../../src/config/schema.js";
import { SqliteStore } from "../../src/store/sqlite-store.js";
import { Clock, recordSession, signer } from "./fixtures.js";

const SESSION = "5e55102d-0000-4000-8000-000000000001";
const OTHER = "5e55102d-0000-4000-8000-000000000002";

let dir: string;
let path: string;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "gw-tamper-"));
  path = join(dir, "gw.db");
  const store = SqliteStore.open(path);
  await recordSession(store, SESSION, { n: 4 });
  await recordSession(store, OTHER, { n: 2, clock: new Clock(Date.UTC(2026, 0, 15, 10)) });
  await store.close();
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Edits the file with a plain SQLite connection, outside gw. */
function tamper(sql: string, ...params: unknown[]): void {
  const db = new Database(path);
  try {
    db.prepare(sql).run(...params);
  } finally {
    db.close();
  }
}

function tamperAll(fn: (db: Database.Database) => void): void {
  const db = new Database(path);
  try {
    db.transaction(() => fn(db))();
  } finally {
    db.close();
  }
}

async function verify(
  id = SESSION,
  key = createPublicKey(signer().publicKeyPem),
): Promise<VerifyResult> {
  const store = SqliteStore.openReadOnly(path);
  try {
    const session = await store.getSession(id);
    return await verifySessionIn(store, session!, key);
  } finally {
    await store.close();
  }
}

describe("tamper evidence (SQLite file edited directly)", () => {
  it("verifies an untouched session as intact, with its event count and key", async () => {
    const r = await verify();
    expect(r.status).toBe("intact");
    expect(r.problems).toEqual([]);
    expect(r.events).toBe(8); // a start and a completion per statement
    expect(r.keyId).toBe(signer().keyId);
    expect(r.summary).toBe(`intact: 8 events, signed by key ${signer().keyId}`);
  });

  it("names the event that was edited", async () => {
    tamper(
      "UPDATE events SET body = replace(body, 'SELECT 2 AS n', 'SELECT 2 AS m') WHERE session_id = ? AND seq = 3",
      SESSION,
    );
    const r = await verify();
    expect(r.sessionId).toBe(SESSION);
    expect(r.status).toBe("broken");
    expect(r.problems).toEqual([
      {
        kind: "edited",
        seq: 3,
        message: "event 3 was edited: its content does not match its hash",
      },
    ]);
    expect(r.summary).toBe("event 3 was edited: its content does not match its hash");
    // The other session in the file is untouched.
    expect((await verify(OTHER)).status).toBe("intact");
  });

  it("names the event that was deleted", async () => {
    tamper("DELETE FROM events WHERE session_id = ? AND seq = 5", SESSION);
    const r = await verify();
    expect(r.status).toBe("broken");
    expect(r.problems.map((p) => [p.kind, p.seq])).toEqual([["deleted", 5]]);
    expect(r.problems[0]!.message).toBe("event 5 was deleted");
  });

  it("names the last event when it was deleted (the signed count has it)", async () => {
    tamperAll((db) => {
      db.prepare("DELETE FROM events WHERE session_id = ? AND seq = 8").run(SESSION);
      db.prepare("DELETE FROM statements WHERE session_id = ? AND event_seq = 8").run(SESSION);
    });
    const r = await verify();
    expect(r.problems.map((p) => [p.kind, p.seq])).toEqual([["deleted", 8]]);
    expect(r.problems[0]!.message).toContain("the signed digest counts 8 events; 7 remain");
  });

  it("names the two events that were reordered", async () => {
    tamperAll((db) => {
      const swap = db.prepare("UPDATE events SET seq = ? WHERE session_id = ? AND seq = ?");
      swap.run(-1, SESSION, 4);
      swap.run(4, SESSION, 6);
      swap.run(6, SESSION, -1);
    });
    const r = await verify();
    expect(r.status).toBe("broken");
    expect(r.problems).toHaveLength(1);
    expect(r.problems[0]).toMatchObject({ kind: "reordered", seq: 4 });
    expect(r.problems[0]!.message).toBe(
      "events 4 and 6 were reordered: event 4 is stored at position 6, 6 is stored at position 4",
    );
  });

  it("names a statement edited in the statements table (the searchable copy)", async () => {
    tamper(
      "UPDATE statements SET sql = 'SELECT 42 AS n' WHERE session_id = ? AND seq = 2",
      SESSION,
    );
    const r = await verify();
    expect(r.problems).toEqual([
      {
        kind: "statement_edited",
        seq: 4,
        message: "statement #2 was edited in the statements table (sql differ from event 4)",
      },
    ]);
  });

  it("names a statement deleted from the statements table", async () => {
    tamper("DELETE FROM statements WHERE session_id = ? AND seq = 3", SESSION);
    const r = await verify();
    expect(r.problems.map((p) => [p.kind, p.seq])).toEqual([["statement_deleted", 6]]);
  });

  it("catches an edited session record (who ran it)", async () => {
    tamper("UPDATE sessions SET name = 'Someone Else' WHERE id = ?", SESSION);
    const r = await verify();
    expect(r.problems.map((p) => [p.kind, p.seq])).toEqual([
      ["session_edited", 0],
      ["seal_mismatch", 0],
    ]);
  });

  it("catches an event replaced with a recomputed hash: the next one no longer follows it", async () => {
    const db = new Database(path);
    const row = db
      .prepare("SELECT body, prev_hash FROM events WHERE session_id = ? AND seq = 3")
      .get(SESSION) as { body: string; prev_hash: string };
    const body = row.body.replace("SELECT 2 AS n", "SELECT 2 AS m");
    db.prepare("UPDATE events SET body = ?, hash = ? WHERE session_id = ? AND seq = 3").run(
      body,
      eventHash(row.prev_hash, body),
      SESSION,
    );
    db.close();
    const r = await verify();
    expect(r.problems.map((p) => [p.kind, p.seq])).toEqual([["chain_broken", 3]]);
    expect(r.problems[0]!.message).toBe("event 3 was replaced: event 4 does not follow it");
  });

  it("catches a chain rebuilt to the end: it no longer matches the signed digest", async () => {
    const db = new Database(path);
    const rows = db
      .prepare("SELECT seq, body, prev_hash FROM events WHERE session_id = ? ORDER BY seq")
      .all(SESSION) as { seq: number; body: string; prev_hash: string }[];
    let prev = rows[0]!.prev_hash;
    const upd = db.prepare(
      "UPDATE events SET body = ?, prev_hash = ?, hash = ? WHERE session_id = ? AND seq = ?",
    );
    for (const r of rows) {
      const body = r.seq === 3 ? r.body.replace("SELECT 2 AS n", "SELECT 2 AS m") : r.body;
      const hash = eventHash(prev, body);
      upd.run(body, prev, hash, SESSION, r.seq);
      prev = hash;
    }
    db.prepare("UPDATE statements SET sql = 'SELECT 2 AS m' WHERE session_id = ? AND seq = 2").run(
      SESSION,
    );
    db.close();
    const r = await verify();
    expect(r.status).toBe("broken");
    // Besides the digest, the completion (event 4) still holds the original text's hash,
    // which finds the edited start (event 3) and the edited statement row.
    expect(r.problems.map((p) => [p.kind, p.seq])).toEqual([
      ["seal_mismatch", null],
      ["edited", 3],
      ["statement_edited", 4],
    ]);
  });

  it("catches a forged seal, and a key that is not the broker's", async () => {
    const other = generateKeyPairSync("ed25519").publicKey;
    const wrongKey = await verify(SESSION, other);
    expect(wrongKey.problems.map((p) => p.kind)).toEqual(["wrong_key"]);

    tamper(
      "UPDATE sessions SET seal = json_set(seal, '$.signature', ?) WHERE id = ?",
      Buffer.alloc(64).toString("base64"),
      SESSION,
    );
    const forged = await verify();
    expect(forged.problems.map((p) => p.kind)).toEqual(["signature_invalid"]);
  });

  it("reports a pruned session as pruned with its digest intact, and catches an edit of it", async () => {
    const config = brokerConfig.parse({
      identity: { issuer: "https://login.example.com/t/v2.0", audience: "api://gw" },
      store: { sqlite: path },
      retention: "1d",
      connections: {},
    });
    const store = SqliteStore.open(path);
    const clock = new Clock(Date.UTC(2026, 0, 20));
    const service = AuditService.open({ config, store, signer: signer(), now: clock.now });
    expect(await service.applyRetention()).toBe(2);
    expect(await store.listEvents(SESSION)).toEqual([]);
    expect(await store.listStatements(SESSION)).toEqual([]);
    const kept = await store.getSession(SESSION);
    expect(kept?.prunedAt).toBe(clock.t);
    expect(kept?.seal?.eventCount).toBe(8);
    await store.close();

    const r = await verify();
    expect(r.status).toBe("pruned");
    expect(r.summary).toBe("pruned; digest intact");
    expect(r.events).toBe(8);

    tamper("UPDATE sessions SET end_reason = 'upstream_error' WHERE id = ?", SESSION);
    const edited = await verify();
    expect(edited.status).toBe("broken");
    expect(edited.problems.map((p) => [p.kind, p.seq])).toEqual([["seal_mismatch", 0]]);
  });
});
