import type Database from "better-sqlite3";
import { storeUnavailable } from "./errors.js";

/**
 * The SQLite schema, as an ordered list of migrations. The database's schema version is kept
 * in the `user_version` pragma; opening a database runs every migration above it in one
 * transaction together with the version bump, so a crash leaves the old or the new schema.
 *
 * To change the schema, append a migration with the next version; never edit a released one.
 * Migrations run inside a transaction, so they cannot change `PRAGMA foreign_keys` (a table
 * rebuild must keep foreign keys valid as it goes).
 */
export interface Migration {
  version: number;
  description: string;
  up(db: Database.Database): void;
}

/** Marks the file as a gw database (PRAGMA application_id), "gw" + 0x0001. */
export const GW_APPLICATION_ID = 0x67770001;

export const migrations: readonly Migration[] = [
  {
    version: 1,
    description: "sessions and statements",
    up(db) {
      db.exec(`
        CREATE TABLE sessions (
          id               TEXT    NOT NULL PRIMARY KEY,
          oid              TEXT    NOT NULL,
          name             TEXT    NOT NULL,
          upn              TEXT,
          type             TEXT    NOT NULL,
          connection       TEXT    NOT NULL,
          protocol         TEXT    NOT NULL,
          application_name TEXT,
          client_address   TEXT,
          started_at       INTEGER NOT NULL,
          ended_at         INTEGER,
          end_reason       TEXT,
          end_detail       TEXT,
          bytes_in         INTEGER NOT NULL,
          bytes_out        INTEGER NOT NULL,
          statement_count  INTEGER NOT NULL
        );
        CREATE INDEX sessions_started_at ON sessions (started_at DESC);
        CREATE INDEX sessions_oid ON sessions (oid, started_at DESC);
        CREATE INDEX sessions_connection ON sessions (connection, started_at DESC);

        CREATE TABLE statements (
          session_id    TEXT    NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
          seq           INTEGER NOT NULL,
          at            INTEGER NOT NULL,
          duration_ms   REAL    NOT NULL,
          sql           TEXT    NOT NULL,
          protocol      TEXT    NOT NULL,
          command_tag   TEXT,
          row_count     INTEGER,
          error_code    TEXT,
          error_message TEXT,
          PRIMARY KEY (session_id, seq)
        );
      `);
      db.pragma(`application_id = ${GW_APPLICATION_ID}`);
    },
  },
  {
    version: 2,
    description: "approval requests and their decisions",
    up(db) {
      // No foreign key to sessions: an approval request is an audit record of its own, and the
      // service that holds statements does not depend on the session record's timing.
      // approvers and context_statements are JSON arrays of strings.
      db.exec(`
        CREATE TABLE approvals (
          id                 TEXT    NOT NULL PRIMARY KEY,
          session_id         TEXT    NOT NULL,
          connection         TEXT    NOT NULL,
          requester_oid      TEXT    NOT NULL,
          requester_name     TEXT    NOT NULL,
          requester_type     TEXT    NOT NULL,
          application_name   TEXT,
          agent_label        TEXT,
          sql                TEXT    NOT NULL,
          statement_hash     TEXT    NOT NULL,
          rule_index         INTEGER NOT NULL,
          rule_description   TEXT    NOT NULL,
          reason             TEXT    NOT NULL,
          approvers          TEXT    NOT NULL,
          min_approvals      INTEGER NOT NULL CHECK (min_approvals >= 1),
          created_at         INTEGER NOT NULL,
          expires_at         INTEGER NOT NULL,
          status             TEXT    NOT NULL
            CHECK (status IN ('pending', 'approved', 'denied', 'expired', 'cancelled')),
          decided_at         INTEGER,
          status_detail      TEXT,
          context_statements TEXT
        );
        CREATE INDEX approvals_created_at ON approvals (created_at DESC);
        CREATE INDEX approvals_status ON approvals (status, created_at DESC);
        CREATE INDEX approvals_session ON approvals (session_id);

        CREATE TABLE approval_decisions (
          approval_id TEXT    NOT NULL REFERENCES approvals (id) ON DELETE CASCADE,
          seq         INTEGER NOT NULL,
          oid         TEXT    NOT NULL,
          name        TEXT    NOT NULL,
          decision    TEXT    NOT NULL CHECK (decision IN ('approve', 'deny')),
          reason      TEXT,
          at          INTEGER NOT NULL,
          PRIMARY KEY (approval_id, seq),
          UNIQUE (approval_id, oid)
        );
      `);
    },
  },
  {
    version: 3,
    description: "each statement's policy decision",
    up(db) {
      db.exec(`
        ALTER TABLE statements ADD COLUMN decision TEXT NOT NULL DEFAULT 'allowed'
          CHECK (decision IN ('allowed', 'blocked', 'approved', 'denied'));
      `);
    },
  },
  {
    version: 4,
    description: "tamper-evident session events, seals, agent labels, decision counts, previews",
    up(db) {
      // events: each session's hash chain (src/audit/chain.ts); body is what the hash covers,
      // seq/kind/at are copies for queries. A session's seal and decision counts are JSON set
      // when it ends; pruned_at when retention removed its events and statements.
      // statements.approval and statements.preview are JSON; event_seq names the chain event.
      db.exec(`
        ALTER TABLE sessions ADD COLUMN agent_label TEXT;
        ALTER TABLE sessions ADD COLUMN decisions TEXT;
        ALTER TABLE sessions ADD COLUMN seal TEXT;
        ALTER TABLE sessions ADD COLUMN pruned_at INTEGER;
        CREATE INDEX sessions_application ON sessions (application_name, started_at DESC);
        CREATE INDEX sessions_agent ON sessions (agent_label, started_at DESC);
        CREATE INDEX sessions_ended_at ON sessions (ended_at);

        ALTER TABLE statements ADD COLUMN event_seq INTEGER;
        ALTER TABLE statements ADD COLUMN approval TEXT;
        ALTER TABLE statements ADD COLUMN preview TEXT;

        CREATE TABLE events (
          session_id TEXT    NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
          seq        INTEGER NOT NULL,
          kind       TEXT    NOT NULL,
          at         INTEGER NOT NULL,
          body       TEXT    NOT NULL,
          prev_hash  TEXT    NOT NULL,
          hash       TEXT    NOT NULL,
          PRIMARY KEY (session_id, seq)
        );
      `);
    },
  },
  {
    version: 5,
    description: "full-text index of statement text (FTS5 trigram), when SQLite has it",
    up(db) {
      // A trigram index answers substring searches (LIKE '%text%' semantics) from the index.
      // A SQLite built without FTS5 keeps working: searches then scan statements.sql.
      try {
        db.exec(
          "CREATE VIRTUAL TABLE statements_fts USING fts5(sql, content = 'statements', " +
            "content_rowid = 'rowid', tokenize = 'trigram')",
        );
      } catch {
        return;
      }
      db.exec(`
        INSERT INTO statements_fts (statements_fts) VALUES ('rebuild');
        CREATE TRIGGER statements_fts_insert AFTER INSERT ON statements BEGIN
          INSERT INTO statements_fts (rowid, sql) VALUES (new.rowid, new.sql);
        END;
        CREATE TRIGGER statements_fts_delete AFTER DELETE ON statements BEGIN
          INSERT INTO statements_fts (statements_fts, rowid, sql) VALUES ('delete', old.rowid, old.sql);
        END;
        CREATE TRIGGER statements_fts_update AFTER UPDATE OF sql ON statements BEGIN
          INSERT INTO statements_fts (statements_fts, rowid, sql) VALUES ('delete', old.rowid, old.sql);
          INSERT INTO statements_fts (rowid, sql) VALUES (new.rowid, new.sql);
        END;
      `);
    },
  },
  {
    version: 6,
    description:
      "drop the statement full-text index: it cost more per statement than the rest of recording",
    up(db) {
      // Measured: a trigram FTS5 insert costs ~40 µs per statement, four times the rest of the
      // write, and it runs on the broker's event loop for every statement of every session.
      // `gw sessions --grep` scans statements.sql instead (LIKE), which is fast enough for an
      // embedded store; a PostgreSQL store can index it properly.
      db.exec(`
        DROP TRIGGER IF EXISTS statements_fts_insert;
        DROP TRIGGER IF EXISTS statements_fts_delete;
        DROP TRIGGER IF EXISTS statements_fts_update;
        DROP TABLE IF EXISTS statements_fts;
      `);
    },
  },
  {
    version: 7,
    description: "the broker replica that serves each session and holds each approval request",
    up(db) {
      // Null for rows written before replicas were tracked, and whenever the broker had no id.
      db.exec(`
        ALTER TABLE sessions ADD COLUMN broker_id TEXT;
        ALTER TABLE approvals ADD COLUMN broker_id TEXT;
        CREATE INDEX sessions_open_broker ON sessions (broker_id) WHERE ended_at IS NULL;
      `);
    },
  },
];

export const SCHEMA_VERSION = migrations.length;

// The list must be 1, 2, 3, ... so user_version maps to a position.
migrations.forEach((m, i) => {
  if (m.version !== i + 1)
    throw new Error(`sqlite migration ${i} has version ${m.version}, expected ${i + 1}`);
});

function userVersion(db: Database.Database): number {
  return db.pragma("user_version", { simple: true }) as number;
}

/**
 * Brings the database up to SCHEMA_VERSION. Refuses a database written by a newer gw, and a
 * SQLite file that belongs to something else. Returns the versions before and after.
 */
export function migrate(db: Database.Database, path: string): { from: number; to: number } {
  // IMMEDIATE: two brokers opening the same file at once migrate one after the other, and the
  // second sees the first one's version inside its own transaction.
  const run = db.transaction((): { from: number; to: number } => {
    const from = userVersion(db);
    if (from > SCHEMA_VERSION) {
      throw storeUnavailable(
        `${path} has session store schema version ${from}, but this gw only knows versions up to ${SCHEMA_VERSION}`,
        {
          hint: "Upgrade gw to the version that wrote this database, or point store.sqlite at another file.",
        },
      );
    }
    if (from === 0) {
      const tables = db
        .prepare(
          "SELECT count(*) AS n FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        )
        .get() as { n: number };
      if (tables.n > 0) {
        throw storeUnavailable(`${path} is a SQLite database that gw did not create`, {
          hint: "Point store.sqlite at a new file; gw will not add its tables to someone else's database.",
        });
      }
    } else {
      const appId = db.pragma("application_id", { simple: true }) as number;
      if (appId !== GW_APPLICATION_ID) {
        throw storeUnavailable(`${path} is a SQLite database that gw did not create`, {
          hint: "Point store.sqlite at a new file.",
        });
      }
    }
    for (const m of migrations) {
      if (m.version <= from) continue;
      m.up(db);
      db.pragma(`user_version = ${m.version}`);
    }
    return { from, to: SCHEMA_VERSION };
  });
  return run.immediate();
}
