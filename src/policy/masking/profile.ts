import {
  DetectorSet,
  isDetectorName,
  type CustomDetector,
  type DetectorName,
} from "./detectors.js";
import { MaskingError } from "./errors.js";
import { Hasher, STRATEGY_NAMES, maskString, type MaskStrategy } from "./strategies.js";

/**
 * A masking profile: the compiled form of a `mask:` config block. Compile once (per connection
 * config), share across sessions; it is immutable and holds no per-session state.
 */
export interface MaskingOptions {
  /**
   * Column rules: globs on "schema.table.column". `*` matches any run of characters within one
   * part, `?` one character; matching ignores case. "card_number" is short for
   * "*.*.card_number", "customers.email" for "*.customers.email".
   */
  columns?: readonly string[];
  /** Detectors run on every text value. */
  detectors?: readonly DetectorName[];
  /** Default "redact". */
  strategy?: MaskStrategy;
  /** The HMAC key of the hash strategy; required with it. */
  hashKey?: string | Buffer;
  /** Extra detectors (no pre-filter: they see every text value). */
  customDetectors?: readonly CustomDetector[];
}

interface ColumnGlob {
  schema: RegExp;
  table: RegExp;
  column: RegExp;
  /** Schema and table parts are "*": the rule can match by column name alone. */
  anyTable: boolean;
}

function globPart(p: string): RegExp {
  let re = "";
  for (const ch of p) {
    // Parts are matched one by one, so '*' may match anything (even a quoted name's dot).
    if (ch === "*") re += "[^]*";
    else if (ch === "?") re += "[^]";
    else re += ch.replace(/[\\^$.|+()[\]{}]/g, "\\$&");
  }
  return new RegExp(`^${re}$`, "i");
}

export function compileColumnGlob(glob: string): ColumnGlob {
  const parts = glob.trim().split(".");
  if (parts.some((p) => p === "") || parts.length > 3)
    throw new MaskingError(`invalid column rule "${glob}": expected schema.table.column`);
  while (parts.length < 3) parts.unshift("*");
  const [s, t, c] = parts as [string, string, string];
  return {
    schema: globPart(s),
    table: globPart(t),
    column: globPart(c),
    anyTable: s === "*" && t === "*",
  };
}

export class MaskingProfile {
  readonly strategy: MaskStrategy;
  readonly detectors: DetectorSet;
  readonly hasher: Hasher | null;
  private readonly globs: readonly ColumnGlob[];

  constructor(opts: MaskingOptions) {
    const strategy = opts.strategy ?? "redact";
    if (!(STRATEGY_NAMES as readonly string[]).includes(strategy))
      throw new MaskingError(`unknown masking strategy "${String(strategy)}"`);
    for (const d of opts.detectors ?? [])
      if (!isDetectorName(d)) throw new MaskingError(`unknown detector "${String(d)}"`);
    if (strategy === "hash" && (opts.hashKey === undefined || opts.hashKey.length === 0))
      throw new MaskingError('the "hash" masking strategy needs a hashKey');
    this.strategy = strategy;
    this.detectors = new DetectorSet(opts.detectors ?? [], opts.customDetectors ?? []);
    this.hasher =
      opts.hashKey !== undefined && opts.hashKey.length > 0 ? new Hasher(opts.hashKey) : null;
    this.globs = (opts.columns ?? []).map(compileColumnGlob);
  }

  /** Anything to do at all? When false, messages can be forwarded without looking. */
  get enabled(): boolean {
    return this.globs.length > 0 || !this.detectors.empty;
  }

  get hasColumnRules(): boolean {
    return this.globs.length > 0;
  }

  /**
   * Does a column rule match this column? With its qualified name ("schema.table.column") when
   * known; otherwise (an expression, a column of a table the resolver could not name) only
   * rules with "*" for schema and table apply, matched against the output column's name. So
   * `*.*.email` still masks `SELECT lower(email) AS email ...`.
   */
  matchesColumn(qualifiedName: string | null | undefined, name: string): boolean {
    if (this.globs.length === 0) return false;
    if (qualifiedName) {
      const parts = splitQualified(qualifiedName);
      if (parts === null) throw new MaskingError("malformed qualified column name");
      const [s, t, c] = parts;
      for (const g of this.globs)
        if (g.schema.test(s) && g.table.test(t) && g.column.test(c)) return true;
      return false;
    }
    for (const g of this.globs) if (g.anyTable && g.column.test(name)) return true;
    return false;
  }

  /** Does any column rule name a column of table schema.table? */
  matchesTable(schema: string, table: string): boolean {
    for (const g of this.globs) if (g.schema.test(schema) && g.table.test(table)) return true;
    return false;
  }

  /**
   * Runs the detectors over a byte string; returns the masked text, or null when nothing was
   * found. The null strategy falls back to redact here (text has no NULL).
   */
  maskText(s: string): string | null {
    const spans = this.detectors.find(s);
    if (spans === null) return null;
    const strategy = this.strategy === "null" ? "redact" : this.strategy;
    let out = "";
    let pos = 0;
    for (const sp of spans) {
      out +=
        s.slice(pos, sp.start) +
        maskString(strategy, sp.detector, s.slice(sp.start, sp.end), this.hasher);
      pos = sp.end;
    }
    return out + s.slice(pos);
  }

  /** maskText over a JavaScript (Unicode) string, such as a query text for a recording. */
  maskUnicodeText(text: string): string {
    const bytes = Buffer.from(text, "utf8").toString("latin1");
    const masked = this.maskText(bytes);
    return masked === null ? text : Buffer.from(masked, "latin1").toString("utf8");
  }
}

/**
 * Splits "schema.table.column". Parts may be double-quoted (PostgreSQL style, "" inside for a
 * quote) when they hold dots; otherwise the first two dots split.
 */
export function splitQualified(q: string): [string, string, string] | null {
  const parts: string[] = [];
  let i = 0;
  while (i <= q.length && parts.length < 3) {
    if (q[i] === '"') {
      let part = "";
      i++;
      for (;;) {
        if (i >= q.length) return null;
        if (q[i] === '"') {
          if (q[i + 1] === '"') {
            part += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        part += q[i];
        i++;
      }
      parts.push(part);
      if (i < q.length && q[i] !== ".") return null;
      i++;
    } else {
      const dot = parts.length < 2 ? q.indexOf(".", i) : -1;
      const end = dot < 0 ? q.length : dot;
      parts.push(q.slice(i, end));
      i = end + 1;
    }
  }
  return parts.length === 3 ? (parts as [string, string, string]) : null;
}

export function compileMaskingProfile(opts: MaskingOptions): MaskingProfile {
  return new MaskingProfile(opts);
}
