import { MaskingError } from "./errors.js";

/**
 * A result column, from a RowDescription ('T') message, plus the table column it comes from
 * once the session has resolved `tableOid` through the catalog.
 */
export interface ColumnInfo {
  /** The output column's name (after AS). */
  name: string;
  /** The source table's OID; 0 when the column is not a plain table column. */
  tableOid: number;
  /** The source column's attribute number; 0 when not a plain table column. */
  attnum: number;
  typeOid: number;
  /** pg_type.typlen (negative: variable length). */
  typeSize: number;
  typmod: number;
  /** 0 text, 1 binary. */
  format: number;
  /** "schema.table.column" of the source column, when known (see withQualifiedNames). */
  qualifiedName?: string | null;
}

/** Parses a whole RowDescription message buf[start, end) (type byte and length included). */
export function parseRowDescription(buf: Buffer, start: number, end: number): ColumnInfo[] {
  if (end - start < 7 || buf[start] !== 0x54)
    throw new MaskingError("not a RowDescription message");
  if (buf.readInt32BE(start + 1) !== end - start - 1)
    throw new MaskingError("RowDescription length does not match");
  const n = buf.readInt16BE(start + 5);
  if (n < 0) throw new MaskingError("RowDescription with a negative column count");
  const cols: ColumnInfo[] = [];
  let pos = start + 7;
  for (let k = 0; k < n; k++) {
    const nul = buf.indexOf(0, pos);
    if (nul < 0 || nul + 19 > end) throw new MaskingError("truncated RowDescription");
    cols.push({
      name: buf.toString("utf8", pos, nul),
      tableOid: buf.readUInt32BE(nul + 1),
      attnum: buf.readInt16BE(nul + 5),
      typeOid: buf.readUInt32BE(nul + 7),
      typeSize: buf.readInt16BE(nul + 11),
      typmod: buf.readInt32BE(nul + 13),
      format: buf.readInt16BE(nul + 17),
      qualifiedName: null,
    });
    pos = nul + 19;
  }
  if (pos !== end) throw new MaskingError("RowDescription has trailing bytes");
  return cols;
}

/**
 * Result format codes of a Bind ('B') message buf[start, end). A RowDescription sent for
 * Describe of a *statement* says format 0 for every column; the rows of a portal come in the
 * formats its Bind asked for. Apply them with `applyResultFormats` before building a masker.
 */
export function parseBindResultFormats(buf: Buffer, start: number, end: number): number[] {
  if (buf[start] !== 0x42) throw new MaskingError("not a Bind message");
  let pos = buf.indexOf(0, start + 5); // portal name
  if (pos < 0 || pos >= end) throw new MaskingError("truncated Bind");
  pos = buf.indexOf(0, pos + 1); // statement name
  if (pos < 0 || pos >= end) throw new MaskingError("truncated Bind");
  pos++;
  const need = (n: number): void => {
    if (pos + n > end) throw new MaskingError("truncated Bind");
  };
  need(2);
  const nParamFormats = buf.readInt16BE(pos);
  pos += 2 + 2 * nParamFormats;
  need(2);
  const nParams = buf.readInt16BE(pos);
  pos += 2;
  for (let k = 0; k < nParams; k++) {
    need(4);
    const len = buf.readInt32BE(pos);
    pos += 4 + (len > 0 ? len : 0);
  }
  need(2);
  const nResult = buf.readInt16BE(pos);
  pos += 2;
  need(2 * nResult);
  const out: number[] = [];
  for (let k = 0; k < nResult; k++) out.push(buf.readInt16BE(pos + 2 * k));
  return out;
}

/**
 * Columns with the formats of a Bind's result format codes: none → all text, one → all columns
 * in that format, else one per column.
 */
export function applyResultFormats(
  columns: readonly ColumnInfo[],
  codes: readonly number[],
): ColumnInfo[] {
  if (codes.length > 1 && codes.length !== columns.length)
    throw new MaskingError("Bind result formats do not match the columns");
  return columns.map((c, k) => ({
    ...c,
    format: codes.length === 0 ? 0 : codes.length === 1 ? codes[0]! : codes[k]!,
  }));
}

/**
 * The table OIDs to resolve (through the catalog, cached by the session) before masking by
 * column rules: the distinct non-zero `tableOid`s.
 */
export function tableOidsOf(columns: readonly ColumnInfo[]): number[] {
  return [...new Set(columns.map((c) => c.tableOid).filter((o) => o !== 0))];
}

/**
 * Columns with their qualified names filled in by `resolve(tableOid, attnum)`, which returns
 * "schema.table.column" or null (unknown: only name-only rules such as "*.*.email" apply).
 */
export function withQualifiedNames(
  columns: readonly ColumnInfo[],
  resolve: (tableOid: number, attnum: number) => string | null | undefined,
): ColumnInfo[] {
  return columns.map((c) => ({
    ...c,
    qualifiedName:
      c.tableOid !== 0 && c.attnum > 0 ? (resolve(c.tableOid, c.attnum) ?? null) : null,
  }));
}

/** Quotes an identifier part when it needs it for a qualified name (holds a dot or a quote). */
export function qualifiedName(schema: string, table: string, column: string): string {
  const q = (s: string): string => (/[."]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
  return `${q(schema)}.${q(table)}.${q(column)}`;
}
