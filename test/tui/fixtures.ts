import { statementHash } from "../../src/approvals/rules.js";
import type { ApprovalView } from "../../src/tunnel/approvals-client.js";

export const T0 = Date.parse("2030-01-01T12:00:00Z");

let n = 0;
/** A pending request the viewer may approve, created at T0 with 5 minutes to go. */
export function view(over: Partial<ApprovalView> = {}): ApprovalView {
  n++;
  const sql = over.sql ?? `DELETE FROM orders_${n}`;
  return {
    id: over.id ?? `a${String(n).padStart(7, "0")}`,
    sessionId: `session-${n}`,
    connection: "db-prod",
    requester: { oid: "oid-dana", name: "Dana DBA", type: "user" },
    applicationName: "psql",
    agentLabel: null,
    sql,
    statementHash: statementHash(sql),
    matchedRule: { index: 1, description: "bulk-writes" },
    reason: "a delete or update without WHERE needs an auditor",
    approvers: ["group:audit"],
    minApprovals: 1,
    createdAt: T0,
    expiresAt: T0 + 5 * 60_000,
    status: "pending",
    decisions: [],
    decidedAt: null,
    statusDetail: null,
    contextStatements: ["BEGIN", "SELECT count(*) FROM orders"],
    viewer: { requester: false, canApprove: true, canDeny: true },
    ...over,
  };
}
