import { Text } from "ink";
import { createElement as h, type ReactElement } from "react";
import { helpItems } from "../keys.js";
import { useTheme } from "../theme.js";
import type { Mode } from "./state.js";

type Item = { keys: string; help: string };

const lengthOf = (items: Item[]) =>
  items.reduce((n, it, i) => n + (i > 0 ? 3 : 0) + Array.from(`${it.keys} ${it.help}`).length, 0);

/**
 * What fits in `width`: the full line; else with short key labels ("↑/k ↓/j" → "↑↓"); else
 * without the items before the last (quit stays).
 */
export function fitHelp(items: Item[], width: number): Item[] {
  if (lengthOf(items) <= width) return items;
  let out = items.map((it) =>
    it.keys.includes(" ")
      ? {
          ...it,
          keys: it.keys
            .split(" ")
            .map((k) => k.split("/")[0])
            .join(""),
        }
      : it,
  );
  while (out.length > 1 && lengthOf(out) > width) out = [...out.slice(0, -2), out[out.length - 1]!];
  return out;
}

/** The keys of the current mode, from the one table of bindings. */
export function HelpBar(props: { mode: Mode; filter: string; width: number }): ReactElement {
  const theme = useTheme();
  const all = helpItems(props.mode);
  if (props.mode === "list" && props.filter !== "") all.push({ keys: "Esc", help: "clear filter" });
  const items = fitHelp(all, props.width);
  return h(
    Text,
    { wrap: "truncate-end" },
    ...items.flatMap((it, i) => [
      i > 0 ? h(Text, { key: `s${i}`, color: theme.muted }, " · ") : null,
      h(Text, { key: `k${i}`, bold: true, color: theme.accent }, it.keys),
      h(Text, { key: `h${i}` }, ` ${it.help}`),
    ]),
  );
}
