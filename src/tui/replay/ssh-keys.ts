import type { Key } from "ink";
import { replayKeyName } from "./keys.js";

/**
 * The ssh player's key bindings, and its help line drawn from the same table. Time is what
 * moves here (a terminal has no statements to step through): arrows seek by 5 s, [ and ]
 * jump between the marked events, Tab changes channel.
 */
export type SshKeyAction =
  | { type: "togglePlay" }
  | { type: "seek"; byMs: number }
  | { type: "event"; dir: 1 | -1 }
  | { type: "speed"; by: 1 | -1 }
  | { type: "jump"; where: "start" | "end" }
  | { type: "channel"; by: 1 | -1 }
  | { type: "quit" };

/** How far ← and → seek. */
export const SEEK_MS = 5000;

interface Binding {
  keys: readonly string[];
  label: string;
  help?: string;
  action: SshKeyAction;
}

const BINDINGS: readonly Binding[] = [
  { keys: ["space"], label: "Space", help: "play/pause", action: { type: "togglePlay" } },
  { keys: ["left", "h"], label: "←", action: { type: "seek", byMs: -SEEK_MS } },
  { keys: ["right", "l"], label: "→", help: "±5 s", action: { type: "seek", byMs: SEEK_MS } },
  { keys: ["[", "p"], label: "[", action: { type: "event", dir: -1 } },
  { keys: ["]", "n"], label: "]", help: "prev/next event", action: { type: "event", dir: 1 } },
  { keys: ["-", "_"], label: "-", action: { type: "speed", by: -1 } },
  { keys: ["+", "="], label: "+", help: "speed", action: { type: "speed", by: 1 } },
  { keys: ["g", "home"], label: "g", action: { type: "jump", where: "start" } },
  { keys: ["G", "end"], label: "G", help: "start/end", action: { type: "jump", where: "end" } },
  { keys: ["tab", "c"], label: "Tab", help: "channel", action: { type: "channel", by: 1 } },
  { keys: ["shift+tab", "C"], label: "", action: { type: "channel", by: -1 } },
  { keys: ["q", "ctrl+c"], label: "q", help: "quit", action: { type: "quit" } },
];

export function sshActionFor(input: string, key: Partial<Key>): SshKeyAction | null {
  const name = key.tab ? (key.shift ? "shift+tab" : "tab") : replayKeyName(input, key);
  const wanted = name ?? (key.ctrl || key.meta ? null : input);
  if (wanted === null || wanted === "") return null;
  return BINDINGS.find((b) => b.keys.includes(wanted))?.action ?? null;
}

/** "Space play/pause · ← → ±5 s · [ ] prev/next event · - + speed · …" */
export function sshHelp(): { keys: string; help: string }[] {
  const items: { keys: string; help: string }[] = [];
  let pending: string[] = [];
  for (const b of BINDINGS) {
    if (b.label !== "") pending.push(b.label);
    if (b.help === undefined) continue;
    items.push({ keys: pending.join(" "), help: b.help });
    pending = [];
  }
  return items;
}
