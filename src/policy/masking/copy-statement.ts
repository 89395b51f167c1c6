import type { CopyDialect } from "./copy-masker.js";

/**
 * What a COPY ... TO statement's text says about its output, for masking its CopyData: the
 * format (text, CSV, binary), the dialect (delimiter, NULL string, quote, escape, header), and
 * the table and column list when it copies a table (`COPY (query) TO` has none).
 *
 * A small, strict parser: anything it does not understand gives null, and the caller should
 * then refuse the COPY when masking applies (fail closed) rather than guess the dialect.
 */
export interface CopyStatement {
  /** null for COPY (query) TO. */
  relation: { schema: string | null; table: string } | null;
  /** The column list, when given. */
  columns: string[] | null;
  /** TO STDOUT (the only target whose data goes over the connection). */
  toStdout: boolean;
  format: "text" | "csv" | "binary";
  dialect: CopyDialect;
}

type Tok =
  | { k: "id"; v: string; quoted: boolean }
  | { k: "str"; v: string }
  | { k: "num"; v: string }
  | { k: "p"; v: string };

function tokenize(sql: string): Tok[] | null {
  const out: Tok[] = [];
  let i = 0;
  const n = sql.length;
  while (i < n) {
    const c = sql[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === "-" && sql[i + 1] === "-") {
      while (i < n && sql[i] !== "\n") i++;
    } else if (c === "/" && sql[i + 1] === "*") {
      let depth = 1;
      i += 2;
      while (i < n && depth > 0) {
        if (sql[i] === "/" && sql[i + 1] === "*") {
          depth++;
          i += 2;
        } else if (sql[i] === "*" && sql[i + 1] === "/") {
          depth--;
          i += 2;
        } else i++;
      }
      if (depth > 0) return null;
    } else if (c === '"') {
      let v = "";
      i++;
      for (;;) {
        if (i >= n) return null;
        if (sql[i] === '"') {
          if (sql[i + 1] === '"') {
            v += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        v += sql[i++];
      }
      out.push({ k: "id", v, quoted: true });
    } else if (c === "'" || ((c === "E" || c === "e") && sql[i + 1] === "'")) {
      const esc = c !== "'";
      i += esc ? 2 : 1;
      let v = "";
      for (;;) {
        if (i >= n) return null;
        const ch = sql[i]!;
        if (ch === "'") {
          if (sql[i + 1] === "'") {
            v += "'";
            i += 2;
            continue;
          }
          i++;
          break;
        }
        if (esc && ch === "\\" && i + 1 < n) {
          const e = sql[i + 1]!;
          const map: Record<string, string> = {
            b: "\b",
            f: "\f",
            n: "\n",
            r: "\r",
            t: "\t",
            "\\": "\\",
            "'": "'",
          };
          if (map[e] !== undefined) {
            v += map[e];
            i += 2;
            continue;
          }
          return null; // octal/hex/unicode escapes: not worth guessing
        }
        v += ch;
        i++;
      }
      out.push({ k: "str", v });
    } else if (/[A-Za-z_\u0080-\uffff]/.test(c)) {
      let j = i + 1;
      while (j < n && /[A-Za-z0-9_$\u0080-\uffff]/.test(sql[j]!)) j++;
      out.push({ k: "id", v: sql.slice(i, j).toLowerCase(), quoted: false });
      i = j;
    } else if (/[0-9]/.test(c)) {
      let j = i + 1;
      while (j < n && /[0-9]/.test(sql[j]!)) j++;
      out.push({ k: "num", v: sql.slice(i, j) });
      i = j;
    } else if ("(),.;*".includes(c)) {
      out.push({ k: "p", v: c });
      i++;
    } else if (c === "$") {
      return null; // dollar quoting inside a query: give up rather than mis-tokenize
    } else {
      out.push({ k: "p", v: c });
      i++;
    }
  }
  return out;
}

function boolOption(t: Tok | undefined): boolean | null {
  if (t === undefined) return true;
  const v = t.v.toLowerCase();
  if (["true", "on", "1", "yes"].includes(v)) return true;
  if (["false", "off", "0", "no"].includes(v)) return false;
  if (v === "match") return true; // COPY FROM only, but harmless
  return null;
}

/** Parses a COPY statement; null when it is not a COPY ... TO we understand. */
export function parseCopyStatement(sql: string): CopyStatement | null {
  const t = tokenize(sql);
  if (t === null) return null;
  let i = 0;
  const kw = (w: string): boolean => {
    const tok = t[i];
    if (tok && tok.k === "id" && !tok.quoted && tok.v === w) {
      i++;
      return true;
    }
    return false;
  };
  const punct = (p: string): boolean => {
    const tok = t[i];
    if (tok && tok.k === "p" && tok.v === p) {
      i++;
      return true;
    }
    return false;
  };
  const ident = (): string | null => {
    const tok = t[i];
    if (tok && tok.k === "id") {
      i++;
      return tok.v;
    }
    return null;
  };
  const str = (): string | null => {
    const tok = t[i];
    if (tok && tok.k === "str") {
      i++;
      return tok.v;
    }
    return null;
  };

  if (!kw("copy")) return null;
  let relation: CopyStatement["relation"] = null;
  let columns: string[] | null = null;
  if (punct("(")) {
    // A query: skip to the matching parenthesis.
    let depth = 1;
    while (i < t.length && depth > 0) {
      const tok = t[i++]!;
      if (tok.k === "p" && tok.v === "(") depth++;
      else if (tok.k === "p" && tok.v === ")") depth--;
    }
    if (depth > 0) return null;
  } else {
    const a = ident();
    if (a === null) return null;
    if (punct(".")) {
      const b = ident();
      if (b === null) return null;
      relation = { schema: a, table: b };
    } else relation = { schema: null, table: a };
    if (punct("(")) {
      columns = [];
      for (;;) {
        const c = ident();
        if (c === null) return null;
        columns.push(c);
        if (punct(")")) break;
        if (!punct(",")) return null;
      }
    }
  }
  if (!kw("to")) return null;
  let toStdout = false;
  if (kw("stdout")) toStdout = true;
  else if (kw("program")) {
    if (str() === null) return null;
  } else if (str() === null) return null;

  let format: CopyStatement["format"] = "text";
  const o: Partial<CopyDialect> = {};
  kw("with");
  if (punct("(")) {
    // COPY ... WITH (option [value], ...)
    for (;;) {
      const name = ident();
      if (name === null) return null;
      const next = t[i];
      let value: Tok | undefined;
      if (next && !(next.k === "p" && (next.v === "," || next.v === ")"))) {
        if (next.k === "p" && next.v === "(") {
          // force_quote (cols) and the like: skip the list
          while (i < t.length && !(t[i]!.k === "p" && t[i]!.v === ")")) i++;
          i++;
        } else if (next.k === "p" && next.v === "*") i++;
        else {
          value = next;
          i++;
        }
      }
      switch (name) {
        case "format": {
          const f = value?.v.toLowerCase();
          if (f !== "text" && f !== "csv" && f !== "binary") return null;
          format = f;
          break;
        }
        case "delimiter":
        case "null":
        case "quote":
        case "escape":
          if (value?.k !== "str") return null;
          o[name] = value.v;
          break;
        case "header": {
          const b = boolOption(value);
          if (b === null) return null;
          o.header = b;
          break;
        }
        case "force_quote":
        case "force_not_null":
        case "force_null":
        case "encoding":
        case "freeze":
        case "default":
        case "on_error":
        case "log_verbosity":
        case "reject_limit":
          break;
        default:
          return null;
      }
      if (punct(")")) break;
      if (!punct(",")) return null;
    }
  } else {
    // Old syntax: [BINARY] [DELIMITER [AS] 'c'] [NULL [AS] 's'] [CSV [HEADER] [QUOTE ..] ...]
    for (;;) {
      if (kw("binary")) format = "binary";
      else if (kw("csv")) format = "csv";
      else if (kw("header")) o.header = true;
      else if (kw("oids")) return null;
      else if (kw("delimiter") || kw("null") || kw("quote") || kw("escape")) {
        const name = (t[i - 1] as { v: string }).v as "delimiter" | "null" | "quote" | "escape";
        kw("as");
        const v = str();
        if (v === null) return null;
        o[name] = v;
      } else if (kw("force")) {
        if (kw("quote")) {
          if (!punct("*")) {
            do {
              if (ident() === null) return null;
            } while (punct(","));
          }
        } else return null;
      } else break;
    }
  }
  punct(";");
  if (i !== t.length) return null;
  const csv = format === "csv";
  const quote = o.quote ?? '"';
  const dialect: CopyDialect = {
    csv,
    delimiter: o.delimiter ?? (csv ? "," : "\t"),
    null: o.null ?? (csv ? "" : "\\N"),
    quote,
    escape: o.escape ?? quote,
    header: o.header ?? false,
  };
  return { relation, columns, toStdout, format, dialect };
}
