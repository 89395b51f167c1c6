import type { Key } from "ink";

/**
 * Every key binding of `gw replay`, in one place: what each key does in each mode, and the
 * help line drawn from the same table (so the help cannot drift from the bindings).
 */

export type ReplayMode = "normal" | "search";

export type ReplayKeyAction =
  | { type: "togglePlay" }
  | { type: "step"; by: 1 | -1 }
  | { type: "speed"; by: 1 | -1 }
  | { type: "jump"; where: "start" | "end" }
  | { type: "searchStart" }
  | { type: "nextMatch"; dir: 1 | -1 }
  | { type: "clearSearch" }
  | { type: "submitSearch" }
  | { type: "cancelSearch" }
  | { type: "backspace" }
  | { type: "input"; text: string }
  | { type: "quit" };

export type ReplayKeyName =
  "left" | "right" | "home" | "end" | "enter" | "escape" | "backspace" | "space" | "ctrl+c";

export interface ReplayBinding {
  keys: readonly (ReplayKeyName | string)[];
  label: string;
  /** What the help line says it does; bindings without it stay out of the help line. */
  help?: string;
  action: ReplayKeyAction;
}

export const PLAYER_BINDINGS: readonly ReplayBinding[] = [
  { keys: ["space"], label: "Space", help: "play/pause", action: { type: "togglePlay" } },
  { keys: ["left", "h"], label: "←", action: { type: "step", by: -1 } },
  { keys: ["right", "l"], label: "→", help: "step", action: { type: "step", by: 1 } },
  { keys: ["-", "_"], label: "-", action: { type: "speed", by: -1 } },
  { keys: ["+", "="], label: "+", help: "speed", action: { type: "speed", by: 1 } },
  { keys: ["g", "home"], label: "g", action: { type: "jump", where: "start" } },
  { keys: ["G", "end"], label: "G", help: "start/end", action: { type: "jump", where: "end" } },
  { keys: ["/"], label: "/", help: "search", action: { type: "searchStart" } },
  { keys: ["n"], label: "n", action: { type: "nextMatch", dir: 1 } },
  { keys: ["N"], label: "N", help: "next/prev match", action: { type: "nextMatch", dir: -1 } },
  { keys: ["escape"], label: "Esc", action: { type: "clearSearch" } },
  { keys: ["q", "ctrl+c"], label: "q", help: "quit", action: { type: "quit" } },
];

export const SEARCH_BINDINGS: readonly ReplayBinding[] = [
  { keys: ["enter"], label: "⏎", help: "search", action: { type: "submitSearch" } },
  { keys: ["escape"], label: "Esc", help: "cancel", action: { type: "cancelSearch" } },
  { keys: ["backspace"], label: "⌫", action: { type: "backspace" } },
  { keys: ["ctrl+c"], label: "^C", action: { type: "quit" } },
];

export function replayBindings(mode: ReplayMode): readonly ReplayBinding[] {
  return mode === "normal" ? PLAYER_BINDINGS : SEARCH_BINDINGS;
}

export function replayKeyName(input: string, key: Partial<Key>): ReplayKeyName | null {
  if (key.ctrl && input === "c") return "ctrl+c";
  if (key.leftArrow) return "left";
  if (key.rightArrow) return "right";
  if (key.home) return "home";
  if (key.end) return "end";
  if (key.return) return "enter";
  if (key.escape) return "escape";
  if (key.backspace || key.delete) return "backspace";
  if (input === " ") return "space";
  return null;
}

/** What a key press does in this mode; null when nothing. */
export function replayActionFor(
  mode: ReplayMode,
  input: string,
  key: Partial<Key>,
): ReplayKeyAction | null {
  const name = replayKeyName(input, key);
  const bindings = replayBindings(mode);
  if (name !== null && !(mode === "search" && name === "space")) {
    return bindings.find((b) => b.keys.includes(name))?.action ?? null;
  }
  if (key.ctrl || key.meta || key.tab) return null;
  if (mode === "normal") return bindings.find((b) => b.keys.includes(input))?.action ?? null;
  return input === "" ? null : { type: "input", text: input };
}

/** The help line of a mode: "Space play/pause · ← → step · …". */
export function replayHelp(mode: ReplayMode): { keys: string; help: string }[] {
  const items: { keys: string; help: string }[] = [];
  let pending: string[] = [];
  for (const b of replayBindings(mode)) {
    pending.push(b.label);
    if (b.help === undefined) {
      // A binding without help joins the next one (← →, - +, g G, n N); Esc and ⌫ stay out.
      if (b.label === "Esc" || b.label === "⌫") pending = [];
      continue;
    }
    items.push({ keys: pending.join(" "), help: b.help });
    pending = [];
  }
  return items;
}
