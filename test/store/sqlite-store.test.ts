import { chmodSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { GwError } from "../../src/errors.js";
import { openStore } from "../../src/store/open-store.js";
import {
  GW_APPLICATION_ID,
  SCHEMA_VERSION,
  migrations,
} from "../../src/store/sqlite-migrations.js";
import { SqliteStore } from "../../src/store/sqlite-store.js";
import { rejectionCode, runStoreSuite, sessionRecord, statementEvent } from "./store-suite.js";

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), "gw-store-"));
}

runStoreSuite("sqlite", async () => {
  const dir = tempDir();
  const store = SqliteStore.open(join(dir, "gw.db"));
  return {
    store,
    async cleanup() {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

runStoreSuite("sqlite :memory:", async () => {
  const store = SqliteStore.open(":memory:");
  return { store, cleanup: () => store.close() };
});

async function rejectionOf(p: Promise<unknown>): Promise<GwError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(GwError);
    return err as GwError;
  }
  throw new Error("expected a GwError");
}

const mode = (p: string) => statSync(p).mode & 0o777;

describe("SqliteStore", () => {
  let dir: string;
  const open: SqliteStore[] = [];
  const others: Database.Database[] = [];

  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(async () => {
    for (const db of others.splice(0)) if (db.open) db.close();
    for (const s of open.splice(0)) await s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function openAt(path: string, busyTimeoutMs?: number): SqliteStore {
    const s = SqliteStore.open(path, busyTimeoutMs === undefined ? {} : { busyTimeoutMs });
    open.push(s);
    return s;
  }

  /** A second connection to the same file, as another process would have. */
  function other(path: string): Database.Database {
    const db = new Database(path);
    others.push(db);
    return db;
  }

  it("creates missing directories 0700 and the database 0600, WAL files included", async () => {
    const path = join(dir, "a", "b", "gw.db");
    const store = openAt(path);
    const rec = sessionRecord();
    await store.createSession(rec);
    await store.addStatement(statementEvent(rec.id, 1, { sql: "SELECT secret FROM vault" }));
    expect(mode(join(dir, "a"))).toBe(0o700);
    expect(mode(join(dir, "a", "b"))).toBe(0o700);
    expect(mode(path)).toBe(0o600);
    expect(existsSync(`${path}-wal`)).toBe(true);
    expect(mode(`${path}-wal`)).toBe(0o600);
    expect(mode(`${path}-shm`)).toBe(0o600);
  });

  it("tightens an existing database file that others can read", async () => {
    const path = join(dir, "gw.db");
    const first = openAt(path);
    await first.createSession(sessionRecord());
    await first.close();
    chmodSync(path, 0o644);
    openAt(path);
    expect(mode(path)).toBe(0o600);
  });

  it("uses WAL, synchronous=NORMAL, foreign keys and the current schema version", () => {
    const path = join(dir, "gw.db");
    openAt(path);
    const db = other(path);
    expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
    expect(db.pragma("user_version", { simple: true })).toBe(SCHEMA_VERSION);
    expect(db.pragma("application_id", { simple: true })).toBe(GW_APPLICATION_ID);
    const indexes = db
      .prepare(
        "SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'sessions' AND sql IS NOT NULL",
      )
      .all()
      .map((r) => (r as { name: string }).name)
      .sort();
    expect(indexes).toEqual([
      "sessions_agent",
      "sessions_application",
      "sessions_connection",
      "sessions_ended_at",
      "sessions_oid",
      "sessions_open_broker",
      "sessions_started_at",
    ]);
    // synchronous and foreign_keys are per connection: look through the store's own.
    const own = (openAt(path) as unknown as { db: Database.Database }).db;
    expect(own.pragma("synchronous", { simple: true })).toBe(1); // NORMAL
    expect(own.pragma("foreign_keys", { simple: true })).toBe(1);
  });

  it("migrates a version 6 database: its sessions keep no broker replica, new ones do", async () => {
    const path = join(dir, "gw.db");
    const db = other(path);
    db.transaction(() => {
      for (const m of migrations.slice(0, 6)) {
        m.up(db);
        db.pragma(`user_version = ${m.version}`);
      }
    })();
    const old = sessionRecord();
    db.prepare(
      "INSERT INTO sessions (id, oid, name, type, connection, protocol, started_at, bytes_in, " +
        "bytes_out, statement_count) VALUES (?, ?, ?, ?, ?, ?, ?, 0, 0, 0)",
    ).run(old.id, "oid-old", "Old", "user", "orders", "postgres", 1);
    db.close();
    const store = openAt(path);
    const got = await store.getSession(old.id);
    expect(got?.identity.oid).toBe("oid-old");
    expect(got).not.toHaveProperty("brokerId");
    const rec = sessionRecord({ brokerId: "replica-1" });
    await store.createSession(rec);
    expect(await store.getSession(rec.id)).toEqual(rec);
  });

  it("checkpoints the log from another thread, not inside its own commits", async () => {
    const path = join(dir, "gw.db");
    const store = openAt(path);
    const own = (store as unknown as { db: Database.Database }).db;
    expect(own.pragma("wal_autocheckpoint", { simple: true })).toBe(0);
    const rec = sessionRecord();
    await store.createSession(rec);
    const before = statSync(path).size;
    await Promise.all(
      Array.from({ length: 2000 }, (_, i) =>
        store.addStatement(statementEvent(rec.id, i + 1, { sql: `SELECT ${"x".repeat(200)}` })),
      ),
    );
    // The statements are in the log; the database file grows only when someone checkpoints.
    for (let i = 0; i < 100 && statSync(path).size <= before; i++)
      await new Promise((r) => setTimeout(r, 50));
    expect(statSync(path).size).toBeGreaterThan(before);
    expect(await store.listStatements(rec.id)).toHaveLength(2000);
  });

  it("keeps data across close and reopen", async () => {
    const path = join(dir, "gw.db");
    const first = openAt(path);
    const rec = sessionRecord();
    const end = {
      endedAt: rec.startedAt + 10,
      endReason: "client_closed" as const,
      endDetail: null,
      bytesIn: 1,
      bytesOut: 2,
      statementCount: 2,
    };
    // Not awaited: close() must commit them.
    const writes = [
      first.createSession(rec),
      first.addStatement(statementEvent(rec.id, 1)),
      first.addStatement(statementEvent(rec.id, 2)),
      first.endSession(rec.id, end),
    ];
    await first.close();
    await Promise.all(writes);

    const second = openAt(path);
    expect(await second.getSession(rec.id)).toEqual({ ...rec, ...end });
    expect(await second.listStatements(rec.id)).toEqual([
      statementEvent(rec.id, 1),
      statementEvent(rec.id, 2),
    ]);
    expect((await second.listSessions({})).map((s) => s.id)).toEqual([rec.id]);
  });

  it("rejects a write after close", async () => {
    const store = openAt(join(dir, "gw.db"));
    await store.close();
    expect(await rejectionCode(store.createSession(sessionRecord()))).toBe("store_closed");
  });

  it("commits all writes of one tick in one transaction", async () => {
    const store = openAt(join(dir, "gw.db"));
    const rec = sessionRecord();
    const before = store.stats.batches;
    const writes = [store.createSession(rec)];
    for (let seq = 1; seq <= 200; seq++)
      writes.push(store.addStatement(statementEvent(rec.id, seq)));
    await Promise.all(writes);
    expect(store.stats.batches - before).toBe(1);
    // Writes in separate ticks are separate batches.
    await store.addStatement(statementEvent(rec.id, 201));
    await store.addStatement(statementEvent(rec.id, 202));
    expect(store.stats.batches - before).toBe(3);
    expect(store.stats.failedBatches).toBe(0);
  });

  it("rejects every write of a batch when the database is locked by another process, and recovers", async () => {
    const path = join(dir, "gw.db");
    const store = openAt(path, 50);
    const kept = sessionRecord();
    await store.createSession(kept);

    const locker = other(path);
    locker.prepare("BEGIN IMMEDIATE").run(); // holds the write lock
    const rec = sessionRecord();
    const batch = [
      store.createSession(rec),
      store.addStatement(statementEvent(kept.id, 1)),
      store.addStatement(statementEvent(kept.id, 2)),
    ];
    const results = await Promise.allSettled(batch);
    for (const r of results) {
      expect(r.status).toBe("rejected");
      const err = (r as PromiseRejectedResult).reason as GwError;
      expect(err).toBeInstanceOf(GwError);
      expect(err.code).toBe("store_write_failed");
      expect(err.message).toContain(path);
      expect(err.message).toMatch(/locked/);
    }
    expect(store.stats.failedBatches).toBe(1);
    locker.prepare("ROLLBACK").run();

    expect(await store.getSession(rec.id)).toBeNull();
    expect(await store.listStatements(kept.id)).toEqual([]);
    await store.createSession(rec);
    await store.addStatement(statementEvent(kept.id, 1));
    expect(await store.getSession(rec.id)).toEqual(rec);
    expect(await store.listStatements(kept.id)).toHaveLength(1);
  });

  it("rejects every write of a batch when a table is dropped under it, keeping none of them", async () => {
    const path = join(dir, "gw.db");
    const store = openAt(path);
    const kept = sessionRecord();
    await store.createSession(kept);
    other(path).exec("DROP TABLE statements");

    const rec = sessionRecord();
    const created = store.createSession(rec); // would succeed alone
    const added = store.addStatement(statementEvent(rec.id, 1));
    expect(await rejectionCode(created)).toBe("store_write_failed");
    expect(await rejectionCode(added)).toBe("store_write_failed");
    await expect(added).rejects.toThrow(/no such table: statements/);
    expect(await store.getSession(rec.id)).toBeNull(); // rolled back with the batch
    expect(await store.getSession(kept.id)).toEqual(kept);
  });

  it("rejects every write of a batch when the engine rolls the transaction back", async () => {
    const path = join(dir, "gw.db");
    const store = openAt(path);
    const kept = sessionRecord();
    await store.createSession(kept);
    other(path).exec(
      "CREATE TRIGGER refuse AFTER INSERT ON statements WHEN NEW.seq = 99 " +
        "BEGIN SELECT RAISE(ROLLBACK, 'refused by trigger'); END",
    );
    const rec = sessionRecord();
    const batch = [
      store.createSession(rec),
      store.addStatement(statementEvent(kept.id, 1)),
      store.addStatement(statementEvent(kept.id, 99)),
      store.addStatement(statementEvent(kept.id, 2)),
    ];
    for (const p of batch) expect(await rejectionCode(p)).toBe("store_write_failed");
    expect(await store.getSession(rec.id)).toBeNull();
    expect(await store.listStatements(kept.id)).toEqual([]);
    // The store goes on working afterwards.
    await store.addStatement(statementEvent(kept.id, 1));
    expect(await store.listStatements(kept.id)).toHaveLength(1);
  });
});

describe("openStore({ sqlite })", () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it("opens a SqliteStore, creating the file", async () => {
    const path = join(dir, "data", "gw.db");
    const store = await openStore({ sqlite: path });
    expect(store).toBeInstanceOf(SqliteStore);
    await store.close();
    expect(existsSync(path)).toBe(true);
  });

  it("fails with store_unavailable when the directory cannot be created", async () => {
    writeFileSync(join(dir, "file"), "");
    const path = join(dir, "file", "gw.db");
    const err = await rejectionOf(openStore({ sqlite: path }));
    expect(err.code).toBe("store_unavailable");
    expect(err.message).toContain(path);
    expect(err.hint).toMatch(/store\.sqlite/);
  });

  it("fails with store_unavailable when the path is a directory", async () => {
    const err = await rejectionOf(openStore({ sqlite: dir }));
    expect(err.code).toBe("store_unavailable");
    expect(err.message).toContain(dir);
    expect(err.message).toMatch(/not a regular file/);
  });

  it("fails with store_unavailable when the file is not a SQLite database", async () => {
    const path = join(dir, "gw.db");
    writeFileSync(path, "this is not a database, just some text that is long enough ".repeat(20), {
      mode: 0o600,
    });
    const err = await rejectionOf(openStore({ sqlite: path }));
    expect(err.code).toBe("store_unavailable");
    expect(err.message).toBe(`${path} is not a SQLite database`);
    expect(err.hint).toBeDefined();
  });

  it("refuses a SQLite database that gw did not create", async () => {
    const path = join(dir, "other.db");
    const db = new Database(path);
    db.exec("CREATE TABLE customers (id INTEGER PRIMARY KEY)");
    db.close();
    const err = await rejectionOf(openStore({ sqlite: path }));
    expect(err.code).toBe("store_unavailable");
    expect(err.message).toContain("did not create");
    const after = new Database(path);
    expect(after.pragma("user_version", { simple: true })).toBe(0); // left untouched
    after.close();
  });

  it("refuses a database written by a newer gw", async () => {
    const path = join(dir, "gw.db");
    await (await openStore({ sqlite: path })).close();
    const db = new Database(path);
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    const err = await rejectionOf(openStore({ sqlite: path }));
    expect(err.code).toBe("store_unavailable");
    expect(err.message).toContain(`schema version ${SCHEMA_VERSION + 1}`);
    expect(err.hint).toMatch(/Upgrade gw/);
  });
});
