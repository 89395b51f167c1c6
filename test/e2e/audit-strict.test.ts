/**
 * audit: strict — a statement reaches the target only after its start is recorded on disk.
 * When the store fails mid-session, the next statement is refused with a clear error, the
 * session ends, and the target never sees the statement (checked in its own statement log).
 */
import { afterAll, beforeAll, expect, test } from "vitest";
import { readFileSync } from "node:fs";
import pg from "pg";
import { startStack, tunnelUrl, type Stack } from "../helpers/stack.js";

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({
    pg: { logStatements: true },
    mutate: (raw) => {
      const conns = raw["connections"] as Record<string, Record<string, unknown>>;
      conns["db-test"]!["audit"] = "strict";
    },
  });
});

afterAll(async () => {
  await stack?.stop().catch(() => undefined);
});

test("statements run after their start is recorded; a failing store refuses the next one", async () => {
  const t = await stack.openTunnel(stack.tokens.dba);
  const c = new pg.Client({ connectionString: tunnelUrl(t) });
  const errors: Error[] = [];
  c.on("error", (e) => errors.push(e));
  await c.connect();
  expect((await c.query("select 'recorded first' as x")).rows).toEqual([{ x: "recorded first" }]);
  const [session] = await stack.store.listSessions({});
  const before = await stack.store.listStatements(session!.id);
  expect(before.map((s) => s.sql)).toContain("select 'recorded first' as x");

  // The store goes away under the running session.
  await stack.store.close();
  const err = (await c.query("select 'never ran' as y").catch((e: unknown) => e)) as Error & {
    code?: string;
  };
  expect(err).toBeInstanceOf(Error);
  const reported = (errors[0] ?? err) as Error & { code?: string };
  expect(reported.message).toMatch(/^gw: .*record/);
  const log = readFileSync(stack.pg.logFile, "utf8");
  expect(log).toContain("recorded first");
  expect(log).not.toContain("never ran");
});
