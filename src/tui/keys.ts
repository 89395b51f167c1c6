import type { Key } from "ink";
import type { Action, Mode } from "./approve/state.js";

/**
 * Every key binding of the terminal UI, in one place: what each key does in each mode, and the
 * help line drawn from the same table (so the help cannot drift from the bindings).
 */

export type KeyAction = Exclude<Action, { type: "key" }>;

/** What a key is, as a binding names it: a printable character or a named key. */
export type KeyName =
  | "up"
  | "down"
  | "pageUp"
  | "pageDown"
  | "home"
  | "end"
  | "enter"
  | "escape"
  | "backspace"
  | "ctrl+c";

export interface Binding {
  /** Characters (case-sensitive) or named keys that trigger it. */
  keys: readonly (KeyName | string)[];
  /** How the help line writes the keys. */
  label: string;
  /** What the help line says it does; omitted bindings are not in the help line. */
  help?: string;
  action: KeyAction;
}

/** The queue: moving, deciding, details, filter, quit. */
export const LIST_BINDINGS: readonly Binding[] = [
  { keys: ["up", "k"], label: "↑/k", action: { type: "move", by: -1 } },
  { keys: ["down", "j"], label: "↓/j", help: "move", action: { type: "move", by: 1 } },
  { keys: ["pageUp"], label: "PgUp", action: { type: "move", by: -10 } },
  { keys: ["pageDown"], label: "PgDn", action: { type: "move", by: 10 } },
  { keys: ["home", "g"], label: "g", action: { type: "moveTo", where: "first" } },
  { keys: ["end", "G"], label: "G", action: { type: "moveTo", where: "last" } },
  { keys: ["a"], label: "a", help: "approve", action: { type: "approve" } },
  { keys: ["d"], label: "d", help: "deny", action: { type: "denyStart" } },
  { keys: ["enter"], label: "⏎", help: "details", action: { type: "toggleDetails" } },
  { keys: ["/"], label: "/", help: "filter", action: { type: "filterStart" } },
  { keys: ["escape"], label: "Esc", action: { type: "clearFilter" } },
  { keys: ["q", "ctrl+c"], label: "q", help: "quit", action: { type: "quit" } },
];

/** Typing a deny reason or a filter: Enter submits, Esc cancels, the rest is text. */
export const INPUT_BINDINGS: readonly Binding[] = [
  { keys: ["enter"], label: "⏎", help: "submit", action: { type: "submitInput" } },
  { keys: ["escape"], label: "Esc", help: "cancel", action: { type: "cancelInput" } },
  { keys: ["backspace"], label: "⌫", action: { type: "backspace" } },
  { keys: ["ctrl+c"], label: "^C", action: { type: "quit" } },
];

export function bindingsFor(mode: Mode): readonly Binding[] {
  return mode === "list" ? LIST_BINDINGS : INPUT_BINDINGS;
}

/** The named key of an ink key press, if it is one. */
export function keyName(input: string, key: Partial<Key>): KeyName | null {
  if (key.ctrl && input === "c") return "ctrl+c";
  if (key.upArrow) return "up";
  if (key.downArrow) return "down";
  if (key.pageUp) return "pageUp";
  if (key.pageDown) return "pageDown";
  if (key.home) return "home";
  if (key.end) return "end";
  if (key.return) return "enter";
  if (key.escape) return "escape";
  // Terminals send DEL (0x7f) for Backspace; ink calls that "delete".
  if (key.backspace || key.delete) return "backspace";
  return null;
}

/** What a key press does in this mode; null when nothing. */
export function actionFor(mode: Mode, input: string, key: Partial<Key>): KeyAction | null {
  const name = keyName(input, key);
  const bindings = bindingsFor(mode);
  if (name !== null) return bindings.find((b) => b.keys.includes(name))?.action ?? null;
  if (key.ctrl || key.meta || key.tab) return null;
  if (mode === "list") return bindings.find((b) => b.keys.includes(input))?.action ?? null;
  return input === "" ? null : { type: "input", text: input };
}

/** The help line of a mode: "↑/k ↓/j move · a approve · …". */
export function helpItems(mode: Mode): { keys: string; help: string }[] {
  const items: { keys: string; help: string }[] = [];
  let pending: string[] = [];
  for (const b of bindingsFor(mode)) {
    pending.push(b.label);
    if (b.help === undefined) {
      // Bindings without help text join the next one that has it, when they are next to it
      // (↑/k ↓/j move); the others stay out of the help line.
      if (b.action.type !== "move") pending = [];
      continue;
    }
    items.push({ keys: pending.join(" "), help: b.help });
    pending = [];
  }
  return items;
}
