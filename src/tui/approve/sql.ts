/**
 * A small SQL tokenizer for highlighting, not parsing: keywords, quoted strings and
 * identifiers, numbers, comments and everything else, in order, so that joining the tokens'
 * text gives the input back unchanged.
 */
export type SqlTokenKind = "keyword" | "string" | "identifier" | "number" | "comment" | "text";

export interface SqlToken {
  kind: SqlTokenKind;
  text: string;
}

const KEYWORDS = new Set(
  (
    "select from where and or not null is in like ilike between exists case when then else end " +
    "insert into values update set delete truncate drop alter create table index view schema " +
    "database column constraint primary key foreign references grant revoke on to as with " +
    "recursive returning join left right inner outer full cross natural using group by order " +
    "having limit offset union all distinct intersect except begin commit rollback savepoint " +
    "start transaction explain analyze verbose prepare execute deallocate do copy vacuum " +
    "reindex cluster lock cascade restrict if only default true false asc desc nulls first " +
    "last for share nowait skip locked returns function procedure language call listen notify " +
    "set reset show comment owner role user password"
  ).split(/\s+/),
);

const TOKEN = new RegExp(
  [
    String.raw`(?<comment>--[^\n]*|\/\*[\s\S]*?(?:\*\/|$))`,
    // E'..' escapes, '..' with '' doubling, and $tag$..$tag$ dollar quoting.
    String.raw`(?<string>[eE]?'(?:[^']|'')*(?:'|$)|\$(?<tag>[A-Za-z_]\w*)?\$[\s\S]*?(?:\$\k<tag>\$|$))`,
    String.raw`(?<identifier>"(?:[^"]|"")*(?:"|$))`,
    String.raw`(?<number>\b\d+(?:\.\d+)?(?:[eE][+-]?\d+)?\b)`,
    String.raw`(?<word>[A-Za-z_][\w$]*)`,
  ].join("|"),
  "g",
);

export function tokenizeSql(sql: string): SqlToken[] {
  const out: SqlToken[] = [];
  let last = 0;
  const push = (kind: SqlTokenKind, text: string) => {
    if (text === "") return;
    const prev = out[out.length - 1];
    if (prev !== undefined && prev.kind === kind && kind === "text") prev.text += text;
    else out.push({ kind, text });
  };
  for (const m of sql.matchAll(TOKEN)) {
    const g = m.groups!;
    push("text", sql.slice(last, m.index));
    if (g["comment"] !== undefined) push("comment", m[0]);
    else if (g["string"] !== undefined) push("string", m[0]);
    else if (g["identifier"] !== undefined) push("identifier", m[0]);
    else if (g["number"] !== undefined) push("number", m[0]);
    else push(KEYWORDS.has(m[0].toLowerCase()) ? "keyword" : "text", m[0]);
    last = m.index + m[0].length;
  }
  push("text", sql.slice(last));
  return out;
}

/**
 * The tokens split into display lines (at newlines), at most `width` columns each (longer lines
 * wrap; tabs become two spaces), so a pane can show and count them.
 */
export function sqlLines(sql: string, width: number): SqlToken[][] {
  const w = Math.max(1, width);
  const lines: SqlToken[][] = [[]];
  let col = 0;
  for (const t of tokenizeSql(sql.replace(/\r\n?/g, "\n").replace(/\t/g, "  "))) {
    const parts = t.text.split("\n");
    parts.forEach((part, i) => {
      if (i > 0) {
        lines.push([]);
        col = 0;
      }
      let rest = Array.from(part);
      while (rest.length > 0) {
        if (col >= w) {
          lines.push([]);
          col = 0;
        }
        const take = rest.slice(0, w - col);
        rest = rest.slice(take.length);
        lines[lines.length - 1]!.push({ kind: t.kind, text: take.join("") });
        col += take.length;
      }
    });
  }
  return lines;
}
