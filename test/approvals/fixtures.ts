import type { ApprovalParams } from "../../src/approvals/service.js";
import type { Identity } from "../../src/identity/principal.js";

export function identity(oid: string, over: Partial<Identity> = {}): Identity {
  return {
    oid,
    tid: "tenant-1",
    name: oid.replace(/^oid-/, ""),
    upn: undefined,
    type: "user",
    groups: [],
    roles: [],
    expiresAt: Math.floor(Date.now() / 1000) + 3600,
    ...over,
  };
}

/** The cast: alice runs statements; bob and carol are DBAs; dave is nobody in particular. */
export const alice = identity("oid-alice", { groups: ["dba"] }); // a DBA too: still not her own approver
export const bob = identity("oid-bob", { groups: ["dba"] });
export const carol = identity("oid-carol", { groups: ["dba"], roles: ["Approver"] });
export const dave = identity("oid-dave", { groups: ["dev"] });
export const auditor = identity("oid-erin", { groups: ["audit"] });
/** A service principal in the dba group, not named by any rule. */
export const robot = identity("oid-robot", { type: "app", groups: ["dba"], roles: ["Approver"] });
/** A service principal the rules name explicitly. */
export const guard = identity("oid-guard", { type: "app" });

export function params(over: Partial<ApprovalParams> = {}): ApprovalParams {
  return {
    sessionId: "session-1",
    connection: "orders",
    requester: alice,
    applicationName: "psql",
    agentLabel: null,
    sql: "DELETE FROM orders WHERE id = 42",
    matchedRule: { index: 0, description: "deletes on orders" },
    reason: "DELETE on a protected table",
    approvers: ["group:dba", "app:oid-guard"],
    timeoutMs: 60_000,
    ...over,
  };
}
