/**
 * Under a policy, the broker's parser and the target must read SQL the same way, and a
 * read-only session must stay read-only. Parsing cannot see inside a function that flips those
 * settings, but the target reports the change (ParameterStatus): the session ends there.
 */
import { afterAll, beforeAll, expect, test } from "vitest";
import pg from "pg";
import { startStack, tunnelUrl, type Stack } from "../helpers/stack.js";

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({
    mutate: (raw) => {
      const conns = raw["connections"] as Record<string, Record<string, unknown>>;
      conns["db-test"]!["policy"] = "p";
      conns["db-ro"] = { ...conns["db-test"]!, readOnly: true };
      raw["policies"] = { p: { rules: [{ match: { kind: ["drop"] }, action: "block" }] } };
    },
  });
  const direct = new pg.Client({ connectionString: stack.pg.url });
  await direct.connect();
  // Functions whose bodies the broker cannot see: they change settings from inside.
  await direct.query(`
    create function flip_scs() returns text language sql as
      $$ select set_config('standard_conforming_strings', 'off', false) $$;
    create function leave_read_only() returns text language plpgsql as
      $$ begin return set_config('default_transaction_read_only', 'off', false); end $$;
    create table notes (t text);`);
  await direct.end();
});

afterAll(async () => {
  await stack?.stop();
});

async function session(connection: string): Promise<{ c: pg.Client; errors: Error[] }> {
  const t = await stack.openTunnel(stack.tokens.dba, connection);
  const c = new pg.Client({ connectionString: tunnelUrl(t) });
  const errors: Error[] = [];
  c.on("error", (e) => errors.push(e));
  await c.connect();
  return { c, errors };
}

test("the session starts with the settings the parser relies on", async () => {
  const { c } = await session("db-test");
  const r = await c.query(
    "select current_setting('standard_conforming_strings') s, current_setting('client_encoding') e",
  );
  expect(r.rows).toEqual([{ s: "on", e: "UTF8" }]);
  await c.end();
});

test("a function that turns standard_conforming_strings off ends the session", async () => {
  const { c, errors } = await session("db-test");
  const err = (await c.query("select flip_scs()").catch((e: unknown) => e)) as Error & {
    code?: string;
  };
  const e = (errors[0] ?? err) as Error & { code?: string };
  expect(e.message).toMatch(/gw: the target's standard_conforming_strings became off/);
  expect(e.code).toBe("42501");
  await expect(c.query("select 1")).rejects.toThrow();
});

test("a read-only session starts read-only; leaving it from inside a function ends the session", async () => {
  const { c, errors } = await session("db-ro");
  await expect(c.query("insert into notes values ('x')")).rejects.toMatchObject({ code: "25006" });
  const err = (await c.query("select leave_read_only()").catch((e: unknown) => e)) as Error;
  const e = (errors[0] ?? err) as Error & { code?: string };
  expect(e.message).toMatch(/gw: the target's default_transaction_read_only became off/);
  // Nothing was written through it.
  const direct = new pg.Client({ connectionString: stack.pg.url });
  await direct.connect();
  expect((await direct.query("select count(*)::int n from notes")).rows[0].n).toBe(0);
  await direct.end();
});
