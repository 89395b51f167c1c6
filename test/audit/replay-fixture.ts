/**
 * One recorded session with a bit of everything, for the transcript, asciicast, player and
 * CLI tests: a SELECT with a preview, an INSERT, a statement the target refused, one policy
 * blocked, one held and approved, and one held and denied.
 */
import { buildReplay, type Replay } from "../../src/audit/replay.js";
import type { SessionStore } from "../../src/store/types.js";
import { Clock, T0, audit, completed, hooksFor, settle } from "./fixtures.js";
import type { AuditSigner } from "../../src/audit/signer.js";

export const FIXTURE_SESSION = "3f2c9a1e-7b4d-4c1a-9e2f-0a1b2c3d4e5f";

export async function recordFixture(store: SessionStore, signer?: AuditSigner): Promise<void> {
  const clock = new Clock(T0);
  for (const [id, by, decision, reason] of [
    ["a1b2c3d4", "Carol Approver", "approve", "ticket OPS-7"],
    ["d4c3b2a1", "Dan Denier", "deny", "not during business hours"],
  ] as const) {
    await store.createApproval({
      id,
      sessionId: FIXTURE_SESSION,
      connection: "db-prod",
      requester: { oid: "oid-dana", name: "Dana DBA", type: "user" },
      applicationName: "psql",
      agentLabel: "claude",
      sql: "-",
      statementHash: "00".repeat(32),
      matchedRule: { index: 0, description: "writes" },
      reason: "held",
      approvers: ["user:oid-x"],
      minApprovals: 1,
      createdAt: 1,
      expiresAt: Date.now() + 600_000,
      status: "pending",
      decisions: [],
      decidedAt: null,
      statusDetail: null,
    });
    await store.recordDecision(id, { by: { oid: `oid-${id}`, name: by }, decision, reason, at: 2 });
  }
  const hooks = hooksFor(store, FIXTURE_SESSION, audit({ clock, ...(signer ? { signer } : {}) }), {
    agentLabel: "claude",
    connection: "db-prod",
  });
  await hooks.onStart({ applicationName: "psql", startup: new Map() });

  const run = async (
    afterMs: number,
    sql: string,
    result: Partial<Parameters<typeof completed>[0]>,
    ran = true,
  ) => {
    const at = clock.advance(afterMs);
    if (ran) await hooks.beforeStatement({ sql, protocol: "simple" });
    clock.advance(Math.ceil(result.durationMs ?? 0));
    await hooks.onStatement(completed({ sql, at, ...result }));
  };

  await run(1200, "SELECT id, name, balance\nFROM accounts\nORDER BY id\nLIMIT 3;", {
    durationMs: 2.5,
    commandTag: "SELECT 3",
    rows: 3,
    preview: {
      columns: ["id", "name", "balance"],
      rows: [
        ["1", "alice", "100.50"],
        ["2", "bob", null],
        ["10", "carol", "-3"],
      ],
      truncated: false,
    },
  });
  await run(2500, "INSERT INTO audit_notes (note) VALUES ('checked');", {
    durationMs: 1.25,
    commandTag: "INSERT 0 1",
    rows: 1,
  });
  await run(800, "SELECT * FROM missing_table;", {
    durationMs: 0.75,
    commandTag: null,
    rows: null,
    errorCode: "42P01",
    errorMessage: 'relation "missing_table" does not exist',
  });
  await run(
    3000,
    "DROP TABLE accounts;",
    {
      durationMs: 0,
      decision: "blocked",
      commandTag: null,
      rows: null,
      errorCode: "42501",
      errorMessage: "gw: blocked by rule no-ddl of policy prod: DDL is not allowed",
    },
    false,
  );
  await run(4000, "DELETE FROM sessions_old WHERE created < now() - interval '1 year';", {
    durationMs: 15,
    decision: "approved",
    approvalId: "a1b2c3d4",
    commandTag: "DELETE 42",
    rows: 42,
  });
  await run(
    2000,
    "TRUNCATE ledger;",
    {
      durationMs: 0,
      decision: "denied",
      approvalId: "d4c3b2a1",
      commandTag: null,
      rows: null,
      errorCode: "42501",
      errorMessage: "gw: request d4c3b2a1 was denied by Dan Denier: not during business hours",
    },
    false,
  );
  clock.advance(1500);
  hooks.onEnd({
    reason: "client_closed",
    detail: null,
    bytesIn: 900,
    bytesOut: 4000,
    statements: 6,
  });
  await settle(store, FIXTURE_SESSION);
}

export async function fixtureReplay(store: SessionStore): Promise<Replay> {
  const session = (await store.getSession(FIXTURE_SESSION))!;
  return buildReplay(
    session,
    await store.listEvents(FIXTURE_SESSION),
    await store.listStatements(FIXTURE_SESSION),
  );
}

/** The --no-tui transcript of the fixture, exactly. */
export const FIXTURE_TRANSCRIPT = `-- gw replay · session 3f2c9a1e-7b4d-4c1a-9e2f-0a1b2c3d4e5f
-- Dana DBA (dana@example.com, user) on db-prod · application psql · agent claude
-- started 2026-01-15 09:30:00 UTC · ended 2026-01-15 09:30:15 UTC (client_closed)
-- 6 statements: 3 allowed, 1 blocked, 1 approved, 1 denied

db-prod=> SELECT id, name, balance
db-prod-> FROM accounts
db-prod-> ORDER BY id
db-prod-> LIMIT 3;
 id | name  | balance
----+-------+---------
  1 | alice |  100.50
  2 | bob   |
 10 | carol |      -3
(3 rows)
-- #1 · +1.200s · 2.50 ms · [allowed]

db-prod=> INSERT INTO audit_notes (note) VALUES ('checked');
INSERT 0 1
-- #2 · +3.703s · 1.25 ms · [allowed]

db-prod=> SELECT * FROM missing_table;
ERROR:  relation "missing_table" does not exist
-- #3 · +4.505s · 0.75 ms · SQLSTATE 42P01 · [allowed]

db-prod=> DROP TABLE accounts;
ERROR:  gw: blocked by rule no-ddl of policy prod: DDL is not allowed
-- #4 · +7.506s · 0.00 ms · SQLSTATE 42501 · [BLOCKED]

db-prod=> DELETE FROM sessions_old WHERE created < now() - interval '1 year';
DELETE 42
-- #5 · +11.506s · 15.0 ms · [approved by Carol Approver]

db-prod=> TRUNCATE ledger;
ERROR:  gw: request d4c3b2a1 was denied by Dan Denier: not during business hours
-- #6 · +13.521s · 0.00 ms · SQLSTATE 42501 · [DENIED by Dan Denier: not during business hours]

-- session ended +15.021s: client_closed
`;
