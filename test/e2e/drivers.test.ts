/**
 * Real drivers through a gw tunnel: node-postgres (simple and extended protocol, named
 * prepared statements, errors, big results, transactions) and pgbench in all its query modes.
 */
import { createHash } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Tunnel } from "../../src/tunnel/tunnel.js";
import { pgbenchPath, runTool as run } from "../helpers/pgbench.js";
import { startStack, tunnelUrl, type Stack } from "../helpers/stack.js";

/** A query's outcome in a comparable form: rows, column names and type oids, or the error. */
async function outcome(
  c: pg.Client,
  q: pg.QueryConfig | string,
  values?: unknown[],
): Promise<unknown> {
  try {
    const r = await c.query(q as pg.QueryConfig, values);
    return {
      command: r.command,
      rowCount: r.rowCount,
      fields: r.fields.map((f) => [f.name, f.dataTypeID]),
      rows: r.rows,
    };
  } catch (err) {
    const e = err as { code?: string; message: string };
    return { error: e.code, message: e.message };
  }
}

describe("drivers through gw", () => {
  let stack: Stack;
  let tunnel: Tunnel;
  let viaGw: pg.Client;
  let direct: pg.Client;

  beforeAll(async () => {
    stack = await startStack();
    tunnel = await stack.openTunnel(stack.tokens.dba);
    viaGw = new pg.Client({
      connectionString: `${tunnelUrl(tunnel)}&application_name=gw-drivers`,
    });
    direct = new pg.Client({ connectionString: stack.pg.url });
    await Promise.all([viaGw.connect(), direct.connect()]);
    await direct.query(
      "CREATE TABLE drv (id int PRIMARY KEY, t text, n int, b bytea, j jsonb, a int[], ta text[])",
    );
  });
  afterAll(async () => {
    await viaGw?.end().catch(() => undefined);
    await direct?.end().catch(() => undefined);
    await stack?.stop();
  });

  /** Runs the same thing on both clients and expects the same outcome. */
  const same = async (q: pg.QueryConfig | string, values?: unknown[]) => {
    const a = await outcome(viaGw, q, values);
    const b = await outcome(direct, q, values);
    expect(a).toEqual(b);
    return a as {
      rows?: Record<string, unknown>[];
      rowCount?: number;
      error?: string;
      message?: string;
    };
  };

  describe("node-postgres", () => {
    it("parameterised queries with text, int, null, bytea, json and arrays", async () => {
      const bytes = Buffer.from([0, 1, 2, 0xfe, 0xff, 0x5c, 0x27, 0]);
      const values = [
        "it's a \\ test ✓ \t\n\u{1F600}",
        -2147483648,
        null,
        bytes,
        JSON.stringify({ k: [1, "two", null, { deep: true }], u: "ü" }),
        [1, null, 3],
        ["a,b", 'q"uote', "", null],
      ];
      const r = await same(
        "select $1::text as t, $2::int as n, $3::int as nul, $4::bytea as b, $5::jsonb as j, " +
          "$6::int[] as a, $7::text[] as ta, pg_typeof($1)::text as ty",
        values,
      );
      expect(r.rows).toEqual([
        {
          t: values[0],
          n: -2147483648,
          nul: null,
          b: bytes,
          j: { k: [1, "two", null, { deep: true }], u: "ü" },
          a: [1, null, 3],
          ta: ["a,b", 'q"uote', "", null],
          ty: "text",
        },
      ]);

      // Written through gw, read back directly: the same values arrived.
      const ins = await outcome(
        viaGw,
        "insert into drv values ($1, $2, $3, $4, $5, $6, $7) returning id",
        [1, ...values.slice(0, 1), 42, bytes, values[4], values[5], values[6]],
      );
      expect(ins).toMatchObject({ command: "INSERT", rowCount: 1, rows: [{ id: 1 }] });
      const back = await direct.query("select * from drv where id = 1");
      expect(back.rows).toEqual([
        {
          id: 1,
          t: values[0],
          n: 42,
          b: bytes,
          j: { k: [1, "two", null, { deep: true }], u: "ü" },
          a: [1, null, 3],
          ta: ["a,b", 'q"uote', "", null],
        },
      ]);
      await same("select * from drv where id = $1 and b = $2", [1, bytes]);
      await same("select $1::text is null as isnull, $2::text as empty", [null, ""]);
    });

    it("named prepared statements run many times, skipping Parse after the first", async () => {
      const q = (i: number): pg.QueryConfig => ({
        name: "q1",
        text: "select $1::int * 2 as doubled, $2::text || '!' as shout, count(*) as drv from drv",
        values: [i, `v${i}`],
      });
      const parsed = (c: pg.Client) =>
        (c as unknown as { connection: { parsedStatements: Record<string, string> } }).connection
          .parsedStatements;
      for (let i = 0; i < 6; i++) {
        const r = await same(q(i));
        expect(r.rows).toEqual([{ doubled: i * 2, shout: `v${i}!`, drv: "1" }]);
      }
      // pg really re-used the statement: it is parsed once on each connection.
      expect(Object.keys(parsed(viaGw))).toContain("q1");

      // A second named statement next to the first, interleaved.
      const q2: pg.QueryConfig = { name: "q2", text: "select $1::text as x", values: ["two"] };
      await same(q2);
      await same(q(100));
      await same({ ...q2, values: ["again"] });

      // And the prepared statements really exist on the target session.
      const ps = await viaGw.query<{ name: string }>(
        "select name from pg_prepared_statements order by name",
      );
      expect(ps.rows.map((r) => r.name)).toEqual(["q1", "q2"]);

      // The broker recorded each run as an extended statement with the Parse text.
      const sessions = await stack.store.listSessions({ limit: 100 });
      const s = sessions.find((x) => x.applicationName === "gw-drivers" && x.endedAt === null);
      const stmts = await stack.store.listStatements(s!.id);
      const runs = stmts.filter((x) => x.sql === q(0).text);
      expect(runs).toHaveLength(7);
      expect(runs.every((x) => x.protocol === "extended" && x.commandTag === "SELECT 1")).toBe(
        true,
      );
    });

    it("an error in the extended protocol is reported, and the client goes on working", async () => {
      const bad = await same("select $1::int as n", ["not a number"]);
      expect(bad.error).toBe("22P02");
      expect(bad.message).toMatch(/invalid input syntax for type integer/);
      expect((await same("select $1::int + 1 as n", [41])).rows).toEqual([{ n: 42 }]);

      // A parse error and an error during execution, each followed by working queries.
      expect((await same("selec $1", [1])).error).toBe("42601");
      expect(
        (await same({ name: "div", text: "select 1 / $1::int as q", values: [0] })).error,
      ).toBe("22012");
      expect(
        (await same({ name: "div", text: "select 1 / $1::int as q", values: [1] })).rows,
      ).toEqual([{ q: 1 }]);
      // Wrong number of parameters is caught by the server at Bind.
      expect((await same("select $1::int, $2::int", [1])).error).toBe("08P01");
      expect((await same("select 'still fine' as s", [])).rows).toEqual([{ s: "still fine" }]);
    });

    it("returns a 10k-row result identically", async () => {
      const sql =
        "select g as id, md5(g::text) as h, repeat('x', g % 50) as pad, g * 1.5 as f " +
        "from generate_series(1, $1::int) g";
      const r = await same(sql, [10_000]);
      expect(r.rowCount).toBe(10_000);
      expect(r.rows![9_999]).toEqual({
        id: 10_000,
        h: "b7a782741f667201b54880c925faec4b",
        pad: "",
        f: "15000.0",
      });
      // The simple protocol too, with a wider row.
      const wide = await same(
        "select g, repeat(md5(g::text), 20) as w from generate_series(1, 10000) g",
      );
      expect(wide.rowCount).toBe(10_000);
    });

    it("carries an 8 MB value both ways, split over many chunks", async () => {
      const big = Array.from({ length: 8 * 1024 }, (_, i) =>
        `${i.toString(36).padStart(4, "0")}-`.repeat(205).slice(0, 1023),
      ).join("\n");
      expect(big.length).toBeGreaterThan(8_000_000);
      const r = await same("select md5($1::text) as h, length($1::text) as n, $1::text as v", [
        big,
      ]);
      expect(r.rows![0]).toMatchObject({ n: big.length });
      expect((r.rows![0] as { v: string }).v === big).toBe(true);
      const bin = Buffer.alloc(3 * 1024 * 1024, 0xab);
      bin.writeUInt32BE(0xdeadbeef, bin.length - 4);
      // Compared with Buffer.equals: a deep equality over 3 MB byte by byte is slow.
      for (const c of [viaGw, direct]) {
        const r = await c.query<{ b: Buffer; h: string }>(
          "select $1::bytea as b, md5($1::bytea) as h",
          [bin],
        );
        expect(r.rows[0]!.b.equals(bin)).toBe(true);
        expect(r.rows[0]!.h).toBe(createHash("md5").update(bin).digest("hex"));
      }
    });

    it("keeps concurrent clients' results apart", async () => {
      const pool = new pg.Pool({ connectionString: tunnelUrl(tunnel), max: 6 });
      try {
        const results = await Promise.all(
          Array.from({ length: 120 }, (_, i) =>
            pool
              .query<{ i: number; s: string }>(
                i % 2 === 0
                  ? "select $1::int as i, repeat(md5($1::text), 50) as s"
                  : "select $1::int as i, repeat(md5($1::text), 50) as s, pg_sleep(0.001)",
                [i],
              )
              .then((r) => r.rows[0]!),
          ),
        );
        const check = await direct.query<{ s: string }>(
          "select repeat(md5(g::text), 50) as s from generate_series(0, 119) g order by g",
        );
        expect(results.map((r) => r.i)).toEqual(Array.from({ length: 120 }, (_, i) => i));
        expect(results.map((r) => r.s)).toEqual(check.rows.map((r) => r.s));
      } finally {
        await pool.end();
      }
    });

    it("runs a transaction: rollback undoes, commit keeps, an error aborts", async () => {
      await viaGw.query("BEGIN");
      await viaGw.query("insert into drv (id, t) values (10, 'rolled back')");
      expect((await viaGw.query("select count(*)::int as n from drv where id = 10")).rows).toEqual([
        { n: 1 },
      ]);
      // Not visible outside the transaction.
      expect((await direct.query("select count(*)::int as n from drv where id = 10")).rows).toEqual(
        [{ n: 0 }],
      );
      await viaGw.query("ROLLBACK");
      expect((await direct.query("select count(*)::int as n from drv where id = 10")).rows).toEqual(
        [{ n: 0 }],
      );

      await viaGw.query("BEGIN");
      await viaGw.query("insert into drv (id, t) values ($1, $2)", [11, "kept"]);
      await viaGw.query("insert into drv (id, t) values ($1, $2)", [12, "kept too"]);
      await viaGw.query("COMMIT");
      expect(
        (await direct.query("select id, t from drv where id in (11, 12) order by id")).rows,
      ).toEqual([
        { id: 11, t: "kept" },
        { id: 12, t: "kept too" },
      ]);

      await viaGw.query("BEGIN");
      await expect(viaGw.query("insert into drv (id) values (11)")).rejects.toMatchObject({
        code: "23505",
      });
      await expect(viaGw.query("select 1")).rejects.toMatchObject({ code: "25P02" });
      const end = await viaGw.query("COMMIT"); // on an aborted transaction this rolls back
      expect(end.command).toBe("ROLLBACK");
      expect((await viaGw.query("select 'ok' as s")).rows).toEqual([{ s: "ok" }]);
    });
  });

  describe("pgbench", () => {
    const env = () => {
      const e: Record<string, string> = {};
      for (const [k, v] of Object.entries(process.env))
        if (v !== undefined && !k.startsWith("PG")) e[k] = v;
      return {
        ...e,
        LC_ALL: "C",
        PGHOST: "127.0.0.1",
        PGPORT: String(tunnel.address.port),
        PGUSER: stack.pg.user,
        PGDATABASE: stack.pg.database,
        PGSSLMODE: "disable",
        PGPASSFILE: "/nonexistent/pgpass",
        PGAPPNAME: "gw-pgbench",
      };
    };

    it("initialises with COPY and runs simple, extended and prepared modes without failures", async () => {
      const bench = pgbenchPath(stack.pg.binDir);
      const init = await run(bench, ["-i", "-s", "1"], env());
      expect(init.stderr).toMatch(/done in/);
      expect(init.code).toBe(0);
      const counts = await direct.query<{ a: number; b: number; t: number; h: number }>(
        `select (select count(*) from pgbench_accounts)::int as a,
                (select count(*) from pgbench_branches)::int as b,
                (select count(*) from pgbench_tellers)::int as t,
                (select count(*) from pgbench_history)::int as h`,
      );
      expect(counts.rows).toEqual([{ a: 100_000, b: 1, t: 10, h: 0 }]);

      for (const mode of ["simple", "extended", "prepared"]) {
        const r = await run(bench, ["-M", mode, "-c", "2", "-j", "1", "-t", "50", "-n"], env());
        expect(r.stderr).not.toMatch(/error|aborted/i);
        expect(r.code).toBe(0);
        expect(r.stdout).toContain(`query mode: ${mode}`);
        expect(r.stdout).toContain("number of transactions actually processed: 100/100");
        expect(r.stdout).toMatch(/number of failed transactions: 0 \(/);
      }

      const sums = await direct.query<Record<string, string>>(
        `select (select sum(abalance) from pgbench_accounts)::text as a,
                (select sum(bbalance) from pgbench_branches)::text as b,
                (select sum(tbalance) from pgbench_tellers)::text as t,
                (select sum(delta) from pgbench_history)::text as h,
                (select count(*) from pgbench_history)::text as n`,
      );
      const s = sums.rows[0]!;
      expect(s.n).toBe("300");
      expect(s.a).toBe(s.b);
      expect(s.b).toBe(s.t);
      expect(s.t).toBe(s.h);

      // Every pgbench session went through gw and was recorded.
      // pgbench has exited, but the broker may not have seen the last Terminate yet.
      let sessions = await stack.store.listSessions({ limit: 1000 });
      for (let i = 0; i < 100; i++) {
        sessions = (await stack.store.listSessions({ limit: 1000 })).filter(
          (x) => x.applicationName === "gw-pgbench",
        );
        if (sessions.length >= 10 && sessions.every((x) => x.endedAt !== null)) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      // -i uses one connection; each run one per client plus one pgbench opens to check the
      // tables before starting: 1 + 3 * (2 + 1).
      expect(sessions.length).toBe(1 + 3 * (2 + 1));
      expect(sessions.every((x) => x.endReason === "client_closed")).toBe(true);
    });
  });
});
