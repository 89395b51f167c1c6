/**
 * What a request is about. The client's request target is normalised once: dot segments
 * resolved (so "/public/../admin" is "/admin" both for the rules and for the target), and the
 * rules match the decoded path ("/%61dmin" is "/admin"), keeping an escaped "/" (%2F) as it is
 * so a segment cannot turn into two.
 */
export interface NormalisedTarget {
  /** What the target receives after its base path: the normalised path and the query. */
  forward: string;
  /** What rules match: the decoded path, without the query. */
  path: string;
  /** "?a=1" or "". */
  query: string;
}

export function normaliseTarget(raw: string): NormalisedTarget | null {
  if (raw === "*" || raw.length === 0) return null;
  let url: URL;
  try {
    // Absolute-form ("http://host/x") keeps only its path; origin-form is resolved as is.
    url = new URL(
      /^[a-z][a-z0-9+.-]*:\/\//i.test(raw)
        ? raw
        : `http://gw.invalid${raw.startsWith("/") ? "" : "/"}${raw}`,
    );
  } catch {
    return null;
  }
  const pathname = url.pathname;
  const path = pathname
    .split("/")
    .map((seg) => {
      try {
        const d = decodeURIComponent(seg);
        return d.includes("/") ? seg : d;
      } catch {
        return seg;
      }
    })
    .join("/");
  return { forward: pathname + url.search, path, query: url.search };
}
