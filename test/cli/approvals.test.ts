/**
 * `gw approvals` as a script runs it: the built CLI in a subprocess against a real broker,
 * issuer and PostgreSQL, with a policy that holds a DELETE without WHERE for an auditor. The
 * statement is really held (a pg client waits in its session), and every answer is checked:
 * list, show, approve (the client gets its rows), deny (the client gets the reason), watch
 * --json, and each refusal with its message and exit code: approving your own statement, an
 * auditor who is not an approver, an app that only matches through a role, someone who may
 * not see the request, a request no longer pending, one that does not exist.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import pg from "pg";
import { createLogger } from "../../src/broker/logger.js";
import { createNotifier } from "../../src/notify/index.js";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { ApprovalView } from "../../src/tunnel/approvals-client.js";
import { runGw, startGw, startGwUntil, type BackgroundGw } from "../helpers/cli.js";
import { APP_AGENT, GROUP_AUDIT, startStack, tunnelUrl, type Stack } from "../helpers/stack.js";
import type { Tunnel } from "../../src/tunnel/tunnel.js";

const GROUP_INSPECT = "44444444-4444-4444-4444-444444444444";

let stack: Stack;
let brokerArgs: string[];
let dba: Tunnel;
let direct: pg.Client;
let inspector: string;
const running: BackgroundGw[] = [];
const clients: pg.Client[] = [];

beforeAll(async () => {
  stack = await startStack({
    mutate: (raw) => {
      raw["policies"] = {
        holds: {
          rules: [
            {
              name: "bulk-delete",
              match: { kind: ["delete"], where: "absent" },
              action: "hold",
              // The role lets the app match, which is still not enough for an app to decide.
              approvers: [`group:${GROUP_AUDIT}`, "role:gw.connect"],
              timeout: "60s",
              reason: "a DELETE without WHERE needs an auditor",
            },
          ],
        },
      };
      const conns = raw["connections"] as Record<string, Record<string, unknown>>;
      conns["db-test"]!["policy"] = "holds";
      // Auditors see every request: the inspector and the app can see it without approving.
      raw["auditors"] = [`group:${GROUP_AUDIT}`, `group:${GROUP_INSPECT}`, `app:${APP_AGENT}`];
    },
  });
  inspector = await stack.entra.mintAccessToken({ name: "Ivy Inspector", groups: [GROUP_INSPECT] });
  brokerArgs = [
    "--broker",
    stack.broker.url.replace("127.0.0.1", "localhost"),
    "--ca-file",
    stack.ca.caCert,
  ];
  direct = new pg.Client({ connectionString: stack.pg.url });
  await direct.connect();
  await direct.query("create table t (id int primary key, note text)");
  dba = await stack.openTunnel(stack.tokens.dba);
});

afterAll(async () => {
  for (const p of running) await p.stop("SIGKILL").catch(() => undefined);
  for (const c of clients) await c.end().catch(() => undefined);
  await direct?.end().catch(() => undefined);
  await stack?.stop();
});

beforeEach(async () => {
  await direct.query(
    "truncate t; insert into t select g, 'row ' || g from generate_series(1, 5) g",
  );
});

function gw(args: string[], token: string) {
  return runGw([...args, ...brokerArgs], { env: { GW_TOKEN: token } });
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  for (let i = 0; i < 400; i++) {
    const v = await probe();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

type Outcome =
  { ok: true; rowCount: number | null } | { ok: false; message: string; code?: string };

/** Runs a DELETE without WHERE as Dana (held), and returns its request id and its outcome. */
async function heldDelete(): Promise<{ id: string; outcome: Promise<Outcome> }> {
  const c = new pg.Client({
    connectionString: tunnelUrl(dba, stack.pg.database),
    application_name: "cli-test",
  });
  clients.push(c);
  await c.connect();
  const before = new Set((await stack.store.listApprovals({ limit: 1000 })).map((a) => a.id));
  const outcome = c.query("DELETE FROM t").then(
    (r): Outcome => ({ ok: true, rowCount: r.rowCount }),
    (e: Error & { code?: string }): Outcome => ({ ok: false, message: e.message, code: e.code }),
  );
  const a = await waitFor("the DELETE to be held", async () =>
    (await stack.store.listApprovals({ status: "pending", limit: 100 })).find(
      (x) => !before.has(x.id),
    ),
  );
  return { id: a.id, outcome };
}

const rows = async () =>
  (await direct.query("select count(*)::int as n from t")).rows[0].n as number;

describe("gw approvals", () => {
  it("list says when nothing is waiting", async () => {
    const r = await gw(["approvals", "list"], stack.tokens.auditor);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("no approval requests waiting for you\n");
    expect(r.code).toBe(0);
  });

  it("list, show, approve: the held DELETE runs and the client gets its result", async () => {
    const { id, outcome } = await heldDelete();

    const list = await gw(["approvals", "list"], stack.tokens.auditor);
    expect(list.code).toBe(0);
    const [header, row] = list.stdout.trimEnd().split("\n");
    expect(header).toMatch(
      /^ID\s+REQUESTER\s+CONNECTION\s+STATUS\s+AGE\s+EXPIRES\s+YOU\s+STATEMENT$/,
    );
    expect(row).toMatch(
      new RegExp(
        `^${id}\\s+Dana DBA \\(user\\)\\s+db-test\\s+pending\\s+\\d+s\\s+[01]:\\d\\d\\s+can approve\\s+DELETE FROM t$`,
      ),
    );

    const mine = await gw(["approvals", "list"], stack.tokens.dba);
    expect(mine.stdout).toMatch(new RegExp(`${id}.*asked.*DELETE FROM t`));

    const json = await gw(["approvals", "list", "--json"], stack.tokens.auditor);
    const body = JSON.parse(json.stdout) as { approvals: ApprovalView[]; scope: string };
    expect(body.scope).toBe("all");
    expect(body.approvals.find((a) => a.id === id)).toMatchObject({
      sql: "DELETE FROM t",
      connection: "db-test",
      requester: { name: "Dana DBA", type: "user" },
      applicationName: "cli-test",
      viewer: { requester: false, canApprove: true, canDeny: true },
    });

    const show = await gw(["approvals", "show", id], stack.tokens.auditor);
    expect(show.code).toBe(0);
    expect(show.stdout).toContain(`request ${id}  pending (0 of 1 approvals)`);
    expect(show.stdout).toContain("\n  DELETE FROM t\n");
    expect(show.stdout).toContain("  requester    Dana DBA (user), oid ");
    expect(show.stdout).toContain("  application  cli-test");
    expect(show.stdout).toContain("  rule         #1 bulk-delete: kind: [delete], where: absent");
    expect(show.stdout).toContain("  reason       a DELETE without WHERE needs an auditor");
    expect(show.stdout).toContain(
      `  approvers    group:${GROUP_AUDIT}, role:gw.connect (1 needed)`,
    );
    expect(show.stdout).toContain(`gw approvals approve ${id}`);

    const ok = await gw(
      ["approvals", "approve", id, "--reason", "cleanup OPS-12"],
      stack.tokens.auditor,
    );
    expect(ok.stderr).toBe("");
    expect(ok.stdout).toBe(`approved ${id} (DELETE FROM t): the statement runs now\n`);
    expect(ok.code).toBe(0);
    expect(await outcome).toEqual({ ok: true, rowCount: 5 });
    expect(await rows()).toBe(0);

    // Not pending any more: exit 7.
    const again = await gw(["approvals", "approve", id], stack.tokens.auditor);
    expect(again.code).toBe(7);
    expect(again.stderr).toBe(
      `error: approval request ${id} is already approved\n` +
        "hint: A decided, expired or cancelled request cannot be decided again; the statement has to be run again to ask anew.\n",
    );
    const list2 = await gw(["approvals", "list", "--all"], stack.tokens.auditor);
    expect(list2.stdout).toMatch(new RegExp(`${id}.*approved`));
  });

  it("deny: a reason is required, and the client gets it as its error", async () => {
    const { id, outcome } = await heldDelete();
    const noReason = await gw(["approvals", "deny", id], stack.tokens.auditor);
    expect(noReason.code).toBe(2);
    expect(noReason.stderr).toBe(
      "error: a deny needs a reason\n" +
        `hint: Say why, for the requester and the audit trail: gw approvals deny ${id} --reason TEXT\n`,
    );
    const r = await gw(
      ["approvals", "deny", id, "--reason", "use a WHERE clause"],
      stack.tokens.auditor,
    );
    expect(r.stdout).toBe(
      `denied ${id} (DELETE FROM t): the client is told "use a WHERE clause"\n`,
    );
    expect(r.code).toBe(0);
    expect(await outcome).toEqual({
      ok: false,
      code: "42501",
      message: `gw: request ${id} was denied by Avery Auditor: use a WHERE clause`,
    });
    expect(await rows()).toBe(5);
  });

  it("refusals: own statement, not an approver, an app through a role, not visible, unknown", async () => {
    const { id, outcome } = await heldDelete();

    const self = await gw(["approvals", "approve", id], stack.tokens.dba);
    expect(self.code).toBe(5);
    expect(self.stderr).toBe(
      `error: you cannot approve your own statement (request ${id})\n` +
        `hint: Ask one of its approvers: group:${GROUP_AUDIT}, role:gw.connect. You may deny it to withdraw it.\n`,
    );

    const notApprover = await gw(["approvals", "approve", id], inspector);
    expect(notApprover.code).toBe(5);
    expect(notApprover.stderr).toBe(
      `error: Ivy Inspector is not one of the approvers of request ${id}\n` +
        `hint: Its approvers are: group:${GROUP_AUDIT}, role:gw.connect.\n`,
    );

    const app = await gw(["approvals", "approve", id], stack.tokens.app);
    expect(app.code).toBe(5);
    expect(app.stderr).toMatch(
      new RegExp(
        `^error: the app .+ may not decide request ${id}: apps decide only when the rule names them\\n`,
      ),
    );
    expect(app.stderr).toContain(
      `hint: Add app:${APP_AGENT} to the rule's approvers to let this app decide.`,
    );

    const outsider = await gw(["approvals", "approve", id], stack.tokens.outsider);
    expect(outsider.code).toBe(1);
    expect(outsider.stderr).toBe(
      `error: no approval request ${id} that you may see\n` +
        "hint: Check the id with `gw approvals list`; a request you are neither the requester nor an approver of is not shown to you.\n",
    );

    const unknown = await gw(["approvals", "approve", "deadbeef"], stack.tokens.auditor);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain("error: no approval request deadbeef that you may see");

    const badId = await gw(["approvals", "approve", "../etc"], stack.tokens.auditor);
    expect(badId.code).toBe(2);
    expect(badId.stderr).toContain('error: "../etc" is not an approval request id');

    // --json puts the error on stdout, for scripts.
    const json = await gw(["approvals", "approve", id, "--json"], stack.tokens.dba);
    expect(json.code).toBe(5);
    expect(JSON.parse(json.stdout)).toMatchObject({ error: { code: "approval_self" } });

    // None of that decided anything; the requester may withdraw (deny) their own.
    const withdraw = await gw(
      ["approvals", "deny", id, "--reason", "wrong table"],
      stack.tokens.dba,
    );
    expect(withdraw.code).toBe(0);
    expect(await outcome).toMatchObject({
      ok: false,
      message: `gw: request ${id} was denied by Dana DBA: wrong table`,
    });
  });

  it("watch --json: a snapshot, then one event per line as requests come and go", async () => {
    const w = await startGw<{ type: string; approvals: unknown[] }>(
      ["approvals", "watch", "--json", ...brokerArgs],
      { env: { GW_TOKEN: stack.tokens.auditor } },
    );
    running.push(w);
    expect(w.json).toEqual({ type: "snapshot", approvals: [] });
    const { id, outcome } = await heldDelete();
    const lines = () =>
      w
        .stdout()
        .trimEnd()
        .split("\n")
        .slice(1)
        .map((l) => JSON.parse(l) as { type: string; approval: ApprovalView; decision?: unknown });
    await waitFor("the created event", async () =>
      lines().some((e) => e.type === "created") ? true : undefined,
    );
    expect(lines()[0]).toMatchObject({
      type: "created",
      approval: { id, sql: "DELETE FROM t", status: "pending" },
    });
    const ok = await gw(["approvals", "approve", id], stack.tokens.auditor);
    expect(ok.code).toBe(0);
    await waitFor("the decided event", async () =>
      lines().some((e) => e.type === "decided") ? true : undefined,
    );
    expect(lines()[1]).toMatchObject({
      type: "decided",
      approval: { id, status: "approved" },
      decision: { by: { name: "Avery Auditor" }, decision: "approve" },
    });
    expect((await outcome).ok).toBe(true);
    const end = await w.stop("SIGINT");
    expect(end.code).toBe(0);
  });

  it("watch for people: one line per event", async () => {
    const w = await startGwUntil(["approvals", "watch", ...brokerArgs], /watch: live/, {
      env: { GW_TOKEN: stack.tokens.auditor },
    });
    running.push(w);
    await waitFor("the snapshot line", async () =>
      w.stdout().includes("no approval requests waiting; watching for new ones") ? true : undefined,
    );
    const { id, outcome } = await heldDelete();
    await waitFor("the created line", async () =>
      w.stdout().includes(` ${id} `) ? true : undefined,
    );
    expect(w.stdout()).toMatch(
      new RegExp(
        `\\d\\d:\\d\\d:\\d\\d created   ${id}  Dana DBA \\(user\\) on db-test: DELETE FROM t\\n`,
      ),
    );
    expect(
      (await gw(["approvals", "deny", id, "--reason", "not now"], stack.tokens.auditor)).code,
    ).toBe(0);
    await waitFor("the decided line", async () =>
      w.stdout().includes("decided") ? true : undefined,
    );
    expect(w.stdout()).toMatch(
      new RegExp(`decided   ${id}  Avery Auditor denied \\(not now\\); now denied\\n`),
    );
    expect((await outcome).ok).toBe(false);
    expect((await w.stop("SIGINT")).code).toBe(0);
  });

  it("webhooks attached to the broker's approvals hear of the request and its decision", async () => {
    // The broker wires createNotifier(config.notifications, log).attach(approvals) at start;
    // here the same calls are made on the running broker.
    const got: {
      path: string;
      body: {
        event: string;
        approval: { id: string; status: string };
        approveCommand?: string;
        text?: string;
      };
    }[] = [];
    const receiver = createServer((req, res) => {
      let text = "";
      req.on("data", (c: Buffer) => (text += c.toString()));
      req.on("end", () => {
        got.push({ path: req.url ?? "", body: JSON.parse(text) });
        res.end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
    const notifier = createNotifier(
      {
        webhooks: [
          {
            url: `${url}/generic`,
            format: "generic",
            events: ["created", "decided"],
            includeSql: true,
            timeoutMs: 5000,
          },
          {
            url: `${url}/slack`,
            format: "slack",
            events: ["created"],
            includeSql: true,
            timeoutMs: 5000,
          },
        ],
      },
      createLogger({ write: () => {} }),
    );
    const detach = notifier.attach(stack.broker.approvals);
    try {
      const { id, outcome } = await heldDelete();
      const ok = await gw(["approvals", "approve", id], stack.tokens.auditor);
      expect(ok.code).toBe(0);
      expect((await outcome).ok).toBe(true);
      expect(await notifier.flush(5000)).toBe(true);
      const generic = got.filter((g) => g.path === "/generic").map((g) => g.body);
      expect(generic.map((b) => [b.event, b.approval.id, b.approval.status])).toEqual([
        ["created", id, "pending"],
        ["decided", id, "approved"],
      ]);
      expect(generic[0]!.approveCommand).toBe(`gw approvals approve ${id}`);
      const slack = got.filter((g) => g.path === "/slack").map((g) => g.body);
      expect(slack).toHaveLength(1);
      expect(slack[0]!.text).toBe("Approval needed: DELETE on db-test by Dana DBA");
    } finally {
      detach();
      await notifier.close(100);
      receiver.closeAllConnections();
      await new Promise((r) => receiver.close(r));
    }
  });

  it("watch without a token says so instead of retrying", async () => {
    const r = await runGw(["approvals", "watch", ...brokerArgs], {
      env: { GW_TOKEN: "not-a-jwt" },
    });
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/^error: the broker refused your sign-in/);
  });
});
