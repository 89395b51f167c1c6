/** Row count of a CommandComplete tag ("SELECT 5", "INSERT 0 5", "COPY 10"), or null. */
export function rowsFromTag(tag: string): number | null {
  const sp = tag.lastIndexOf(" ");
  if (sp < 0) return null;
  const n = Number(tag.slice(sp + 1));
  return Number.isInteger(n) && n >= 0 ? n : null;
}
