/**
 * A real psql session replayed: plain selects, a blocked statement, one held and approved, one
 * held and denied, all through the broker; then `gw replay --no-tui` (the CLI, against the
 * broker's API, as an auditor) shows each with its outcome and decision, in order.
 */
import { afterAll, beforeAll, expect, test } from "vitest";
import { spawn } from "node:child_process";
import pg from "pg";
import { GROUP_AUDIT, startStack, tunnelUrl, type Stack } from "../helpers/stack.js";
import { runGw } from "../helpers/cli.js";

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({
    mutate: (raw) => {
      const conns = raw["connections"] as Record<string, Record<string, unknown>>;
      conns["db-test"]!["policy"] = "p";
      raw["policies"] = {
        p: {
          rules: [
            {
              name: "no-drop",
              match: { kind: ["drop"] },
              action: "block",
              reason: "DROP is not allowed here",
            },
            {
              name: "bulk-delete",
              match: { kind: ["delete"], where: "absent" },
              action: "hold",
              approvers: [`group:${GROUP_AUDIT}`],
            },
          ],
        },
      };
    },
  });
  const direct = new pg.Client({ connectionString: stack.pg.url });
  await direct.connect();
  await direct.query(
    "create table items (id int); insert into items select generate_series(1, 3);",
  );
  await direct.query("create table logs (id int); insert into logs select generate_series(1, 2);");
  await direct.end();
});

afterAll(async () => {
  await stack?.stop();
});

async function api(
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: unknown }> {
  const c = stack.client(stack.tokens.auditor);
  const res = await fetchJson(c.url + path, method, body);
  return res;
}

async function fetchJson(
  url: string,
  method: string,
  body?: unknown,
): Promise<{ status: number; json: unknown }> {
  const { makeFetch } = await import("../../src/net/http-client.js");
  const f = makeFetch({ caFile: stack.ca.caCert });
  const res = await f(url, {
    method,
    headers: {
      authorization: `Bearer ${stack.tokens.auditor}`,
      "content-type": "application/json",
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null };
}

async function decideNext(sql: RegExp, action: "approve" | "deny", reason?: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    const r = await api("GET", "/v1/approvals?status=pending");
    const list = (r.json as { approvals: { id: string; sql: string }[] }).approvals;
    const a = list.find((x) => sql.test(x.sql));
    if (a) {
      const d = await api("POST", `/v1/approvals/${a.id}/${action}`, reason ? { reason } : {});
      expect(d.status).toBe(200);
      return;
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`no pending request for ${sql}`);
}

test("gw replay --no-tui shows a real session's statements with their decisions", async () => {
  const t = await stack.openTunnel(stack.tokens.dba);
  const script = [
    "select count(*) as items from items;",
    "drop table items;",
    "delete from items;",
    "delete from logs;",
    "select count(*) as logs from logs;",
    "",
  ].join("\n");
  const psql = spawn("psql", ["-X", "-q", tunnelUrl(t), "-f", "-"], {
    stdio: ["pipe", "pipe", "pipe"],
  });
  let out = "";
  psql.stdout.on("data", (c: Buffer) => (out += c.toString()));
  psql.stderr.on("data", (c: Buffer) => (out += c.toString()));
  const done = new Promise<number | null>((r) => psql.on("close", r));
  psql.stdin.end(script);
  await decideNext(/delete from items/, "approve");
  await decideNext(/delete from logs/, "deny", "keep the logs");
  expect(await done).toBe(0);
  expect(out).toMatch(/gw: blocked by rule no-drop .*DROP is not allowed here/);
  expect(out).toMatch(/denied by Avery Auditor: keep the logs/);

  const [session] = await stack.store.listSessions({});
  await new Promise((r) => setTimeout(r, 300));
  const r = await runGw(["replay", session!.id, "--no-tui"], {
    env: {
      GW_TOKEN: stack.tokens.auditor,
      GW_BROKER: stack.client(stack.tokens.auditor).url,
      GW_CA_FILE: stack.ca.caCert,
    },
  });
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  const lines = r.stdout;
  // In order, each with what happened to it.
  const order = [
    "select count(*) as items from items",
    "drop table items",
    "delete from items",
    "delete from logs",
    "select count(*) as logs from logs",
  ];
  let pos = -1;
  for (const sql of order) {
    const at = lines.indexOf(sql, pos + 1);
    expect(at, sql).toBeGreaterThan(pos);
    pos = at;
  }
  expect(lines).toMatch(/\[BLOCKED\]/);
  expect(lines).toMatch(/approved by Avery Auditor/);
  expect(lines).toMatch(/denied by Avery Auditor/);
  expect(lines).toMatch(/DELETE 3/);
  // The preview of the last select: the logs survived the denied delete.
  expect(lines).toMatch(/logs[\s\S]*\b2\b/);
});
