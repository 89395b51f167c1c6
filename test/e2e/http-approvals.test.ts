/**
 * Held http requests through the whole data path: curl, `gw connect`'s tunnel, the broker and
 * a local API (test/helpers/test-api.ts), with an auditor deciding through the real CLI
 * (`gw approvals approve|deny`).
 *
 * A DELETE the policy holds waits (curl waits; the API has not seen it) until it is approved:
 * then it reaches the API and curl gets the API's status, with an x-gw-notice naming the
 * request. A denied one gets 403 with who denied it and why, a blocked one 403 with the rule's
 * reason, and neither reaches the API; a client that leaves cancels its request. Every
 * decision is a statement row, and `gw audit verify` finds the sessions intact.
 */
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApprovalRequest } from "../../src/store/types.js";
import { runGw } from "../helpers/cli.js";
import { endedSession, eventually, watchedTunnel, type WatchedTunnel } from "../helpers/ssh-e2e.js";
import { GROUP_AUDIT, GROUP_DBA, startStack, type Stack } from "../helpers/stack.js";
import { startTestApi, type TestApi } from "../helpers/test-api.js";
import { run } from "../protocols/ssh/harness.js";

const TOKEN_ENV = `GW_E2E_HTTP_HOLD_TOKEN_${randomBytes(4).toString("hex")}`;
const TOKEN = `tok-${randomBytes(16).toString("hex")}`;
const HOLD_REASON = "deleting a thing needs an auditor";
const BLOCK_REASON = "locked things stay";

let api: TestApi;
let stack: Stack;
let t: WatchedTunnel;

beforeAll(async () => {
  process.env[TOKEN_ENV] = TOKEN;
  api = await startTestApi();
  stack = await startStack({
    connections: {
      api: {
        type: "http",
        target: { url: `${api.url}/v1`, bearer: { env: TOKEN_ENV } },
        allow: [`group:${GROUP_DBA}`],
        policy: {
          approvers: [`group:${GROUP_AUDIT}`],
          timeout: "120s",
          rules: [
            {
              match: { method: ["DELETE"], path: "/things/locked/**" },
              action: "block",
              reason: BLOCK_REASON,
            },
            {
              match: { method: ["DELETE"], path: "/things/*" },
              action: "hold",
              reason: HOLD_REASON,
            },
          ],
          mask: { json: ["$.owner.email"] },
        },
      },
    },
  });
  t = await watchedTunnel(stack, "api");
});

afterAll(async () => {
  await stack?.stop();
  await api?.close();
  delete process.env[TOKEN_ENV];
});

const url = (path: string) => `http://127.0.0.1:${t.port}${path}`;

const cli = (token: string, ...args: string[]) =>
  runGw([...args, "--broker", stack.broker.url, "--ca-file", stack.ca.caCert], {
    env: { GW_TOKEN: token },
  });

/** The pending request whose text starts with `line`. */
function pendingFor(line: string): Promise<ApprovalRequest> {
  return eventually(`a pending request for ${line}`, async () =>
    (await stack.store.listApprovals({ status: "pending", limit: 50 })).find((a) =>
      a.sql.startsWith(line),
    ),
  );
}

const deletesSeen = (path: string) =>
  api.seen.filter((s) => s.method === "DELETE" && s.url === path).length;

/** curl -i: status line, headers and body on stdout. */
const curl = (...args: string[]) => run("curl", ["-sS", "-i", ...args]);

function parse(out: string): { status: number; headers: string; body: string } {
  const i = out.indexOf("\r\n\r\n");
  const head = out.slice(0, i);
  return {
    status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]),
    headers: head,
    body: out.slice(i + 4),
  };
}

async function rowsOfLatest(before: number) {
  const id = await eventually("the session", () =>
    t.sessions.length > before ? t.sessions[t.sessions.length - 1] : undefined,
  );
  await endedSession(stack.store, id);
  return stack.store.listStatements(id);
}

describe("held http requests", () => {
  it("a held DELETE waits (the API has not seen it) until approved, then reaches the API and curl gets its status", async () => {
    const before = t.sessions.length;
    const held = t.events.length;
    const running = curl("-X", "DELETE", url("/things/5?reason=cleanup"));
    const req = await pendingFor("DELETE /things/5");
    expect(req).toMatchObject({
      connection: "api",
      sql: "DELETE /things/5?reason=cleanup",
      requester: { name: "Dana DBA" },
      reason: expect.stringContaining(HOLD_REASON),
      approvers: [`group:${GROUP_AUDIT}`],
    });
    await eventually("the held notice on the tunnel", () =>
      t.events.slice(held).find((e) => e.type === "statement_held" && e.request === req.id),
    );
    expect(deletesSeen("/v1/things/5?reason=cleanup")).toBe(0);

    const ok = await cli(stack.tokens.auditor, "approvals", "approve", req.id);
    expect(ok.stderr).toBe("");
    expect(ok.code).toBe(0);

    const r = parse((await running).stdout);
    expect(r.status).toBe(200);
    expect(r.headers).toMatch(
      new RegExp(`\\r\\nx-gw-notice: gw: waiting for approval of request ${req.id}`, "i"),
    );
    expect(JSON.parse(r.body)).toEqual({ deleted: "5" });
    const seen = api.seen.filter((s) => s.method === "DELETE" && s.url.startsWith("/v1/things/5"));
    expect(seen).toHaveLength(1);
    expect(seen[0]!.headers["authorization"]).toBe(`Bearer ${TOKEN}`);
    expect(await rowsOfLatest(before)).toEqual([
      expect.objectContaining({
        sql: "DELETE /things/5?reason=cleanup",
        protocol: "http",
        commandTag: "200",
        decision: "approved",
      }),
    ]);
  });

  it("a held request with a body: the approver sees it with its digest, and exactly it is sent", async () => {
    const body = JSON.stringify({ why: "duplicate", owner: "someone@example.com" });
    const running = curl(
      "-X",
      "DELETE",
      "-H",
      "content-type: application/json",
      "--data",
      body,
      url("/things/7"),
    );
    const req = await pendingFor("DELETE /things/7");
    const digest = createHash("sha256").update(body).digest("hex");
    expect(req.sql).toBe(
      `DELETE /things/7\n\n${body}\n(body: ${Buffer.byteLength(body)} bytes, sha256 ${digest})`,
    );
    expect(deletesSeen("/v1/things/7")).toBe(0);
    expect((await cli(stack.tokens.auditor, "approvals", "approve", req.id)).code).toBe(0);
    expect(parse((await running).stdout).status).toBe(200);
    const sent = api.seen.filter((x) => x.method === "DELETE" && x.url === "/v1/things/7");
    expect(sent.map((x) => x.body)).toEqual([body]);
  });

  it("a denied DELETE gets 403 with who denied it and why, and never reaches the API", async () => {
    const before = t.sessions.length;
    const running = curl("-X", "DELETE", url("/things/6"));
    const req = await pendingFor("DELETE /things/6");
    const self = await cli(stack.tokens.dba, "approvals", "approve", req.id);
    expect(self.code).toBe(5);
    const no = await cli(
      stack.tokens.auditor,
      "approvals",
      "deny",
      req.id,
      "--reason",
      "thing 6 is still billed",
    );
    expect(no.code).toBe(0);
    const r = parse((await running).stdout);
    expect(r.status).toBe(403);
    expect(JSON.parse(r.body)).toEqual({
      error: "denied",
      message: `gw: request ${req.id} was denied by Avery Auditor: thing 6 is still billed`,
    });
    expect(deletesSeen("/v1/things/6")).toBe(0);
    expect(await rowsOfLatest(before)).toEqual([
      expect.objectContaining({
        sql: "DELETE /things/6",
        commandTag: "403",
        decision: "denied",
        errorMessage: expect.stringContaining("thing 6 is still billed"),
      }),
    ]);
  });

  it("a blocked DELETE gets 403 with the rule's reason at once: no request to approve, nothing sent", async () => {
    const before = t.sessions.length;
    const pending = (await stack.store.listApprovals({ limit: 100 })).length;
    const r = parse((await curl("-X", "DELETE", url("/things/locked/1"))).stdout);
    expect(r.status).toBe(403);
    const body = JSON.parse(r.body) as { error: string; message: string };
    expect(body.error).toBe("blocked");
    expect(body.message).toMatch(/^gw: blocked by rule 1 of .*: locked things stay$/);
    expect(deletesSeen("/v1/things/locked/1")).toBe(0);
    expect((await stack.store.listApprovals({ limit: 100 })).length).toBe(pending);
    expect(await rowsOfLatest(before)).toEqual([
      expect.objectContaining({
        sql: "DELETE /things/locked/1",
        commandTag: "403",
        decision: "blocked",
        errorMessage: expect.stringContaining(BLOCK_REASON),
      }),
    ]);
  });

  it("a client that leaves while held cancels its request; the API never sees it", async () => {
    const child = spawn("curl", ["-sS", "-X", "DELETE", url("/things/8")], { stdio: "ignore" });
    const gone = new Promise((r) => child.on("close", r));
    const req = await pendingFor("DELETE /things/8");
    child.kill("SIGTERM");
    await gone;
    const after = await eventually("the request to be cancelled", async () => {
      const a = await stack.store.getApproval(req.id);
      return a && a.status !== "pending" ? a : undefined;
    });
    expect(after.status).toBe("cancelled");
    expect(deletesSeen("/v1/things/8")).toBe(0);
    // Deciding it now changes nothing.
    const late = await cli(stack.tokens.auditor, "approvals", "approve", req.id);
    expect(late.code).not.toBe(0);
    expect(deletesSeen("/v1/things/8")).toBe(0);
  });

  it("gw audit verify finds every session of the connection intact", async () => {
    for (const s of t.sessions) await endedSession(stack.store, s);
    const v = await cli(stack.tokens.auditor, "audit", "verify", "--connection", "api", "--json");
    expect(v.code).toBe(0);
    const out = JSON.parse(v.stdout) as { ok: boolean; results: { status: string }[] };
    expect(out.ok).toBe(true);
    expect(out.results.length).toBe(t.sessions.length);
    expect(out.results.every((x) => x.status === "intact")).toBe(true);
  });
});
