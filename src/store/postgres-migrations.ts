import type pg from "pg";
import { storeUnavailable } from "./errors.js";

/**
 * The PostgreSQL schema, as an ordered list of migrations, recorded in gw_schema_migrations
 * (one row per applied version). Opening a store applies the missing ones, each in its own
 * transaction with its row, under a session-level advisory lock: replicas starting together
 * migrate one after the other, and the later ones find nothing left to do.
 *
 * To change the schema, append a migration with the next version; never edit a released one.
 * Timestamps are epoch milliseconds in bigint columns (as the SQLite store's integers), JSON
 * values are text (jsonb would reorder keys and refuse \u0000), and protocol / kind columns
 * are unconstrained text: new connection types must not need a migration.
 */
export interface PostgresMigration {
  version: number;
  description: string;
  sql: string;
}

export const postgresMigrations: readonly PostgresMigration[] = [
  {
    version: 1,
    description: "sessions, statements, events, approvals, replicas",
    sql: `
      CREATE TABLE sessions (
        id               text    NOT NULL PRIMARY KEY,
        oid              text    NOT NULL,
        name             text    NOT NULL,
        upn              text,
        type             text    NOT NULL,
        connection       text    NOT NULL,
        protocol         text    NOT NULL,
        application_name text,
        client_address   text,
        started_at       bigint  NOT NULL,
        ended_at         bigint,
        end_reason       text,
        end_detail       text,
        bytes_in         bigint  NOT NULL,
        bytes_out        bigint  NOT NULL,
        statement_count  bigint  NOT NULL,
        agent_label      text,
        decisions        text,
        seal             text,
        pruned_at        bigint,
        broker_id        text,
        -- Creation order, for listing sessions that started in the same millisecond.
        created          bigint  GENERATED ALWAYS AS IDENTITY
      );
      CREATE INDEX sessions_started_at ON sessions (started_at DESC, created DESC);
      CREATE INDEX sessions_oid ON sessions (oid, started_at DESC);
      CREATE INDEX sessions_connection ON sessions (connection, started_at DESC);
      CREATE INDEX sessions_ended_at ON sessions (ended_at) WHERE pruned_at IS NULL;
      CREATE INDEX sessions_open_broker ON sessions (broker_id) WHERE ended_at IS NULL;

      CREATE TABLE statements (
        session_id    text    NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
        seq           integer NOT NULL,
        at            bigint  NOT NULL,
        duration_ms   double precision NOT NULL,
        sql           text    NOT NULL,
        protocol      text    NOT NULL,
        command_tag   text,
        row_count     bigint,
        error_code    text,
        error_message text,
        decision      text    NOT NULL DEFAULT 'allowed',
        event_seq     integer,
        approval      text,
        preview       text,
        PRIMARY KEY (session_id, seq)
      );

      CREATE TABLE events (
        session_id text    NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
        seq        integer NOT NULL,
        kind       text    NOT NULL,
        at         bigint  NOT NULL,
        body       text    NOT NULL,
        prev_hash  text    NOT NULL,
        hash       text    NOT NULL,
        PRIMARY KEY (session_id, seq)
      );

      -- No foreign key to sessions: a request is an audit record of its own (as in SQLite).
      CREATE TABLE approvals (
        id                 text    NOT NULL PRIMARY KEY,
        session_id         text    NOT NULL,
        connection         text    NOT NULL,
        requester_oid      text    NOT NULL,
        requester_name     text    NOT NULL,
        requester_type     text    NOT NULL,
        application_name   text,
        agent_label        text,
        sql                text    NOT NULL,
        statement_hash     text    NOT NULL,
        rule_index         integer NOT NULL,
        rule_description   text    NOT NULL,
        reason             text    NOT NULL,
        approvers          text    NOT NULL,
        min_approvals      integer NOT NULL CHECK (min_approvals >= 1),
        created_at         bigint  NOT NULL,
        expires_at         bigint  NOT NULL,
        status             text    NOT NULL
          CHECK (status IN ('pending', 'approved', 'denied', 'expired', 'cancelled')),
        decided_at         bigint,
        status_detail      text,
        context_statements text,
        broker_id          text,
        created            bigint  GENERATED ALWAYS AS IDENTITY
      );
      CREATE INDEX approvals_created_at ON approvals (created_at DESC, created DESC);
      CREATE INDEX approvals_status ON approvals (status, created_at DESC, created DESC);
      CREATE INDEX approvals_session ON approvals (session_id);

      CREATE TABLE approval_decisions (
        approval_id text    NOT NULL REFERENCES approvals (id) ON DELETE CASCADE,
        seq         integer NOT NULL,
        oid         text    NOT NULL,
        name        text    NOT NULL,
        decision    text    NOT NULL CHECK (decision IN ('approve', 'deny')),
        reason      text,
        at          bigint  NOT NULL,
        PRIMARY KEY (approval_id, seq),
        UNIQUE (approval_id, oid)
      );

      -- Broker replicas sharing this store and their last heartbeat (the database's clock, so
      -- replicas on hosts whose clocks disagree still agree on who is late).
      CREATE TABLE gw_replicas (
        id           text        NOT NULL PRIMARY KEY,
        url          text,
        key_id       text,
        started_at   bigint      NOT NULL,
        heartbeat_at timestamptz NOT NULL
      );
    `,
  },
];

export const POSTGRES_SCHEMA_VERSION = postgresMigrations.length;

// The list must be 1, 2, 3, ... so a version maps to a position.
postgresMigrations.forEach((m, i) => {
  if (m.version !== i + 1)
    throw new Error(`postgres migration ${i} has version ${m.version}, expected ${i + 1}`);
});

/** Any fixed number, the same in every gw: the advisory lock all replicas migrate under. */
const MIGRATION_LOCK_KEY = 0x67770001;

/**
 * Brings the database up to POSTGRES_SCHEMA_VERSION. Refuses a database a newer gw migrated.
 * `where` names the database in messages ("db app on 10.0.0.5:5432"). Returns the versions
 * before and after.
 */
export async function migratePostgres(
  client: pg.ClientBase,
  where: string,
): Promise<{ from: number; to: number }> {
  await client.query("SELECT pg_advisory_lock($1)", [MIGRATION_LOCK_KEY]);
  try {
    await client.query(
      "CREATE TABLE IF NOT EXISTS gw_schema_migrations (" +
        "version integer NOT NULL PRIMARY KEY, description text NOT NULL, " +
        "applied_at timestamptz NOT NULL DEFAULT now())",
    );
    const res = await client.query<{ v: number | null }>(
      "SELECT max(version) AS v FROM gw_schema_migrations",
    );
    const from = Number(res.rows[0]?.v ?? 0);
    if (from > POSTGRES_SCHEMA_VERSION) {
      throw storeUnavailable(
        `the session store (${where}) has schema version ${from}, but this gw only knows versions up to ${POSTGRES_SCHEMA_VERSION}`,
        { hint: "Upgrade every broker replica to the gw version that migrated this database." },
      );
    }
    for (const m of postgresMigrations) {
      if (m.version <= from) continue;
      await client.query("BEGIN");
      try {
        await client.query(m.sql);
        await client.query(
          "INSERT INTO gw_schema_migrations (version, description) VALUES ($1, $2)",
          [m.version, m.description],
        );
        await client.query("COMMIT");
      } catch (err) {
        await client.query("ROLLBACK").catch(() => undefined);
        throw err;
      }
    }
    return { from, to: POSTGRES_SCHEMA_VERSION };
  } finally {
    await client.query("SELECT pg_advisory_unlock($1)", [MIGRATION_LOCK_KEY]).catch(() => {
      // The connection is broken: the server drops its session locks with it.
    });
  }
}
