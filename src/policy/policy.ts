/**
 * The policy engine: a policy from the config compiled once, then `evaluate` per statement
 * text. Pure and synchronous: no I/O, no clock.
 *
 * Rules are ordered and the first that matches decides; no match means the policy's default.
 * A text of several statements is decided statement by statement, and the strictest decision
 * wins (block > hold > allow). A statement that executes several kinds (a DELETE inside a
 * CTE, EXPLAIN ANALYZE ...) is decided once per kind, the strictest winning again, so an allow
 * rule for `select` cannot let a data-modifying CTE through. See docs/policy.md.
 */
import type { BrokerConfig, MaskProfile, PolicyConfig, RuleMatch } from "../config/schema.js";
import { ExitCode, GwError } from "../errors.js";
import { principalsOf, type Identity } from "../identity/principal.js";
import type { Classification, StatementInfo, TableRef } from "./classify.js";
import { parseDuration } from "./duration.js";
import { anyGlob, globMatcher, type NameMatcher } from "./glob.js";
import type { PolicyAction, StatementKind } from "./kinds.js";

export const DEFAULT_HOLD_TIMEOUT_MS = 10 * 60_000;

export interface HoldRequirement {
  /** Principals (group:<id>, role:<name>, user:<oid>, app:<oid>) who may approve. */
  approvers: readonly string[];
  minApprovals: number;
  timeoutMs: number;
}

/** An action with what it needs: the reason for a block, the approvals for a hold. */
export interface ActionSpec {
  action: PolicyAction;
  reason: string | undefined;
  hold: HoldRequirement | undefined;
}

export interface CompiledRule {
  /** Position in the policy's rules (as in the config path `rules.<index>`). */
  index: number;
  name: string | undefined;
  /** The rule's matchers as text, for people: `kind: [update, delete], where: absent`. */
  matchText: string;
  spec: ActionSpec;
  readOnly: boolean;
  /** `principals` is principalsOf(ctx.identity), computed once per evaluation. */
  matchesContext: (ctx: EvaluationContext, principals: ReadonlySet<string>) => boolean;
  matchesStatement: (s: StatementInfo, kind: StatementKind) => boolean;
}

export interface CompiledPolicy {
  /** The policy's name in the config; `(none)` for a connection without one. */
  name: string;
  /** Policy readOnly, or the connection's. */
  readOnly: boolean;
  default: ActionSpec;
  onUnparseable: ActionSpec;
  rules: readonly CompiledRule[];
  /** The masking profile, when the policy has one. */
  mask: MaskProfile | undefined;
}

export interface EvaluationContext {
  identity: Identity;
  /** The client's application_name (client-declared). */
  applicationName?: string | undefined;
  /** The label of the AI agent driving the session, when there is one. */
  agentLabel?: string | undefined;
}

/** Why a decision was taken. */
export type DecisionSource =
  | "rule" // a rule matched
  | "default" // no rule matched: the policy's default
  | "unparseable" // the text did not parse: onUnparseable
  | "read-only" // a read-only session, and the statement could leave read-only mode
  | "parser-safety" // the statement would make the server read SQL differently from the broker
  | "approvers" // several holds whose approver lists have nobody in common
  | "empty"; // no statement at all (only comments or whitespace)

export interface MatchedRule {
  index: number;
  name: string | undefined;
  matchText: string;
}

export interface StatementDecision {
  /** Position of the statement in the text. */
  index: number;
  kind: StatementKind;
  kinds: readonly StatementKind[];
  action: PolicyAction;
  reason: string;
  source: DecisionSource;
  rule: MatchedRule | null;
  hold: HoldRequirement | undefined;
}

export interface Decision {
  action: PolicyAction;
  reason: string;
  source: DecisionSource;
  /** The rule behind the deciding statement's decision; null for defaults and built-ins. */
  rule: MatchedRule | null;
  /** For a hold: who may approve, how many approvals, how long to wait. Empty/0 otherwise. */
  approvers: readonly string[];
  minApprovals: number;
  timeoutMs: number;
  /** The kinds of all statements, in order of first appearance. */
  kinds: readonly StatementKind[];
  /** Whether the session runs read-only (policy, connection, or a readOnly rule). */
  readOnly: boolean;
  /** Per statement; the deciding one is the first with the strictest action. */
  statements: readonly StatementDecision[];
}

// ---------------------------------------------------------------------------------------------
// Compiling

function holdOf(
  p: PolicyConfig,
  r?: { approvers?: string[]; minApprovals?: number; timeout?: string },
): HoldRequirement {
  const approvers = r?.approvers ?? p.approvers;
  if (!approvers) {
    // The schema refuses such a config; reaching this means an unvalidated one.
    throw new GwError("policy_invalid", "a hold needs approvers", { exitCode: ExitCode.config });
  }
  const timeout = r?.timeout ?? p.timeout;
  return {
    approvers: [...approvers],
    minApprovals: r?.minApprovals ?? p.minApprovals ?? 1,
    timeoutMs:
      timeout === undefined
        ? DEFAULT_HOLD_TIMEOUT_MS
        : (parseDuration(timeout) ?? DEFAULT_HOLD_TIMEOUT_MS),
  };
}

function specOf(p: PolicyConfig, action: PolicyAction, reason?: string): ActionSpec {
  return { action, reason, hold: action === "hold" ? holdOf(p) : undefined };
}

function formatValue(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(formatValue).join(", ")}]`;
  if (v !== null && typeof v === "object") {
    return `{ ${Object.entries(v)
      .filter(([, x]) => x !== undefined)
      .map(([k, x]) => `${k}: ${formatValue(x)}`)
      .join(", ")} }`;
  }
  return String(v);
}

/** `kind: [update, delete], where: absent`; `(every statement)` when there are no matchers. */
export function formatMatch(m: RuleMatch): string {
  const parts = Object.entries(m)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}: ${formatValue(v)}`);
  return parts.length > 0 ? parts.join(", ") : "(every statement)";
}

interface TablePattern {
  schema: NameMatcher;
  table: NameMatcher;
}

function tablePatterns(globs: readonly string[]): TablePattern[] {
  return globs.map((g) => {
    const dot = g.indexOf(".");
    return { schema: globMatcher(g.slice(0, dot)), table: globMatcher(g.slice(dot + 1)) };
  });
}

/** An unqualified name (search_path decides its schema) matches on its table part alone. */
function tableMatches(t: TableRef, patterns: readonly TablePattern[]): boolean {
  return patterns.some((p) => p.table(t.name) && (t.schema === null || p.schema(t.schema)));
}

type ContextCheck = (ctx: EvaluationContext, principals: ReadonlySet<string>) => boolean;

function compileContext(m: RuleMatch): ContextCheck {
  const checks: ContextCheck[] = [];
  const id = m.identity;
  if (id) {
    const wanted = [
      ...(id.groups ?? []).map((g) => `group:${g}`),
      ...(id.roles ?? []).map((r) => `role:${r}`),
      ...(id.users ?? []).map((u) => `user:${u}`),
      ...(id.apps ?? []).map((a) => `app:${a}`),
    ];
    if (id.type) {
      const type = id.type;
      checks.push((ctx) => ctx.identity.type === type);
    }
    if (wanted.length > 0) {
      checks.push((_ctx, principals) => wanted.some((p) => principals.has(p)));
    }
  }
  if (m.application) {
    const app = anyGlob(m.application);
    checks.push((ctx) => app(ctx.applicationName ?? ""));
  }
  if (m.agent) {
    const agent = anyGlob(m.agent);
    checks.push((ctx) => ctx.agentLabel !== undefined && agent(ctx.agentLabel));
  }
  return (ctx, principals) => checks.every((c) => c(ctx, principals));
}

function compileStatement(m: RuleMatch): (s: StatementInfo, kind: StatementKind) => boolean {
  const checks: ((s: StatementInfo, kind: StatementKind) => boolean)[] = [];
  if (m.kind) {
    const kinds = new Set<StatementKind>(m.kind);
    checks.push((_s, kind) => kinds.has(kind));
  }
  if (m.tables) {
    const pats = tablePatterns(m.tables);
    checks.push((s) => s.tableRefs.some((t) => tableMatches(t, pats)));
  }
  if (m.onlyTables) {
    const pats = tablePatterns(m.onlyTables);
    checks.push((s) => s.tableRefs.length > 0 && s.tableRefs.every((t) => tableMatches(t, pats)));
  }
  if (m.where === "absent") {
    checks.push((s, kind) =>
      kind === "update" || kind === "delete" ? s.whereAbsentKinds.includes(kind) : s.whereAbsent,
    );
  }
  if (m.functions) {
    const fn: NameMatcher = anyGlob(m.functions);
    checks.push((s) => s.functions.some(fn));
  }
  return (s, kind) => checks.every((c) => c(s, kind));
}

function ruleLabel(index: number, name: string | undefined): string {
  return name === undefined ? `rules[${index}]` : `rules[${index}] (${name})`;
}

/** Compiles one policy of the config. `readOnly` adds the connection's read-only setting. */
export function compilePolicy(
  name: string,
  p: PolicyConfig,
  opts: { readOnly?: boolean } = {},
): CompiledPolicy {
  const rules: CompiledRule[] = p.rules.map((r, index) => {
    const m = r.match;
    return {
      index,
      name: r.name,
      matchText: formatMatch(m),
      spec: {
        action: r.action,
        reason: r.reason,
        hold: r.action === "hold" ? holdOf(p, r) : undefined,
      },
      readOnly: r.readOnly === true,
      matchesContext: compileContext(m),
      matchesStatement: compileStatement(m),
    };
  });
  return {
    name,
    readOnly: p.readOnly || opts.readOnly === true,
    default: specOf(p, p.default),
    onUnparseable: specOf(p, p.onUnparseable),
    rules,
    mask: p.mask,
  };
}

/** The policy of a connection without one: everything is allowed (read-only if it says so). */
export function allowAllPolicy(opts: { readOnly?: boolean } = {}): CompiledPolicy {
  return compilePolicy(
    "(none)",
    { default: "allow", onUnparseable: "allow", readOnly: false, rules: [] },
    opts,
  );
}

/** The compiled policy for a connection of a (validated) config. */
export function compileConnectionPolicy(config: BrokerConfig, connection: string): CompiledPolicy {
  const conn = Object.hasOwn(config.connections, connection)
    ? config.connections[connection]
    : undefined;
  if (!conn) {
    throw new GwError("connection_unknown", `no connection named "${connection}" in the config`, {
      exitCode: ExitCode.usage,
      hint: `The connections are: ${Object.keys(config.connections).join(", ") || "(none)"}.`,
    });
  }
  if (conn.type !== "postgres") {
    throw new GwError(
      "connection_not_sql",
      `connection ${connection} is a ${conn.type} connection; statement policies apply to postgres connections`,
      { exitCode: ExitCode.usage },
    );
  }
  if (conn.policy === undefined) return allowAllPolicy({ readOnly: conn.readOnly });
  const p = Object.hasOwn(config.policies, conn.policy) ? config.policies[conn.policy] : undefined;
  if (!p) {
    throw new GwError(
      "policy_unknown",
      `connection ${connection} names policy "${conn.policy}", which the config does not define`,
      { exitCode: ExitCode.config },
    );
  }
  return compilePolicy(conn.policy, p, { readOnly: conn.readOnly });
}

// ---------------------------------------------------------------------------------------------
// Evaluating

const STRICTNESS: Record<PolicyAction, number> = { allow: 0, hold: 1, block: 2 };

/**
 * Whether sessions of `ctx` run read-only under `policy`: the policy or connection says so, or
 * a readOnly rule matches who is connected. The session opens its upstream connection with
 * default_transaction_read_only=on when this is true.
 */
export function sessionReadOnly(policy: CompiledPolicy, ctx: EvaluationContext): boolean {
  if (policy.readOnly) return true;
  const principals = principalsOf(ctx.identity);
  return policy.rules.some((r) => r.readOnly && r.matchesContext(ctx, principals));
}

function defaultReason(spec: ActionSpec, what: string): string {
  if (spec.reason !== undefined) return spec.reason;
  if (spec.action === "block") return `blocked by ${what}`;
  if (spec.action === "hold") return `needs approval (${what})`;
  return `allowed by ${what}`;
}

/** A StatementDecision, always built with the same shape (object spreads are slow here). */
function statementDecision(
  index: number,
  s: { kind: StatementKind; kinds: readonly StatementKind[] },
  action: PolicyAction,
  reason: string,
  source: DecisionSource,
  rule: MatchedRule | null,
  hold: HoldRequirement | undefined,
): StatementDecision {
  return { index, kind: s.kind, kinds: s.kinds, action, reason, source, rule, hold };
}

function decideStatement(
  policy: CompiledPolicy,
  contextRules: readonly CompiledRule[],
  s: StatementInfo,
  index: number,
  readOnly: boolean,
): StatementDecision {
  const d = decideByRules(policy, contextRules, s, index, readOnly);
  // SQL built at run time (EXECUTE in a DO block, query_to_xml, dblink...) cannot be seen
  // before it runs, so no rule can vouch for it. Where the policy restricts anything, such a
  // statement is treated as unparseable: at least onUnparseable's action.
  const spec = policy.onUnparseable;
  if (s.dynamicSql && restricts(policy) && STRICTNESS[spec.action] > STRICTNESS[d.action]) {
    return statementDecision(
      index,
      s,
      spec.action,
      `it runs SQL built at run time, which the broker cannot check before it runs; onUnparseable of policy ${policy.name} is ${spec.action}`,
      "unparseable",
      null,
      spec.hold,
    );
  }
  return d;
}

function restricts(policy: CompiledPolicy): boolean {
  return policy.default.action !== "allow" || policy.rules.some((r) => r.spec.action !== "allow");
}

function decideByRules(
  policy: CompiledPolicy,
  contextRules: readonly CompiledRule[],
  s: StatementInfo,
  index: number,
  readOnly: boolean,
): StatementDecision {
  if (s.lexerChange.length > 0) {
    const reason = `the broker keeps the server's SQL syntax fixed (standard_conforming_strings on, client_encoding UTF8); refused: ${s.lexerChange.join("; ")}`;
    return statementDecision(index, s, "block", reason, "parser-safety", null, undefined);
  }
  if (readOnly && s.readOnlyEscape) {
    const reason = `read-only mode: ${s.readOnlyEscapeReasons.join("; ")}`;
    return statementDecision(index, s, "block", reason, "read-only", null, undefined);
  }
  let best: CompiledRule | undefined;
  let bestAction: PolicyAction | undefined;
  let decided = false;
  for (const kind of s.kinds) {
    const rule = contextRules.find((r) => r.matchesStatement(s, kind));
    const action = rule ? rule.spec.action : policy.default.action;
    if (!decided || STRICTNESS[action] > STRICTNESS[bestAction!]) {
      best = rule;
      bestAction = action;
      decided = true;
    }
  }
  if (best) {
    return statementDecision(
      index,
      s,
      best.spec.action,
      defaultReason(best.spec, ruleLabel(best.index, best.name)),
      "rule",
      { index: best.index, name: best.name, matchText: best.matchText },
      best.spec.hold,
    );
  }
  return statementDecision(
    index,
    s,
    policy.default.action,
    defaultReason(policy.default, `the default of policy ${policy.name} (no rule matched)`),
    "default",
    null,
    policy.default.hold,
  );
}

function sameHold(a: HoldRequirement, b: HoldRequirement): boolean {
  return (
    a.minApprovals === b.minApprovals &&
    a.timeoutMs === b.timeoutMs &&
    a.approvers.length === b.approvers.length &&
    a.approvers.every((x) => b.approvers.includes(x))
  );
}

/**
 * The decision for a classified text. Several holds combine into one requirement that meets
 * them all: the approvers they have in common, the largest approval count, the shortest
 * timeout; when they have no approver in common the text is blocked (send it in parts).
 */
export function evaluate(
  policy: CompiledPolicy,
  c: Classification,
  ctx: EvaluationContext,
): Decision {
  const principals = principalsOf(ctx.identity);
  // The rules that apply to who is connected; statements are matched against these only.
  const contextRules = policy.rules.filter((r) => r.matchesContext(ctx, principals));
  const readOnly = policy.readOnly || contextRules.some((r) => r.readOnly);
  const kindSet = new Set<StatementKind>();
  for (const st of c.statements) for (const k of st.kinds) kindSet.add(k);
  const kinds = [...kindSet];
  const finish = (
    d: Pick<StatementDecision, "action" | "reason" | "source" | "rule" | "hold">,
    statements: StatementDecision[],
  ): Decision => ({
    action: d.action,
    reason: d.reason,
    source: d.source,
    rule: d.rule,
    approvers: d.hold?.approvers ?? [],
    minApprovals: d.hold?.minApprovals ?? 0,
    timeoutMs: d.hold?.timeoutMs ?? 0,
    kinds,
    readOnly,
    statements,
  });

  if (c.parseError !== undefined) {
    const spec = policy.onUnparseable;
    const d = statementDecision(
      0,
      { kind: "unknown", kinds: ["unknown"] },
      spec.action,
      `the SQL does not parse (${c.parseError}); onUnparseable of policy ${policy.name} is ${spec.action}`,
      "unparseable",
      null,
      spec.hold,
    );
    return finish(d, [d]);
  }
  if (c.statements.length === 0) {
    const none = { action: "allow", reason: "no statement", source: "empty", rule: null } as const;
    return finish({ ...none, hold: undefined }, []);
  }

  const statements = c.statements.map((s, i) =>
    decideStatement(policy, contextRules, s, i, readOnly),
  );
  let decider = statements[0]!;
  for (const d of statements) {
    if (STRICTNESS[d.action] > STRICTNESS[decider.action]) decider = d;
  }
  if (decider.action !== "hold") return finish(decider, statements);

  const holds = statements.filter((d) => d.action === "hold").map((d) => d.hold!);
  const distinct = holds.filter((h, i) => holds.findIndex((o) => sameHold(o, h)) === i);
  if (distinct.length === 1) return finish(decider, statements);
  const approvers = distinct[0]!.approvers.filter((a) =>
    distinct.every((h) => h.approvers.includes(a)),
  );
  if (approvers.length === 0) {
    const reason =
      "the statements need approval from approvers with nobody in common; send them separately";
    return finish(
      { action: "block", reason, source: "approvers", rule: decider.rule, hold: undefined },
      statements,
    );
  }
  const hold: HoldRequirement = {
    approvers,
    minApprovals: Math.max(...distinct.map((h) => h.minApprovals)),
    timeoutMs: Math.min(...distinct.map((h) => h.timeoutMs)),
  };
  return finish(
    { action: "hold", reason: decider.reason, source: decider.source, rule: decider.rule, hold },
    statements,
  );
}
