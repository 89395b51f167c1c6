/**
 * Glob patterns for names: `*` matches any run of characters (including none), `?` exactly one;
 * everything else is literal. Matching is case-insensitive: PostgreSQL folds unquoted names to
 * lower case, and a pattern that also catches a quoted "Customers" errs on the safe side.
 */
export function globToRegExp(pattern: string): RegExp {
  let src = "";
  for (const ch of pattern) {
    if (ch === "*") src += "[\\s\\S]*";
    else if (ch === "?") src += "[\\s\\S]";
    else src += ch.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
  }
  return new RegExp(`^${src}$`, "iu");
}

export type NameMatcher = (name: string) => boolean;

/** A matcher for one glob, with fast paths for `*` and for patterns without wildcards. */
export function globMatcher(pattern: string): NameMatcher {
  if (/^\*+$/.test(pattern)) return () => true;
  if (!/[*?]/.test(pattern)) {
    const lower = pattern.toLowerCase();
    return (name) => name.toLowerCase() === lower;
  }
  const re = globToRegExp(pattern);
  return (name) => re.test(name);
}

/** A matcher for "any of these globs". */
export function anyGlob(patterns: readonly string[]): NameMatcher {
  const ms = patterns.map(globMatcher);
  if (ms.length === 1) return ms[0]!;
  return (name) => ms.some((m) => m(name));
}
