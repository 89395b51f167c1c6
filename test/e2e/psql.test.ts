/**
 * The real `psql` through a gw tunnel behaves exactly as it does against the target directly:
 * same output byte for byte, notifications, and cancelling a running statement.
 */
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Tunnel } from "../../src/tunnel/tunnel.js";
import { startStack, tunnelUrl, type Stack } from "../helpers/stack.js";

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

const PSQL = "/usr/bin/psql";

/** The environment a user's shell would have: no PG* settings leak in from ours. */
function cleanEnv(extra: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env))
    if (v !== undefined && !k.startsWith("PG")) env[k] = v;
  // No ~/.pgpass either: through gw no password is needed, and none must be found.
  return { ...env, LC_ALL: "C", LANG: "C", PGPASSFILE: "/nonexistent/pgpass", ...extra };
}

function run(
  file: string,
  args: string[],
  env: Record<string, string>,
  onSpawn?: (kill: (s: NodeJS.Signals) => void) => void,
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (c: Buffer) => out.push(c));
    child.stderr.on("data", (c: Buffer) => err.push(c));
    child.on("error", reject);
    child.on("close", (code, signal) =>
      resolve({
        code,
        signal,
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
      }),
    );
    onSpawn?.((s) => child.kill(s));
  });
}

async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | null | false>,
  tries = 300,
): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const v = await probe();
    if (v !== undefined && v !== null && v !== false) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** A 16-byte CancelRequest, written to a port; resolves when the other end closes. */
function sendCancel(port: number, pid: number, secret: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const b = Buffer.alloc(16);
    b.writeInt32BE(16, 0);
    b.writeInt32BE(80877102, 4);
    b.writeInt32BE(pid, 8);
    b.writeInt32BE(secret | 0, 12);
    const s: Socket = connect({ host: "127.0.0.1", port }, () => s.write(b));
    s.on("data", () => reject(new Error("a cancel request got an answer")));
    s.on("error", reject);
    s.on("close", () => resolve());
  });
}

const SCRIPT = String.raw`
SET client_min_messages = warning;
DROP TABLE IF EXISTS gw_items, gw_copy, gw_big;
\set QUIET off
CREATE TABLE gw_items (
  id serial PRIMARY KEY,
  name text NOT NULL,
  qty integer DEFAULT 0 CHECK (qty >= 0),
  price numeric(10,2),
  tags text[],
  meta jsonb,
  created date DEFAULT '2024-01-01'
);
CREATE INDEX gw_items_name ON gw_items (name);
COMMENT ON TABLE gw_items IS 'items for the psql test';
INSERT INTO gw_items (name, qty, price, tags, meta) VALUES
  ('apple', 3, 1.25, '{red,fruit}', '{"origin": "NZ"}'),
  ('bread', 1, 2.50, NULL, NULL),
  ('Käse ✓', 7, 10.00, '{"with space","quote\"d"}', '{"a": [1, 2, {"b": null}]}');
SELECT * FROM gw_items ORDER BY id;
SELECT name, qty * price AS total FROM gw_items WHERE qty > 1 ORDER BY name;
\d gw_items
\d+ gw_items
\dt
\di
SELECT count(*) AS n, sum(qty) AS q, string_agg(name, ',' ORDER BY id) AS names FROM gw_items;

-- COPY FROM STDIN with the data inline, then \copy the same way
CREATE TABLE gw_copy (a int, b text, c timestamptz);
COPY gw_copy FROM STDIN;
1	one	2024-01-02 03:04:05+00
2	\N	2024-02-03 04:05:06+00
3	tab\there	2024-03-04 05:06:07+00
\.
\copy gw_copy FROM STDIN WITH (FORMAT csv)
4,"four, with comma",2024-04-05 06:07:08+00
5,"multi
line",
\.
COPY gw_copy TO STDOUT;
COPY (SELECT a, b FROM gw_copy ORDER BY a) TO STDOUT WITH (FORMAT csv, HEADER);
\copy (SELECT a FROM gw_copy WHERE a > 2 ORDER BY a) TO STDOUT
SELECT count(*) FROM gw_copy;
-- a bad row fails the whole COPY, and the session goes on
COPY gw_copy FROM STDIN;
6	six	2024-06-07 08:09:10+00
x	bad	2024-06-07 08:09:10+00
7	seven	2024-06-07 08:09:10+00
\.
SELECT count(*) AS still_five FROM gw_copy;
-- a bigger COPY from a file, so the client side has to wait for the tunnel
CREATE TABLE gw_big (n int, t text);
\copy gw_big FROM '@BIGFILE@'
SELECT count(*), sum(n), md5(string_agg(t, ',' ORDER BY n)) FROM gw_big;

-- several statements in one Query message
SELECT 1 AS first \; SELECT 2 AS second \; SELECT 'three' AS third;
SELECT 'not' AS one_query \; SELEC 'broken' \; SELECT 'never parsed';
SELECT 'ran' AS one_query \; SELECT 1/0 \; SELECT 'never runs';

-- an error inside a transaction
BEGIN;
INSERT INTO gw_items (name) VALUES ('in txn');
SELECT * FROM no_such_table;
\echo 'sqlstate:' :SQLSTATE
SELECT 1;
\echo 'sqlstate:' :SQLSTATE
ROLLBACK;
SELECT count(*) AS after_rollback FROM gw_items;

-- errors with position, detail and hint, in verbose form
SELECT 1 + 'x'::int;
INSERT INTO gw_items (name, qty) VALUES ('neg', -1);
INSERT INTO gw_items (id, name) VALUES (1, 'dup');
\set VERBOSITY verbose
SELECT * FROM gw_items WHERE nope = 1;
\set VERBOSITY default
\errverbose

-- notices
DO $$ BEGIN RAISE NOTICE 'hello from %', 'plpgsql'; RAISE WARNING 'careful: %', 42; END $$;
SET client_min_messages = notice;
DO $$ BEGIN RAISE NOTICE 'now visible'; END $$;
SET client_min_messages = warning;

-- variables, conditionals and generated statements
SELECT 21 * 2 AS answer, 'gw' AS who \gset
\echo :answer :who
\if :{?answer}
  \echo 'answer is true'
\else
  \echo 'answer is false'
\endif
SELECT format('SELECT %s AS gen', g) FROM generate_series(1, 3) g \gexec
SELECT name, qty FROM gw_items ORDER BY id \gdesc
\x on
SELECT * FROM gw_items WHERE id = 1;
\x off
\pset format csv
SELECT id, name, tags FROM gw_items ORDER BY id;
\pset format aligned
SELECT name, created, qty FROM gw_items ORDER BY 1 \crosstabview name created qty

-- prepared statements through SQL
PREPARE by_name(text) AS SELECT id, qty FROM gw_items WHERE name = $1;
EXECUTE by_name('apple');
EXECUTE by_name('bread');
DEALLOCATE by_name;

-- large objects go through fast-path function calls
\set QUIET on
\lo_import @LOFILE@
\set QUIET off
SELECT convert_from(lo_get(:LASTOID), 'UTF8') AS lo_content;
\set QUIET on
\lo_unlink :LASTOID
\set QUIET off

-- a bigger result
SELECT g, md5(g::text) FROM generate_series(1, 5000) g;
SELECT sum(length(repeat('x', g))) FROM generate_series(1, 2000) g;

-- empty query and a comment-only one
;
-- done
SELECT 'end' AS marker;
`;

describe("psql through gw", () => {
  let stack: Stack;
  let tunnel: Tunnel;
  let dir: string;

  beforeAll(async () => {
    stack = await startStack();
    tunnel = await stack.openTunnel(stack.tokens.dba);
    dir = stack.dir;
  });
  afterAll(async () => {
    await stack?.stop();
  });

  /** psql's env through the tunnel: no password anywhere, the tunnel carries the identity. */
  const gwEnv = (extra: Record<string, string> = {}) =>
    cleanEnv({
      PGHOST: "127.0.0.1",
      PGPORT: String(tunnel.address.port),
      PGUSER: stack.pg.user,
      PGDATABASE: stack.pg.database,
      PGSSLMODE: "disable",
      ...extra,
    });
  const directEnv = (extra: Record<string, string> = {}) =>
    cleanEnv({ ...stack.pg.psqlEnv(), ...extra });

  const sessionsByApp = async (app: string) =>
    (await stack.store.listSessions({ limit: 1000 })).filter((s) => s.applicationName === app);

  it("runs a script with byte-identical stdout and stderr through gw and directly", async () => {
    const loFile = join(dir, "lo.txt");
    writeFileSync(loFile, "large object content ✓\n");
    const scriptPath = join(dir, "script.sql");
    const bigFile = join(dir, "big.tsv");
    writeFileSync(
      bigFile,
      Array.from(
        { length: 60_000 },
        (_, i) => `${i}\t${"row " + i + " " + "y".repeat(i % 200)}\n`,
      ).join(""),
    );
    writeFileSync(scriptPath, SCRIPT.replace("@LOFILE@", loFile).replace("@BIGFILE@", bigFile));
    const args = ["-X", "-q", "-f", scriptPath];

    const viaGw = await run(PSQL, args, gwEnv({ PGAPPNAME: "gw-psql-script" }));
    const direct = await run(PSQL, args, directEnv({ PGAPPNAME: "gw-psql-script" }));

    // The script ran, and ran fully: its last line and its errors are all there.
    expect(direct.code).toBe(0);
    expect(direct.stdout).toContain("marker \n--------\n end\n(1 row)");
    expect(direct.stderr).toContain('ERROR:  relation "no_such_table" does not exist');
    expect(direct.stderr).toContain(
      "ERROR:  current transaction is aborted, commands ignored until end of transaction block",
    );
    expect(direct.stdout).toContain("sqlstate: 42P01\n");
    expect(direct.stdout).toContain("sqlstate: 25P02\n");
    expect(direct.stdout).toContain("COPY 3\n");
    expect(direct.stdout).toContain("COPY 60000\n");
    expect(direct.stderr).toContain('ERROR:  invalid input syntax for type integer: "x"');
    expect(direct.stdout).toMatch(/still_five \n-+\n +5\n/);
    expect(direct.stdout).toContain("1\tone\t2024-01-02 03:04:05+00\n");
    expect(direct.stdout).toContain("large object content ✓");
    expect(direct.stderr).toContain("WARNING:  careful: 42");
    expect(direct.stderr).toContain("NOTICE:  now visible");
    expect(direct.stdout).toContain("answer is true");

    expect(viaGw.stderr).toBe(direct.stderr);
    expect(viaGw.stdout).toBe(direct.stdout);
    expect(viaGw.code).toBe(direct.code);

    // psql sent the `\;` line as one Query, and gw recorded it as one statement.
    const [s] = await sessionsByApp("gw-psql-script");
    expect(s).toBeDefined();
    const stmts = await stack.store.listStatements(s!.id);
    const multi = stmts.filter((x) => x.sql.includes("AS first"));
    expect(multi).toHaveLength(1);
    expect(multi[0]!.commandTag).toBe("SELECT 1, SELECT 1, SELECT 1");
    // \lo_import and \lo_unlink went through as fast-path FunctionCall messages.
    const calls = stmts.filter((x) => x.sql.startsWith("-- function call"));
    expect(calls.length).toBeGreaterThanOrEqual(4);
    expect(calls.every((x) => x.errorCode === null)).toBe(true);
    expect(calls.at(-1)!.sql).toBe("-- function call (oid 964)"); // lo_unlink
    // COPY in both directions is recorded with its row count.
    expect(
      stmts
        .filter((x) => x.sql === "COPY gw_copy FROM STDIN;")
        .map((x) => [x.commandTag, x.rows, x.errorCode]),
    ).toEqual([
      ["COPY 3", 3, null],
      [null, null, "22P02"],
    ]);
    expect(stmts.find((x) => x.sql.startsWith("COPY  gw_big FROM STDIN"))).toMatchObject({
      commandTag: "COPY 60000",
      rows: 60000,
    });
    expect(stmts.find((x) => x.sql === "COPY gw_copy TO STDOUT;")).toMatchObject({
      commandTag: "COPY 5",
      rows: 5,
    });
    // A syntax error anywhere fails the whole string before any of it runs...
    const unparsed = stmts.filter((x) => x.sql.includes("never parsed"));
    expect(unparsed).toHaveLength(1);
    expect(unparsed[0]!).toMatchObject({ errorCode: "42601", commandTag: null, rows: null });
    // ...while a run-time error stops it after the statements before it completed.
    const failed = stmts.filter((x) => x.sql.includes("never runs"));
    expect(failed).toHaveLength(1);
    expect(failed[0]!).toMatchObject({ errorCode: "22012", commandTag: "SELECT 1", rows: 1 });
  });

  it("psql -c with several statements sends one Query and prints every result, as directly", async () => {
    const args = ["-X", "-q", "-c", "select 1 as a; select 2 as b; select 'c' as c"];
    const viaGw = await run(PSQL, args, gwEnv({ PGAPPNAME: "gw-psql-c" }));
    const direct = await run(PSQL, args, directEnv());
    expect(direct.code).toBe(0);
    expect(direct.stdout).toContain(" b \n---\n 2\n(1 row)");
    expect(viaGw).toEqual(direct);

    const [s] = await sessionsByApp("gw-psql-c");
    const stmts = await stack.store.listStatements(s!.id);
    expect(stmts.map((x) => [x.sql, x.commandTag])).toEqual([
      ["select 1 as a; select 2 as b; select 'c' as c", "SELECT 1, SELECT 1, SELECT 1"],
    ]);
  });

  it("an error makes psql -c exit 1 with the same message as directly", async () => {
    const args = ["-X", "-q", "-c", "select * from missing_table"];
    const viaGw = await run(PSQL, args, gwEnv());
    const direct = await run(PSQL, args, directEnv());
    expect(direct.code).toBe(1);
    expect(direct.stderr).toMatch(/relation "missing_table" does not exist/);
    expect(viaGw).toEqual(direct);
  });

  it("delivers NOTIFY to a LISTEN through gw, from a direct client and from a gw client", async () => {
    const listener = new pg.Client({ connectionString: tunnelUrl(tunnel) });
    const viaGw = new pg.Client({ connectionString: tunnelUrl(tunnel) });
    const direct = new pg.Client({ connectionString: stack.pg.url });
    await Promise.all([listener.connect(), viaGw.connect(), direct.connect()]);
    try {
      const got: pg.Notification[] = [];
      listener.on("notification", (n) => got.push(n));
      await listener.query('LISTEN "gw chan"');
      await listener.query("LISTEN other");

      const directPid = (await direct.query<{ pid: number }>("select pg_backend_pid() as pid"))
        .rows[0]!.pid;
      await direct.query(`NOTIFY "gw chan", 'from direct ✓'`);
      await viaGw.query("select pg_notify('other', $1)", ["from gw: " + "x".repeat(3000)]);
      // A notification sent inside a transaction arrives only on commit.
      await viaGw.query("BEGIN");
      await viaGw.query(`NOTIFY "gw chan", 'after commit'`);
      await viaGw.query("COMMIT");

      await waitFor("three notifications", async () => got.length >= 3);
      expect(got.map((n) => [n.channel, n.payload])).toEqual([
        ["gw chan", "from direct ✓"],
        ["other", "from gw: " + "x".repeat(3000)],
        ["gw chan", "after commit"],
      ]);
      // The sender's real backend pid is what PostgreSQL reports.
      expect(got[0]!.processId).toBe(directPid);

      // The listener keeps working as a normal session afterwards.
      await listener.query("UNLISTEN *");
      expect((await listener.query("select 7 as n")).rows).toEqual([{ n: 7 }]);
    } finally {
      await Promise.all([listener.end(), viaGw.end(), direct.end()]);
    }
  });

  describe("cancelling", () => {
    let admin: pg.Client;
    beforeAll(async () => {
      admin = new pg.Client({ connectionString: stack.pg.url });
      await admin.connect();
    });
    afterAll(async () => {
      await admin?.end();
    });

    const activity = async (app: string) =>
      (
        await admin.query<{ pid: number; state: string; query: string }>(
          "select pid, state, query from pg_stat_activity where application_name = $1",
          [app],
        )
      ).rows;

    it("SIGINT to psql cancels the running statement through gw", async () => {
      const app = "gw-psql-cancel";
      let kill: ((s: NodeJS.Signals) => void) | undefined;
      const done = run(
        PSQL,
        ["-X", "-q", "-c", "select pg_sleep(60)"],
        gwEnv({ PGAPPNAME: app }),
        (k) => (kill = k),
      );
      await waitFor("pg_sleep to be running", async () =>
        (await activity(app)).some((r) => r.state === "active" && r.query.includes("pg_sleep")),
      );
      kill!("SIGINT");
      const r = await done;
      expect(r.stderr).toContain("ERROR:  canceling statement due to user request");
      expect(r.code).toBe(1);
      // Nothing of it keeps running on the target.
      await waitFor("the backend to be idle or gone", async () =>
        (await activity(app)).every((x) => x.state !== "active"),
      );
      const [s] = await sessionsByApp(app);
      const stmts = await stack.store.listStatements(s!.id);
      expect(stmts.map((x) => [x.sql, x.errorCode])).toEqual([["select pg_sleep(60)", "57014"]]);
    });

    it("ignores cancel requests with a wrong key or another identity's key", async () => {
      const app = "gw-pg-cancel";
      const client = new pg.Client({
        connectionString: `${tunnelUrl(tunnel)}&application_name=${app}`,
      });
      await client.connect();
      const { processID, secretKey } = client as unknown as {
        processID: number;
        secretKey: number;
      };
      try {
        // The key psql/pg see is the broker's, not the target's.
        const realPid = (await client.query<{ pid: number }>("select pg_backend_pid() as pid"))
          .rows[0]!.pid;
        expect(processID).not.toBe(realPid);

        const sleeping = client.query("select pg_sleep(60)").then(
          () => "finished",
          (err: { code?: string }) => err.code ?? "error",
        );
        await waitFor("pg_sleep to be running", async () =>
          (await activity(app)).some((r) => r.state === "active" && r.query.includes("pg_sleep")),
        );
        const dropped = () =>
          stack.logs.filter((l) => l.includes("cancel request with an unknown key")).length;
        const before = dropped();

        await sendCancel(tunnel.address.port, processID, secretKey + 1);
        await sendCancel(tunnel.address.port, processID + 1, secretKey);
        await sendCancel(tunnel.address.port, realPid, secretKey);
        // The right key, but through another identity's tunnel.
        const other = await stack.openTunnel(stack.tokens.auditor);
        await sendCancel(other.address.port, processID, secretKey);
        await waitFor("the broker to drop four cancel requests", async () =>
          dropped() - before >= 4 ? true : undefined,
        );
        expect(dropped() - before).toBe(4);

        // Still running: a few looks at the target over a second or so all see it active.
        for (let i = 0; i < 5; i++) {
          await new Promise((r) => setTimeout(r, 200));
          expect(
            (await activity(app)).some((r) => r.state === "active" && r.query.includes("pg_sleep")),
          ).toBe(true);
        }

        // And the right key through the owner's tunnel does cancel it.
        await sendCancel(tunnel.address.port, processID, secretKey);
        expect(await sleeping).toBe("57014");
        expect((await client.query("select 'alive' as s")).rows).toEqual([{ s: "alive" }]);
      } finally {
        await client.end();
      }
    });
  });
});
