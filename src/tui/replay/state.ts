import type { Key } from "ink";
import type { ReplayStatement } from "../../audit/replay.js";
import { replayActionFor, type ReplayKeyAction, type ReplayMode } from "./keys.js";

/**
 * The state of `gw replay`, as a pure reducer: which statement is shown, playing or paused,
 * the speed, and the search. The component only turns ticks and keys into actions.
 */

export const SPEEDS = [0.25, 0.5, 1, 2, 4, 8, 16] as const;
const NORMAL_SPEED = SPEEDS.indexOf(1);
/** Idle gaps longer than this (in session time) are shortened to it while playing. */
export const MAX_GAP_MS = 3000;

export interface ReplayState {
  /** Per statement, the text search looks in (lowercase). */
  haystack: readonly string[];
  /** The statement shown; -1 before the first. */
  index: number;
  playing: boolean;
  speedIndex: number;
  mode: ReplayMode;
  /** The search being typed. */
  draft: string;
  /** The last search submitted, and the statements it matches. */
  query: string | null;
  matches: number[];
  message: string | null;
  quit: boolean;
}

export type ReplayAction =
  ReplayKeyAction | { type: "key"; input: string; key: Partial<Key> } | { type: "tick" };

export function initialReplayState(statements: readonly ReplayStatement[]): ReplayState {
  return {
    haystack: statements.map((s) =>
      [s.sql, s.commandTag ?? "", s.errorMessage ?? ""].join("\n").toLowerCase(),
    ),
    index: statements.length > 0 ? 0 : -1,
    playing: false,
    speedIndex: NORMAL_SPEED,
    mode: "normal",
    draft: "",
    query: null,
    matches: [],
    message: null,
    quit: false,
  };
}

export function speedOf(state: ReplayState): number {
  return SPEEDS[state.speedIndex]!;
}

/** How long (real ms) to show statement `index` before the next one, at the state's speed. */
export function delayToNext(
  statements: readonly ReplayStatement[],
  index: number,
  speed: number,
): number | null {
  const next = statements[index + 1];
  if (!next) return null;
  const from = index < 0 ? 0 : statements[index]!.offsetMs;
  const gap = Math.min(Math.max(0, next.offsetMs - from), MAX_GAP_MS);
  return gap / speed;
}

export function reduce(state: ReplayState, action: ReplayAction): ReplayState {
  const count = state.haystack.length;
  const last = count - 1;
  const at = (index: number): ReplayState => ({
    ...state,
    index: Math.max(count > 0 ? 0 : -1, Math.min(last, index)),
    message: null,
  });
  switch (action.type) {
    case "key": {
      const a = replayActionFor(state.mode, action.input, action.key);
      return a === null ? state : reduce(state, a);
    }
    case "tick": {
      if (!state.playing) return state;
      if (state.index >= last) return { ...state, playing: false, message: "end of the session" };
      return { ...state, index: state.index + 1, message: null };
    }
    case "togglePlay": {
      if (count === 0) return { ...state, message: "no statements to play" };
      if (state.playing) return { ...state, playing: false, message: null };
      // Playing from the end starts over.
      return { ...(state.index >= last ? at(0) : state), playing: true, message: null };
    }
    case "step":
      return { ...at(state.index + action.by), playing: false };
    case "speed": {
      const speedIndex = Math.max(0, Math.min(SPEEDS.length - 1, state.speedIndex + action.by));
      return { ...state, speedIndex };
    }
    case "jump":
      return { ...at(action.where === "start" ? 0 : last), playing: false };
    case "searchStart":
      return { ...state, mode: "search", draft: "", message: null };
    case "input":
      return { ...state, draft: state.draft + action.text };
    case "backspace":
      return { ...state, draft: [...state.draft].slice(0, -1).join("") };
    case "cancelSearch":
      return { ...state, mode: "normal", draft: "" };
    case "submitSearch": {
      const query = state.draft.trim();
      if (query === "") return { ...state, mode: "normal", draft: "" };
      const needle = query.toLowerCase();
      const matches = state.haystack.flatMap((text, i) => (text.includes(needle) ? [i] : []));
      const base = { ...state, mode: "normal" as const, draft: "", query, matches };
      if (matches.length === 0) return { ...base, message: `no statement matches “${query}”` };
      // The first match from the current statement on, wrapping round.
      const next = matches.find((i) => i >= state.index) ?? matches[0]!;
      return {
        ...base,
        index: next,
        playing: false,
        message: matchMessage(matches, next),
      };
    }
    case "nextMatch": {
      if (state.query === null) return { ...state, message: "no search yet: press / to search" };
      const m = state.matches;
      if (m.length === 0) return { ...state, message: `no statement matches “${state.query}”` };
      const next =
        action.dir === 1
          ? (m.find((i) => i > state.index) ?? m[0]!)
          : ([...m].reverse().find((i) => i < state.index) ?? m[m.length - 1]!);
      const wrapped = action.dir === 1 ? next <= state.index : next >= state.index;
      return {
        ...state,
        index: next,
        playing: false,
        message: matchMessage(m, next) + (wrapped && m.length > 1 ? " (wrapped)" : ""),
      };
    }
    case "clearSearch":
      return { ...state, query: null, matches: [], message: null };
    case "quit":
      return { ...state, quit: true, playing: false };
  }
}

function matchMessage(matches: number[], index: number): string {
  return `match ${matches.indexOf(index) + 1} of ${matches.length}`;
}
