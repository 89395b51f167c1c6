/**
 * Nothing reaches the database unrecorded: a mixed workload through gw (simple queries,
 * extended with unnamed and named statements, multi-statement queries, transactions,
 * SQL-level PREPARE/EXECUTE, COPY in and out with psql, errors) against a PostgreSQL that
 * logs every statement (log_statement = all); every statement in the server's log must be in
 * gw's recording, and the recording must be an intact chain of events.
 */
import { spawn } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifySession } from "../../src/audit/verify.js";
import type { SessionRecord } from "../../src/store/types.js";
import type { Tunnel } from "../../src/tunnel/tunnel.js";
import { startStack, tunnelUrl, type Stack } from "../helpers/stack.js";

const PSQL = "/usr/bin/psql";
const MARK = "@@gw-log@@";
const APPS = ["gw-complete-pg", "gw-complete-psql"];

/** One statement the server logged: `statement: X`, `execute <name>: X`, `execute fetch from …`. */
interface Logged {
  app: string;
  kind: "statement" | "execute";
  sql: string;
}

/**
 * The server's log, with log_line_prefix = '@@gw-log@@ <application_name> @@ ': an entry runs
 * from one marker to the next (a statement's own newlines stay in it).
 */
export function parseServerLog(text: string): Logged[] {
  const out: Logged[] = [];
  for (const entry of text.split(MARK).slice(1)) {
    const m = /^ (.*?) @@ LOG: {2}(statement|execute [^:]+): ([\s\S]*)$/.exec(entry);
    if (!m) continue;
    out.push({
      app: m[1]!,
      kind: m[2] === "statement" ? "statement" : "execute",
      // The server indents a message's further lines with a tab.
      sql: m[3]!.replace(/\n$/, "").replace(/\n\t/g, "\n"),
    });
  }
  return out;
}

function run(
  args: string[],
  env: Record<string, string>,
  input?: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(PSQL, args, { env, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c));
    child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input ?? "");
  });
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  for (let i = 0; i < 400; i++) {
    const v = await probe();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe("recording completeness (log_statement = all)", () => {
  let stack: Stack;
  let tunnel: Tunnel;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "gw-complete-"));
    stack = await startStack({
      pg: { logStatements: true, settings: { log_line_prefix: `${MARK} %a @@ ` } },
    });
    tunnel = await stack.openTunnel(stack.tokens.dba);
  });
  afterAll(async () => {
    await stack?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("records every statement the server logged, in intact chains", async () => {
    // 1. The pg driver: simple, multi-statement, extended (unnamed and named, twice), errors.
    const c = new pg.Client({
      connectionString: `${tunnelUrl(tunnel)}&application_name=${APPS[0]}`,
    });
    await c.connect();
    await c.query("create table complete_t (id int primary key, v text)");
    await c.query("insert into complete_t values (1, 'a'), (2, 'b')");
    await c.query(
      "insert into complete_t values (3, 'c'); update complete_t set v = 'bb' where id = 2; select count(*) from complete_t",
    );
    await c.query("select $1::int + $2::int as s", [20, 22]);
    await c.query({ name: "by_id", text: "select v from complete_t where id = $1", values: [1] });
    await c.query({ name: "by_id", text: "select v from complete_t where id = $1", values: [2] });
    await expect(c.query("select * from complete_missing")).rejects.toMatchObject({
      code: "42P01",
    });
    await expect(c.query("select $1::int", ["not a number"])).rejects.toMatchObject({
      code: "22P02",
    });
    await c.query("begin");
    await c.query("delete from complete_t where id = 3");
    await c.query("rollback");
    await c.query("prepare two as select 2");
    await c.query("execute two");
    await c.query("do $$ begin perform pg_sleep(0); end $$");
    await c.query("select 'multi\nline' as text,\n  1 as n");
    await c.end();

    // 2. psql: a script with COPY FROM STDIN and COPY TO STDOUT (\copy) and a transaction.
    const script = join(dir, "script.sql");
    writeFileSync(
      script,
      [
        "\\copy complete_t from stdin",
        "10\tten",
        "11\televen",
        "\\.",
        "\\copy (select id, v from complete_t order by id) to stdout",
        "COPY complete_t TO STDOUT;",
        "begin;",
        "update complete_t set v = upper(v) where id >= 10;",
        "commit;",
        "select count(*) from complete_t;",
      ].join("\n") + "\n",
    );
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      LC_ALL: "C",
      PGHOST: "127.0.0.1",
      PGPORT: String(tunnel.address.port),
      PGUSER: stack.pg.user,
      PGDATABASE: stack.pg.database,
      PGSSLMODE: "disable",
      PGPASSFILE: "/nonexistent/pgpass",
      PGAPPNAME: APPS[1]!,
    };
    const r = await run(["-X", "-v", "ON_ERROR_STOP=1", "-f", script], env);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("11\televen");

    // Both sessions ended and recorded.
    const sessions = await waitFor("both sessions to end", async () => {
      const all = (await stack.store.listSessions({ limit: 1000 })).filter(
        (s) => s.applicationName !== null && APPS.includes(s.applicationName) && s.endedAt !== null,
      );
      return all.length === APPS.length ? all : undefined;
    });

    // 3. Every statement the server logged is in the recording of its session.
    const logged = await waitFor("the server log to have the last statement", async () => {
      const entries = parseServerLog(readFileSync(stack.pg.logFile, "utf8")).filter((e) =>
        APPS.includes(e.app),
      );
      return entries.some((e) => e.sql === "select count(*) from complete_t;")
        ? entries
        : undefined;
    });
    expect(logged.length).toBeGreaterThanOrEqual(20);
    const byApp = new Map<string, SessionRecord>(sessions.map((s) => [s.applicationName!, s]));
    const missing: Logged[] = [];
    const extra: string[] = [];
    for (const app of APPS) {
      const recorded = (await stack.store.listStatements(byApp.get(app)!.id)).map((s) => s.sql);
      const remaining = [...recorded];
      for (const l of logged.filter((e) => e.app === app)) {
        const i = remaining.indexOf(l.sql);
        if (i < 0) missing.push(l);
        else remaining.splice(i, 1);
      }
      extra.push(...remaining);
    }
    expect(missing).toEqual([]);
    // What gw recorded beyond the log never reached execution on the server: a Bind that
    // failed on its parameter (22P02).
    expect(extra).toEqual(["select $1::int"]);

    // 4. The kinds of traffic really were all there.
    const sqls = logged.map((l) => l.sql);
    expect(sqls).toContain("select $1::int + $2::int as s");
    expect(logged.filter((l) => l.sql === "select v from complete_t where id = $1")).toHaveLength(
      2,
    );
    // psql's \copy sends these (its own spacing).
    expect(sqls).toContain("COPY  complete_t FROM STDIN ");
    expect(sqls).toContain("COPY  ( select id, v from complete_t order by id ) TO STDOUT ");
    expect(sqls).toContain("COPY complete_t TO STDOUT;");
    expect(sqls).toContain(
      "insert into complete_t values (3, 'c'); update complete_t set v = 'bb' where id = 2; select count(*) from complete_t",
    );
    expect(sqls).toContain("execute two");
    expect(sqls).toContain("select 'multi\nline' as text,\n  1 as n");

    // 5. Each session is a chain of events with nothing missing or changed.
    const key = generateKeyPairSync("ed25519").publicKey;
    for (const s of sessions) {
      const events = await stack.store.listEvents(s.id);
      const statements = await stack.store.listStatements(s.id);
      expect(events.length).toBeGreaterThanOrEqual(statements.length);
      expect(statements.every((st) => st.eventSeq !== undefined)).toBe(true);
      const result = verifySession({ session: s, events, statements, publicKey: key });
      expect(result.problems.filter((p) => p.kind !== "wrong_key")).toEqual([]);
    }
  });
});
