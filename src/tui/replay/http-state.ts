import type { Key } from "ink";
import { replayKeyName } from "./keys.js";

/**
 * The http player's state, as a pure reducer: the request selected in the list, and whether
 * its details are open (scrolled how far). Key bindings and the help line come from one table
 * per view.
 */
export type HttpView = "list" | "detail";

export interface HttpPlayerState {
  count: number;
  selected: number;
  view: HttpView;
  /** First detail line shown. */
  scroll: number;
  quit: boolean;
}

export type HttpKeyAction =
  | { type: "move"; by: number }
  | { type: "page"; dir: 1 | -1 }
  | { type: "jump"; where: "start" | "end" }
  /** In the details: the previous or next request's. */
  | { type: "request"; by: 1 | -1 }
  | { type: "open" }
  | { type: "back" }
  | { type: "quit" };

export type HttpPlayerAction =
  HttpKeyAction | { type: "key"; input: string; key: Partial<Key>; layout: HttpLayout };

/** What the screen holds, for paging and scrolling: rows per page, the last scroll position. */
export interface HttpLayout {
  page: number;
  maxScroll: number;
}

interface Binding {
  keys: readonly string[];
  label: string;
  help?: string;
  action: HttpKeyAction;
}

const COMMON_QUIT: Binding = {
  keys: ["q", "ctrl+c"],
  label: "q",
  help: "quit",
  action: { type: "quit" },
};

const LIST: readonly Binding[] = [
  { keys: ["up", "k"], label: "↑", action: { type: "move", by: -1 } },
  { keys: ["down", "j"], label: "↓", help: "select", action: { type: "move", by: 1 } },
  { keys: ["pageup"], label: "PgUp", action: { type: "page", dir: -1 } },
  { keys: ["pagedown"], label: "PgDn", help: "page", action: { type: "page", dir: 1 } },
  { keys: ["g", "home"], label: "g", action: { type: "jump", where: "start" } },
  { keys: ["G", "end"], label: "G", help: "first/last", action: { type: "jump", where: "end" } },
  { keys: ["enter", "right", "l"], label: "⏎ →", help: "details", action: { type: "open" } },
  COMMON_QUIT,
];

const DETAIL: readonly Binding[] = [
  { keys: ["up", "k"], label: "↑", action: { type: "move", by: -1 } },
  { keys: ["down", "j"], label: "↓", help: "scroll", action: { type: "move", by: 1 } },
  { keys: ["pageup"], label: "PgUp", action: { type: "page", dir: -1 } },
  { keys: ["pagedown", "space"], label: "PgDn", help: "page", action: { type: "page", dir: 1 } },
  { keys: ["g", "home"], label: "g", action: { type: "jump", where: "start" } },
  { keys: ["G", "end"], label: "G", help: "top/bottom", action: { type: "jump", where: "end" } },
  { keys: ["[", "p"], label: "[", action: { type: "request", by: -1 } },
  { keys: ["]", "n"], label: "]", help: "prev/next request", action: { type: "request", by: 1 } },
  {
    keys: ["escape", "left", "h", "backspace"],
    label: "Esc ←",
    help: "list",
    action: { type: "back" },
  },
  COMMON_QUIT,
];

function bindings(view: HttpView): readonly Binding[] {
  return view === "list" ? LIST : DETAIL;
}

function keyName(input: string, key: Partial<Key>): string | null {
  if (key.upArrow) return "up";
  if (key.downArrow) return "down";
  if (key.pageUp) return "pageup";
  if (key.pageDown) return "pagedown";
  const name = replayKeyName(input, key);
  if (name !== null) return name;
  if (key.ctrl || key.meta || input === "") return null;
  return input;
}

export function httpActionFor(
  view: HttpView,
  input: string,
  key: Partial<Key>,
): HttpKeyAction | null {
  const name = keyName(input, key);
  if (name === null) return null;
  return bindings(view).find((b) => b.keys.includes(name))?.action ?? null;
}

export function httpHelp(view: HttpView): { keys: string; help: string }[] {
  const items: { keys: string; help: string }[] = [];
  let pending: string[] = [];
  for (const b of bindings(view)) {
    pending.push(b.label);
    if (b.help === undefined) continue;
    items.push({ keys: pending.join(" "), help: b.help });
    pending = [];
  }
  return items;
}

export function initialHttpState(count: number): HttpPlayerState {
  return { count, selected: 0, view: "list", scroll: 0, quit: false };
}

export function reduceHttp(
  s: HttpPlayerState,
  a: HttpPlayerAction,
  layout: HttpLayout = { page: 10, maxScroll: Number.MAX_SAFE_INTEGER },
): HttpPlayerState {
  const page = Math.max(1, layout.page);
  const scrollTo = (n: number) => ({ ...s, scroll: Math.max(0, Math.min(layout.maxScroll, n)) });
  const select = (i: number) => ({
    ...s,
    selected: Math.max(0, Math.min(s.count - 1, i)),
    scroll: 0,
  });
  switch (a.type) {
    case "key": {
      const action = httpActionFor(s.view, a.input, a.key);
      return action === null ? s : reduceHttp(s, action, a.layout);
    }
    case "move":
      return s.view === "list" ? select(s.selected + a.by) : scrollTo(s.scroll + a.by);
    case "page":
      return s.view === "list"
        ? select(s.selected + a.dir * page)
        : scrollTo(s.scroll + a.dir * page);
    case "jump":
      if (s.view === "detail") return scrollTo(a.where === "start" ? 0 : layout.maxScroll);
      return select(a.where === "start" ? 0 : s.count - 1);
    case "request":
      return select(s.selected + a.by);
    case "open":
      return s.count === 0 ? s : { ...s, view: "detail", scroll: 0 };
    case "back":
      return { ...s, view: "list", scroll: 0 };
    case "quit":
      return { ...s, quit: true };
  }
}
