/**
 * Detectors: find sensitive spans (an email, a card number, a key...) inside text values.
 *
 * Text model. Detectors work on "byte strings": JavaScript strings holding one byte per char
 * (a Buffer decoded as latin1). Every detector looks for ASCII patterns only, so this works for
 * any ASCII-compatible client encoding (UTF-8, LATIN1, WIN1252, EUC-*), offsets are byte
 * offsets, and the bytes around a span come out exactly as they went in. Bytes >= 0x80 (the
 * parts of a multi-byte UTF-8 character) count as word characters, so "jörg@example.com" is one
 * email and never half of one.
 *
 * Speed. Most values hold nothing sensitive, so each value first goes through a pre-filter: one
 * pass over its bytes counting digits and dashes and noting '@', "eyJ", "AKIA"/"ASIA" and
 * "earer" (see `prefilterBytes`). A detector runs only when the pre-filter says it could match:
 * an email needs '@', a card 13 digits, a phone 10... Names, numbers, timestamps and short text
 * cost a few nanoseconds per byte and allocate nothing.
 *
 * Precision. The detectors are conservative where a false positive would hurt (see each one):
 * cards must pass Luhn and start like a card, IBANs must pass mod-97 for a known country and
 * length, SSNs skip the ranges never issued, phones need a '+', parentheses, or separators in
 * a phone-like grouping (plain integers, dates, times, timestamps and IP addresses never match).
 */

export const DETECTOR_NAMES = [
  "email",
  "credit_card",
  "iban",
  "us_ssn",
  "phone",
  "jwt",
  "aws_access_key",
  "private_key",
  "bearer_token",
] as const;
export type DetectorName = (typeof DETECTOR_NAMES)[number];

/** A sensitive span [start, end) of a byte string, found by detector `detector`. */
export interface Span {
  start: number;
  end: number;
  detector: string;
}

/** A detector of your own (tests, special deployments). It sees every value: no pre-filter. */
export interface CustomDetector {
  readonly name: string;
  /** Pushes the spans it finds in `text` (a byte string) onto `out`, in any order. */
  find(text: string, out: Span[]): void;
}

// --- pre-filter ------------------------------------------------------------------------------

/** Bits of the pre-filter result: which detectors are worth running on a value. */
export const Need = {
  email: 1 << 0,
  credit_card: 1 << 1,
  iban: 1 << 2,
  us_ssn: 1 << 3,
  phone: 1 << 4,
  jwt: 1 << 5,
  aws_access_key: 1 << 6,
  private_key: 1 << 7,
  bearer_token: 1 << 8,
  custom: 1 << 9,
} as const;

// Byte classes for the pre-filter loop. 0: any other byte (breaks digit runs).
const C_DIGIT = 1;
const C_SPACE = 2; // separates digit groups of cards and phones
const C_DASH = 3; // likewise, and counted (SSN, PEM armour)
const C_PSEP = 4; // . ( ) + : separate digit groups of phones only
const C_AT = 5;
const C_UPPER = 6; // an uppercase letter other than A and E
const C_LOWER_E = 7;
const C_UPPER_A = 8;
const C_UPPER_E = 9;
const C_COLON = 10;
const BYTE_CLASS = new Uint8Array(256);
for (let c = 0x30; c <= 0x39; c++) BYTE_CLASS[c] = C_DIGIT;
for (let c = 0x41; c <= 0x5a; c++) BYTE_CLASS[c] = C_UPPER;
BYTE_CLASS[0x20] = C_SPACE;
BYTE_CLASS[0x2d] = C_DASH;
for (const c of [0x2e, 0x28, 0x29, 0x2b]) BYTE_CLASS[c] = C_PSEP;
BYTE_CLASS[0x40] = C_AT;
BYTE_CLASS[0x3a] = C_COLON;
BYTE_CLASS[0x65] = C_LOWER_E;
BYTE_CLASS[0x41] = C_UPPER_A;
BYTE_CLASS[0x45] = C_UPPER_E;

/**
 * The pre-filter over buf[start, end): a bit set of `Need` flags, 0 when no detector can match.
 * One pass, allocation-free, a few ns per byte. What it requires:
 *   email: an '@'; credit_card: 13 digits in one run of digit groups split by single spaces or
 *   dashes; us_ssn: such a run of 9 digits and 2 dashes; phone: 10 digits in one run split by
 *   spaces, dashes, dots, parentheses or '+'; iban: 10 digits, 2 capitals, 15 bytes;
 *   jwt: "eyJ"; aws_access_key: "AKIA"/"ASIA"; bearer_token: "earer"/"EARER";
 *   private_key: 10 dashes.
 */
export function prefilterBytes(buf: Uint8Array, start: number, end: number): number {
  let digits = 0;
  let dashes = 0;
  let uppers = 0;
  let marks = 0;
  // Digit runs: card-style (single space/dash between groups) and phone-style. A 1–2 digit
  // group right before "hh:mm"'s colon is an hour, not part of a number: "2024-01-15 10:30"
  // is a run of 8.
  let cardRun = 0;
  let maxCardRun = 0;
  let phoneRun = 0;
  let maxPhoneRun = 0;
  let group = 0;
  for (let i = start; i < end; i++) {
    const c = BYTE_CLASS[buf[i]!]!;
    if (c === C_DIGIT) {
      digits++;
      cardRun++;
      phoneRun++;
      group++;
      continue;
    }
    if (c <= C_PSEP && c !== 0) {
      if (c === C_DASH) dashes++;
      if (c === C_PSEP || group === 0) {
        if (cardRun > maxCardRun) maxCardRun = cardRun;
        cardRun = 0;
      }
      group = 0;
      continue;
    }
    if (
      c === C_COLON &&
      group > 0 &&
      group <= 2 &&
      i + 1 < end &&
      BYTE_CLASS[buf[i + 1]!] === C_DIGIT
    ) {
      cardRun -= group;
      phoneRun -= group;
    }
    if (cardRun > maxCardRun) maxCardRun = cardRun;
    if (phoneRun > maxPhoneRun) maxPhoneRun = phoneRun;
    cardRun = phoneRun = group = 0;
    if (c === 0 || c === C_COLON) continue;
    switch (c) {
      case C_AT:
        marks |= Need.email;
        break;
      case C_UPPER:
        uppers++;
        break;
      case C_LOWER_E: // "eyJ" (JWT) or "earer" (Bearer)
        if (i + 2 < end) {
          const b1 = buf[i + 1];
          if (b1 === 0x79) {
            if (buf[i + 2] === 0x4a) marks |= Need.jwt;
          } else if (
            b1 === 0x61 &&
            i + 4 < end &&
            buf[i + 2] === 0x72 &&
            buf[i + 3] === 0x65 &&
            buf[i + 4] === 0x72
          ) {
            marks |= Need.bearer_token;
          }
        }
        break;
      case C_UPPER_A: // "AKIA" / "ASIA"
        uppers++;
        if (
          i + 3 < end &&
          (buf[i + 1] === 0x4b || buf[i + 1] === 0x53) &&
          buf[i + 2] === 0x49 &&
          buf[i + 3] === 0x41
        ) {
          marks |= Need.aws_access_key;
        }
        break;
      case C_UPPER_E: // "EARER"
        uppers++;
        if (
          i + 4 < end &&
          buf[i + 1] === 0x41 &&
          buf[i + 2] === 0x52 &&
          buf[i + 3] === 0x45 &&
          buf[i + 4] === 0x52
        ) {
          marks |= Need.bearer_token;
        }
        break;
    }
  }
  if (cardRun > maxCardRun) maxCardRun = cardRun;
  if (phoneRun > maxPhoneRun) maxPhoneRun = phoneRun;
  if (maxPhoneRun >= 9) {
    if (maxCardRun >= 9 && dashes >= 2) marks |= Need.us_ssn;
    if (maxPhoneRun >= 10) marks |= Need.phone;
    if (maxCardRun >= 13) marks |= Need.credit_card;
  }
  if (digits >= 10 && uppers >= 2 && end - start >= 15) marks |= Need.iban;
  if (dashes >= 10) marks |= Need.private_key;
  return marks;
}

let scratch = Buffer.allocUnsafe(1024);

/** The same pre-filter over a byte string (copied into a reused scratch buffer). */
export function prefilterText(s: string): number {
  if (s.length > scratch.length)
    scratch = Buffer.allocUnsafe(Math.max(s.length, scratch.length * 2));
  const n = scratch.write(s, 0, "latin1");
  return prefilterBytes(scratch, 0, n);
}

// --- character helpers -----------------------------------------------------------------------

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

function isAlnum(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x7a);
}

/** A "word" char for boundaries: ASCII letter or digit, '_' or any non-ASCII byte. */
function isWord(c: number): boolean {
  return isAlnum(c) || c === 0x5f || c >= 0x80;
}

// --- email -----------------------------------------------------------------------------------

// RFC 5322 atext minus the rarely seen ones (!#$&'*/=?^`{|}~), plus '.'; non-ASCII bytes are
// allowed (internationalised addresses).
function isLocalChar(c: number): boolean {
  return (
    isAlnum(c) || c === 0x2e || c === 0x5f || c === 0x25 || c === 0x2b || c === 0x2d || c >= 0x80
  );
}

function isLabelChar(c: number): boolean {
  return isAlnum(c) || c === 0x2d || c >= 0x80;
}

/**
 * local@domain.tld: a local part of up to 64 chars, then at least two dot-separated labels, the
 * last one alphabetic (2+ letters) or punycode ("xn--..."). Found by walking out from each '@',
 * so long texts cost linear time.
 */
function findEmails(s: string, out: Span[]): void {
  let at = s.indexOf("@");
  while (at >= 0) {
    let start = at;
    while (start > 0 && at - start < 64 && isLocalChar(s.charCodeAt(start - 1))) start--;
    // A local part never starts with a dot.
    while (start < at && s.charCodeAt(start) === 0x2e) start++;
    if (start < at) {
      // Domain: labels separated by single dots.
      let p = at + 1;
      let labels = 0;
      let lastLabelStart = -1;
      let end = -1;
      for (;;) {
        const ls = p;
        while (p < s.length && isLabelChar(s.charCodeAt(p))) p++;
        if (p === ls || p - ls > 63) break;
        labels++;
        lastLabelStart = ls;
        end = p;
        if (
          p < s.length &&
          s.charCodeAt(p) === 0x2e &&
          p + 1 < s.length &&
          isLabelChar(s.charCodeAt(p + 1))
        )
          p++;
        else break;
      }
      if (labels >= 2 && isTld(s, lastLabelStart, end)) out.push({ start, end, detector: "email" });
      if (end > at) {
        at = s.indexOf("@", end);
        continue;
      }
    }
    at = s.indexOf("@", at + 1);
  }
}

function isTld(s: string, start: number, end: number): boolean {
  if (end - start >= 4 && s.startsWith("xn--", start)) return true;
  if (end - start < 2) return false;
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i) | 0x20;
    if (c < 0x61 || c > 0x7a) return false;
  }
  return true;
}

// --- digit runs (cards) ----------------------------------------------------------------------

/**
 * Credit card numbers: 13–19 digits, optionally grouped with single spaces or dashes, not glued
 * to letters or more digits, starting with 2–6 (Mastercard 2-series, Amex/Diners/JCB,
 * Visa, Mastercard/Maestro, Discover/UnionPay: every major network), and passing the Luhn check.
 * 16-digit runs that start with 1, 7, 8, 9 or 0 (snowflake ids, order numbers) never match.
 */
function findCards(s: string, out: Span[]): void {
  const n = s.length;
  let i = 0;
  while (i < n) {
    const c = s.charCodeAt(i);
    if (!isDigit(c)) {
      i++;
      continue;
    }
    // A run of digits with single separators between them.
    const start = i;
    const prev = start > 0 ? s.charCodeAt(start - 1) : -1;
    let digits = 0;
    let end = i;
    let p = i;
    const runDigits: number[] = [];
    while (p < n) {
      const d = s.charCodeAt(p);
      if (isDigit(d)) {
        runDigits.push(d - 0x30);
        digits++;
        p++;
        end = p;
      } else if (
        (d === 0x20 || d === 0x2d) &&
        p + 1 < n &&
        isDigit(s.charCodeAt(p + 1)) &&
        digits > 0
      ) {
        p++;
      } else break;
    }
    i = end;
    if (digits < 13 || digits > 19) continue;
    if (prev >= 0 && (isWord(prev) || prev === 0x2e)) continue;
    const next = end < n ? s.charCodeAt(end) : -1;
    if (
      next >= 0 &&
      (isWord(next) || (next === 0x2e && end + 1 < n && isDigit(s.charCodeAt(end + 1))))
    )
      continue;
    const first = runDigits[0]!;
    if (first < 2 || first > 6) continue;
    // Luhn from the right.
    let sum = 0;
    for (let k = runDigits.length - 1, dbl = false; k >= 0; k--, dbl = !dbl) {
      let v = runDigits[k]!;
      if (dbl) {
        v *= 2;
        if (v > 9) v -= 9;
      }
      sum += v;
    }
    if (sum % 10 === 0) out.push({ start, end, detector: "credit_card" });
  }
}

/** Luhn check of a string of digits (separators ignored). */
export function luhnValid(digits: string): boolean {
  let sum = 0;
  let dbl = false;
  let count = 0;
  for (let k = digits.length - 1; k >= 0; k--) {
    const c = digits.charCodeAt(k);
    if (!isDigit(c)) continue;
    let v = c - 0x30;
    if (dbl) {
      v *= 2;
      if (v > 9) v -= 9;
    }
    sum += v;
    dbl = !dbl;
    count++;
  }
  return count > 0 && sum % 10 === 0;
}

// --- IBAN ------------------------------------------------------------------------------------

/** IBAN lengths by country (SWIFT IBAN registry). An IBAN of another country never matches. */
// prettier-ignore
const IBAN_LENGTHS: Record<string, number> = {
  AD: 24, AE: 23, AL: 28, AT: 20, AZ: 28, BA: 20, BE: 16, BG: 22, BH: 22, BI: 27, BR: 29, BY: 28,
  CH: 21, CR: 22, CY: 28, CZ: 24, DE: 22, DJ: 27, DK: 18, DO: 28, EE: 20, EG: 29, ES: 24, FI: 18,
  FK: 18, FO: 18, FR: 27, GB: 22, GE: 22, GI: 23, GL: 18, GR: 27, GT: 28, HR: 21, HU: 28, IE: 22,
  IL: 23, IQ: 23, IS: 26, IT: 27, JO: 30, KW: 30, KZ: 20, LB: 28, LC: 32, LI: 21, LT: 20, LU: 20,
  LV: 21, LY: 25, MC: 27, MD: 24, ME: 22, MK: 19, MN: 20, MR: 27, MT: 31, MU: 30, NI: 28, NL: 18,
  NO: 15, OM: 23, PK: 24, PL: 28, PS: 29, PT: 25, QA: 29, RO: 24, RS: 22, RU: 33, SA: 24, SC: 31,
  SD: 18, SE: 24, SI: 19, SK: 24, SM: 27, SO: 23, ST: 25, SV: 28, TL: 23, TN: 24, TR: 26, UA: 29,
  VA: 22, VG: 24, XK: 20, YE: 30,
};

/** mod-97 check of an IBAN without separators (ISO 13616): move the first 4 chars to the end. */
export function ibanValid(iban: string): boolean {
  const len = IBAN_LENGTHS[iban.slice(0, 2)];
  if (len === undefined || iban.length !== len) return false;
  let rem = 0;
  for (let k = 0; k < iban.length; k++) {
    const c = iban.charCodeAt((k + 4) % iban.length);
    if (isDigit(c)) rem = (rem * 10 + (c - 0x30)) % 97;
    else if (c >= 0x41 && c <= 0x5a) rem = (rem * 100 + (c - 0x41 + 10)) % 97;
    else return false;
  }
  return rem === 1;
}

const IBAN_RE = /(?<![A-Za-z0-9])([A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30})(?![A-Za-z0-9])/g;

/**
 * IBANs in upper case, compact or printed in groups of four ("DE89 3704 0044 0532 0130 00"),
 * for a known country, of that country's length, passing mod-97.
 */
function findIbans(s: string, out: Span[]): void {
  IBAN_RE.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = IBAN_RE.exec(s)) !== null) {
    const raw = m[1]!;
    const compact = raw.replace(/ /g, "");
    const len = IBAN_LENGTHS[compact.slice(0, 2)];
    if (len === undefined) continue;
    if (compact.length === len) {
      if (ibanValid(compact))
        out.push({ start: m.index, end: m.index + raw.length, detector: "iban" });
      continue;
    }
    // The run went on past the IBAN (a word after it, say): try just the country's length.
    if (compact.length > len) {
      let taken = 0;
      let k = 0;
      while (k < raw.length && taken < len) {
        if (raw.charCodeAt(k) !== 0x20) taken++;
        k++;
      }
      const next = k < raw.length ? raw.charCodeAt(k) : -1;
      if (next === 0x20 && ibanValid(compact.slice(0, len)))
        out.push({ start: m.index, end: m.index + k, detector: "iban" });
    }
  }
}

// --- US SSN ----------------------------------------------------------------------------------

const SSN_RE = /(?<![0-9A-Za-z-])([0-9]{3})-([0-9]{2})-([0-9]{4})(?![0-9A-Za-z]|-[0-9])/g;

/** AAA-GG-SSSS, except area 000, 666 or 900–999, group 00, serial 0000 (never issued). */
function findSsns(s: string, out: Span[]): void {
  SSN_RE.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = SSN_RE.exec(s)) !== null) {
    const area = m[1]!;
    if (area === "000" || area === "666" || area.charCodeAt(0) === 0x39) continue;
    if (m[2] === "00" || m[3] === "0000") continue;
    out.push({ start: m.index, end: m.index + m[0].length, detector: "us_ssn" });
  }
}

// --- phone -----------------------------------------------------------------------------------

/*
 * Phones, conservatively: 10 to 15 digits in one of
 *   - international: "+" then a non-zero digit, digits with single spaces, dots or dashes, and
 *     optional parentheses: "+14155552671", "+1 (415) 555-2671", "+44 20 7946 0958";
 *   - North American: "(415) 555-2671", "415-555-2671", "415.555.2671", "415 555 2671",
 *     optionally with a leading "1-" / "1 ";
 *   - national with a trunk 0: "020 7946 0958", "07700 900123", "01 23 45 67 89", "030-1234567".
 * Never matched: a plain run of digits (ids, amounts, compact timestamps), dates (2024-01-15 is
 * 8 digits; "15.01.2024" too), times and timestamps ("+00:00"/"+05:30" offsets have a ':' and
 * start with 0), IPv4 addresses (at most 12 digits, groups of 1–3 split by dots:
 * "192.168.100.200" is 3-3-3-3, not a phone grouping), version strings, and digit runs glued to
 * letters or to more digits.
 */
const PHONE_INTL_RE = /(?<![0-9A-Za-z+_])\+[1-9](?:[ .-]?\(?[0-9]+\)?)+/g;
const PHONE_NANP_RE =
  /(?<![0-9A-Za-z+_.-])(?:1[ .-])?(?:\([0-9]{3}\) ?|[0-9]{3}[ .-])[0-9]{3}[ .-][0-9]{4}(?![0-9A-Za-z_]|[.-][0-9])/g;
const PHONE_TRUNK_RE =
  /(?<![0-9A-Za-z+_.-])0[0-9]{1,4}(?:[ .-][0-9]{2,8}){1,4}(?![0-9A-Za-z_]|[.:-][0-9])/g;

function countDigits(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) if (isDigit(s.charCodeAt(i))) n++;
  return n;
}

function findPhones(s: string, out: Span[]): void {
  let m: RegExpExecArray | null;
  PHONE_INTL_RE.lastIndex = 0;
  while ((m = PHONE_INTL_RE.exec(s)) !== null) {
    let text = m[0];
    // Trailing separators and an unbalanced ')' are not part of the number.
    if (text.endsWith(")") && !balanced(text)) text = text.slice(0, -1);
    const end = m.index + text.length;
    const next = end < s.length ? s.charCodeAt(end) : -1;
    if (next >= 0 && (isWord(next) || next === 0x3a)) continue; // "+1234:..." offsets, glued words
    if (!balanced(text)) continue;
    const d = countDigits(text);
    if (d >= 10 && d <= 15) out.push({ start: m.index, end, detector: "phone" });
  }
  PHONE_NANP_RE.lastIndex = 0;
  while ((m = PHONE_NANP_RE.exec(s)) !== null) {
    out.push({ start: m.index, end: m.index + m[0].length, detector: "phone" });
  }
  PHONE_TRUNK_RE.lastIndex = 0;
  while ((m = PHONE_TRUNK_RE.exec(s)) !== null) {
    const d = countDigits(m[0]);
    if (d >= 10 && d <= 12)
      out.push({ start: m.index, end: m.index + m[0].length, detector: "phone" });
  }
}

function balanced(s: string): boolean {
  let depth = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x28) {
      if (++depth > 1) return false;
    } else if (c === 0x29 && --depth < 0) return false;
  }
  return depth === 0;
}

// --- JWT -------------------------------------------------------------------------------------

const JWT_RE =
  /(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)?(?![A-Za-z0-9_-])/g;

/**
 * JWTs (JWS compact serialisation, and JWE's five parts): base64url parts joined by dots whose
 * first part decodes to a JSON object with an "alg" string.
 */
function findJwts(s: string, out: Span[]): void {
  JWT_RE.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = JWT_RE.exec(s)) !== null) {
    const header = m[0].slice(0, m[0].indexOf("."));
    if (jwtHeaderOk(header))
      out.push({ start: m.index, end: m.index + m[0].length, detector: "jwt" });
  }
}

function jwtHeaderOk(b64: string): boolean {
  if (b64.length > 4096) return false;
  try {
    const parsed: unknown = JSON.parse(Buffer.from(b64, "base64url").toString("utf8"));
    return (
      typeof parsed === "object" &&
      parsed !== null &&
      typeof (parsed as { alg?: unknown }).alg === "string"
    );
  } catch {
    return false;
  }
}

// --- AWS access key id -----------------------------------------------------------------------

const AWS_RE = /(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])/g;

function findAwsKeys(s: string, out: Span[]): void {
  AWS_RE.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = AWS_RE.exec(s)) !== null)
    out.push({ start: m.index, end: m.index + m[0].length, detector: "aws_access_key" });
}

// --- private keys ----------------------------------------------------------------------------

const PEM_BEGIN_RE = /-----BEGIN ((?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?)-----/g;

/**
 * PEM/OpenSSH/PGP private key blocks, from "-----BEGIN ... PRIVATE KEY-----" through the
 * matching END line. A block without its END line (a truncated value) is masked to the end of
 * the text.
 */
function findPrivateKeys(s: string, out: Span[]): void {
  PEM_BEGIN_RE.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = PEM_BEGIN_RE.exec(s)) !== null) {
    const endMarker = `-----END ${m[1]}-----`;
    const endAt = s.indexOf(endMarker, m.index + m[0].length);
    const end = endAt < 0 ? s.length : endAt + endMarker.length;
    out.push({ start: m.index, end, detector: "private_key" });
    PEM_BEGIN_RE.lastIndex = end;
  }
}

// --- bearer tokens ---------------------------------------------------------------------------

const BEARER_RE = /(?<![A-Za-z0-9])(?:Bearer|bearer|BEARER)[ \t]+([A-Za-z0-9\-._~+/]+=*)/g;

/**
 * "Bearer <token>" (an Authorization header value, RFC 6750 token68). Only the token is masked;
 * "Bearer " stays. To keep prose ("the bearer of this note") out, the token must be 8+ chars
 * holding a digit or one of -_~+/=, or 20+ chars.
 */
function findBearerTokens(s: string, out: Span[]): void {
  BEARER_RE.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = BEARER_RE.exec(s)) !== null) {
    let token = m[1]!;
    while (token.endsWith(".")) token = token.slice(0, -1);
    if (token.length < 8) continue;
    if (token.length < 20 && !/[0-9\-_~+/=]/.test(token)) continue;
    const start = m.index + m[0].length - m[1]!.length;
    out.push({ start, end: start + token.length, detector: "bearer_token" });
  }
}

// --- the set ---------------------------------------------------------------------------------

const FINDERS: Record<DetectorName, (s: string, out: Span[]) => void> = {
  email: findEmails,
  credit_card: findCards,
  iban: findIbans,
  us_ssn: findSsns,
  phone: findPhones,
  jwt: findJwts,
  aws_access_key: findAwsKeys,
  private_key: findPrivateKeys,
  bearer_token: findBearerTokens,
};

export function isDetectorName(s: string): s is DetectorName {
  return (DETECTOR_NAMES as readonly string[]).includes(s);
}

/**
 * A fixed set of detectors. `find` returns the sensitive spans of a byte string, sorted and
 * non-overlapping (overlaps are merged, keeping the first detector's name), or null.
 */
export class DetectorSet {
  /** The `Need` bits of the enabled built-in detectors. */
  readonly mask: number;
  private readonly builtins: { bit: number; find: (s: string, out: Span[]) => void }[];
  private readonly custom: readonly CustomDetector[];

  constructor(names: readonly DetectorName[], custom: readonly CustomDetector[] = []) {
    let mask = 0;
    const builtins: { bit: number; find: (s: string, out: Span[]) => void }[] = [];
    // Fixed order, so that merged overlaps are named the same way every time.
    for (const name of DETECTOR_NAMES) {
      if (!names.includes(name)) continue;
      mask |= Need[name];
      builtins.push({ bit: Need[name], find: FINDERS[name] });
    }
    for (const name of names)
      if (!isDetectorName(name)) throw new TypeError(`unknown detector ${String(name)}`);
    if (custom.length > 0) mask |= Need.custom;
    this.mask = mask;
    this.builtins = builtins;
    this.custom = custom;
  }

  get empty(): boolean {
    return this.mask === 0;
  }

  /** Which detectors to run on buf[start, end); 0 = none can match. */
  prefilterBytes(buf: Uint8Array, start: number, end: number): number {
    if (this.custom.length > 0) return this.mask;
    return prefilterBytes(buf, start, end) & this.mask;
  }

  prefilterText(s: string): number {
    if (this.custom.length > 0) return this.mask;
    return prefilterText(s) & this.mask;
  }

  /**
   * Spans of `s` (a byte string). `need` is the pre-filter's answer for `s`; without it the
   * pre-filter runs here.
   */
  find(s: string, need: number = this.prefilterText(s)): Span[] | null {
    if (need === 0) return null;
    const out: Span[] = [];
    for (const b of this.builtins) if ((need & b.bit) !== 0) b.find(s, out);
    for (const d of this.custom) d.find(s, out);
    if (out.length === 0) return null;
    return mergeSpans(out, s.length);
  }
}

/**
 * Sorts spans by start and merges overlapping ones. A span outside [0, len) is a detector bug:
 * it throws (and masking fails closed).
 */
export function mergeSpans(spans: Span[], len: number): Span[] {
  for (const sp of spans) {
    if (!(sp.start >= 0 && sp.end <= len && sp.start < sp.end))
      throw new RangeError("a detector returned a span outside its text");
  }
  if (spans.length === 1) return spans;
  spans.sort((a, b) => a.start - b.start || b.end - a.end);
  const out: Span[] = [spans[0]!];
  for (let k = 1; k < spans.length; k++) {
    const sp = spans[k]!;
    const last = out[out.length - 1]!;
    if (sp.start < last.end) {
      if (sp.end > last.end) last.end = sp.end;
    } else out.push(sp);
  }
  return out;
}
