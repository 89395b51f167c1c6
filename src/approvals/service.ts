import { randomBytes } from "node:crypto";
import { isGwError } from "../errors.js";
import type { Identity } from "../identity/principal.js";
import {
  effectiveLimit,
  MAX_SESSION_LIMIT,
  statusAfterDecisions,
  type ApprovalDecision,
  type ApprovalRequest,
  type ApprovalStatus,
  type ApprovalStore,
} from "../store/types.js";
import { approvalError, approvalNotFound } from "./errors.js";
import { decisionRefusal, isEligibleApprover, isRequester, statementHash } from "./rules.js";

/** What the session knows when a rule holds a statement. */
export interface ApprovalParams {
  sessionId: string;
  connection: string;
  /** An Identity will do; only oid, name and type are kept. */
  requester: { oid: string; name: string; type: "user" | "app" };
  applicationName: string | null;
  agentLabel?: string | null;
  /** The exact statement text; its sha256 binds the decision to it. */
  sql: string;
  matchedRule: { index: number; description: string };
  reason: string;
  /** Principal strings from the rule: user:<oid>, group:<id>, role:<name>, app:<oid>. */
  approvers: readonly string[];
  /** Distinct approvers needed; default 1. */
  minApprovals?: number;
  /** How long the statement waits for a decision, in ms (1 .. MAX_APPROVAL_TIMEOUT_MS). */
  timeoutMs: number;
  /** The session's previous few statements, oldest first. */
  contextStatements?: readonly string[];
  /** Aborting it cancels the request (the client went away); signal.reason becomes the detail. */
  signal?: AbortSignal;
}

/** How the wait ended. `approval` is the request as stored at that moment. */
export type ApprovalOutcome =
  | { status: "approved"; approval: ApprovalRequest }
  | {
      status: "denied";
      reason: string | null;
      by: { oid: string; name: string };
      approval: ApprovalRequest;
    }
  | { status: "expired"; approval: ApprovalRequest }
  | { status: "cancelled"; reason: string | null; approval: ApprovalRequest };

export interface HeldStatement {
  id: string;
  /** The request as recorded. */
  approval: ApprovalRequest;
  /** Settles once with the outcome; never rejects. */
  wait: Promise<ApprovalOutcome>;
}

/**
 * The live feed. `decided` comes for every recorded decision, including an approval that
 * leaves an N-of-M request pending; `approval.status` says where it stands.
 */
export type ApprovalEvent = (
  | { type: "created"; approval: ApprovalRequest }
  | { type: "decided"; approval: ApprovalRequest; decision: ApprovalDecision }
  | { type: "expired"; approval: ApprovalRequest }
  | { type: "cancelled"; approval: ApprovalRequest }
) & {
  /**
   * Set when another broker replica sharing the store made the change: the feed shows it,
   * but what acts on changes once (webhooks) leaves it to the replica that made it.
   */
  remote?: true;
};

export type ApprovalListener = (event: ApprovalEvent) => void;

export interface ApprovalServiceOptions {
  /** The clock, epoch ms; default Date.now. Timers are real timers either way. */
  now?: () => number;
  /** New request ids; default 8 random lowercase hex characters. */
  newId?: () => string;
  /** Failures nobody awaits (a store write on timeout or cancel, a throwing listener). */
  onError?: (err: unknown, context: string) => void;
  /** The broker replica this service runs in, recorded on each request it makes. */
  brokerId?: string;
}

/** setTimeout's ceiling (about 24.8 days); longer would fire at once. */
export const MAX_APPROVAL_TIMEOUT_MS = 2 ** 31 - 1;
export const MAX_REASON_LENGTH = 1000;
const MAX_MIN_APPROVALS = 100;
const PRINCIPAL = /^(user|group|role|app):\S+$/;
/** Requests whose last event the feed has told, remembered so a late notification is ignored. */
const MAX_FINISHED = 10_000;

interface Held {
  approval: ApprovalRequest;
  resolve(outcome: ApprovalOutcome): void;
  timer: NodeJS.Timeout | undefined;
  unlisten: (() => void) | undefined;
}

/**
 * The approvals engine: holds statements until people decide.
 *
 * request() records a pending request and returns a promise of its outcome; decisions come
 * through decide(), the timeout expires it, cancel() (or the request's AbortSignal) ends the
 * wait when the requester is gone. Every transition is a store write that checks the request
 * is still pending, so racing paths cannot both win; the waiter settles from what the store
 * recorded, and only after it committed. When a store write fails on the timeout or cancel
 * path, the waiter still settles (expired / cancelled): a statement never runs without a
 * recorded approval.
 *
 * With a store several broker replicas share (one that offers watchApprovals), a write any
 * replica commits is re-read here: a decision taken on another replica releases the statement
 * held here, and the live feed shows requests created, decided, expired and cancelled
 * elsewhere. The feed tells each change once, whichever way it came (the local write, or the
 * notification of it). Each replica expires only the requests it holds.
 */
export class ApprovalService {
  private readonly store: ApprovalStore;
  private readonly clock: () => number;
  private readonly newId: () => string;
  private readonly onError: (err: unknown, context: string) => void;
  private readonly held = new Map<string, Held>();
  private readonly listeners = new Set<ApprovalListener>();
  /** Per request the feed has told of and that is still pending: how many decisions it told. */
  private readonly told = new Map<string, number>();
  /** Requests the feed has told the end of (oldest first, bounded). */
  private readonly finished = new Set<string>();
  /** Writes of this process in flight, per request; notifications for those wait (writing). */
  private readonly inFlight = new Map<string, number>();
  private readonly deferred = new Set<string>();
  private readonly brokerId: string | undefined;
  private readonly unwatch: (() => void) | undefined;
  private closed = false;

  constructor(store: ApprovalStore, opts: ApprovalServiceOptions = {}) {
    this.store = store;
    this.clock = opts.now ?? Date.now;
    this.newId = opts.newId ?? (() => randomBytes(4).toString("hex"));
    this.onError = opts.onError ?? (() => {});
    this.brokerId = opts.brokerId;
    this.unwatch = store.watchApprovals?.((id) => this.onStoreChange(id));
  }

  /** Whether other processes share the store (and their changes reach this one). */
  get shared(): boolean {
    return this.unwatch !== undefined;
  }

  /** Statements held by this process right now. */
  get heldCount(): number {
    return this.held.size;
  }

  now(): number {
    return this.clock();
  }

  /**
   * Records a pending request and starts its timeout. Resolves once the request is durable
   * (so the client can be told its id and approvers can see it); rejects with the store's
   * error when it cannot be recorded (the statement must then fail), with approval_invalid
   * for parameters no request can be made of, or approval_unavailable after close().
   */
  async request(params: ApprovalParams): Promise<HeldStatement> {
    if (this.closed) throw unavailable();
    validate(params);
    const id = await this.freshId();
    if (this.closed) throw unavailable();
    const createdAt = this.now();
    const approval: ApprovalRequest = {
      id,
      sessionId: params.sessionId,
      connection: params.connection,
      requester: {
        oid: params.requester.oid,
        name: params.requester.name,
        type: params.requester.type,
      },
      applicationName: params.applicationName,
      agentLabel: params.agentLabel ?? null,
      sql: params.sql,
      statementHash: statementHash(params.sql),
      matchedRule: { index: params.matchedRule.index, description: params.matchedRule.description },
      reason: params.reason,
      approvers: [...params.approvers],
      minApprovals: params.minApprovals ?? 1,
      createdAt,
      expiresAt: createdAt + params.timeoutMs,
      status: "pending",
      decisions: [],
      decidedAt: null,
      statusDetail: null,
    };
    if (params.contextStatements !== undefined)
      approval.contextStatements = [...params.contextStatements];
    if (this.brokerId !== undefined) approval.brokerId = this.brokerId;

    let resolve!: (outcome: ApprovalOutcome) => void;
    const wait = new Promise<ApprovalOutcome>((r) => (resolve = r));
    // Registered before the write: a decision can arrive as soon as the request is readable.
    const held: Held = { approval, resolve, timer: undefined, unlisten: undefined };
    this.held.set(id, held);
    try {
      await this.writing(id, () => this.store.createApproval(approval));
    } catch (err) {
      this.held.delete(id);
      throw err;
    }
    this.tellCreated(approval, false);
    if (!this.held.has(id)) {
      // Already settled while the write was in flight (close(), or a very quick decision).
      return { id, approval: structuredClone(approval), wait };
    }
    held.timer = setTimeout(
      () => void this.expire(id),
      Math.max(0, approval.expiresAt - this.now()),
    );
    held.timer.unref();

    const signal = params.signal;
    if (signal !== undefined) {
      const onAbort = () => void this.cancel(id, abortDetail(signal));
      if (signal.aborted) onAbort();
      else {
        signal.addEventListener("abort", onAbort, { once: true });
        held.unlisten = () => signal.removeEventListener("abort", onAbort);
      }
    }
    return { id, approval: structuredClone(approval), wait };
  }

  /**
   * Records one decision. `expect` binds it to what the approver looked at: a statementHash or
   * sessionId that is not the request's fails with approval_statement_mismatch. Resolves to the
   * request after the decision; the held statement runs (or fails) once this has resolved.
   * Rejects with a GwError: approval_reason_required (a deny without a reason),
   * approval_reason_too_long, approval_not_found, approval_statement_mismatch, approval_self,
   * approval_not_approver, approval_app_not_allowed, approval_not_pending, approval_duplicate,
   * or the store's error.
   */
  async decide(
    id: string,
    identity: Identity,
    decision: "approve" | "deny",
    reason?: string | null,
    expect: { statementHash?: string; sessionId?: string } = {},
  ): Promise<ApprovalRequest> {
    const why = normalizeReason(reason);
    if (decision === "deny" && why === null) {
      throw approvalError("approval_reason_required", "a deny needs a reason", {
        hint: "Say why, for the requester and the audit trail.",
      });
    }
    const current = await this.store.getApproval(id);
    if (current === null) throw approvalNotFound(id);
    if (
      (expect.statementHash !== undefined &&
        expect.statementHash.toLowerCase() !== current.statementHash) ||
      (expect.sessionId !== undefined && expect.sessionId !== current.sessionId)
    ) {
      throw approvalError(
        "approval_statement_mismatch",
        `approval request ${id} is not for the statement you decided on`,
        { hint: `Look at request ${id} again before deciding.` },
      );
    }
    const at = this.now();
    const refusal = decisionRefusal(identity, current, decision, at);
    if (refusal !== null) {
      // A stale pending request (its holder is gone) is expired here rather than left to look
      // open. With a shared store its holder may be another replica, which expires it itself.
      if (
        current.status === "pending" &&
        at >= current.expiresAt &&
        !this.held.has(id) &&
        !this.shared
      )
        void this.expire(id);
      throw refusal;
    }
    const d: ApprovalDecision = {
      by: { oid: identity.oid, name: identity.name },
      decision,
      reason: why,
      at,
    };
    const updated = await this.writing(id, () => this.store.recordDecision(id, d));
    // Decisions made elsewhere may not have been told yet: they come first, as remote.
    this.tellAll(updated, { decision: updated.decisions.length });
    if (updated.status !== "pending") this.settle(updated);
    return updated;
  }

  /**
   * Ends the wait of a pending request (the requester disconnected): status cancelled with
   * `why` as its detail. Resolves true when this call ended it, false when it was no longer
   * pending (or unknown). Never rejects: a failed store write is reported to onError, and a
   * statement held here is still released as cancelled.
   */
  async cancel(id: string, why: string): Promise<boolean> {
    return this.finish(id, "cancelled", why);
  }

  async get(id: string): Promise<ApprovalRequest | null> {
    return this.store.getApproval(id);
  }

  /**
   * Requests for this identity, newest first. By default the pending ones it may act on: those
   * it is an eligible approver of, and its own (which it may withdraw); pending requests past
   * their expiry are left out. `all` (auditors) drops the identity filter. `status` picks
   * another status, or "all". `limit` as effectiveLimit; without `all` the filter looks at the
   * newest MAX_SESSION_LIMIT requests of that status.
   */
  async listFor(
    identity: Identity,
    opts: { all?: boolean; status?: ApprovalStatus | "all"; limit?: number } = {},
  ): Promise<ApprovalRequest[]> {
    const status = opts.status ?? "pending";
    const limit = effectiveLimit(opts.limit);
    const rows = await this.store.listApprovals({
      ...(status === "all" ? {} : { status }),
      limit: opts.all === true ? limit : MAX_SESSION_LIMIT,
    });
    const now = this.now();
    return rows
      .filter(
        (a) => opts.all === true || isRequester(identity, a) || isEligibleApprover(identity, a),
      )
      .filter((a) => status !== "pending" || a.expiresAt > now)
      .slice(0, limit);
  }

  /** Calls listener with every event from now on; returns the unsubscribe function. */
  subscribe(listener: ApprovalListener): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /**
   * Ends every pending request in the store that this process does not hold: after a broker
   * restart their statements' sessions are gone. Only for a store no other broker shares.
   * Resolves to how many it ended.
   */
  async cancelOrphans(
    detail = "the broker restarted while the statement was held",
  ): Promise<number> {
    return this.endPending(() => true, detail);
  }

  /**
   * Ends the pending requests held by broker replica `brokerId`, which was lost: nobody will
   * release their statements now. Resolves to how many it ended.
   */
  async cancelPendingOf(
    brokerId: string,
    detail = "the broker replica holding the statement was lost",
  ): Promise<number> {
    return this.endPending((a) => a.brokerId === brokerId, detail);
  }

  private async endPending(
    which: (a: ApprovalRequest) => boolean,
    detail: string,
  ): Promise<number> {
    let ended = 0;
    for (;;) {
      const pending = (
        await this.store.listApprovals({ status: "pending", limit: MAX_SESSION_LIMIT })
      ).filter((a) => !this.held.has(a.id) && which(a));
      if (pending.length === 0) return ended;
      let progress = false;
      for (const a of pending) {
        const now = this.now();
        if (await this.finish(a.id, now >= a.expiresAt ? "expired" : "cancelled", detail)) {
          ended++;
          progress = true;
        }
      }
      if (!progress) return ended;
    }
  }

  /**
   * Cancels every statement held here (call before closing the store) and refuses new
   * requests. Safe to call twice.
   */
  async close(detail = "the broker is shutting down"): Promise<void> {
    this.closed = true;
    await Promise.all([...this.held.keys()].map((id) => this.cancel(id, detail)));
    this.unwatch?.();
  }

  // --- internals -------------------------------------------------------------------------

  private async freshId(): Promise<string> {
    for (let i = 0; i < 8; i++) {
      const id = this.newId();
      if (!this.held.has(id) && (await this.store.getApproval(id)) === null) return id;
    }
    throw approvalError("approval_invalid", "could not pick an unused approval request id");
  }

  private expire(id: string): Promise<boolean> {
    return this.finish(id, "expired", "no decision before the request expired");
  }

  /** Moves a pending request to expired / cancelled and releases its waiter. Never rejects. */
  private async finish(
    id: string,
    status: "expired" | "cancelled",
    detail: string,
  ): Promise<boolean> {
    const at = this.now();
    try {
      const a = await this.writing(id, () => this.store.setStatus(id, status, { at, detail }));
      this.tellAll(a, { ended: true });
      this.settle(a);
      return true;
    } catch (err) {
      if (
        isGwError(err) &&
        (err.code === "approval_not_pending" || err.code === "approval_not_found")
      ) {
        // Someone else got there first; their path settles the waiter, but make sure.
        if (this.held.has(id)) {
          try {
            const a = await this.store.getApproval(id);
            if (a !== null && a.status !== "pending") this.settle(a);
          } catch (readErr) {
            this.onError(readErr, `reading approval request ${id}`);
          }
        }
        return false;
      }
      this.onError(err, `recording that approval request ${id} ${status}`);
      const h = this.held.get(id);
      if (h === undefined) return false;
      // Fail closed: the statement does not run, whatever the store holds.
      this.settle({ ...h.approval, status, decidedAt: at, statusDetail: detail });
      return true;
    }
  }

  /** Releases the waiter of a request that is no longer pending, once. */
  private settle(a: ApprovalRequest): void {
    const h = this.held.get(a.id);
    if (h === undefined || a.status === "pending") return;
    this.held.delete(a.id);
    if (h.timer !== undefined) clearTimeout(h.timer);
    h.unlisten?.();
    const approval = structuredClone(a);
    if (
      a.statementHash !== h.approval.statementHash ||
      a.sessionId !== h.approval.sessionId ||
      a.sql !== h.approval.sql
    ) {
      // Cannot happen short of a corrupted or shared-and-colliding store; never run on it.
      this.onError(
        new Error(`approval request ${a.id} in the store does not match the held statement`),
        "settling an approval request",
      );
      h.resolve({
        status: "cancelled",
        reason: "the recorded request does not match the held statement",
        approval,
      });
      return;
    }
    switch (a.status) {
      case "approved":
        h.resolve({ status: "approved", approval });
        return;
      case "denied": {
        const deny = a.decisions.find((d) => d.decision === "deny");
        h.resolve({
          status: "denied",
          reason: deny?.reason ?? null,
          by: deny ? { ...deny.by } : { oid: "", name: "" },
          approval,
        });
        return;
      }
      case "expired":
        h.resolve({ status: "expired", approval });
        return;
      case "cancelled":
        h.resolve({ status: "cancelled", reason: a.statusDetail, approval });
        return;
    }
  }

  // --- the live feed: each change told once, whether made here or by another replica ----

  /** A write to request `id` was committed somewhere (null: anything may have changed). */
  private onStoreChange(id: string | null): void {
    if (this.closed && this.held.size === 0) return;
    const ids = id === null ? new Set([...this.held.keys(), ...this.told.keys()]) : [id];
    for (const x of ids) void this.refresh(x);
  }

  /**
   * Runs a write of this process to request `id`. Meanwhile notifications for it wait: the
   * write's own result tells the feed what this process did (as its own), and a notification
   * read first would tell it as another replica's.
   */
  private async writing<T>(id: string, write: () => Promise<T>): Promise<T> {
    this.inFlight.set(id, (this.inFlight.get(id) ?? 0) + 1);
    try {
      return await write();
    } finally {
      const n = (this.inFlight.get(id) ?? 1) - 1;
      if (n > 0) this.inFlight.set(id, n);
      else {
        this.inFlight.delete(id);
        if (this.deferred.delete(id)) void this.refresh(id);
      }
    }
  }

  /** Re-reads a request; tells the feed what it has not told yet; releases its statement. */
  private async refresh(id: string): Promise<void> {
    if (this.finished.has(id) && !this.held.has(id)) return;
    if (this.inFlight.has(id)) {
      this.deferred.add(id);
      return;
    }
    let a: ApprovalRequest | null;
    try {
      a = await this.store.getApproval(id);
    } catch (err) {
      if (!this.closed) this.onError(err, `reading approval request ${id} after a change`);
      return;
    }
    if (a === null) return;
    if (this.inFlight.has(id)) {
      // A write of ours started while we read: what we read may include it.
      this.deferred.add(id);
      return;
    }
    this.tellAll(a, null);
    if (a.status !== "pending") this.settle(a);
  }

  /**
   * Tells whatever of `a` the feed has not told yet, in order: created, decisions, the end.
   * `mine` is what this process's own write did (the rest was done elsewhere); null when the
   * change was read after a notification.
   */
  private tellAll(a: ApprovalRequest, mine: { decision?: number; ended?: boolean } | null): void {
    if (this.finished.has(a.id)) return;
    if (!this.told.has(a.id)) {
      // Only a shared store tells of a request it never saw created.
      if (this.shared) {
        this.tellCreated(
          { ...a, status: "pending", decisions: [], decidedAt: null, statusDetail: null },
          true,
        );
      } else {
        // A request from before this process: tell just what this write did, as before.
        this.told.set(a.id, mine?.decision !== undefined ? mine.decision - 1 : a.decisions.length);
      }
    }
    for (let n = (this.told.get(a.id) ?? 0) + 1; n <= a.decisions.length; n++) {
      this.tellDecided(a, n, mine?.decision !== n);
    }
    this.tellEnded(a, mine?.ended !== true);
  }

  private tellCreated(a: ApprovalRequest, remote: boolean): void {
    if (this.told.has(a.id) || this.finished.has(a.id)) return;
    this.told.set(a.id, 0);
    this.emit({ type: "created", approval: structuredClone(a), ...(remote ? { remote } : {}) });
  }

  /** Tells decision number n (1-based) of `a`, with the request as that decision left it. */
  private tellDecided(a: ApprovalRequest, n: number, remote: boolean): void {
    if (this.finished.has(a.id) || (this.told.get(a.id) ?? 0) >= n) return;
    const decision = a.decisions[n - 1]!;
    const after =
      n === a.decisions.length && a.status !== "expired" && a.status !== "cancelled"
        ? a
        : afterDecisions(a, n);
    this.emit({
      type: "decided",
      approval: structuredClone(after),
      decision: structuredClone(decision),
      ...(remote ? { remote } : {}),
    });
    if (after.status === "pending") {
      this.told.set(a.id, n);
    } else {
      this.told.delete(a.id);
      this.rememberFinished(a.id);
    }
  }

  private tellEnded(a: ApprovalRequest, remote: boolean): void {
    if (this.finished.has(a.id) || (a.status !== "expired" && a.status !== "cancelled")) return;
    this.told.delete(a.id);
    this.rememberFinished(a.id);
    this.emit({ type: a.status, approval: structuredClone(a), ...(remote ? { remote } : {}) });
  }

  private rememberFinished(id: string): void {
    this.finished.add(id);
    if (this.finished.size > MAX_FINISHED) {
      const oldest = this.finished.values().next().value;
      if (oldest !== undefined) this.finished.delete(oldest);
    }
  }

  private emit(event: ApprovalEvent): void {
    for (const l of [...this.listeners]) {
      try {
        l(event);
      } catch (err) {
        this.onError(err, `an approvals listener failed on a ${event.type} event`);
      }
    }
  }
}

/** The request as its first n decisions left it. */
function afterDecisions(a: ApprovalRequest, n: number): ApprovalRequest {
  const decisions = a.decisions.slice(0, n);
  const status = statusAfterDecisions(decisions, a.minApprovals);
  return {
    ...a,
    decisions,
    status,
    decidedAt: status === "pending" ? null : decisions[n - 1]!.at,
    statusDetail: null,
  };
}

function unavailable() {
  return approvalError("approval_unavailable", "the approval service is shut down", {
    hint: "The broker is shutting down; reconnect in a moment.",
  });
}

function normalizeReason(reason: string | null | undefined): string | null {
  if (reason === undefined || reason === null) return null;
  const r = reason.trim();
  if (r.length > MAX_REASON_LENGTH) {
    throw approvalError(
      "approval_reason_too_long",
      `a reason may be at most ${MAX_REASON_LENGTH} characters (this one has ${r.length})`,
    );
  }
  return r === "" ? null : r;
}

function abortDetail(signal: AbortSignal): string {
  const r: unknown = signal.reason;
  if (typeof r === "string" && r !== "") return r;
  if (r instanceof Error && r.name !== "AbortError" && r.message !== "") return r.message;
  return "the requester disconnected";
}

function validate(p: ApprovalParams): void {
  const bad = (what: string) => {
    throw approvalError("approval_invalid", `cannot hold a statement for approval: ${what}`);
  };
  for (const [k, v] of [
    ["sessionId", p.sessionId],
    ["connection", p.connection],
    ["requester.oid", p.requester.oid],
  ] as const) {
    if (typeof v !== "string" || v === "") bad(`${k} is empty`);
  }
  if (typeof p.sql !== "string") bad("sql is not text");
  if (!Array.isArray(p.approvers) || p.approvers.length === 0) bad("the rule names no approvers");
  for (const a of p.approvers) {
    if (typeof a !== "string" || !PRINCIPAL.test(a))
      bad(`approver ${JSON.stringify(a)} is not user:, group:, role: or app:<id>`);
  }
  const min = p.minApprovals ?? 1;
  if (!Number.isInteger(min) || min < 1 || min > MAX_MIN_APPROVALS)
    bad(`minApprovals must be a whole number from 1 to ${MAX_MIN_APPROVALS}`);
  if (!Number.isInteger(p.timeoutMs) || p.timeoutMs < 1 || p.timeoutMs > MAX_APPROVAL_TIMEOUT_MS)
    bad(`timeoutMs must be a whole number of ms from 1 to ${MAX_APPROVAL_TIMEOUT_MS}`);
  if (p.contextStatements !== undefined && !p.contextStatements.every((s) => typeof s === "string"))
    bad("contextStatements must be text");
}

export { statementHash };
