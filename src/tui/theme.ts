import { createContext, useContext } from "react";

/**
 * Colours by meaning. Components ask for a token ("danger", "keyword"), never a colour, so the
 * palette lives here and NO_COLOR (https://no-color.org) turns every colour off in one place.
 */
export interface Theme {
  /** Whether colours are drawn at all. */
  color: boolean;
  /** Colour names for ink's <Text color>; undefined when colours are off. */
  accent: string | undefined;
  muted: string | undefined;
  success: string | undefined;
  warning: string | undefined;
  danger: string | undefined;
  keyword: string | undefined;
  string: string | undefined;
  number: string | undefined;
  comment: string | undefined;
  /** Selected row: drawn inverse when colours are on, with a marker either way. */
  selectedInverse: boolean;
}

const PALETTE = {
  accent: "cyan",
  muted: "gray",
  success: "green",
  warning: "yellow",
  danger: "red",
  keyword: "magenta",
  string: "green",
  number: "yellow",
  comment: "gray",
} as const;

export function makeTheme(color: boolean): Theme {
  const pick = (c: string) => (color ? c : undefined);
  return {
    color,
    accent: pick(PALETTE.accent),
    muted: pick(PALETTE.muted),
    success: pick(PALETTE.success),
    warning: pick(PALETTE.warning),
    danger: pick(PALETTE.danger),
    keyword: pick(PALETTE.keyword),
    string: pick(PALETTE.string),
    number: pick(PALETTE.number),
    comment: pick(PALETTE.comment),
    selectedInverse: color,
  };
}

/** Colours unless NO_COLOR is set (to anything non-empty) or TERM is dumb. */
export function colorWanted(env: NodeJS.ProcessEnv = process.env): boolean {
  const no = env["NO_COLOR"];
  return !(no !== undefined && no !== "") && env["TERM"] !== "dumb";
}

export const ThemeContext = createContext<Theme>(makeTheme(false));

export function useTheme(): Theme {
  return useContext(ThemeContext);
}
