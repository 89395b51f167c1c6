/**
 * The literal normaliser behind the classification cache: `select * from t where id = 1` and
 * `... id = 2` get one cache key, so the second costs a hash lookup instead of a parse.
 *
 * It is a lexer that follows PostgreSQL's own (src/backend/parser/scan.l, with
 * standard_conforming_strings on, which is what the parser assumes and what the session pins),
 * and it only has to be right about one thing: where literals begin and end. Everything that is
 * not a replaced literal is copied verbatim (whitespace and comments included), and each
 * replaced literal becomes a NUL-prefixed placeholder that names its token category. NUL never
 * occurs in a text the classifier accepts, so two texts share a key only when they are the same
 * token for token, literal contents aside.
 *
 * What is replaced, and why that is safe (the classifier must not depend on those values):
 *   - '…' and N'…' strings, and E'…' strings without a backslash: the grammar never looks
 *     inside a string constant, and such strings cannot fail to lex. E-strings with escapes
 *     (an escape can be invalid), B'…' and X'…' are kept verbatim; U&'…' (whose validity
 *     depends on a later UESCAPE) makes the whole text "not normalisable".
 *   - Numbers only where the grammar takes an expression: after an operator, after LIMIT,
 *     OFFSET, BETWEEN, AND, OR, WHEN, THEN, ELSE, and inside parentheses opened by VALUES, IN or
 *     an operator. Elsewhere a number can be checked by the grammar itself (`float(0)` is an
 *     error, `float(10)` is not), so it is kept. The placeholder keeps the token category:
 *     an integer that fits int4 lexes as ICONST, anything else as FCONST.
 * The classifier then refuses the normalised path for any statement whose classification
 * does read a literal (SET, set_config, DO and function bodies, EXPLAIN options: see
 * `literalSensitive` in classify.ts), and for parse errors, whose messages quote the text.
 *
 * Anything unusual (an unterminated literal or comment, a number with trailing junk, hex or
 * underscore numerals, a parameter with trailing junk) returns null: the caller then caches by
 * the exact text only.
 */

// The kind of the previous significant token.
const NONE = 0;
const OP = 1;
const IDENT = 2;
const OPEN = 3;
const CLOSE = 4;
const COMMA = 5;
const VALUE = 6;
const OTHER = 7;

/** PostgreSQL's operator characters, by char code. */
const OP_CHARS = new Uint8Array(128);
for (const ch of "~!@#^&|`?+-*/%<>=") OP_CHARS[ch.charCodeAt(0)] = 1;
const isOpChar = (c: number) => c < 128 && OP_CHARS[c] === 1;
/** Keywords after which a number is an expression operand. */
const NUMBER_KEYWORDS = new Set([
  "limit",
  "offset",
  "between",
  "and",
  "or",
  "when",
  "then",
  "else",
]);
/** Keywords after which `(` opens a list of expressions. */
const EXPR_PAREN_KEYWORDS = new Set(["values", "in"]);

const INT4_MAX = 2147483647;

function isSpace(c: number): boolean {
  // PostgreSQL's {space}: [ \t\n\r\f\v]
  return c === 32 || (c >= 9 && c <= 13);
}
function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}
function isIdentStart(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c >= 128;
}
function isIdentCont(c: number): boolean {
  return isIdentStart(c) || isDigit(c) || c === 36;
}

/** The number token at `i` (PostgreSQL decimal forms only), or -1 when it is not one we accept. */
function numberEnd(s: string, i: number): number {
  let j = i;
  while (j < s.length && isDigit(s.charCodeAt(j))) j++;
  if (s.charCodeAt(j) === 46 /* . */) {
    j++;
    while (j < s.length && isDigit(s.charCodeAt(j))) j++;
  }
  const e = s.charCodeAt(j);
  if (e === 69 || e === 101) {
    let k = j + 1;
    const sign = s.charCodeAt(k);
    if (sign === 43 || sign === 45) k++;
    if (!isDigit(s.charCodeAt(k))) return -1; // "1e" is trailing junk
    while (k < s.length && isDigit(s.charCodeAt(k))) k++;
    j = k;
  }
  const next = s.charCodeAt(j);
  // Trailing junk, 0x1F / 0o7 / 0b1 / 1_000 forms, "1..2", "1.5.6": leave to the exact cache.
  if (j < s.length && (isIdentCont(next) || next === 46)) return -1;
  return j;
}

/**
 * The cache key of `sql` with literals replaced, or null when the text is not normalisable
 * (see above) or has no literal to replace (its exact text is then the better key).
 */
export function normalizeLiterals(sql: string): string | null {
  const n = sql.length;
  let out = "";
  let copied = 0; // sql[copied, i) is still to be copied verbatim
  let replaced = 0;
  let prev = NONE;
  // The previous identifier, as sql[wordStart, wordEnd); lower-cased only when it matters.
  let wordStart = 0;
  let wordEnd = 0;

  // One entry per open parenthesis: does it hold a list of expressions?
  const parens: boolean[] = [];
  let lastClosedExpr = false;

  let i = 0;
  while (i < n) {
    const c = sql.charCodeAt(i);
    if (isSpace(c)) {
      i++;
      continue;
    }
    // Comments: -- to end of line; /* */ nested.
    if (c === 45 && sql.charCodeAt(i + 1) === 45) {
      while (i < n && sql.charCodeAt(i) !== 10 && sql.charCodeAt(i) !== 13) i++;
      continue;
    }
    if (c === 47 && sql.charCodeAt(i + 1) === 42) {
      let depth = 1;
      i += 2;
      while (i < n && depth > 0) {
        const d = sql.charCodeAt(i);
        if (d === 47 && sql.charCodeAt(i + 1) === 42) {
          depth++;
          i += 2;
        } else if (d === 42 && sql.charCodeAt(i + 1) === 47) {
          depth--;
          i += 2;
        } else i++;
      }
      if (depth > 0) return null;
      continue;
    }
    // Standard string: '' doubles a quote; a backslash is an ordinary character.
    if (c === 39) {
      const end = quotedEnd(sql, i + 1, false);
      if (end < 0 || continues(sql, end)) return null;
      out += sql.slice(copied, i) + "\0S";
      copied = end;
      replaced++;
      i = end;
      prev = VALUE;
      continue;
    }
    // Quoted identifier: verbatim.
    if (c === 34) {
      let j = i + 1;
      for (;;) {
        const q = sql.indexOf('"', j);
        if (q < 0) return null;
        if (sql.charCodeAt(q + 1) === 34) j = q + 2;
        else {
          j = q + 1;
          break;
        }
      }
      i = j;
      prev = IDENT;
      wordStart = wordEnd = 0; // a quoted identifier is never a keyword
      continue;
    }
    if (c === 36 /* $ */) {
      const d = sql.charCodeAt(i + 1);
      if (isDigit(d)) {
        // Parameter $n; "$1abc" is trailing junk.
        let j = i + 1;
        while (j < n && isDigit(sql.charCodeAt(j))) j++;
        if (j < n && isIdentCont(sql.charCodeAt(j))) return null;
        i = j;
        prev = VALUE;
        continue;
      }
      // Dollar quote $tag$...$tag$: verbatim.
      let j = i + 1;
      if (j < n && isIdentStart(sql.charCodeAt(j)) && sql.charCodeAt(j) !== 36) {
        j++;
        while (j < n && isIdentCont(sql.charCodeAt(j)) && sql.charCodeAt(j) !== 36) j++;
      }
      if (sql.charCodeAt(j) === 36) {
        const tag = sql.slice(i, j + 1);
        const close = sql.indexOf(tag, j + 1);
        if (close < 0) return null;
        i = close + tag.length;
        prev = VALUE;
        continue;
      }
      i++;
      prev = OTHER;
      continue;
    }
    if (isIdentStart(c)) {
      let j = i + 1;
      while (j < n && isIdentCont(sql.charCodeAt(j))) j++;
      const next = sql.charCodeAt(j);
      if (j === i + 1) {
        // One-letter prefixes of special literals: E'..', N'..', B'..', X'..', U&'..', U&"..".
        if ((c === 117 || c === 85) && next === 38) {
          const after = sql.charCodeAt(j + 1);
          if (after === 39 || after === 34) return null;
        }
        if (next === 39) {
          if (c === 101 || c === 69) {
            const end = quotedEnd(sql, j + 1, true);
            if (end < 0 || continues(sql, end)) return null;
            if (sql.slice(j + 1, end - 1).includes("\\")) {
              i = end; // escapes can be invalid: keep it verbatim
            } else {
              out += sql.slice(copied, i) + "\0E";
              copied = end;
              replaced++;
              i = end;
            }
            prev = VALUE;
            continue;
          }
          if (c === 110 || c === 78) {
            const end = quotedEnd(sql, j + 1, false);
            if (end < 0 || continues(sql, end)) return null;
            out += sql.slice(copied, i) + "\0N";
            copied = end;
            replaced++;
            i = end;
            prev = VALUE;
            continue;
          }
          if (c === 98 || c === 66 || c === 120 || c === 88) {
            const end = sql.indexOf("'", j + 1);
            if (end < 0 || continues(sql, end + 1)) return null;
            i = end + 1;
            prev = VALUE;
            continue;
          }
        }
      }
      wordStart = i;
      wordEnd = j;
      prev = IDENT;
      i = j;
      continue;
    }
    if (isDigit(c) || (c === 46 && isDigit(sql.charCodeAt(i + 1)))) {
      const end = numberEnd(sql, i);
      if (end < 0) return null;
      const inExprParen = parens.length > 0 && parens[parens.length - 1] === true;
      const context =
        prev === OP ||
        (prev === IDENT && wordIn(sql, wordStart, wordEnd, NUMBER_KEYWORDS)) ||
        ((prev === OPEN || prev === COMMA) && inExprParen);
      if (context) {
        const text = sql.slice(i, end);
        const isInt = /^\d+$/.test(text) && Number(text) <= INT4_MAX;
        out += sql.slice(copied, i) + (isInt ? "\0I" : "\0F");
        copied = end;
        replaced++;
      }
      i = end;
      prev = VALUE;
      continue;
    }
    if (isOpChar(c)) {
      // An operator run; it stops where a comment starts (scan.l does the same).
      i++;
      while (
        i < n &&
        isOpChar(sql.charCodeAt(i)) &&
        !(sql.charCodeAt(i) === 45 && sql.charCodeAt(i + 1) === 45) &&
        !(sql.charCodeAt(i) === 47 && sql.charCodeAt(i + 1) === 42)
      )
        i++;
      prev = OP;
      continue;
    }
    if (c === 40 /* ( */) {
      const top = parens.length > 0 && parens[parens.length - 1] === true;
      parens.push(
        prev === OP ||
          (prev === IDENT && wordIn(sql, wordStart, wordEnd, EXPR_PAREN_KEYWORDS)) ||
          (prev === OPEN && top) ||
          (prev === COMMA && (top || lastClosedExpr)),
      );
      prev = OPEN;
      i++;
      continue;
    }
    if (c === 41 /* ) */) {
      lastClosedExpr = parens.pop() === true;
      prev = CLOSE;
      i++;
      continue;
    }
    if (c === 44 /* , */) {
      // "(1),(2)": a comma right after an expression list keeps the list context.
      if (prev !== CLOSE) lastClosedExpr = false;
      prev = COMMA;
      i++;
      continue;
    }
    if (c === 59 /* ; */) {
      parens.length = 0;
      lastClosedExpr = false;
    }
    prev = OTHER;
    i++;
  }
  if (replaced === 0) return null;
  return out + sql.slice(copied);
}

/** Whether sql[start, end) is one of `words` (lower-case keywords of at most 7 letters). */
function wordIn(sql: string, start: number, end: number, words: ReadonlySet<string>): boolean {
  return end - start <= 7 && words.has(sql.slice(start, end).toLowerCase());
}

/**
 * Whether the literal that ended at `i` continues: PostgreSQL joins 'a' <newline> 'b' into one
 * literal, lexed with the first part's rules (an E-string continues as an E-string). Such texts
 * are rare, so they are simply not normalised. Errs on the side of "continues": any run of
 * whitespace and comments holding a line break, then a quote.
 */
function continues(s: string, i: number): boolean {
  const n = s.length;
  let newline = false;
  while (i < n) {
    const c = s.charCodeAt(i);
    if (c === 10 || c === 13) {
      newline = true;
      i++;
    } else if (isSpace(c)) i++;
    else if (c === 45 && s.charCodeAt(i + 1) === 45) {
      while (i < n && s.charCodeAt(i) !== 10 && s.charCodeAt(i) !== 13) i++;
    } else if (c === 47 && s.charCodeAt(i + 1) === 42) {
      const end = s.indexOf("*/", i + 2);
      if (end < 0) return false;
      if (/[\n\r]/.test(s.slice(i, end))) newline = true;
      i = end + 2;
    } else return newline && c === 39;
  }
  return false;
}

/**
 * The index just past the closing quote of a quoted literal whose content starts at `i`, or -1
 * when it is unterminated. `''` doubles a quote; with `backslash` (E-strings) a backslash
 * escapes the next character.
 */
function quotedEnd(s: string, i: number, backslash: boolean): number {
  const n = s.length;
  let j = i;
  while (j < n) {
    const c = s.charCodeAt(j);
    if (backslash && c === 92) {
      j += 2;
      continue;
    }
    if (c === 39) {
      if (s.charCodeAt(j + 1) === 39) {
        j += 2;
        continue;
      }
      return j + 1;
    }
    j++;
  }
  return -1;
}
