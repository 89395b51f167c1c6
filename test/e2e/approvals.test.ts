/**
 * Approvals through the whole data path: a statement a policy holds waits in its session (the
 * client is told, with a notice, which request to approve), people see and decide it over the
 * broker's HTTP API, and the same session then gets its result (approved), an error with the
 * approver's reason (denied), a timeout error, or nothing at all when the requester went away
 * (the request is cancelled). Simple protocol through psql and pg, extended through pg.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import pg from "pg";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { ApprovalRequest, StatementEvent } from "../../src/store/types.js";
import type { Tunnel } from "../../src/tunnel/tunnel.js";
import { GROUP_AUDIT, startStack, tunnelUrl, type Stack } from "../helpers/stack.js";

const PSQL = "/usr/bin/psql";

const POLICY = {
  rules: [
    {
      name: "bulk-delete",
      match: { kind: ["delete"], where: "absent" },
      action: "hold",
      approvers: [`group:${GROUP_AUDIT}`],
      timeout: "30s",
      reason: "a DELETE without WHERE needs an auditor",
    },
    {
      name: "bulk-update",
      match: { kind: ["update"], where: "absent" },
      action: "hold",
      approvers: [`group:${GROUP_AUDIT}`],
      timeout: "2s",
      reason: "an UPDATE without WHERE needs an auditor, quickly",
    },
  ],
};

interface PgError extends Error {
  code?: string;
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  for (let i = 0; i < 300; i++) {
    const v = await probe();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function settle<T>(p: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: PgError }> {
  return p.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error: error as PgError }),
  );
}

describe("approvals through gw", () => {
  let stack: Stack;
  let dba: Tunnel;
  let direct: pg.Client;
  let ca: Buffer;

  beforeAll(async () => {
    stack = await startStack({
      mutate: (raw) => {
        raw.policies = { approvals: POLICY };
        const conns = raw.connections as Record<string, Record<string, unknown>>;
        conns["db-test"]!.policy = "approvals";
      },
    });
    ca = readFileSync(stack.ca.caCert);
    direct = new pg.Client({ connectionString: stack.pg.url });
    await direct.connect();
    await direct.query("create table t (id int primary key, note text)");
    dba = await stack.openTunnel(stack.tokens.dba);
  });
  afterAll(async () => {
    await direct?.end().catch(() => undefined);
    await stack?.stop();
  });
  beforeEach(async () => {
    await direct.query(
      "truncate t; insert into t select g, 'row ' || g from generate_series(1, 5) g",
    );
  });

  async function api(
    token: string,
    method: string,
    path: string,
    body?: unknown,
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- bodies are checked by expect()
  ): Promise<{ status: number; json: any }> {
    const url = new URL(path, stack.broker.url.replace("127.0.0.1", "localhost"));
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = httpsRequest(
        url,
        {
          method,
          ca,
          headers: {
            authorization: `Bearer ${token}`,
            accept: "application/json",
            ...(payload
              ? { "content-type": "application/json", "content-length": payload.length }
              : {}),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : undefined });
          });
        },
      );
      req.on("error", reject);
      req.end(payload);
    });
  }

  const rows = async (): Promise<number> =>
    (await direct.query("select count(*)::int as n from t")).rows[0].n as number;

  let appSeq = 0;
  async function client(): Promise<pg.Client & { app: string; notices: string[] }> {
    const name = `approvals-e2e-${++appSeq}`;
    const c = new pg.Client({
      connectionString: tunnelUrl(dba, stack.pg.database),
      application_name: name,
    }) as pg.Client & { app: string; notices: string[] };
    c.app = name;
    c.notices = [];
    c.on("notice", (n) => c.notices.push(n.message ?? ""));
    c.on("error", () => undefined);
    await c.connect();
    return c;
  }

  /** The pending request for this text, as the auditor sees it in GET /v1/approvals. */
  async function pendingFor(sql: string | RegExp): Promise<ApprovalRequest> {
    return waitFor(`a pending request for ${sql}`, async () => {
      const r = await api(stack.tokens.auditor, "GET", "/v1/approvals");
      expect(r.status).toBe(200);
      return (r.json.approvals as ApprovalRequest[]).find((a) =>
        typeof sql === "string" ? a.sql === sql : sql.test(a.sql),
      );
    });
  }

  /** The client is told which request it waits for (right after the request is recorded). */
  async function noticeOf(c: { notices: string[] }, id: string): Promise<string> {
    return waitFor(`the notice for ${id}`, async () =>
      c.notices.find((n) => n.startsWith(`gw: waiting for approval of request ${id} `)),
    );
  }

  async function statementsOf(app: string): Promise<StatementEvent[]> {
    const s = await waitFor(`a session of ${app}`, async () =>
      (await stack.store.listSessions({ limit: 1000 })).find((x) => x.applicationName === app),
    );
    return stack.store.listStatements(s.id);
  }

  it("psql: a held DELETE waits, is listed, only an approver may approve it, then runs in the same session", async () => {
    const child = spawn(
      PSQL,
      [tunnelUrl(dba, stack.pg.database), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-f", "-"],
      {
        env: {
          PATH: process.env.PATH ?? "/usr/bin:/bin",
          LC_ALL: "C",
          PGPASSFILE: "/nonexistent/pgpass",
          PGAPPNAME: "approvals-psql",
        },
        stdio: ["pipe", "pipe", "pipe"],
      },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString("utf8")));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString("utf8")));
    const exited = new Promise<number | null>((r) => child.on("close", (code) => r(code)));
    child.stdin.end(
      [
        "select 'pid=' || pg_backend_pid();",
        "DELETE FROM t RETURNING 'deleted-by=' || pg_backend_pid();",
        "select 'after';",
        "",
      ].join("\n"),
    );

    // psql sends the statement with its semicolon.
    const a = await pendingFor(/^DELETE FROM t RETURNING 'deleted-by=' \|\| pg_backend_pid\(\);?$/);
    expect(a.status).toBe("pending");
    expect(a.reason).toBe("a DELETE without WHERE needs an auditor");
    expect(a.approvers).toEqual([`group:${GROUP_AUDIT}`]);
    expect(a.requester.name).toBe("Dana DBA");
    expect(a.applicationName).toBe("approvals-psql");
    // The client was told what it waits for.
    await waitFor("the notice", async () =>
      /NOTICE: {2}gw: waiting for approval of request /.test(stderr) ? true : undefined,
    );
    expect(stderr).toContain(`gw: waiting for approval of request ${a.id}`);
    // Nothing ran yet, and psql waits.
    expect(await rows()).toBe(5);
    expect(stdout).not.toContain("after");

    // The requester may see it but not approve it; an outsider does not see it at all.
    const self = await api(stack.tokens.dba, "POST", `/v1/approvals/${a.id}/approve`, {});
    expect(self.status).toBe(403);
    expect(self.json.error.code).toBe("approval_self");
    const mine = await api(stack.tokens.dba, "GET", `/v1/approvals/${a.id}`);
    expect(mine.status).toBe(200);
    expect(mine.json.approval.viewer).toMatchObject({ requester: true, canApprove: false });
    for (const [method, path] of [
      ["GET", `/v1/approvals/${a.id}`],
      ["POST", `/v1/approvals/${a.id}/approve`],
      ["POST", `/v1/approvals/${a.id}/deny`],
    ] as const) {
      const r = await api(
        stack.tokens.outsider,
        method,
        path,
        method === "POST" ? { reason: "x" } : undefined,
      );
      expect(r.status, `${method} ${path}`).toBe(404);
      expect(r.json.error.code).toBe("approval_not_found");
    }
    const outsiderList = await api(stack.tokens.outsider, "GET", "/v1/approvals");
    expect(outsiderList.json.approvals).toEqual([]);
    // A decision bound to another statement text is refused.
    const wrong = await api(stack.tokens.auditor, "POST", `/v1/approvals/${a.id}/approve`, {
      statementHash: "0".repeat(64),
    });
    expect(wrong.status).toBe(409);
    expect(wrong.json.error.code).toBe("approval_statement_mismatch");
    expect(await rows()).toBe(5);

    const ok = await api(stack.tokens.auditor, "POST", `/v1/approvals/${a.id}/approve`, {
      reason: "cleanup is fine",
    });
    expect(ok.status).toBe(200);
    expect(ok.json.approval.status).toBe("approved");
    expect(await exited).toBe(0);
    const lines = stdout.split("\n").filter(Boolean);
    const pid = lines[0]!.replace("pid=", "");
    expect(lines).toEqual([
      `pid=${pid}`,
      ...Array(5).fill(`deleted-by=${pid}`),
      "DELETE 5",
      "after",
    ]);
    expect(stderr).not.toContain("ERROR");
    expect(await rows()).toBe(0);

    const recorded = await statementsOf("approvals-psql");
    const del = recorded.find((s) => s.sql.startsWith("DELETE FROM t"));
    expect(del).toMatchObject({ decision: "approved", commandTag: "DELETE 5", rows: 5 });
    // Decided once: a second decision is refused.
    const again = await api(stack.tokens.auditor, "POST", `/v1/approvals/${a.id}/deny`, {
      reason: "too late",
    });
    expect(again.status).toBe(409);
    expect(again.json.error.code).toBe("approval_not_pending");
  });

  it("pg, simple protocol: approved, the same backend runs it; a queued statement follows", async () => {
    const c = await client();
    const pid = (await c.query("select pg_backend_pid() as pid")).rows[0].pid as number;
    const q = settle(c.query("DELETE FROM t RETURNING pg_backend_pid() as pid"));
    const after = settle(c.query("select 'after' as x"));
    const a = await pendingFor("DELETE FROM t RETURNING pg_backend_pid() as pid");
    const notice = await noticeOf(c, a.id);
    expect(notice).toContain("a DELETE without WHERE needs an auditor");
    expect(notice).toContain(`gw approvals approve ${a.id}`);
    expect(notice).toContain("times out in 30s");
    expect(await rows()).toBe(5);
    const r = await api(stack.tokens.auditor, "POST", `/v1/approvals/${a.id}/approve`, {});
    expect(r.status).toBe(200);
    const res = await q;
    if (!res.ok) throw res.error;
    expect(res.value.rowCount).toBe(5);
    expect(new Set(res.value.rows.map((x: { pid: number }) => x.pid))).toEqual(new Set([pid]));
    const next = await after;
    if (!next.ok) throw next.error;
    expect(next.value.rows).toEqual([{ x: "after" }]);
    expect(await rows()).toBe(0);
    const recorded = (await statementsOf(c.app)).find((s) => s.sql.startsWith("DELETE"));
    expect(recorded?.decision).toBe("approved");
    await c.end();
  });

  it("denied with a reason: 42501 with the approver's name and reason; the session goes on", async () => {
    const c = await client();
    const q = settle(c.query("DELETE FROM t"));
    const a = await pendingFor("DELETE FROM t");
    // A deny needs a reason.
    const bare = await api(stack.tokens.auditor, "POST", `/v1/approvals/${a.id}/deny`, {});
    expect(bare.status).toBe(400);
    expect(bare.json.error.code).toBe("approval_reason_required");
    const r = await api(stack.tokens.auditor, "POST", `/v1/approvals/${a.id}/deny`, {
      reason: "not during business hours",
    });
    expect(r.status).toBe(200);
    expect(r.json.approval.status).toBe("denied");
    const res = await q;
    expect(res.ok).toBe(false);
    if (res.ok) return;
    expect(res.error.code).toBe("42501");
    expect(res.error.message).toBe(
      `gw: request ${a.id} was denied by Avery Auditor: not during business hours`,
    );
    expect(await rows()).toBe(5);
    expect((await c.query("select count(*)::int as n from t")).rows).toEqual([{ n: 5 }]);
    const recorded = (await statementsOf(c.app)).find((s) => s.sql === "DELETE FROM t");
    expect(recorded).toMatchObject({ decision: "denied", errorCode: "42501" });
    await c.end();
  });

  it("the requester may withdraw (deny) their own request", async () => {
    const c = await client();
    const q = settle(c.query("DELETE FROM t"));
    const a = await pendingFor("DELETE FROM t");
    const r = await api(stack.tokens.dba, "POST", `/v1/approvals/${a.id}/deny`, {
      reason: "wrong table",
    });
    expect(r.status).toBe(200);
    const res = await q;
    expect(res.ok).toBe(false);
    if (!res.ok) expect(res.error.message).toContain("was denied by Dana DBA: wrong table");
    expect(await rows()).toBe(5);
    await c.end();
  });

  it("timeout: nobody decides within the rule's 2 s; the error says it timed out", async () => {
    const c = await client();
    const started = Date.now();
    const q = settle(c.query("UPDATE t SET note = 'all'"));
    const a = await pendingFor("UPDATE t SET note = 'all'");
    expect(a.expiresAt - a.createdAt).toBe(2000);
    const res = await q;
    expect(Date.now() - started).toBeGreaterThanOrEqual(1900);
    expect(res.ok).toBe(false);
    if (res.ok) return;
    expect(res.error.code).toBe("42501");
    expect(res.error.message).toBe(`gw: request ${a.id} timed out after 2s without a decision`);
    expect(
      (await direct.query("select count(*)::int as n from t where note = 'all'")).rows[0].n,
    ).toBe(0);
    const after = await api(stack.tokens.auditor, "GET", `/v1/approvals/${a.id}`);
    expect(after.json.approval.status).toBe("expired");
    const late = await api(stack.tokens.auditor, "POST", `/v1/approvals/${a.id}/approve`, {});
    expect(late.status).toBe(409);
    expect((await c.query("select 1 as one")).rows).toEqual([{ one: 1 }]);
    await c.end();
  });

  it("the requester disconnects while held: the request is cancelled and nothing runs", async () => {
    const c = await client();
    void settle(c.query("DELETE FROM t"));
    const a = await pendingFor("DELETE FROM t");
    // Gone without a goodbye: the socket is destroyed.
    (c as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
    const cancelled = await waitFor("the request to be cancelled", async () => {
      const r = await api(stack.tokens.auditor, "GET", `/v1/approvals/${a.id}`);
      return r.json.approval.status === "cancelled" ? r.json.approval : undefined;
    });
    expect(cancelled.status).toBe("cancelled");
    const late = await api(stack.tokens.auditor, "POST", `/v1/approvals/${a.id}/approve`, {});
    expect(late.status).toBe(409);
    await new Promise((r) => setTimeout(r, 200));
    expect(await rows()).toBe(5);
  });

  it("a polite disconnect (Terminate queued behind the held statement) cancels it too", async () => {
    const c = await client();
    void settle(c.query("DELETE FROM t"));
    const a = await pendingFor("DELETE FROM t");
    await c.end().catch(() => undefined);
    await waitFor("the request to be cancelled", async () => {
      const r = await api(stack.tokens.auditor, "GET", `/v1/approvals/${a.id}`);
      return r.json.approval.status === "cancelled" ? true : undefined;
    });
    expect(await rows()).toBe(5);
  });

  describe("extended protocol", () => {
    it("a parameterised DELETE without WHERE is held; approved it runs with its parameters", async () => {
      const c = await client();
      const sql = "DELETE FROM t WHERE $1::int IS NOT NULL RETURNING id";
      const q = settle(c.query({ text: sql, values: [1] }));
      const a = await pendingFor(sql);
      await noticeOf(c, a.id);
      expect(await rows()).toBe(5);
      const r = await api(stack.tokens.auditor, "POST", `/v1/approvals/${a.id}/approve`, {});
      expect(r.status).toBe(200);
      const res = await q;
      if (!res.ok) throw res.error;
      expect(res.value.rowCount).toBe(5);
      expect(res.value.rows.map((x: { id: number }) => x.id).sort()).toEqual([1, 2, 3, 4, 5]);
      expect(await rows()).toBe(0);
      const recorded = (await statementsOf(c.app)).find((s) => s.sql === sql);
      expect(recorded).toMatchObject({ decision: "approved", protocol: "extended", rows: 5 });
      await c.end();
    });

    it("a named parameterised DELETE, denied; the named statement's next run is held again", async () => {
      const c = await client();
      const sql = "DELETE FROM t RETURNING $1::text as tag";
      const q = settle(c.query({ name: "bulk", text: sql, values: ["a"] }));
      const a = await pendingFor(sql);
      await api(stack.tokens.auditor, "POST", `/v1/approvals/${a.id}/deny`, { reason: "no" });
      const res = await q;
      expect(res.ok).toBe(false);
      if (!res.ok) {
        expect(res.error.code).toBe("42501");
        expect(res.error.message).toBe(`gw: request ${a.id} was denied by Avery Auditor: no`);
      }
      expect((await c.query({ text: "select $1::int as n", values: [7] })).rows).toEqual([
        { n: 7 },
      ]);
      // Again, by name only (pg skips the Parse now): held again, approved this time.
      const q2 = settle(c.query({ name: "bulk", text: sql, values: ["b"] }));
      const b = await waitFor("a second request", async () => {
        const r = await api(stack.tokens.auditor, "GET", "/v1/approvals");
        return (r.json.approvals as ApprovalRequest[]).find((x) => x.sql === sql && x.id !== a.id);
      });
      await api(stack.tokens.auditor, "POST", `/v1/approvals/${b.id}/approve`, {});
      const res2 = await q2;
      if (!res2.ok) throw res2.error;
      expect(res2.value.rows).toEqual(Array(5).fill({ tag: "b" }));
      expect(await rows()).toBe(0);
      await c.end();
    });

    it("a client that queues a lot behind a held statement is paused, then goes on", async () => {
      const c = await client();
      const big = "x".repeat(3_000_000);
      const held = settle(c.query({ text: "DELETE FROM t WHERE $1::int > 0", values: [1] }));
      const later = settle(c.query({ text: "select length($1::text) as n", values: [big] }));
      const a = await pendingFor("DELETE FROM t WHERE $1::int > 0");
      await new Promise((r) => setTimeout(r, 300));
      await api(stack.tokens.auditor, "POST", `/v1/approvals/${a.id}/approve`, {});
      const [r1, r2] = await Promise.all([held, later]);
      if (!r1.ok || !r2.ok) throw new Error("a pipelined query failed");
      expect(r1.value.rowCount).toBe(5);
      expect(r2.value.rows).toEqual([{ n: 3_000_000 }]);
      await c.end();
    });

    it("pipelined behind a held Execute: later queries wait, then run in order", async () => {
      const c = await client();
      const first = settle(c.query({ text: "select $1::int as a", values: [1] }));
      const held = settle(c.query({ text: "UPDATE t SET note = $1", values: ["x"] }));
      const later = settle(
        c.query({ text: "select count(*)::int as n from t where note = $1", values: ["x"] }),
      );
      const a = await pendingFor("UPDATE t SET note = $1");
      await api(stack.tokens.auditor, "POST", `/v1/approvals/${a.id}/approve`, {});
      const [r1, r2, r3] = await Promise.all([first, held, later]);
      if (!r1.ok || !r2.ok || !r3.ok) throw new Error("a pipelined query failed");
      expect(r1.value.rows).toEqual([{ a: 1 }]);
      expect(r2.value.rowCount).toBe(5);
      expect(r3.value.rows).toEqual([{ n: 5 }]);
      await c.end();
    });
  });
});
