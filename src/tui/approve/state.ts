import type { Key } from "ink";
import type { ApprovalFeedEvent, ApprovalView, FeedStatus } from "../../tunnel/approvals-client.js";
import { actionFor } from "../keys.js";

/**
 * The state of `gw approve`, as a pure reducer: the queue of pending requests this person may
 * decide (fed by the broker's live feed), the selection, the detail pane, the inline inputs
 * (a deny reason, a filter) and the status line. Decisions to send are queued as commands in
 * the state (`outbox`); the component sends them and reports back with decision* actions, so
 * everything that decides what happens lives here and is tested on its own.
 */

export type Mode = "list" | "deny" | "filter";

export interface StatusMessage {
  kind: "info" | "success" | "error";
  text: string;
  hint?: string;
}

/** A decision to send to the broker, bound to the statement the approver looked at. */
export interface DecisionCommand {
  seq: number;
  id: string;
  decision: "approve" | "deny";
  reason?: string;
  statementHash: string;
  sessionId: string;
}

export interface ApproveState {
  /** The clock the ages and countdowns are drawn with (epoch ms), moved on by tick. */
  now: number;
  /** Pending requests this viewer may decide, most urgent (soonest to expire) first. */
  requests: ApprovalView[];
  selectedId: string | null;
  showDetails: boolean;
  mode: Mode;
  /** The request a deny reason is being typed for. */
  denyFor: string | null;
  /** Text being typed: the deny reason, or the filter. */
  draft: string;
  /** The applied filter (a case-insensitive substring of sql, requester, connection, id). */
  filter: string;
  /** The filter before `/` was pressed, restored by Esc. */
  filterBefore: string;
  feed: FeedStatus;
  /** A snapshot has arrived at least once (until then the queue is unknown, not empty). */
  loaded: boolean;
  /** Decisions sent and not answered yet, by request id. */
  inFlight: Record<string, "approve" | "deny">;
  outbox: DecisionCommand[];
  nextSeq: number;
  message: StatusMessage | null;
  /** The user asked to quit. */
  quit: boolean;
}

export type Action =
  /** A key press, mapped through keys.ts with the mode as it is when the reducer runs. */
  | { type: "key"; input: string; key: Partial<Key> }
  | { type: "quit" }
  | { type: "snapshot"; approvals: ApprovalView[] }
  | { type: "event"; event: Exclude<ApprovalFeedEvent, { type: "snapshot" }> }
  | { type: "feed"; status: FeedStatus }
  | { type: "tick"; now: number }
  | { type: "move"; by: number }
  | { type: "moveTo"; where: "first" | "last" }
  | { type: "toggleDetails" }
  | { type: "approve" }
  | { type: "denyStart" }
  | { type: "filterStart" }
  | { type: "clearFilter" }
  | { type: "input"; text: string }
  | { type: "backspace" }
  | { type: "submitInput" }
  | { type: "cancelInput" }
  | { type: "commandsTaken"; upTo: number }
  | { type: "notice"; message: StatusMessage }
  | { type: "decisionSucceeded"; id: string; decision: "approve" | "deny"; approval: ApprovalView }
  | {
      type: "decisionFailed";
      id: string;
      decision: "approve" | "deny";
      message: string;
      hint?: string | undefined;
      code?: string | undefined;
    };

export const MAX_REASON_CHARS = 1000;

const NAMED: readonly (keyof Key)[] = [
  "upArrow",
  "downArrow",
  "leftArrow",
  "rightArrow",
  "pageUp",
  "pageDown",
  "home",
  "end",
  "return",
  "escape",
  "ctrl",
  "meta",
  "tab",
  "backspace",
  "delete",
];

function hasNamedKey(key: Partial<Key>): boolean {
  return NAMED.some((k) => key[k] === true);
}

/** One character of a batch of input as the key press a terminal would have sent alone. */
function singleKey(ch: string): { input: string; key: Partial<Key> } {
  if (ch === "\r" || ch === "\n") return { input: "", key: { return: true } };
  if (ch === "\x7f" || ch === "\b") return { input: "", key: { backspace: true } };
  if (ch === "\t") return { input: "", key: { tab: true } };
  if (ch === "\x03") return { input: "c", key: { ctrl: true } };
  return { input: ch, key: {} };
}
const MAX_FILTER_CHARS = 200;

export function initialState(now: number): ApproveState {
  return {
    now,
    requests: [],
    selectedId: null,
    showDetails: true,
    mode: "list",
    denyFor: null,
    draft: "",
    filter: "",
    filterBefore: "",
    feed: { state: "connecting", attempt: 1 },
    loaded: false,
    inFlight: {},
    outbox: [],
    nextSeq: 1,
    message: null,
    quit: false,
  };
}

/** Pending, and this viewer may decide it (its own requests are not in the queue). */
export function decidable(a: ApprovalView): boolean {
  return a.status === "pending" && !a.viewer.requester && (a.viewer.canApprove || a.viewer.canDeny);
}

function byUrgency(a: ApprovalView, b: ApprovalView): number {
  return a.expiresAt - b.expiresAt || a.createdAt - b.createdAt || a.id.localeCompare(b.id);
}

/** Who asked, for people: "Dana DBA (user)". */
export function requesterLabel(a: ApprovalView): string {
  return `${a.requester.name || a.requester.oid} (${a.requester.type})`;
}

export function matchesFilter(a: ApprovalView, filter: string): boolean {
  const f = filter.trim().toLowerCase();
  if (f === "") return true;
  return [a.id, a.sql, a.requester.name, a.requester.oid, a.connection, a.applicationName ?? ""]
    .join("\n")
    .toLowerCase()
    .includes(f);
}

/** The requests shown: the queue through the filter (the one being typed, in filter mode). */
export function visibleRequests(s: ApproveState): ApprovalView[] {
  const f = s.mode === "filter" ? s.draft : s.filter;
  return s.requests.filter((a) => matchesFilter(a, f));
}

export function selectedRequest(s: ApproveState): ApprovalView | null {
  const v = visibleRequests(s);
  return v.find((a) => a.id === s.selectedId) ?? null;
}

/** Keeps the selection on a visible request: the same one, else the one now at its place. */
function reselect(s: ApproveState, previous: ApprovalView[]): ApproveState {
  const v = visibleRequests(s);
  if (v.length === 0) return s.selectedId === null ? s : { ...s, selectedId: null };
  if (s.selectedId !== null && v.some((a) => a.id === s.selectedId)) return s;
  const oldIndex = previous.findIndex((a) => a.id === s.selectedId);
  const i = oldIndex < 0 ? 0 : Math.min(oldIndex, v.length - 1);
  return { ...s, selectedId: v[i]!.id };
}

function withRequests(s: ApproveState, requests: ApprovalView[]): ApproveState {
  const previous = visibleRequests(s);
  let next: ApproveState = { ...s, requests: [...requests].sort(byUrgency) };
  // A deny being typed for a request that left the queue cannot be sent.
  if (next.mode === "deny" && !next.requests.some((a) => a.id === next.denyFor)) {
    next = {
      ...next,
      mode: "list",
      denyFor: null,
      draft: "",
      message: {
        kind: "info",
        text: `Request ${s.denyFor} is no longer waiting for you; your deny was not sent.`,
      },
    };
  }
  return reselect(next, previous);
}

function upsert(list: ApprovalView[], a: ApprovalView): ApprovalView[] {
  const i = list.findIndex((x) => x.id === a.id);
  if (i < 0) return [...list, a];
  const copy = [...list];
  copy[i] = a;
  return copy;
}

function endedText(a: ApprovalView): string {
  switch (a.status) {
    case "approved": {
      const by = a.decisions.filter((d) => d.decision === "approve").map((d) => d.by.name);
      return `Request ${a.id} was approved${by.length ? ` by ${by.join(", ")}` : ""}.`;
    }
    case "denied": {
      const d = a.decisions.find((x) => x.decision === "deny");
      return `Request ${a.id} was denied${d ? ` by ${d.by.name}` : ""}${d?.reason ? `: ${d.reason}` : ""}.`;
    }
    case "expired":
      return `Request ${a.id} expired before anyone decided.`;
    case "cancelled":
      return `Request ${a.id} was cancelled${a.statusDetail ? ` (${a.statusDetail})` : ""}.`;
    default:
      return `Request ${a.id} is no longer waiting for you.`;
  }
}

function queueCommand(
  s: ApproveState,
  a: ApprovalView,
  decision: "approve" | "deny",
  reason?: string,
): ApproveState {
  const cmd: DecisionCommand = {
    seq: s.nextSeq,
    id: a.id,
    decision,
    statementHash: a.statementHash,
    sessionId: a.sessionId,
    ...(reason !== undefined ? { reason } : {}),
  };
  return {
    ...s,
    outbox: [...s.outbox, cmd],
    nextSeq: s.nextSeq + 1,
    inFlight: { ...s.inFlight, [a.id]: decision },
    message: {
      kind: "info",
      text: `${decision === "approve" ? "Approving" : "Denying"} ${a.id}…`,
    },
  };
}

export function reducer(s: ApproveState, action: Action): ApproveState {
  switch (action.type) {
    case "key": {
      const chars = Array.from(action.input);
      if (chars.length > 1 && !hasNamedKey(action.key)) {
        // Keys typed quickly (or pasted, or sent by a script) can arrive in one read: "d"
        // and the reason, say. Each character is its own key press, in order.
        return chars.reduce<ApproveState>(
          (st, ch) => reducer(st, { type: "key", ...singleKey(ch) }),
          s,
        );
      }
      const a = actionFor(s.mode, action.input, action.key);
      return a === null ? s : reducer(s, a);
    }

    case "quit":
      return { ...s, quit: true };

    case "snapshot":
      return withRequests({ ...s, loaded: true }, action.approvals.filter(decidable));

    case "event": {
      const a = action.event.approval;
      const had = s.requests.some((x) => x.id === a.id);
      if (decidable(a)) return withRequests(s, upsert(s.requests, a));
      if (!had) return s;
      const next = withRequests(
        s,
        s.requests.filter((x) => x.id !== a.id),
      );
      // Our own decision is reported when the broker answers; others' are news.
      if (s.inFlight[a.id] !== undefined) return next;
      const aborted = s.mode === "deny" && s.denyFor === a.id;
      return {
        ...next,
        message: {
          kind: "info",
          text: endedText(a) + (aborted ? " Your deny was not sent." : ""),
        },
      };
    }

    case "feed":
      return { ...s, feed: action.status };

    case "tick":
      return action.now === s.now ? s : { ...s, now: action.now };

    case "move": {
      const v = visibleRequests(s);
      if (v.length === 0) return s;
      const i = Math.max(
        0,
        v.findIndex((a) => a.id === s.selectedId),
      );
      const j = Math.min(v.length - 1, Math.max(0, i + action.by));
      return { ...s, selectedId: v[j]!.id };
    }

    case "moveTo": {
      const v = visibleRequests(s);
      if (v.length === 0) return s;
      return { ...s, selectedId: (action.where === "first" ? v[0] : v[v.length - 1])!.id };
    }

    case "toggleDetails":
      return { ...s, showDetails: !s.showDetails };

    case "approve": {
      const a = selectedRequest(s);
      if (a === null) return { ...s, message: { kind: "info", text: "Nothing to approve." } };
      if (s.inFlight[a.id] !== undefined) return s;
      if (!a.viewer.canApprove) {
        return {
          ...s,
          message: {
            kind: "error",
            text: `You cannot approve ${a.id}${a.decisions.length > 0 ? " again" : ""}; you may deny it.`,
          },
        };
      }
      return queueCommand(s, a, "approve");
    }

    case "denyStart": {
      const a = selectedRequest(s);
      if (a === null) return { ...s, message: { kind: "info", text: "Nothing to deny." } };
      if (s.inFlight[a.id] !== undefined) return s;
      if (!a.viewer.canDeny) {
        return { ...s, message: { kind: "error", text: `You cannot deny ${a.id}.` } };
      }
      return { ...s, mode: "deny", denyFor: a.id, draft: "", message: null };
    }

    case "filterStart":
      return { ...s, mode: "filter", draft: s.filter, filterBefore: s.filter, message: null };

    case "clearFilter":
      if (s.filter === "") return s;
      return reselect({ ...s, filter: "" }, visibleRequests(s));

    case "input": {
      if (s.mode === "list") return s;
      // Inline inputs are one line: newlines and other control characters are dropped.
      // eslint-disable-next-line no-control-regex
      const text = action.text.replace(/[\u0000-\u001f\u007f]/g, "");
      if (text === "") return s;
      const max = s.mode === "deny" ? MAX_REASON_CHARS : MAX_FILTER_CHARS;
      const draft = (s.draft + text).slice(0, max);
      const next = { ...s, draft, message: null };
      return s.mode === "filter" ? reselect(next, visibleRequests(s)) : next;
    }

    case "backspace": {
      if (s.mode === "list" || s.draft === "") return s;
      const next = { ...s, draft: Array.from(s.draft).slice(0, -1).join("") };
      return s.mode === "filter" ? reselect(next, visibleRequests(s)) : next;
    }

    case "cancelInput": {
      if (s.mode === "deny") return { ...s, mode: "list", denyFor: null, draft: "", message: null };
      if (s.mode === "filter") {
        const shown = visibleRequests(s);
        return reselect({ ...s, mode: "list", draft: "", filter: s.filterBefore }, shown);
      }
      return s;
    }

    case "submitInput": {
      if (s.mode === "filter") {
        const shown = visibleRequests(s);
        return reselect({ ...s, mode: "list", filter: s.draft.trim(), draft: "" }, shown);
      }
      if (s.mode !== "deny") return s;
      const reason = s.draft.trim();
      if (reason === "") {
        return {
          ...s,
          message: {
            kind: "error",
            text: "A deny needs a reason: type why, then Enter (Esc cancels).",
          },
        };
      }
      const a = s.requests.find((x) => x.id === s.denyFor);
      const base: ApproveState = { ...s, mode: "list", denyFor: null, draft: "" };
      if (a === undefined) {
        return {
          ...base,
          message: { kind: "info", text: "That request is no longer waiting; nothing was sent." },
        };
      }
      return queueCommand(base, a, "deny", reason);
    }

    case "notice":
      return { ...s, message: action.message };

    case "commandsTaken":
      return { ...s, outbox: s.outbox.filter((c) => c.seq > action.upTo) };

    case "decisionSucceeded": {
      const { [action.id]: _done, ...inFlight } = s.inFlight;
      const a = action.approval;
      let text: string;
      if (action.decision === "deny") text = `Denied ${a.id}; the client gets your reason.`;
      else if (a.status === "approved") text = `Approved ${a.id}; the statement runs now.`;
      else {
        const approvals = new Set(
          a.decisions.filter((d) => d.decision === "approve").map((d) => d.by.oid),
        ).size;
        text = `Approved ${a.id} (${approvals} of ${a.minApprovals}); waiting for ${a.minApprovals - approvals} more.`;
      }
      const next = { ...s, inFlight, message: { kind: "success" as const, text } };
      return decidable(a)
        ? withRequests(next, upsert(next.requests, a))
        : withRequests(
            next,
            next.requests.filter((x) => x.id !== a.id),
          );
    }

    case "decisionFailed": {
      const { [action.id]: _failed, ...inFlight } = s.inFlight;
      const verb = action.decision === "approve" ? "approve" : "deny";
      const message: StatusMessage = {
        kind: "error",
        text: `Could not ${verb} ${action.id}: ${action.message}`,
        ...(action.hint ? { hint: action.hint } : {}),
      };
      const next = { ...s, inFlight, message };
      // A request that is gone or decided elsewhere leaves the queue; the feed agrees soon.
      if (action.code === "approval_not_pending" || action.code === "approval_not_found")
        return withRequests(
          next,
          next.requests.filter((x) => x.id !== action.id),
        );
      return next;
    }
  }
}
