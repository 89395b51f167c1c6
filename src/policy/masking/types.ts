import { MaskingError } from "./errors.js";
import { maskString, type Hasher, type MaskStrategy } from "./strategies.js";

/**
 * What masking can do with a value of each PostgreSQL type, in text and binary format.
 *
 * A masked value must still be readable by the client as its column's type, or drivers that
 * decode values (node-postgres, JDBC, npgsql, asyncpg) would fail on it. So:
 *
 *   text-like (text, varchar, bpchar, name, unknown, xml): any replacement, any length, in both
 *     formats (their binary format is the text itself).
 *   json, jsonb: a whole-value replacement is a JSON string ("\"[redacted]\""), so the value
 *     stays valid JSON; jsonb's binary format is a version byte (1) and the text.
 *   bytea: the replacement's bytes (text format: as \x hex).
 *   bool, int2, int4, int8, oid, float4, float8, numeric, uuid: a value of the same type:
 *     redact → 0 (false, the nil uuid); last4 → the last digits of an integer as a number
 *     (1234567890123456 → 3456; at most half its digits) and 0 for other values; hash → an
 *     integer (uuid) derived from the HMAC of the value's text, the same in text and binary
 *     format, so masked keys still join; null → NULL.
 *   types of extensions and user types (oid >= 16384: enums, citext, domains' arrays...): text
 *     format like text; binary format → NULL (their binary layout is unknown).
 *   arrays of text-like types (text[], varchar[], bpchar[], name[], json[], jsonb[]): detectors
 *     run over the array literal (text format) or each element (binary format); a column rule
 *     makes the value NULL.
 *   every other built-in type (dates, timestamps, intervals, inet, other arrays, ranges,
 *     geometry...): a column rule makes the value NULL, whatever the strategy.
 */

/** Type classes (small ints for fast switches). */
export const TypeClass = {
  text: 1,
  json: 2,
  jsonb: 3,
  bytea: 4,
  bool: 5,
  int2: 6,
  int4: 7,
  int8: 8,
  oid: 9,
  float4: 10,
  float8: 11,
  numeric: 12,
  uuid: 13,
  /** A type of an extension or a user's (oid >= 16384): text format is text, binary unknown. */
  custom: 14,
  /** Other built-in types that may carry free text (arrays, records, tsvector, money...). */
  other: 15,
  /** Built-in types that never carry free text: detectors skip them. */
  noText: 16,
  /** Arrays of text-like types (text[], varchar[], bpchar[], name[], json[], jsonb[]). */
  textArray: 17,
} as const;
export type TypeClass = (typeof TypeClass)[keyof typeof TypeClass];

/** PostgreSQL's FirstNormalObjectId: OIDs from here on are not built in. */
const FIRST_NORMAL_OID = 16384;

const CLASS_BY_OID = new Map<number, TypeClass>([
  [25, TypeClass.text], // text
  [1043, TypeClass.text], // varchar
  [1042, TypeClass.text], // bpchar
  [19, TypeClass.text], // name
  [705, TypeClass.text], // unknown
  [142, TypeClass.text], // xml
  [114, TypeClass.json],
  [3802, TypeClass.jsonb],
  [17, TypeClass.bytea],
  [16, TypeClass.bool],
  [21, TypeClass.int2],
  [23, TypeClass.int4],
  [20, TypeClass.int8],
  [26, TypeClass.oid],
  [700, TypeClass.float4],
  [701, TypeClass.float8],
  [1700, TypeClass.numeric],
  [2950, TypeClass.uuid],
  [1009, TypeClass.textArray], // text[]
  [1015, TypeClass.textArray], // varchar[]
  [1014, TypeClass.textArray], // bpchar[]
  [1003, TypeClass.textArray], // name[]
  [199, TypeClass.textArray], // json[]
  [3807, TypeClass.textArray], // jsonb[]
]);

/** Element types of the textArray class (jsonb elements carry a version byte). */
const TEXT_ELEMENT_OIDS = new Set([25, 1043, 1042, 19, 114, 3802]);

/** Built-in types whose text never holds anything a detector looks for. */
const NO_TEXT_OIDS = new Set([
  18, // "char"
  27, // tid
  28, // xid
  29, // cid
  5069, // xid8
  650, // cidr
  869, // inet
  774, // macaddr8
  829, // macaddr
  1082, // date
  1083, // time
  1114, // timestamp
  1184, // timestamptz
  1186, // interval
  1266, // timetz
  1560, // bit
  1562, // varbit
  3220, // pg_lsn
  600, // point
  601, // lseg
  602, // path
  603, // box
  604, // polygon
  628, // line
  718, // circle
  24, // regproc
  2202, // regprocedure
  2203, // regoper
  2204, // regoperator
  2205, // regclass
  2206, // regtype
  4096, // regrole
  4089, // regnamespace
  3734, // regconfig
  3769, // regdictionary
]);

export function typeClassOf(typeOid: number): TypeClass {
  const c = CLASS_BY_OID.get(typeOid);
  if (c !== undefined) return c;
  if (typeOid >= FIRST_NORMAL_OID) return TypeClass.custom;
  return NO_TEXT_OIDS.has(typeOid) ? TypeClass.noText : TypeClass.other;
}

/** How detectors see a value of a column. */
export const DetectMode = {
  none: 0,
  /** The value's bytes are text. */
  text: 1,
  /** Binary jsonb: a version byte, then text. */
  jsonb: 2,
  /** Binary int8: detectors see its decimal digits when it has 13 or more (a card number). */
  int8: 3,
  /** Binary numeric: likewise, when its integer part has 13 or more digits. */
  numeric: 4,
  /** Binary array of a text-like type: detectors see each element. */
  textArray: 5,
} as const;
export type DetectMode = (typeof DetectMode)[keyof typeof DetectMode];

export function detectModeOf(cls: TypeClass, format: number): DetectMode {
  if (format === 0) {
    switch (cls) {
      case TypeClass.text:
      case TypeClass.json:
      case TypeClass.jsonb:
      case TypeClass.int8:
      case TypeClass.numeric:
      case TypeClass.custom:
      case TypeClass.other:
      case TypeClass.textArray:
        return DetectMode.text;
      default:
        // bool, int2/int4/oid (10 digits at most: no card), floats, uuid, bytea, noText.
        return DetectMode.none;
    }
  }
  switch (cls) {
    case TypeClass.text:
    case TypeClass.json:
      return DetectMode.text;
    case TypeClass.jsonb:
      return DetectMode.jsonb;
    case TypeClass.int8:
      return DetectMode.int8;
    case TypeClass.numeric:
      return DetectMode.numeric;
    case TypeClass.textArray:
      return DetectMode.textArray;
    default:
      return DetectMode.none;
  }
}

/** True for classes whose values can be rewritten as arbitrary text (span by span). */
export function isTextual(cls: TypeClass, format: number): boolean {
  switch (cls) {
    case TypeClass.text:
    case TypeClass.json:
    case TypeClass.jsonb:
      return true;
    case TypeClass.custom:
    case TypeClass.other:
    case TypeClass.textArray:
      return format === 0;
    default:
      return false;
  }
}

// --- binary helpers --------------------------------------------------------------------------

const FIXED_BINARY_LENGTH: Partial<Record<TypeClass, number>> = {
  [TypeClass.bool]: 1,
  [TypeClass.int2]: 2,
  [TypeClass.int4]: 4,
  [TypeClass.int8]: 8,
  [TypeClass.oid]: 4,
  [TypeClass.float4]: 4,
  [TypeClass.float8]: 8,
  [TypeClass.uuid]: 16,
};

function checkBinaryLength(cls: TypeClass, len: number): void {
  const want = FIXED_BINARY_LENGTH[cls];
  if (want !== undefined && want !== len)
    throw new MaskingError(`a binary value of ${len} bytes where ${want} were expected`);
}

/** numeric's binary format (numeric_send) → its text (numeric_out). */
export function numericBinaryToText(buf: Uint8Array, pos: number, len: number): string {
  if (len < 8) throw new MaskingError("a binary numeric shorter than its header");
  const dv = new DataView(buf.buffer, buf.byteOffset + pos, len);
  const ndigits = dv.getInt16(0);
  const weight = dv.getInt16(2);
  const sign = dv.getUint16(4);
  const dscale = dv.getUint16(6);
  if (ndigits < 0 || len !== 8 + 2 * ndigits)
    throw new MaskingError("a binary numeric of the wrong length");
  if (sign === 0xc000) return "NaN";
  if (sign === 0xd000) return "Infinity";
  if (sign === 0xf000) return "-Infinity";
  if (sign !== 0 && sign !== 0x4000) throw new MaskingError("a binary numeric with a bad sign");
  const digit = (k: number): number => (k >= 0 && k < ndigits ? dv.getInt16(8 + 2 * k) : 0);
  let int = "";
  if (weight < 0) int = "0";
  else {
    for (let k = 0; k <= weight; k++) {
      const d = digit(k);
      if (d < 0 || d > 9999) throw new MaskingError("a binary numeric with a bad digit");
      int += k === 0 ? String(d) : String(d).padStart(4, "0");
    }
  }
  let frac = "";
  if (dscale > 0) {
    for (let k = weight + 1; frac.length < dscale; k++) frac += String(digit(k)).padStart(4, "0");
    frac = frac.slice(0, dscale);
  }
  const abs = frac === "" ? int : `${int}.${frac}`;
  return sign === 0x4000 && /[1-9]/.test(abs) ? `-${abs}` : abs;
}

/** An integer in decimal → numeric's binary format (dscale 0). */
export function numericIntToBinary(dec: string): Buffer {
  const neg = dec.startsWith("-");
  const digits = (neg ? dec.slice(1) : dec).replace(/^0+/, "");
  if (digits === "") return Buffer.alloc(8); // zero: no digits, weight 0, positive, dscale 0
  const pad = (4 - (digits.length % 4)) % 4;
  const padded = "0".repeat(pad) + digits;
  const groups: number[] = [];
  for (let k = 0; k < padded.length; k += 4) groups.push(Number(padded.slice(k, k + 4)));
  while (groups.length > 1 && groups[groups.length - 1] === 0) groups.pop();
  const out = Buffer.alloc(8 + 2 * groups.length);
  out.writeInt16BE(groups.length, 0);
  out.writeInt16BE(padded.length / 4 - 1, 2);
  out.writeUInt16BE(neg ? 0x4000 : 0, 4);
  out.writeUInt16BE(0, 6);
  groups.forEach((g, k) => out.writeInt16BE(g, 8 + 2 * k));
  return out;
}

function uuidText(buf: Uint8Array, pos: number): string {
  const h = Buffer.from(buf.buffer, buf.byteOffset + pos, 16).toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * The value's text as PostgreSQL prints it (a byte string), for a typed class: what last4 and
 * hash work on, so text and binary format mask alike.
 */
export function canonicalText(
  cls: TypeClass,
  format: number,
  buf: Buffer,
  pos: number,
  len: number,
): string {
  if (format === 0) return buf.toString("latin1", pos, pos + len);
  checkBinaryLength(cls, len);
  switch (cls) {
    case TypeClass.bool:
      return buf[pos] === 0 ? "f" : "t";
    case TypeClass.int2:
      return String(buf.readInt16BE(pos));
    case TypeClass.int4:
      return String(buf.readInt32BE(pos));
    case TypeClass.oid:
      return String(buf.readUInt32BE(pos));
    case TypeClass.int8:
      return buf.readBigInt64BE(pos).toString();
    case TypeClass.float4:
      return String(buf.readFloatBE(pos));
    case TypeClass.float8:
      return String(buf.readDoubleBE(pos));
    case TypeClass.numeric:
      return numericBinaryToText(buf, pos, len);
    case TypeClass.uuid:
      return uuidText(buf, pos);
    default:
      return buf.toString("latin1", pos, pos + len);
  }
}

/** A JSON string literal of a byte string (UTF-8 bytes pass through). */
export function jsonQuote(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x22) out += '\\"';
    else if (c === 0x5c) out += "\\\\";
    else if (c < 0x20) out += "\\u" + c.toString(16).padStart(4, "0");
    else out += s[i];
  }
  return out + '"';
}

/** bytea's text format ("\x..." hex, or the old escape format) → raw bytes. */
export function byteaTextToBytes(s: string): Buffer {
  if (s.startsWith("\\x")) return Buffer.from(s.slice(2), "hex");
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c !== 0x5c) {
      out.push(c);
      continue;
    }
    if (s[i + 1] === "\\") {
      out.push(0x5c);
      i++;
    } else if (/^[0-7]{3}$/.test(s.slice(i + 1, i + 4))) {
      out.push(parseInt(s.slice(i + 1, i + 4), 8));
      i += 3;
    } else throw new MaskingError("malformed bytea text");
  }
  return Buffer.from(out);
}

// --- typed replacements ----------------------------------------------------------------------

function intLast4(text: string): string {
  const digits = text.replace(/^-/, "");
  if (!/^[0-9]+$/.test(digits)) return "0";
  const keep = Math.min(4, Math.floor(digits.length / 2));
  if (keep === 0) return "0";
  return String(Number(digits.slice(-keep)));
}

/**
 * The whole-value replacement of a value of class `cls`; null means SQL NULL. `detector` names
 * what was found (null for a column rule). Throws MaskingError when the value does not fit its
 * type (the column's format or type was wrong: fail closed).
 */
export function replaceValue(
  cls: TypeClass,
  format: number,
  strategy: MaskStrategy,
  detector: string | null,
  buf: Buffer,
  pos: number,
  len: number,
  hasher: Hasher | null,
): Buffer | null {
  if (strategy === "null") return null;
  switch (cls) {
    case TypeClass.text:
      return Buffer.from(
        maskString(strategy, detector, buf.toString("latin1", pos, pos + len), hasher),
        "latin1",
      );
    case TypeClass.custom:
    case TypeClass.other:
      if (format !== 0 || cls === TypeClass.other) return null;
      return Buffer.from(
        maskString(strategy, detector, buf.toString("latin1", pos, pos + len), hasher),
        "latin1",
      );
    case TypeClass.json:
    case TypeClass.jsonb: {
      let p = pos;
      let l = len;
      const versioned = cls === TypeClass.jsonb && format === 1;
      if (versioned) {
        if (len < 1 || buf[pos] !== 1) throw new MaskingError("unknown jsonb binary version");
        p++;
        l--;
      }
      const lit = jsonQuote(
        maskString(strategy, detector, buf.toString("latin1", p, p + l), hasher),
      );
      return versioned ? Buffer.from("\x01" + lit, "latin1") : Buffer.from(lit, "latin1");
    }
    case TypeClass.bytea: {
      const raw =
        format === 0
          ? byteaTextToBytes(buf.toString("latin1", pos, pos + len))
          : buf.subarray(pos, pos + len);
      const masked = Buffer.from(
        maskString(strategy, detector, raw.toString("latin1", 0, raw.length), hasher),
        "latin1",
      );
      return format === 0 ? Buffer.from("\\x" + masked.toString("hex"), "latin1") : masked;
    }
    case TypeClass.noText:
    case TypeClass.textArray:
      return null;
    default:
      return typedValue(cls, format, strategy, canonicalText(cls, format, buf, pos, len), hasher);
  }
}

/** bool, ints, floats, numeric, uuid: a value of the same type (see the top of this file). */
function typedValue(
  cls: TypeClass,
  format: number,
  strategy: Exclude<MaskStrategy, "null">,
  text: string,
  hasher: Hasher | null,
): Buffer {
  const digest = strategy === "hash" ? hashDigest(hasher, text) : null;
  switch (cls) {
    case TypeClass.bool:
      return format === 0 ? Buffer.from("f") : Buffer.from([0]);
    case TypeClass.float4:
    case TypeClass.float8:
      return format === 0 ? Buffer.from("0") : Buffer.alloc(cls === TypeClass.float4 ? 4 : 8);
    case TypeClass.uuid: {
      if (format === 1) return digest ? Buffer.from(digest.subarray(0, 16)) : Buffer.alloc(16);
      return Buffer.from(digest ? uuidText(digest, 0) : "00000000-0000-0000-0000-000000000000");
    }
    case TypeClass.int2:
    case TypeClass.int4:
    case TypeClass.oid:
    case TypeClass.int8: {
      let v: bigint;
      if (digest) {
        v =
          cls === TypeClass.int2
            ? BigInt(digest.readInt16BE(0))
            : cls === TypeClass.int4
              ? BigInt(digest.readInt32BE(0))
              : cls === TypeClass.oid
                ? BigInt(digest.readUInt32BE(0))
                : digest.readBigInt64BE(0);
      } else v = strategy === "last4" ? BigInt(intLast4(text)) : 0n;
      if (format === 0) return Buffer.from(v.toString());
      const size = FIXED_BINARY_LENGTH[cls]!;
      const out = Buffer.alloc(size);
      if (cls === TypeClass.int2) out.writeInt16BE(Number(v));
      else if (cls === TypeClass.int4) out.writeInt32BE(Number(v));
      else if (cls === TypeClass.oid) out.writeUInt32BE(Number(v));
      else out.writeBigInt64BE(v);
      return out;
    }
    case TypeClass.numeric: {
      let dec: string;
      if (digest) dec = String(digest.readUIntBE(0, 6));
      else if (strategy === "last4" && /^-?[0-9]+(\.0*)?$/.test(text))
        dec = intLast4(text.replace(/\..*$/, ""));
      else dec = "0";
      return format === 0 ? Buffer.from(dec) : numericIntToBinary(dec);
    }
    default:
      throw new MaskingError("no typed replacement for this type");
  }
}

function hashDigest(hasher: Hasher | null, text: string): Buffer {
  if (hasher === null) throw new MaskingError("hash strategy without a hash key");
  return hasher.digest(text);
}

/**
 * The decimal text detectors see for a binary int8/numeric, or null when it has fewer than 13
 * integer digits (nothing a detector could find: the shortest card has 13).
 */
export function binaryNumberText(
  mode: DetectMode,
  buf: Buffer,
  pos: number,
  len: number,
): string | null {
  if (mode === DetectMode.int8) {
    if (len !== 8) throw new MaskingError(`a binary int8 of ${len} bytes`);
    const approx = buf.readInt32BE(pos) * 4294967296 + buf.readUInt32BE(pos + 4);
    if (approx < 1e12 && approx > -1e12) return null;
    return buf.readBigInt64BE(pos).toString();
  }
  // numeric: weight >= 3 means an integer part of 13 or more digits.
  if (len < 8) throw new MaskingError("a binary numeric shorter than its header");
  if (buf.readInt16BE(pos + 2) < 3) return null;
  return numericBinaryToText(buf, pos, len);
}

/**
 * Detectors over the elements of a binary array of a text-like type (array_send: ndim, has-null
 * flag, element type, per dimension size and lower bound, then per element a length (-1 for
 * NULL) and its bytes; jsonb elements start with their version byte). `maskElement` gets each
 * element's text as a byte string and returns its masked text or null (unchanged). Returns the
 * new array value, or undefined when nothing changed.
 */
export function maskBinaryTextArray(
  buf: Buffer,
  pos: number,
  len: number,
  maskElement: (text: string) => string | null,
): Buffer | undefined {
  const end = pos + len;
  if (len < 12) throw new MaskingError("a binary array shorter than its header");
  const ndim = buf.readInt32BE(pos);
  const elemType = buf.readUInt32BE(pos + 8);
  if (ndim < 0 || ndim > 6) throw new MaskingError("a binary array with a bad dimension count");
  if (!TEXT_ELEMENT_OIDS.has(elemType))
    throw new MaskingError("a binary array of an unexpected element type");
  const headerEnd = pos + 12 + 8 * ndim;
  if (headerEnd > end) throw new MaskingError("truncated binary array");
  let count = ndim === 0 ? 0 : 1;
  for (let d = 0; d < ndim; d++) count *= buf.readInt32BE(pos + 12 + 8 * d);
  const versioned = elemType === 3802;
  const parts: Buffer[] = [];
  let src = pos; // start of the bytes not yet copied to parts
  let p = headerEnd;
  let changed = false;
  for (let k = 0; k < count; k++) {
    if (p + 4 > end) throw new MaskingError("truncated binary array");
    const elen = buf.readInt32BE(p);
    const epos = p + 4;
    if (elen === -1) {
      p = epos;
      continue;
    }
    if (elen < 0 || epos + elen > end) throw new MaskingError("truncated binary array");
    let tpos = epos;
    if (versioned) {
      if (elen < 1 || buf[epos] !== 1) throw new MaskingError("unknown jsonb binary version");
      tpos++;
    }
    const masked = maskElement(buf.toString("latin1", tpos, epos + elen));
    if (masked !== null) {
      changed = true;
      const body = Buffer.from(versioned ? "\x01" + masked : masked, "latin1");
      const lenWord = Buffer.allocUnsafe(4);
      lenWord.writeInt32BE(body.length);
      parts.push(buf.subarray(src, p), lenWord, body);
      src = epos + elen;
    }
    p = epos + elen;
  }
  if (p !== end) throw new MaskingError("a binary array has trailing bytes");
  if (!changed) return undefined;
  parts.push(buf.subarray(src, end));
  return Buffer.concat(parts);
}
