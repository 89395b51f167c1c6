import { MaskingError } from "./errors.js";
import type { MaskingProfile } from "./profile.js";
import type { ColumnInfo } from "./rowdesc.js";
import { maskString } from "./strategies.js";
import {
  DetectMode,
  TypeClass,
  binaryNumberText,
  detectModeOf,
  isTextual,
  maskBinaryTextArray,
  replaceValue,
  typeClassOf,
} from "./types.js";
import type { Span } from "./detectors.js";

/**
 * DataRow ('D') rewriting for one result shape (one RowDescription).
 *
 * Per column, decided once when the masker is built:
 *   - a column rule matches → every non-NULL value is replaced whole (see types.ts for what
 *     each type becomes; in binary format only text-like types, json/jsonb and bytea can hold a
 *     marker, others get a same-typed neutral value or NULL);
 *   - otherwise detectors run over values that can hold text: every text-format value except
 *     bool, int2/int4/oid, floats, uuid, bytea and types without free text (dates, timestamps,
 *     inet...); in binary format text-like types, json, jsonb, the elements of arrays of those,
 *     and int8/numeric with 13+ digits (a card number kept in a bigint). A span found in text
 *     is replaced in place; a hit in a number replaces the whole number with a same-typed value.
 *     The null strategy makes the whole value (array) NULL.
 * NULLs stay NULL. A row where nothing changed gives null; when the pre-filter rejects every value
 * (the common case) it costs one pass over the bytes and no allocation.
 */
export interface RowMasker {
  /** False when no column can ever change: the caller may skip maskDataRow altogether. */
  readonly active: boolean;
  readonly columns: readonly ColumnInfo[];
  /**
   * Masks the DataRow message buf[start, end) (type byte and length included). Returns null
   * when nothing changed (forward the original bytes), else a new complete DataRow message.
   * Throws MaskingError on any failure, including a row that does not fit the columns: the
   * caller must then not forward the row.
   */
  maskDataRow(buf: Buffer, start: number, end: number): Buffer | null;
}

const DATA_ROW = 0x44;
/** PostgreSQL's MaxAllocSize: no message may be longer. */
const MAX_MESSAGE = 0x3fffffff;

interface Edit {
  /** Position of the value's length word in the original message. */
  lenPos: number;
  oldLen: number;
  /** The new value; null for SQL NULL. */
  value: Buffer | null;
}

class DataRowMasker implements RowMasker {
  readonly active: boolean;
  private readonly n: number;
  private readonly rule: Uint8Array;
  private readonly detect: Uint8Array;
  private readonly cls: Uint8Array;
  private readonly format: Uint8Array;
  private readonly textual: Uint8Array;

  constructor(
    private readonly profile: MaskingProfile,
    readonly columns: readonly ColumnInfo[],
  ) {
    const n = columns.length;
    this.n = n;
    this.rule = new Uint8Array(n);
    this.detect = new Uint8Array(n);
    this.cls = new Uint8Array(n);
    this.format = new Uint8Array(n);
    this.textual = new Uint8Array(n);
    const detectors = !profile.detectors.empty;
    let active = false;
    columns.forEach((c, k) => {
      if (c.format !== 0 && c.format !== 1)
        throw new MaskingError(`column ${k + 1} has an unknown format code ${c.format}`);
      const cls = typeClassOf(c.typeOid);
      this.cls[k] = cls;
      this.format[k] = c.format;
      this.textual[k] = isTextual(cls, c.format) ? 1 : 0;
      if (profile.matchesColumn(c.qualifiedName, c.name)) {
        this.rule[k] = 1;
        active = true;
      } else if (detectors) {
        this.detect[k] = detectModeOf(cls, c.format);
        if (this.detect[k] !== DetectMode.none) active = true;
      }
    });
    this.active = active;
  }

  maskDataRow(buf: Buffer, start: number, end: number): Buffer | null {
    if (!this.active) return null;
    try {
      return this.mask(buf, start, end);
    } catch (err) {
      if (err instanceof MaskingError) throw err;
      throw new MaskingError("masking a DataRow failed", { cause: err });
    }
  }

  private mask(buf: Buffer, start: number, end: number): Buffer | null {
    if (end - start < 7 || buf[start] !== DATA_ROW) throw new MaskingError("not a DataRow message");
    if (readInt32(buf, start + 1) !== end - start - 1)
      throw new MaskingError("DataRow length does not match");
    const n = (buf[start + 5]! << 8) | buf[start + 6]!;
    if (n !== this.n)
      throw new MaskingError(`DataRow has ${n} columns, its RowDescription ${this.n}`);
    let edits: Edit[] | null = null;
    let pos = start + 7;
    for (let k = 0; k < n; k++) {
      if (pos + 4 > end) throw new MaskingError("truncated DataRow");
      const len = readInt32(buf, pos);
      const vpos = pos + 4;
      if (len === -1) {
        pos = vpos;
        continue;
      }
      if (len < 0 || vpos + len > end) throw new MaskingError("truncated DataRow");
      let value: Buffer | null | undefined;
      if (this.rule[k] === 1) {
        value = replaceValue(
          this.cls[k]! as TypeClass,
          this.format[k]!,
          this.profile.strategy,
          null,
          buf,
          vpos,
          len,
          this.profile.hasher,
        );
      } else if (this.detect[k] !== DetectMode.none) {
        value = this.detectValue(k, buf, vpos, len);
      }
      if (value !== undefined) (edits ??= []).push({ lenPos: pos, oldLen: len, value });
      pos = vpos + len;
    }
    if (pos !== end) throw new MaskingError("DataRow has trailing bytes");
    return edits === null ? null : rebuild(buf, start, end, edits);
  }

  /** Runs detectors over one value: undefined when nothing was found. */
  private detectValue(
    k: number,
    buf: Buffer,
    vpos: number,
    len: number,
  ): Buffer | null | undefined {
    const detectors = this.profile.detectors;
    const mode = this.detect[k]!;
    if (mode === DetectMode.textArray) return this.detectArray(buf, vpos, len);
    let spans: Span[] | null;
    let text: string;
    let textStart = vpos;
    if (mode === DetectMode.text || mode === DetectMode.jsonb) {
      if (mode === DetectMode.jsonb) {
        if (len < 1 || buf[vpos] !== 1) throw new MaskingError("unknown jsonb binary version");
        textStart++;
      }
      const need = detectors.prefilterBytes(buf, textStart, vpos + len);
      if (need === 0) return undefined;
      text = buf.toString("latin1", textStart, vpos + len);
      spans = detectors.find(text, need);
    } else {
      const t = binaryNumberText(mode as DetectMode, buf, vpos, len);
      if (t === null) return undefined;
      text = t;
      spans = detectors.find(text);
    }
    if (spans === null) return undefined;
    const strategy = this.profile.strategy;
    if (strategy === "null") return null;
    if (this.textual[k] !== 1) {
      return replaceValue(
        this.cls[k]! as TypeClass,
        this.format[k]!,
        strategy,
        spans[0]!.detector,
        buf,
        vpos,
        len,
        this.profile.hasher,
      );
    }
    const masked = applySpans(text, spans, this.profile);
    return Buffer.from(mode === DetectMode.jsonb ? "\x01" + masked : masked, "latin1");
  }

  /** Detectors over each element of a binary text array; the null strategy nulls the array. */
  private detectArray(buf: Buffer, vpos: number, len: number): Buffer | null | undefined {
    const detectors = this.profile.detectors;
    const strategy = this.profile.strategy;
    let found = false;
    const out = maskBinaryTextArray(buf, vpos, len, (text) => {
      const spans = detectors.find(text);
      if (spans === null) return null;
      found = true;
      if (strategy === "null") return text;
      return applySpans(text, spans, this.profile);
    });
    if (!found) return undefined;
    return strategy === "null" ? null : out;
  }
}

/** `text` with each span replaced (strategies other than null). */
function applySpans(text: string, spans: readonly Span[], profile: MaskingProfile): string {
  const strategy = profile.strategy === "null" ? "redact" : profile.strategy;
  let out = "";
  let p = 0;
  for (const sp of spans) {
    out +=
      text.slice(p, sp.start) +
      maskString(strategy, sp.detector, text.slice(sp.start, sp.end), profile.hasher);
    p = sp.end;
  }
  return out + text.slice(p);
}

function readInt32(buf: Buffer, pos: number): number {
  return (buf[pos]! << 24) | (buf[pos + 1]! << 16) | (buf[pos + 2]! << 8) | buf[pos + 3]!;
}

/** A new DataRow: the original with the edited values swapped in and lengths rewritten. */
function rebuild(buf: Buffer, start: number, end: number, edits: Edit[]): Buffer {
  let size = end - start;
  for (const e of edits) size += (e.value === null ? 0 : e.value.length) - e.oldLen;
  if (size - 1 > MAX_MESSAGE) throw new MaskingError("a masked DataRow exceeds the message limit");
  const out = Buffer.allocUnsafe(size);
  out[0] = DATA_ROW;
  out.writeInt32BE(size - 1, 1);
  let o = 5;
  let src = start + 5; // column count onward
  for (const e of edits) {
    o += buf.copy(out, o, src, e.lenPos);
    if (e.value === null) {
      out.writeInt32BE(-1, o);
      o += 4;
    } else {
      out.writeInt32BE(e.value.length, o);
      o += 4;
      o += e.value.copy(out, o);
    }
    src = e.lenPos + 4 + e.oldLen;
  }
  o += buf.copy(out, o, src, end);
  if (o !== size) throw new MaskingError("internal error rebuilding a DataRow");
  return out;
}

/**
 * A masker for rows of the given columns (from parseRowDescription, with formats applied from
 * Bind when the RowDescription answered a statement Describe, and qualified names resolved).
 */
export function createRowMasker(
  profile: MaskingProfile,
  columns: readonly ColumnInfo[],
): RowMasker {
  return new DataRowMasker(profile, columns);
}
