import { describe, expect, it } from "vitest";
import {
  StatementTracker,
  type CompletedStatement,
} from "../../../src/protocols/postgres/statement-tracker.js";

function tracker(): { t: StatementTracker; done: CompletedStatement[] } {
  const done: CompletedStatement[] = [];
  return { t: new StatementTracker((s) => done.push(s)), done };
}

/** The parts of a recorded statement that do not depend on time. */
const brief = (s: CompletedStatement) => ({
  sql: s.sql,
  protocol: s.protocol,
  commandTag: s.commandTag,
  rows: s.rows,
  errorCode: s.errorCode,
  errorMessage: s.errorMessage,
});

/** Parse + Bind + Execute of one unnamed statement, as most drivers send it. */
function extended(t: StatementTracker, sql: string, name = "", portal = ""): void {
  t.parse(name, sql);
  t.bind(portal, name);
  t.execute(portal);
}

describe("StatementTracker, simple protocol", () => {
  it("a Query with several statements is one record, finished only at ReadyForQuery", () => {
    const { t, done } = tracker();
    t.query("insert into t values (1); update t set a = 2; select * from t");
    t.commandComplete("INSERT 0 1");
    t.commandComplete("UPDATE 1");
    t.commandComplete("SELECT 1");
    expect(done).toEqual([]);
    expect(t.pendingCount).toBe(1);
    t.readyForQuery();
    expect(done.map(brief)).toEqual([
      {
        sql: "insert into t values (1); update t set a = 2; select * from t",
        protocol: "simple",
        commandTag: "INSERT 0 1, UPDATE 1, SELECT 1",
        rows: 3,
        errorCode: null,
        errorMessage: null,
      },
    ]);
    expect(t.pendingCount).toBe(0);
    expect(done[0]!.durationMs).toBeGreaterThanOrEqual(0);
    expect(typeof done[0]!.at).toBe("number");
  });

  it("an error in the middle of a multi-statement Query keeps the tags before it and the first error", () => {
    const { t, done } = tracker();
    t.query("select 1; select nope; select 3");
    t.commandComplete("SELECT 1");
    t.error("42703", 'column "nope" does not exist');
    t.readyForQuery();
    expect(done.map(brief)).toEqual([
      {
        sql: "select 1; select nope; select 3",
        protocol: "simple",
        commandTag: "SELECT 1",
        rows: 1,
        errorCode: "42703",
        errorMessage: 'column "nope" does not exist',
      },
    ]);
  });

  it("commands without a row count have rows null", () => {
    const { t, done } = tracker();
    t.query("begin");
    t.commandComplete("BEGIN");
    t.readyForQuery();
    t.query("create table x (a int)");
    t.commandComplete("CREATE TABLE");
    t.readyForQuery();
    expect(done.map((s) => [s.commandTag, s.rows])).toEqual([
      ["BEGIN", null],
      ["CREATE TABLE", null],
    ]);
  });

  it("an empty Query is recorded as EMPTY, without rows or error", () => {
    const { t, done } = tracker();
    t.query("");
    t.emptyQuery();
    t.readyForQuery();
    expect(done.map(brief)).toEqual([
      {
        sql: "",
        protocol: "simple",
        commandTag: "EMPTY",
        rows: null,
        errorCode: null,
        errorMessage: null,
      },
    ]);
  });

  it("queries sent back to back are answered and recorded in order", () => {
    const { t, done } = tracker();
    t.query("select 1");
    t.query("select 2");
    t.query("select 3");
    t.commandComplete("SELECT 1");
    t.readyForQuery();
    t.error("57014", "canceling statement due to user request");
    t.readyForQuery();
    t.commandComplete("SELECT 1");
    t.readyForQuery();
    expect(done.map((s) => [s.sql, s.errorCode])).toEqual([
      ["select 1", null],
      ["select 2", "57014"],
      ["select 3", null],
    ]);
    expect(t.pendingCount).toBe(0);
  });

  it("a FunctionCall is a simple statement that ends at ReadyForQuery", () => {
    const { t, done } = tracker();
    t.functionCall(1598);
    t.readyForQuery();
    expect(done.map(brief)).toEqual([
      {
        sql: "-- function call (oid 1598)",
        protocol: "simple",
        commandTag: null,
        rows: null,
        errorCode: null,
        errorMessage: null,
      },
    ]);
  });

  it("answers with nothing pending are ignored", () => {
    const { t, done } = tracker();
    t.commandComplete("SELECT 1");
    t.error("XX000", "x");
    t.emptyQuery();
    t.readyForQuery();
    expect(done).toEqual([]);
    expect(t.pendingCount).toBe(0);
  });
});

describe("StatementTracker, extended protocol", () => {
  it("each Execute is recorded at its CommandComplete, with the text of its prepared statement", () => {
    const { t, done } = tracker();
    extended(t, "select $1::int");
    t.sync();
    expect(t.pendingCount).toBe(2);
    t.commandComplete("SELECT 1");
    expect(done.map(brief)).toEqual([
      {
        sql: "select $1::int",
        protocol: "extended",
        commandTag: "SELECT 1",
        rows: 1,
        errorCode: null,
        errorMessage: null,
      },
    ]);
    t.readyForQuery();
    expect(t.pendingCount).toBe(0);
    expect(done).toHaveLength(1);
  });

  it("an error in a batch records the failed Execute and drops the rest up to Sync (they never ran)", () => {
    const { t, done } = tracker();
    extended(t, "insert into t values (1)");
    extended(t, "insert into t values ('x')");
    extended(t, "insert into t values (3)");
    t.sync();
    t.commandComplete("INSERT 0 1");
    t.error("22P02", 'invalid input syntax for type integer: "x"');
    // The target skips the third Execute and answers the Sync.
    t.readyForQuery();
    expect(done.map(brief)).toEqual([
      {
        sql: "insert into t values (1)",
        protocol: "extended",
        commandTag: "INSERT 0 1",
        rows: 1,
        errorCode: null,
        errorMessage: null,
      },
      {
        sql: "insert into t values ('x')",
        protocol: "extended",
        commandTag: null,
        rows: null,
        errorCode: "22P02",
        errorMessage: 'invalid input syntax for type integer: "x"',
      },
    ]);
    expect(t.pendingCount).toBe(0);
  });

  it("pipelined batches: an error in the first batch does not touch the second", () => {
    const { t, done } = tracker();
    extended(t, "select 1/0");
    extended(t, "select 'skipped'");
    t.sync();
    extended(t, "select 'second batch'");
    extended(t, "select 'second batch, again'");
    t.sync();
    t.query("select 'simple after'");

    t.error("22012", "division by zero");
    t.readyForQuery();
    t.commandComplete("SELECT 1");
    t.commandComplete("SELECT 1");
    t.readyForQuery();
    t.commandComplete("SELECT 1");
    t.readyForQuery();

    expect(done.map((s) => [s.sql, s.protocol, s.commandTag, s.errorCode])).toEqual([
      ["select 1/0", "extended", null, "22012"],
      ["select 'second batch'", "extended", "SELECT 1", null],
      ["select 'second batch, again'", "extended", "SELECT 1", null],
      ["select 'simple after'", "simple", "SELECT 1", null],
    ]);
    expect(t.pendingCount).toBe(0);
  });

  it("an Execute the target never answered before ReadyForQuery is dropped, not recorded", () => {
    const { t, done } = tracker();
    extended(t, "select 1");
    extended(t, "select 2");
    t.sync();
    t.commandComplete("SELECT 1");
    t.readyForQuery();
    expect(done.map((s) => s.sql)).toEqual(["select 1"]);
    expect(t.pendingCount).toBe(0);
  });

  it("PortalSuspended ends an Execute with a row limit; the next Execute of the portal is its own record", () => {
    const { t, done } = tracker();
    t.parse("big", "select generate_series(1, 5)");
    t.bind("cur", "big");
    t.execute("cur");
    t.execute("cur");
    t.sync();
    t.portalSuspended();
    t.commandComplete("SELECT 3");
    t.readyForQuery();
    expect(done.map(brief)).toEqual([
      {
        sql: "select generate_series(1, 5)",
        protocol: "extended",
        commandTag: "SUSPENDED",
        rows: null,
        errorCode: null,
        errorMessage: null,
      },
      {
        sql: "select generate_series(1, 5)",
        protocol: "extended",
        commandTag: "SELECT 3",
        rows: 3,
        errorCode: null,
        errorMessage: null,
      },
    ]);
  });

  it("an empty statement in the extended protocol is recorded as EMPTY", () => {
    const { t, done } = tracker();
    extended(t, "");
    t.sync();
    t.emptyQuery();
    t.readyForQuery();
    expect(done.map((s) => [s.sql, s.protocol, s.commandTag])).toEqual([["", "extended", "EMPTY"]]);
  });

  it("named statements are reused by later binds, forgotten on Close, and unknown ones are marked", () => {
    const { t, done } = tracker();
    t.parse("s1", "select $1");
    t.sync();
    t.readyForQuery();
    expect(t.preparedText("s1")).toBe("select $1");
    t.bind("", "s1");
    t.execute("");
    t.sync();
    t.commandComplete("SELECT 1");
    t.readyForQuery();
    t.close("S", "s1");
    expect(t.preparedText("s1")).toBeUndefined();
    t.bind("p", "s1");
    t.execute("p");
    t.execute("nope");
    t.sync();
    t.error("26000", 'prepared statement "s1" does not exist');
    t.readyForQuery();
    expect(done.map((s) => [s.sql, s.errorCode])).toEqual([
      ["select $1", null],
      ['-- unknown prepared statement "s1"', "26000"],
    ]);
    t.close("P", "p");
    t.execute("p");
    t.sync();
    t.error("34000", 'portal "p" does not exist');
    t.readyForQuery();
    expect(done.at(-1)!.sql).toBe('-- unknown portal "p"');
  });

  it("a Parse error in a describe-only batch (no Execute) records nothing and leaves nothing pending", () => {
    const { t, done } = tracker();
    t.parse("bad", "selec 1");
    t.sync();
    t.error("42601", 'syntax error at or near "selec"');
    t.readyForQuery();
    expect(done).toEqual([]);
    expect(t.pendingCount).toBe(0);
    // The next batch is tracked as usual.
    extended(t, "select 1");
    t.sync();
    t.commandComplete("SELECT 1");
    t.readyForQuery();
    expect(done.map((s) => [s.sql, s.errorCode])).toEqual([["select 1", null]]);
  });

  it("a long pipeline stays in order across the queue's compaction", () => {
    const { t, done } = tracker();
    const n = 500;
    for (let i = 0; i < n; i++) {
      extended(t, `select ${i}`);
      t.sync();
    }
    for (let i = 0; i < n; i++) {
      if (i % 7 === 3) t.error("P0001", `boom ${i}`);
      else t.commandComplete(`SELECT ${i}`);
      t.readyForQuery();
    }
    expect(done).toHaveLength(n);
    done.forEach((s, i) => {
      expect(s.sql).toBe(`select ${i}`);
      if (i % 7 === 3) {
        expect(s.errorCode).toBe("P0001");
        expect(s.errorMessage).toBe(`boom ${i}`);
      } else {
        expect(s.commandTag).toBe(`SELECT ${i}`);
        expect(s.rows).toBe(i);
      }
    });
    expect(t.pendingCount).toBe(0);
  });
});
