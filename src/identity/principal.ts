/** Who is on the other end of a request, as the broker verified it from the bearer token. */
export interface Identity {
  /** Entra object id of the user or service principal. */
  oid: string;
  tid: string | undefined;
  /** Display name, UPN, or the app's name: whatever the token offers, for people to read. */
  name: string;
  upn: string | undefined;
  type: "user" | "app";
  groups: string[];
  roles: string[];
  /** Token expiry, epoch seconds. */
  expiresAt: number;
}

/** The principal strings an identity matches in `allow`, `auditors` and approver lists. */
export function principalsOf(id: Identity): Set<string> {
  const out = new Set<string>();
  out.add(id.type === "user" ? `user:${id.oid}` : `app:${id.oid}`);
  for (const g of id.groups) out.add(`group:${g}`);
  for (const r of id.roles) out.add(`role:${r}`);
  return out;
}

export function isAllowed(id: Identity, allow: readonly string[]): boolean {
  const mine = principalsOf(id);
  return allow.some((p) => mine.has(p));
}
