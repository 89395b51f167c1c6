import type { ApprovalService } from "../approvals/service.js";
import type { Identity } from "../identity/principal.js";
import {
  evaluate,
  formatDuration,
  resolveExecute,
  type Classification,
  sessionReadOnly,
  type CompiledPolicy,
  type Decision,
  type EvaluationContext,
  type StatementClassifier,
} from "../policy/index.js";
import type { HoldOutcome, SessionPolicy, Verdict } from "../protocols/postgres/session.js";
import type { Logger } from "./logger.js";

/**
 * The broker's policy for one session: the compiled connection policy decides each statement
 * (classified by PostgreSQL's own parser, cached), and held statements become approval
 * requests that wait for people.
 */
export interface SessionPolicyDeps {
  policy: CompiledPolicy;
  classifier: StatementClassifier;
  approvals: ApprovalService;
  identity: Identity;
  sessionId: string;
  connection: string;
  agentLabel: string | null;
  log: Logger;
  /** The last few statements of the session, for the approver's context. */
  recentStatements: () => string[];
  /** Tells the requester's `gw connect` (beside the data) when a statement is held and decided. */
  announce?: (event: Record<string, unknown>) => void;
}

export class BrokerSessionPolicy implements SessionPolicy {
  private ctx: EvaluationContext;
  private applicationName: string | null = null;
  /**
   * Prepared statements that reached the target, SQL-level PREPAREs and named protocol-level
   * Parses alike (SQL EXECUTE runs both), so an EXECUTE is judged by what it runs.
   */
  private readonly prepared = new Map<string, Classification>();

  constructor(private readonly d: SessionPolicyDeps) {
    this.ctx = { identity: d.identity, agentLabel: d.agentLabel ?? undefined };
  }

  /** Called once the client's startup is known. Returns whether the session must be read-only. */
  begin(applicationName: string | null): { readOnly: boolean } {
    this.applicationName = applicationName;
    this.ctx = { ...this.ctx, applicationName: applicationName ?? undefined };
    return { readOnly: sessionReadOnly(this.d.policy, this.ctx) };
  }

  decide(sql: string): Verdict {
    const decision = this.evaluate(sql);
    if (decision.action === "allow") {
      this.rememberPrepares(sql);
      return ALLOW;
    }
    const reason = this.describe(decision);
    return decision.action === "block" ? { action: "block", reason } : { action: "hold", reason };
  }

  parsed(name: string, sql: string): void {
    // Resolved, so a statement that is itself an EXECUTE carries what that one runs.
    this.remember(name, this.classify(sql));
  }

  decideFunctionCall(oid: number): Verdict {
    // A fast-path call names its function by oid only, so no rule can be checked: only a
    // policy without rules and without read-only mode lets it through.
    const p = this.d.policy;
    if (p.rules.length === 0 && !p.readOnly && p.default.action === "allow") return ALLOW;
    return {
      action: "block",
      reason: `gw: fast-path function calls (oid ${oid}) are not allowed under policy ${p.name}; call the function with SELECT`,
    };
  }

  async hold(
    sql: string,
    notify: (text: string) => void,
    signal: AbortSignal,
  ): Promise<HoldOutcome> {
    const decision = this.evaluate(sql);
    if (decision.action !== "hold")
      return decision.action === "allow"
        ? { action: "allow" }
        : { action: "deny", reason: this.describe(decision) };
    const held = await this.d.approvals.request({
      sessionId: this.d.sessionId,
      connection: this.d.connection,
      requester: {
        oid: this.d.identity.oid,
        name: this.d.identity.name,
        type: this.d.identity.type,
      },
      applicationName: this.applicationName,
      agentLabel: this.d.agentLabel,
      sql,
      matchedRule: {
        index: decision.rule?.index ?? -1,
        description: decision.rule
          ? `${decision.rule.name ? `${decision.rule.name}: ` : ""}${decision.rule.matchText}`
          : decision.source,
      },
      reason: decision.reason,
      approvers: decision.approvers,
      minApprovals: decision.minApprovals,
      timeoutMs: decision.timeoutMs,
      contextStatements: this.d.recentStatements(),
      signal,
    });
    const who = decision.approvers.join(", ");
    notify(
      `gw: waiting for approval of request ${held.id} by ${who} (${decision.reason}); ` +
        `approve with: gw approvals approve ${held.id} — times out in ${formatDuration(decision.timeoutMs)}`,
    );
    this.d.log.log("info", "statement held for approval", { request: held.id });
    this.d.announce?.({
      type: "statement_held",
      request: held.id,
      sql: sql.length > 200 ? sql.slice(0, 200) + "…" : sql,
      approvers: decision.approvers,
      expiresAt: held.approval.expiresAt,
    });
    const outcome = await held.wait;
    this.d.announce?.({
      type: "statement_decided",
      request: held.id,
      outcome: outcome.status,
      ...(outcome.status === "denied" ? { by: outcome.by.name, reason: outcome.reason } : {}),
    });
    switch (outcome.status) {
      case "approved":
        this.rememberPrepares(sql);
        return { action: "allow", approvalId: held.id };
      case "denied":
        return {
          action: "deny",
          approvalId: held.id,
          reason: `gw: request ${held.id} was denied by ${outcome.by.name}${outcome.reason ? `: ${outcome.reason}` : ""}`,
        };
      case "expired":
        return {
          action: "deny",
          approvalId: held.id,
          reason: `gw: request ${held.id} timed out after ${formatDuration(decision.timeoutMs)} without a decision`,
        };
      case "cancelled":
        return {
          action: "deny",
          approvalId: held.id,
          reason: `gw: request ${held.id} was cancelled${outcome.reason ? ` (${outcome.reason})` : ""}`,
        };
    }
  }

  private classify(sql: string): Classification {
    return resolveExecute(this.d.classifier.classify(sql), (name) => this.prepared.get(name));
  }

  private evaluate(sql: string): Decision {
    return evaluate(this.d.policy, this.classify(sql), this.ctx);
  }

  private rememberPrepares(sql: string): void {
    if (!PREPARE_WORD.test(sql)) return;
    const c = this.classify(sql);
    for (const st of c.statements) {
      if (st.prepareName !== undefined) this.remember(st.prepareName, { ...c, statements: [st] });
    }
  }

  /**
   * A name is re-used only after DEALLOCATE or Close, which the broker cannot follow reliably
   * (a Close after an error is skipped, a re-PREPARE of a live name fails): every text a name
   * had is kept, so the strictest of them decides its EXECUTE.
   */
  private remember(name: string, c: Classification): void {
    const old = this.prepared.get(name);
    if (!old) {
      this.prepared.set(name, c);
      return;
    }
    const added = c.statements.filter((s) => !old.statements.includes(s));
    if (added.length > 0)
      this.prepared.set(name, { ...old, statements: [...old.statements, ...added] });
  }

  private describe(d: Decision): string {
    const where = d.rule
      ? `rule ${d.rule.name ?? d.rule.index + 1} of policy ${this.d.policy.name}`
      : `policy ${this.d.policy.name}`;
    const verb = d.action === "block" ? "blocked" : "held";
    return `gw: ${verb} by ${where}: ${d.reason}`;
  }
}

const ALLOW: Verdict = { action: "allow" };
/** Cheap pre-check: only texts that mention PREPARE can create SQL-level prepared statements. */
const PREPARE_WORD = /prepare/i;
