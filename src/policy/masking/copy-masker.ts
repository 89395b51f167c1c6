import { MaskingError } from "./errors.js";
import type { MaskingProfile } from "./profile.js";
import { maskString, type MaskStrategy } from "./strategies.js";

/**
 * COPY ... TO STDOUT: masking of CopyData ('d') rows.
 *
 * CopyOutResponse ('H') says text (0) or binary (1) and the per-column formats; it does not say
 * whether text means PostgreSQL's text format or CSV, nor the delimiter, NULL string, quote
 * and escape characters: those come from the COPY statement (`parseCopyStatement`). Binary
 * COPY cannot be masked (no per-value framing a detector could read safely): when masking is
 * required, the caller must refuse it (`canMaskCopyFormat`).
 *
 * Rows: PostgreSQL sends one CopyData per row, but rows may in general be split across or
 * packed into CopyData messages; partial rows are buffered until their end arrives. Each field
 * is decoded (text: \N and backslash escapes; CSV: quotes), masked (detectors; column rules by
 * position when the columns are known: `COPY (query) TO` gives no table, so detectors only),
 * and re-encoded only if it changed. The null strategy writes the NULL string.
 */

export interface CopyOutFormat {
  /** 0 text (text or CSV), 1 binary. */
  format: number;
  columnFormats: number[];
}

/** Parses a CopyOutResponse ('H') message buf[start, end). */
export function parseCopyOutResponse(buf: Buffer, start: number, end: number): CopyOutFormat {
  if (end - start < 8 || buf[start] !== 0x48)
    throw new MaskingError("not a CopyOutResponse message");
  if (buf.readInt32BE(start + 1) !== end - start - 1)
    throw new MaskingError("CopyOutResponse length does not match");
  const format = buf[start + 5]!;
  const n = buf.readInt16BE(start + 6);
  if (n < 0 || start + 8 + 2 * n !== end) throw new MaskingError("malformed CopyOutResponse");
  const columnFormats: number[] = [];
  for (let k = 0; k < n; k++) columnFormats.push(buf.readInt16BE(start + 8 + 2 * k));
  return { format, columnFormats };
}

/** Text and CSV COPY can be masked; binary COPY cannot (refuse it when masking applies). */
export function canMaskCopyFormat(format: number): boolean {
  return format === 0;
}

export interface CopyDialect {
  csv: boolean;
  /** One byte. Default tab (text) or ',' (CSV). */
  delimiter: string;
  /** Default "\\N" (text) or "" (CSV). */
  null: string;
  /** CSV only; default '"'. */
  quote: string;
  /** CSV only; default the quote. */
  escape: string;
  /** The first row is a header (column names). */
  header: boolean;
}

export function copyDialect(opts: Partial<CopyDialect> = {}): CopyDialect {
  const csv = opts.csv ?? false;
  const quote = opts.quote ?? '"';
  const d: CopyDialect = {
    csv,
    delimiter: opts.delimiter ?? (csv ? "," : "\t"),
    null: opts.null ?? (csv ? "" : "\\N"),
    quote,
    escape: opts.escape ?? quote,
    header: opts.header ?? false,
  };
  for (const [k, v] of [
    ["delimiter", d.delimiter],
    ["quote", d.quote],
    ["escape", d.escape],
  ] as const) {
    if (v.length !== 1 || v.charCodeAt(0) > 0x7f)
      throw new MaskingError(`COPY ${k} must be one ASCII character`);
  }
  return d;
}

/** A column of the COPY, by position (the table's columns, or the list given to COPY). */
export interface CopyColumn {
  name: string;
  qualifiedName?: string | null;
}

export interface CopyMasker {
  /** False when nothing can change: forward CopyData untouched. */
  readonly active: boolean;
  /**
   * Masks one CopyData message buf[start, end). null: forward it unchanged. Otherwise send the
   * returned bytes instead: zero or one CopyData message (zero-length when the message held only
   * the start of a row, which is kept until its end arrives).
   */
  maskCopyData(buf: Buffer, start: number, end: number): Buffer | null;
  /** At CopyDone: a CopyData with a buffered partial row, masked, or null. Send before CopyDone. */
  finish(): Buffer | null;
}

const COPY_DATA = 0x64;
const NL = 0x0a;

class CopyRowMasker implements CopyMasker {
  readonly active: boolean;
  private readonly rules: boolean[] | null;
  private readonly strategy: MaskStrategy;
  private pending: Buffer | null = null;
  private rows = 0;
  private readonly delim: number;
  private readonly quote: number;
  private readonly escape: number;

  constructor(
    private readonly profile: MaskingProfile,
    private readonly dialect: CopyDialect,
    columns: readonly CopyColumn[] | null,
  ) {
    this.strategy = profile.strategy;
    this.rules = columns
      ? columns.map((c) => profile.matchesColumn(c.qualifiedName, c.name))
      : null;
    this.active = !profile.detectors.empty || (this.rules?.some((r) => r) ?? false);
    this.delim = dialect.delimiter.charCodeAt(0);
    this.quote = dialect.quote.charCodeAt(0);
    this.escape = dialect.escape.charCodeAt(0);
  }

  maskCopyData(buf: Buffer, start: number, end: number): Buffer | null {
    if (!this.active) return null;
    try {
      if (end - start < 5 || buf[start] !== COPY_DATA)
        throw new MaskingError("not a CopyData message");
      if (buf.readInt32BE(start + 1) !== end - start - 1)
        throw new MaskingError("CopyData length does not match");
      const hadPending = this.pending !== null;
      const data = hadPending
        ? Buffer.concat([this.pending!, buf.subarray(start + 5, end)])
        : buf.subarray(start + 5, end);
      this.pending = null;
      const parts: Buffer[] = [];
      let changed = hadPending;
      let pos = 0;
      for (;;) {
        const eol = this.recordEnd(data, pos);
        if (eol < 0) break;
        const masked = this.maskRecord(data, pos, eol);
        if (masked === null) parts.push(data.subarray(pos, eol + 1));
        else {
          changed = true;
          parts.push(masked, Buffer.from([NL]));
        }
        pos = eol + 1;
      }
      if (pos < data.length) {
        this.pending = Buffer.from(data.subarray(pos));
        changed = true;
      }
      if (!changed) return null;
      return copyData(Buffer.concat(parts));
    } catch (err) {
      this.pending = null;
      if (err instanceof MaskingError) throw err;
      throw new MaskingError("masking COPY data failed", { cause: err });
    }
  }

  finish(): Buffer | null {
    if (this.pending === null) return null;
    const data = this.pending;
    this.pending = null;
    try {
      return copyData(this.maskRecord(data, 0, data.length) ?? data);
    } catch (err) {
      if (err instanceof MaskingError) throw err;
      throw new MaskingError("masking COPY data failed", { cause: err });
    }
  }

  /** Index of the newline ending the record that starts at `pos`, or -1 if incomplete. */
  private recordEnd(data: Buffer, pos: number): number {
    if (!this.dialect.csv) return data.indexOf(NL, pos);
    // CSV: newlines inside quoted fields belong to the field.
    const q = this.quote;
    const e = this.escape;
    let inQuote = false;
    for (let i = pos; i < data.length; i++) {
      const c = data[i]!;
      if (inQuote) {
        if (c === e && e !== q && i + 1 < data.length && (data[i + 1] === q || data[i + 1] === e))
          i++;
        else if (c === q) {
          if (e === q && i + 1 < data.length && data[i + 1] === q) i++;
          else inQuote = false;
        }
      } else if (c === q) inQuote = true;
      else if (c === NL) return i;
    }
    return -1;
  }

  /** Masks one record data[start, end) (no newline); null when unchanged. */
  private maskRecord(data: Buffer, start: number, end: number): Buffer | null {
    const header = this.dialect.header && this.rows === 0;
    this.rows++;
    const rules = header ? null : this.rules;
    const anyRule = rules?.some((r) => r) ?? false;
    if (!anyRule && this.profile.detectors.prefilterBytes(data, start, end) === 0) return null;
    const line = data.toString("latin1", start, end);
    const fields = this.dialect.csv ? this.splitCsv(line) : this.splitText(line);
    if (rules && fields.length !== rules.length)
      throw new MaskingError(`a COPY row has ${fields.length} fields, expected ${rules.length}`);
    let changed = false;
    const out: string[] = [];
    for (let k = 0; k < fields.length; k++) {
      const f = fields[k]!;
      let masked: string | null | undefined; // undefined: unchanged; null: NULL
      if (f.value === null) masked = undefined;
      else if (rules?.[k]) {
        masked =
          this.strategy === "null"
            ? null
            : maskString(this.strategy, null, f.value, this.profile.hasher);
      } else {
        const spans = this.profile.detectors.find(f.value);
        if (spans !== null) {
          if (this.strategy === "null") masked = null;
          else {
            let s = "";
            let p = 0;
            for (const sp of spans) {
              s +=
                f.value.slice(p, sp.start) +
                maskString(
                  this.strategy,
                  sp.detector,
                  f.value.slice(sp.start, sp.end),
                  this.profile.hasher,
                );
              p = sp.end;
            }
            masked = s + f.value.slice(p);
          }
        }
      }
      if (masked === undefined) out.push(f.raw);
      else {
        changed = true;
        out.push(masked === null ? this.dialect.null : this.encode(masked));
      }
    }
    return changed ? Buffer.from(out.join(this.dialect.delimiter), "latin1") : null;
  }

  // --- text format -----------------------------------------------------------------------

  private splitText(line: string): { raw: string; value: string | null }[] {
    const out: { raw: string; value: string | null }[] = [];
    const d = this.dialect.delimiter;
    let pos = 0;
    for (;;) {
      // A delimiter preceded by a backslash is data (\ + delimiter escapes it).
      let i = pos;
      let next = -1;
      while (i < line.length) {
        const c = line[i];
        if (c === "\\") i += 2;
        else if (c === d) {
          next = i;
          break;
        } else i++;
      }
      const raw = next < 0 ? line.slice(pos) : line.slice(pos, next);
      out.push({ raw, value: raw === this.dialect.null ? null : unescapeText(raw) });
      if (next < 0) break;
      pos = next + 1;
    }
    return out;
  }

  private encode(value: string): string {
    return this.dialect.csv ? this.quoteCsv(value) : escapeText(value, this.delim);
  }

  // --- CSV -------------------------------------------------------------------------------

  private splitCsv(line: string): { raw: string; value: string | null }[] {
    const out: { raw: string; value: string | null }[] = [];
    const q = this.quote;
    const e = this.escape;
    const d = this.delim;
    let pos = 0;
    for (;;) {
      let i = pos;
      let value = "";
      let quoted = false;
      let seg = pos;
      while (i < line.length) {
        const c = line.charCodeAt(i);
        if (quoted) {
          if (
            c === e &&
            i + 1 < line.length &&
            (line.charCodeAt(i + 1) === q || (e !== q && line.charCodeAt(i + 1) === e))
          ) {
            value += line.slice(seg, i) + line[i + 1];
            i += 2;
            seg = i;
          } else if (c === q) {
            value += line.slice(seg, i);
            quoted = false;
            i++;
            seg = i;
          } else i++;
        } else if (c === q) {
          value += line.slice(seg, i);
          quoted = true;
          i++;
          seg = i;
        } else if (c === d) break;
        else i++;
      }
      if (quoted) throw new MaskingError("unterminated quoted CSV field");
      value += line.slice(seg, i);
      const raw = line.slice(pos, i);
      // NULL is the null string unquoted; a quoted empty string is an empty string.
      out.push({ raw, value: raw === this.dialect.null ? null : value });
      if (i >= line.length) break;
      pos = i + 1;
    }
    return out;
  }

  private quoteCsv(value: string): string {
    const q = this.dialect.quote;
    const e = this.dialect.escape;
    let s = q;
    for (const ch of value) s += ch === q || ch === e ? e + ch : ch;
    return s + q;
  }
}

/** Undoes COPY text-format escapes (a byte string in, a byte string out). */
export function unescapeText(raw: string): string {
  if (raw.indexOf("\\") < 0) return raw;
  let out = "";
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    if (c !== "\\" || i + 1 >= raw.length) {
      out += c;
      continue;
    }
    const n = raw[++i]!;
    switch (n) {
      case "b":
        out += "\b";
        break;
      case "f":
        out += "\f";
        break;
      case "n":
        out += "\n";
        break;
      case "r":
        out += "\r";
        break;
      case "t":
        out += "\t";
        break;
      case "v":
        out += "\v";
        break;
      case "x": {
        const m = /^[0-9a-fA-F]{1,2}/.exec(raw.slice(i + 1, i + 3));
        if (m) {
          out += String.fromCharCode(parseInt(m[0], 16));
          i += m[0].length;
        } else out += "x";
        break;
      }
      default:
        if (n >= "0" && n <= "7") {
          const m = /^[0-7]{1,3}/.exec(raw.slice(i, i + 3))!;
          out += String.fromCharCode(parseInt(m[0], 8) & 0xff);
          i += m[0].length - 1;
        } else out += n;
    }
  }
  return out;
}

/** COPY text-format escaping, as PostgreSQL's CopyAttributeOutText does it. */
export function escapeText(value: string, delimiter: number): string {
  let out = "";
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20) {
      const letter = CONTROL_ESCAPES[c];
      if (letter !== undefined) out += "\\" + letter;
      else if (c === delimiter) out += "\\" + value[i];
      else out += value[i];
    } else if (c === 0x5c || c === delimiter) out += "\\" + value[i];
    else out += value[i];
  }
  return out;
}

const CONTROL_ESCAPES: Record<number, string> = {
  0x08: "b",
  0x0c: "f",
  0x0a: "n",
  0x0d: "r",
  0x09: "t",
  0x0b: "v",
};

function copyData(body: Buffer): Buffer {
  if (body.length === 0) return body;
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = COPY_DATA;
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

export interface CopyMaskerOptions {
  dialect?: Partial<CopyDialect> | CopyDialect;
  /** The COPY's columns by position, when known (COPY table [(cols)] TO); null otherwise. */
  columns?: readonly CopyColumn[] | null;
  /**
   * Without `columns`, a profile with column rules cannot be enforced on the COPY (a
   * `COPY (SELECT card_number FROM customers) TO STDOUT` would bypass them), so creating the
   * masker throws MaskingError: refuse the COPY. Set this only when the caller knows no column
   * rule can apply (its own analysis found the query reads no table with masked columns).
   */
  noColumnRulesApply?: boolean;
}

export function createCopyMasker(
  profile: MaskingProfile,
  opts: CopyMaskerOptions = {},
): CopyMasker {
  const columns = opts.columns ?? null;
  if (columns === null && profile.hasColumnRules && opts.noColumnRulesApply !== true)
    throw new MaskingError(
      "COPY of a query cannot apply column masking rules; it was refused (copy the table, or SELECT)",
    );
  return new CopyRowMasker(profile, copyDialect(opts.dialect), columns);
}
