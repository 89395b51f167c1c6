import type { ApprovalParams, HeldStatement } from "../../approvals/service.js";
import { formatDuration, parseDuration } from "../../policy/duration.js";
import type { HoldOutcome, Verdict } from "../postgres/session.js";
import type { SessionLogger } from "./stream.js";

export type { HoldOutcome, Verdict };

/** As src/policy/policy.ts: a hold nobody decides expires after this long. */
export const DEFAULT_HOLD_TIMEOUT_MS = 10 * 60_000;

/**
 * A rule engine for the non-SQL connection types: ordered rules, first match wins, else the
 * policy's default. The matcher is the protocol's (a command glob, a method and path).
 */
export interface RuleSpec<M> {
  name?: string | undefined;
  match: M;
  action: "allow" | "block" | "hold";
  reason?: string | undefined;
  approvers?: string[] | undefined;
  minApprovals?: number | undefined;
  timeout?: string | undefined;
}

export interface PolicySpec<M> {
  default: "allow" | "block" | "hold";
  approvers?: string[] | undefined;
  minApprovals?: number | undefined;
  timeout?: string | undefined;
  rules: RuleSpec<M>[];
}

export interface RuleDecision {
  action: "allow" | "block" | "hold";
  /** For people: what decided and why. */
  reason: string;
  /** The matching rule's index, -1 for the default. */
  ruleIndex: number;
  /** "rule 2 (no-deletes)" or "default". */
  source: string;
  approvers: string[];
  minApprovals: number;
  timeoutMs: number;
}

export class RuleSet<M, S> {
  private readonly compiled: { spec: RuleSpec<M>; test: (subject: S) => boolean }[];

  constructor(
    readonly name: string,
    private readonly spec: PolicySpec<M>,
    compileMatch: (m: M) => (subject: S) => boolean,
  ) {
    this.compiled = spec.rules.map((r) => ({ spec: r, test: compileMatch(r.match) }));
  }

  get hasRules(): boolean {
    return this.compiled.length > 0 || this.spec.default !== "allow";
  }

  decide(subject: S, describe: string): RuleDecision {
    for (let i = 0; i < this.compiled.length; i++) {
      const { spec: r, test } = this.compiled[i]!;
      if (!test(subject)) continue;
      const source = `rule ${r.name ?? i + 1} of ${this.name}`;
      return this.decision(r.action, r, i, source, describe);
    }
    return this.decision(this.spec.default, undefined, -1, `the default of ${this.name}`, describe);
  }

  private decision(
    action: RuleDecision["action"],
    r: RuleSpec<M> | undefined,
    index: number,
    source: string,
    describe: string,
  ): RuleDecision {
    const p = this.spec;
    const timeout = r?.timeout ?? p.timeout;
    const why = r?.reason ?? (action === "allow" ? "allowed" : `${describe} is not allowed as is`);
    return {
      action,
      reason: `${source}: ${why}`,
      ruleIndex: index,
      source,
      approvers: r?.approvers ?? p.approvers ?? [],
      minApprovals: r?.minApprovals ?? p.minApprovals ?? 1,
      timeoutMs:
        timeout === undefined
          ? DEFAULT_HOLD_TIMEOUT_MS
          : (parseDuration(timeout) ?? DEFAULT_HOLD_TIMEOUT_MS),
    };
  }
}

export function verdictOf(d: RuleDecision): Verdict {
  if (d.action === "allow") return { action: "allow" };
  const verb = d.action === "block" ? "blocked" : "held";
  return { action: d.action, reason: `gw: ${verb} by ${d.reason}` };
}

/** What a hold needs from the broker: the approvals service and who is asking. */
export interface HoldDeps {
  approvals: { request(params: ApprovalParams): Promise<HeldStatement> };
  identity: { oid: string; name: string; type: "user" | "app" };
  sessionId: string;
  connection: string;
  applicationName?: string | null;
  agentLabel?: string | null;
  log: SessionLogger;
  /** The session's previous few commands or requests, for the approver. */
  recent?: () => string[];
  /** Tells the requester's `gw connect` (beside the data) when something is held and decided. */
  announce?: (event: Record<string, unknown>) => void;
}

/**
 * Holds `text` (a command, "DELETE /path") for approval under decision `d`, telling the client
 * through `notify`, and returns what people decided. The request's text is what approvers see
 * and what the decision is bound to.
 */
export async function holdForApproval(
  deps: HoldDeps,
  d: RuleDecision,
  text: string,
  notify: (text: string) => void,
  signal: AbortSignal,
): Promise<HoldOutcome> {
  if (d.action !== "hold")
    return d.action === "allow"
      ? { action: "allow" }
      : { action: "deny", reason: verdictReason(d) };
  const held = await deps.approvals.request({
    sessionId: deps.sessionId,
    connection: deps.connection,
    requester: { oid: deps.identity.oid, name: deps.identity.name, type: deps.identity.type },
    applicationName: deps.applicationName ?? null,
    agentLabel: deps.agentLabel ?? null,
    sql: text,
    matchedRule: { index: d.ruleIndex, description: d.source },
    reason: d.reason,
    approvers: d.approvers,
    minApprovals: d.minApprovals,
    timeoutMs: d.timeoutMs,
    ...(deps.recent ? { contextStatements: deps.recent() } : {}),
    signal,
  });
  const who = d.approvers.join(", ");
  notify(
    `gw: waiting for approval of request ${held.id} by ${who} (${d.reason}); ` +
      `approve with: gw approvals approve ${held.id} — times out in ${formatDuration(d.timeoutMs)}`,
  );
  deps.log.log("info", "held for approval", { request: held.id });
  deps.announce?.({
    type: "statement_held",
    request: held.id,
    sql: text.length > 200 ? text.slice(0, 200) + "…" : text,
    approvers: d.approvers,
    expiresAt: held.approval.expiresAt,
  });
  const outcome = await held.wait;
  deps.announce?.({
    type: "statement_decided",
    request: held.id,
    outcome: outcome.status,
    ...(outcome.status === "denied" ? { by: outcome.by.name, reason: outcome.reason } : {}),
  });
  switch (outcome.status) {
    case "approved":
      return { action: "allow" };
    case "denied":
      return {
        action: "deny",
        reason: `gw: request ${held.id} was denied by ${outcome.by.name}${outcome.reason ? `: ${outcome.reason}` : ""}`,
      };
    case "expired":
      return {
        action: "deny",
        reason: `gw: request ${held.id} timed out after ${formatDuration(d.timeoutMs)} without a decision`,
      };
    case "cancelled":
      return {
        action: "deny",
        reason: `gw: request ${held.id} was cancelled${outcome.reason ? ` (${outcome.reason})` : ""}`,
      };
  }
}

function verdictReason(d: RuleDecision): string {
  const v = verdictOf(d);
  return v.action === "allow" ? "" : v.reason;
}

/** Glob over a whole string: `*` any run (also none), `?` one character; case-sensitive. */
export function wholeGlob(pattern: string): RegExp {
  let src = "";
  for (const ch of pattern) {
    if (ch === "*") src += "[\\s\\S]*";
    else if (ch === "?") src += "[\\s\\S]";
    else src += ch.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
  }
  return new RegExp(`^${src}$`, "u");
}
