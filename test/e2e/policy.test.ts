/**
 * The policy engine through the whole data path: a real broker, real tunnels, psql and pg,
 * and a real PostgreSQL. Blocked statements are refused with 42501 and the policy's reason,
 * never reach the target (its state is checked on a direct connection), are recorded as
 * blocked, and leave the session usable; the usual ways of dressing a statement up (comments,
 * several statements in one string, DO, data-modifying CTEs, EXPLAIN ANALYZE, PREPARE /
 * EXECUTE, functions in subqueries) do not get it past the policy, in the simple and the
 * extended protocol. Read-only connections cannot be talked out of read-only mode, and rules
 * can look at who is connected.
 */
import { spawn } from "node:child_process";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { StatementEvent } from "../../src/store/types.js";
import type { Tunnel } from "../../src/tunnel/tunnel.js";
import { GROUP_AUDIT, startStack, tunnelUrl, type Stack } from "../helpers/stack.js";

const PSQL = "/usr/bin/psql";

const POLICY = {
  description: "guard rails for the e2e test",
  default: "allow",
  onUnparseable: "block",
  rules: [
    {
      name: "no-destruction",
      match: { kind: ["drop", "truncate", "do"] },
      action: "block",
      reason: "destructive statements are not allowed here",
    },
    {
      name: "bulk-writes",
      match: { kind: ["delete", "update"], where: "absent" },
      action: "hold",
      approvers: [`group:${GROUP_AUDIT}`],
      timeout: "30s",
      reason: "a delete or update without WHERE needs an auditor",
    },
    {
      name: "dangerous-functions",
      match: { functions: ["pg_read_file", "pg_terminate_backend", "lo_*", "dblink*"] },
      action: "block",
      reason: "server files, other backends and dblink are off limits",
    },
    {
      name: "apps-do-not-insert",
      match: { kind: ["insert"], identity: { type: "app" } },
      action: "block",
      reason: "apps may not insert",
    },
  ],
};

const DROP_REASON =
  "gw: blocked by rule no-destruction of policy guard: destructive statements are not allowed here";
const FN_REASON =
  "gw: blocked by rule dangerous-functions of policy guard: server files, other backends and dblink are off limits";

interface PgError extends Error {
  code?: string;
}

async function refusal(p: Promise<unknown>): Promise<PgError> {
  const r = await p.then(
    () => undefined,
    (e: unknown) => e as PgError,
  );
  if (!r) throw new Error("the statement was not refused");
  return r;
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  for (let i = 0; i < 300; i++) {
    const v = await probe();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function cleanEnv(extra: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env))
    if (v !== undefined && !k.startsWith("PG")) env[k] = v;
  return { ...env, LC_ALL: "C", LANG: "C", PGPASSFILE: "/nonexistent/pgpass", ...extra };
}

function psql(
  url: string,
  sql: string,
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(PSQL, [url, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql], {
      env: cleanEnv(env),
      stdio: ["ignore", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (c: Buffer) => out.push(c));
    child.stderr.on("data", (c: Buffer) => err.push(c));
    child.on("error", reject);
    child.on("close", (code) =>
      resolve({
        code,
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
      }),
    );
  });
}

describe("policy through gw", () => {
  let stack: Stack;
  let dba: Tunnel;
  let app: Tunnel;
  let ro: Tunnel;
  let direct: pg.Client;
  let auditorIdentity: Parameters<Stack["broker"]["approvals"]["decide"]>[1];

  beforeAll(async () => {
    stack = await startStack({
      mutate: (raw) => {
        raw.policies = { guard: POLICY };
        const conns = raw.connections as Record<string, Record<string, unknown>>;
        const base = conns["db-test"]!;
        base.policy = "guard";
        conns["db-ro"] = { ...structuredClone(base), policy: undefined, readOnly: true };
        delete conns["db-ro"].policy;
      },
    });
    direct = new pg.Client({ connectionString: stack.pg.url });
    await direct.connect();
    await direct.query(`
      create table t (id int primary key, note text);
      insert into t select g, 'row ' || g from generate_series(1, 3) g;
      create table marks (note text);
      create table t_ro (id int);
      insert into t_ro values (1);
    `);
    dba = await stack.openTunnel(stack.tokens.dba);
    app = await stack.openTunnel(stack.tokens.app);
    ro = await stack.openTunnel(stack.tokens.dba, "db-ro");
    const who = (await stack.client(stack.tokens.auditor).whoami()) as {
      identity: typeof auditorIdentity;
    };
    auditorIdentity = who.identity;
  });
  afterAll(async () => {
    await direct?.end().catch(() => undefined);
    await stack?.stop();
  });

  let appSeq = 0;
  async function client(t: Tunnel, label = "policy-e2e"): Promise<pg.Client & { app: string }> {
    const name = `${label}-${++appSeq}`;
    const c = new pg.Client({
      connectionString: tunnelUrl(t, stack.pg.database),
      application_name: name,
    }) as pg.Client & { app: string };
    c.app = name;
    c.on("error", () => undefined); // a failed test leaves it open until the stack stops
    await c.connect();
    return c;
  }

  const tableCount = async (): Promise<number> =>
    (await direct.query("select count(*)::int as n from t")).rows[0].n as number;
  const marks = async (note: string): Promise<number> =>
    (await direct.query("select count(*)::int as n from marks where note = $1", [note])).rows[0]
      .n as number;
  const tExists = async (): Promise<boolean> =>
    (await direct.query("select to_regclass('public.t') is not null as e")).rows[0].e as boolean;

  async function statementsOf(app: string): Promise<StatementEvent[]> {
    const s = await waitFor(`a session of ${app}`, async () =>
      (await stack.store.listSessions({ limit: 1000 })).find((x) => x.applicationName === app),
    );
    return stack.store.listStatements(s.id);
  }

  async function expectRecordedBlocked(app: string, sql: string): Promise<void> {
    const st = await waitFor(`the blocked statement ${sql}`, async () =>
      (await statementsOf(app)).find((x) => x.sql === sql && x.decision === "blocked"),
    );
    expect(st.errorCode).toBe("42501");
  }

  /** Waits for a pending request of this text, denies it, and returns it. */
  async function denyHeld(sql: string, reason = "not in this test") {
    const a = await waitFor(`a pending request for ${sql}`, async () =>
      (await stack.store.listApprovals({ status: "pending", limit: 100 })).find(
        (x) => x.sql === sql,
      ),
    );
    await stack.broker.approvals.decide(a.id, auditorIdentity, "deny", reason);
    return a;
  }

  async function usable(c: pg.Client): Promise<void> {
    expect((await c.query("select 1 as one")).rows).toEqual([{ one: 1 }]);
    expect((await c.query({ text: "select $1::int as two", values: [2] })).rows).toEqual([
      { two: 2 },
    ]);
  }

  describe("blocked statements", () => {
    it("DROP TABLE is refused with 42501 and the rule's reason; the table stays", async () => {
      const c = await client(dba);
      const e = await refusal(c.query("DROP TABLE t"));
      expect(e.code).toBe("42501");
      expect(e.message).toBe(DROP_REASON);
      expect(await tExists()).toBe(true);
      await usable(c);
      const ex = await refusal(c.query({ text: "DROP TABLE t", queryMode: "extended" } as never));
      expect(ex.code).toBe("42501");
      expect(ex.message).toBe(DROP_REASON);
      expect(await tExists()).toBe(true);
      await usable(c);
      await expectRecordedBlocked(c.app, "DROP TABLE t");
      await c.end();
    });

    // Each text is refused through the simple protocol (Query) and the extended protocol
    // (Parse/Bind/Execute): the reason is the policy's, nothing runs, the session goes on.
    const cases: { name: string; sql: string; reason: string | RegExp; mark?: string }[] = [
      { name: "a comment before DROP", sql: "/* hi */ DROP TABLE t", reason: DROP_REASON },
      { name: "a line comment before DROP", sql: "-- hi\nDROP TABLE t", reason: DROP_REASON },
      { name: "TRUNCATE", sql: "truncate t", reason: DROP_REASON },
      {
        name: "a harmless statement in front of DROP",
        sql: "insert into marks values ('multi'); drop table t",
        reason: DROP_REASON,
        mark: "multi",
      },
      {
        name: "DROP in front of a harmless statement",
        sql: "drop table t; insert into marks values ('multi2')",
        reason: DROP_REASON,
        mark: "multi2",
      },
      {
        name: "DO running DROP as dynamic SQL",
        sql: "DO $$ begin execute 'drop table t'; end $$",
        reason: DROP_REASON,
      },
      {
        name: "DO with a tagged dollar quote",
        sql: "do $x$ begin insert into marks values ('do'); end $x$",
        reason: DROP_REASON,
        mark: "do",
      },
      {
        name: "pg_read_file",
        sql: "select pg_read_file('/etc/passwd')",
        reason: FN_REASON,
      },
      {
        name: "pg_read_file in a subquery",
        sql: "select * from (select pg_read_file('/etc/passwd') as f) s",
        reason: FN_REASON,
      },
      {
        name: "pg_read_file in a CTE",
        sql: "with x as (select pg_catalog.pg_read_file('/etc/passwd') as f) select f from x",
        reason: FN_REASON,
      },
      {
        name: "pg_read_file quoted and upper-case",
        sql: `select "pg_read_file"('/etc/passwd'), PG_READ_FILE('/etc/hosts')`,
        reason: FN_REASON,
      },
      {
        name: "pg_terminate_backend in a WHERE",
        sql: "select 1 from pg_stat_activity where pg_terminate_backend(pid)",
        reason: FN_REASON,
      },
      {
        name: "pg_read_file as a table function",
        sql: "select * from pg_read_file('/etc/passwd')",
        reason: FN_REASON,
      },
      {
        name: "pg_read_file under COPY (query)",
        sql: "COPY (select pg_read_file('/etc/passwd')) TO STDOUT",
        reason: FN_REASON,
      },
      { name: "lo_import", sql: "select lo_import('/etc/passwd')", reason: FN_REASON },
      {
        name: "turning standard_conforming_strings off (the broker's parser would misread)",
        sql: "set standard_conforming_strings = off",
        reason: /keeps the server's SQL syntax fixed/,
      },
      {
        name: "changing client_encoding",
        sql: "set client_encoding = 'SJIS'",
        reason: /keeps the server's SQL syntax fixed/,
      },
      {
        name: "set_config of a lexing setting",
        sql: "select set_config('standard_conforming_strings', 'off', false)",
        reason: /keeps the server's SQL syntax fixed/,
      },
      {
        name: "dblink (not even installed)",
        sql: "select * from dblink('host=x', 'drop table t') as r(x text)",
        reason: FN_REASON,
      },
      {
        name: "unparseable SQL",
        sql: "selec * frm t",
        reason:
          /^gw: blocked by policy guard: the SQL does not parse \(.*\); onUnparseable of policy guard is block$/,
      },
      {
        name: "unparseable SQL after a valid statement",
        sql: "insert into marks values ('unparse'); drop tabel t",
        reason: /onUnparseable of policy guard is block/,
        mark: "unparse",
      },
    ];

    for (const k of cases) {
      it(`${k.name}: refused (simple and extended)`, async () => {
        const c = await client(dba);
        const before = await tableCount();
        for (const mode of ["simple", "extended"] as const) {
          const e = await refusal(
            mode === "simple"
              ? c.query(k.sql)
              : c.query({ text: k.sql, queryMode: "extended" } as never),
          );
          expect(e.code, `${mode}: ${e.message}`).toBe("42501");
          if (typeof k.reason === "string") expect(e.message).toBe(k.reason);
          else expect(e.message).toMatch(k.reason);
          expect(await tExists()).toBe(true);
          expect(await tableCount()).toBe(before);
          if (k.mark) expect(await marks(k.mark)).toBe(0);
          await usable(c);
        }
        const recorded = (await statementsOf(c.app)).filter(
          (s) => s.sql === k.sql && s.decision === "blocked",
        );
        expect(recorded.map((s) => s.protocol).sort()).toEqual(["extended", "simple"]);
        await c.end();
      });
    }

    it("psql: a blocked statement fails with the reason, psql's session goes on", async () => {
      const url = tunnelUrl(dba, stack.pg.database);
      const r = await psql(url, "/* hi */ DROP TABLE t");
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(DROP_REASON);
      expect(await tExists()).toBe(true);
      // Several commands on one psql session: the refused one does not end it.
      const script = await new Promise<{ code: number | null; stdout: string; stderr: string }>(
        (resolve, reject) => {
          const child = spawn(PSQL, [url, "-X", "-A", "-t", "-f", "-"], {
            env: cleanEnv({}),
            stdio: ["pipe", "pipe", "pipe"],
          });
          const out: Buffer[] = [];
          const err: Buffer[] = [];
          child.stdout.on("data", (c: Buffer) => out.push(c));
          child.stderr.on("data", (c: Buffer) => err.push(c));
          child.on("error", reject);
          child.on("close", (code) =>
            resolve({
              code,
              stdout: Buffer.concat(out).toString("utf8"),
              stderr: Buffer.concat(err).toString("utf8"),
            }),
          );
          child.stdin.end(
            "select 'before';\ntruncate t;\nselect pg_read_file('/etc/passwd');\nselect 'after';\n",
          );
        },
      );
      expect(script.stdout.split("\n").filter(Boolean)).toEqual(["before", "after"]);
      expect(script.stderr).toContain(DROP_REASON);
      expect(script.stderr).toContain(FN_REASON);
      expect(await tableCount()).toBe(3);
    });

    it("a blocked statement inside a transaction: the transaction goes on as the target sees it", async () => {
      const c = await client(dba);
      await c.query("begin");
      await c.query("insert into marks values ('tx')");
      expect((await refusal(c.query("drop table t"))).code).toBe("42501");
      await c.query("commit");
      expect(await marks("tx")).toBe(1);
      expect(await tExists()).toBe(true);
      await c.end();
    });
  });

  describe("held statements", () => {
    // A DELETE or UPDATE without WHERE is held wherever it sits; denied here, it never runs.
    const held: { name: string; sql: string }[] = [
      { name: "a plain DELETE", sql: "DELETE FROM t" },
      { name: "a DELETE in a CTE", sql: "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d" },
      { name: "EXPLAIN ANALYZE DELETE", sql: "EXPLAIN ANALYZE DELETE FROM t" },
      {
        name: "an UPDATE with a WHERE naming no column",
        sql: "update t set note = 'x' where true",
      },
      { name: "PREPARE of a DELETE", sql: "PREPARE p AS DELETE FROM t" },
    ];
    for (const k of held) {
      it(`${k.name}: held, and denied it never runs (simple and extended)`, async () => {
        const c = await client(dba);
        for (const mode of ["simple", "extended"] as const) {
          const q = refusal(
            mode === "simple"
              ? c.query(k.sql)
              : c.query({ text: k.sql, queryMode: "extended" } as never),
          );
          const a = await denyHeld(k.sql);
          expect(a.matchedRule.index).toBe(1);
          const e = await q;
          expect(e.code).toBe("42501");
          expect(e.message).toBe(
            `gw: request ${a.id} was denied by Avery Auditor: not in this test`,
          );
          expect(await tableCount()).toBe(3);
          expect(
            (await direct.query("select count(*)::int as n from t where note = 'x'")).rows[0].n,
          ).toBe(0);
          await usable(c);
        }
        const recorded = (await statementsOf(c.app)).filter((s) => s.sql === k.sql);
        expect(recorded.map((s) => s.decision)).toEqual(["denied", "denied"]);
        await c.end();
      });
    }

    it("PREPARE / EXECUTE: held at PREPARE, and the EXECUTE of the approved PREPARE is held again", async () => {
      const c = await client(dba);
      // Approved PREPARE: the statement exists on the target but has not run.
      const prep = c.query("PREPARE p2 AS DELETE FROM t WHERE true");
      const a = await waitFor("the PREPARE to be held", async () =>
        (await stack.store.listApprovals({ status: "pending", limit: 100 })).find(
          (x) => x.sql === "PREPARE p2 AS DELETE FROM t WHERE true",
        ),
      );
      await stack.broker.approvals.decide(a.id, auditorIdentity, "approve", "prepare only");
      await prep;
      expect(await tableCount()).toBe(3);
      // EXECUTE is judged by what it runs: the DELETE without a real WHERE, held again.
      const exec = refusal(c.query("EXECUTE p2"));
      await denyHeld("EXECUTE p2", "no");
      expect((await exec).code).toBe("42501");
      expect(await tableCount()).toBe(3);
      // In one string, PREPARE and EXECUTE are held together, once.
      const both = refusal(c.query("PREPARE p3 AS DELETE FROM t; EXECUTE p3"));
      await denyHeld("PREPARE p3 AS DELETE FROM t; EXECUTE p3");
      expect((await both).code).toBe("42501");
      expect(await tableCount()).toBe(3);
      // A PREPARE of a blocked statement is blocked.
      expect((await refusal(c.query("PREPARE p4 AS DROP TABLE t"))).code).toBe("42501");
      await usable(c);
      await c.end();
    });

    it("a held named statement (Parse) is held again when run with SQL EXECUTE", async () => {
      const c = await client(dba);
      // The Parse reaches the target (only its Execute waits); denied, the statement exists there.
      const q = refusal(c.query({ name: "sneaky", text: "DELETE FROM t" }));
      await denyHeld("DELETE FROM t");
      expect((await q).code).toBe("42501");
      const exec = refusal(c.query('EXECUTE "sneaky"'));
      await denyHeld('EXECUTE "sneaky"', "still no");
      expect((await exec).code).toBe("42501");
      expect(await tableCount()).toBe(3);
      // One step removed: a named statement that EXECUTEs it.
      const n2 = refusal(c.query({ name: "n2", text: 'EXECUTE "sneaky"' }));
      await denyHeld('EXECUTE "sneaky"', "no");
      expect((await n2).code).toBe("42501");
      const exec2 = refusal(c.query("EXECUTE n2"));
      await denyHeld("EXECUTE n2", "no");
      expect((await exec2).code).toBe("42501");
      expect(await tableCount()).toBe(3);
      // A later Parse of the same name with a harmless text fails on the target (the name is
      // taken); the name's decision does not relax, so its Bind/Execute is still held.
      const conn = (
        c as unknown as {
          connection: {
            parsedStatements: Record<string, string>;
            submittedNamedStatements: Record<string, string>;
          };
        }
      ).connection;
      delete conn.parsedStatements["sneaky"];
      delete conn.submittedNamedStatements["sneaky"];
      // The Parse fails on the target; its Execute, under the name's held decision, is held
      // (on the text that was held before) until someone decides.
      const againQ = refusal(c.query({ name: "sneaky", text: "select 1" }));
      await denyHeld("DELETE FROM t", "no");
      const again = await againQ;
      expect(again.code).toBe("42P05"); // from the target first: the name is taken
      conn.parsedStatements["sneaky"] = "select 1";
      const rebound = refusal(c.query({ name: "sneaky", text: "select 1" }));
      await denyHeld("DELETE FROM t", "no");
      expect((await rebound).code).toBe("42501");
      expect(await tableCount()).toBe(3);
      await usable(c);
      await c.end();
    });

    it("an approved SQL PREPARE run through Bind/Execute is held again, like SQL EXECUTE", async () => {
      const c = await client(dba);
      const prep = c.query("PREPARE p7 AS DELETE FROM t");
      const a = await waitFor("the PREPARE to be held", async () =>
        (await stack.store.listApprovals({ status: "pending", limit: 100 })).find(
          (x) => x.sql === "PREPARE p7 AS DELETE FROM t",
        ),
      );
      await stack.broker.approvals.decide(a.id, auditorIdentity, "approve", "prepare only");
      await prep;
      // Bind to the SQL-level statement p7 by name, with no Parse: pg skips the Parse of a
      // statement it believes it has prepared.
      (
        c as unknown as { connection: { parsedStatements: Record<string, string> } }
      ).connection.parsedStatements["p7"] = "-- p7";
      const bound = refusal(c.query({ name: "p7", text: "-- p7" }));
      const b = await denyHeld('EXECUTE "p7"', "no, not this way either");
      expect(b.matchedRule.index).toBe(1);
      const e = await bound;
      expect(e.code).toBe("42501");
      expect(e.message).toContain("was denied by Avery Auditor: no, not this way either");
      await usable(c);
      // And SQL EXECUTE of it is held again too.
      const exec = refusal(c.query("execute p7"));
      await denyHeld("execute p7");
      expect((await exec).code).toBe("42501");
      expect(await tableCount()).toBe(3);
      await c.end();
    });

    it("a DELETE with a WHERE is not held", async () => {
      const c = await client(dba);
      await c.query("insert into t values (100, 'tmp')");
      const r = await c.query("delete from t where id = 100");
      expect(r.rowCount).toBe(1);
      expect(await tableCount()).toBe(3);
      await c.end();
    });
  });

  describe("who is connected", () => {
    it("a rule on identity type app blocks the app's inserts, not the DBA's", async () => {
      const a = await client(app);
      const e = await refusal(a.query("insert into marks values ('app')"));
      expect(e.code).toBe("42501");
      expect(e.message).toBe(
        "gw: blocked by rule apps-do-not-insert of policy guard: apps may not insert",
      );
      const ex = await refusal(
        a.query({ text: "insert into marks values ($1)", values: ["app-ext"] }),
      );
      expect(ex.code).toBe("42501");
      expect(await marks("app")).toBe(0);
      expect(await marks("app-ext")).toBe(0);
      // The app may still read.
      expect((await a.query("select count(*)::int as n from t")).rows).toEqual([{ n: 3 }]);
      await a.end();
      const d = await client(dba);
      await d.query("insert into marks values ('dba')");
      await d.query({ text: "insert into marks values ($1)", values: ["dba-ext"] });
      expect(await marks("dba")).toBe(1);
      expect(await marks("dba-ext")).toBe(1);
      await d.end();
    });
  });

  describe("read-only connections", () => {
    const insertFails = async (c: pg.Client) => {
      const e = await refusal(c.query("insert into t_ro values (2)"));
      expect(e.code).toBe("25006");
      expect(e.message).toBe("cannot execute INSERT in a read-only transaction");
    };

    it("writes fail with PostgreSQL's own 25006; reads work", async () => {
      const c = await client(ro);
      await insertFails(c);
      const e = await refusal(c.query({ text: "update t_ro set id = $1", values: [5] }));
      expect(e.code).toBe("25006");
      expect((await c.query("select count(*)::int as n from t_ro")).rows).toEqual([{ n: 1 }]);
      await c.end();
    });

    const escapes = [
      "SET default_transaction_read_only = off",
      "set default_transaction_read_only to false",
      "SET SESSION default_transaction_read_only = 0",
      "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
      "BEGIN READ WRITE",
      "START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ WRITE",
      "select set_config('default_transaction_read_only', 'off', false)",
      "select * from (select set_config('default_transaction_read_only', 'off', false)) s",
      "SET transaction_read_only = off",
      "select set_config('transaction_read_only', 'off', true)",
      "select set_config(name, 'off', false) from pg_settings where name = 'default_transaction_read_only'",
      "ALTER SYSTEM SET default_transaction_read_only = off",
      "SET SESSION AUTHORIZATION DEFAULT",
    ];
    for (const sql of escapes) {
      it(`refused by gw: ${sql}`, async () => {
        const c = await client(ro);
        for (const mode of ["simple", "extended"] as const) {
          if (mode === "extended" && sql.includes(";")) continue;
          const e = await refusal(
            mode === "simple"
              ? c.query(sql)
              : c.query({ text: sql, queryMode: "extended" } as never),
          );
          expect(e.code, e.message).toBe("42501");
          // Read-only mode, or (a setting name only known at run time) parser safety.
          expect(e.message).toMatch(
            /^gw: blocked by policy \(none\): (read-only mode: |the broker keeps the server's SQL syntax fixed)/,
          );
          await insertFails(c);
        }
        await c.end();
      });
    }

    it("RESET ALL and DISCARD ALL go back to read-only (the setting came with the startup packet)", async () => {
      const c = await client(ro);
      await c.query("RESET default_transaction_read_only").catch(() => undefined);
      await insertFails(c);
      await c.query("RESET ALL").catch(() => undefined);
      await insertFails(c);
      await c.query("DISCARD ALL").catch(() => undefined);
      await insertFails(c);
      expect((await c.query("show default_transaction_read_only")).rows).toEqual([
        { default_transaction_read_only: "on" },
      ]);
      await c.end();
    });

    it("startup options cannot smuggle settings in (PGOPTIONS)", async () => {
      const url = tunnelUrl(ro, stack.pg.database);
      const env = { PGOPTIONS: "-c default_transaction_read_only=off" };
      const r = await psql(url, "insert into t_ro values (9)", env);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain("cannot execute INSERT in a read-only transaction");
      const show = await psql(url, "show default_transaction_read_only", env);
      expect(show.stdout.trim()).toBe("on");
      // Nor lexing settings on a policy connection.
      const lex = await psql(
        tunnelUrl(dba, stack.pg.database),
        "show standard_conforming_strings",
        {
          PGOPTIONS: "-c standard_conforming_strings=off",
        },
      );
      expect(lex.stdout.trim()).toBe("on");
      // Nor a startup parameter of that name (pg sends options as given).
      const c = new pg.Client({
        connectionString: tunnelUrl(ro, stack.pg.database),
        options: "-c default_transaction_read_only=off",
      });
      await c.connect();
      await insertFails(c);
      await c.end();
      expect((await direct.query("select count(*)::int as n from t_ro")).rows[0].n).toBe(1);
    });
  });
});
