import { HmacSha256 } from "./hmac-sha256.js";

/**
 * What a masked value or span becomes.
 *
 *   redact  a fixed marker: "[redacted:email]" for a detected span, "[redacted]" for a whole
 *           value masked by a column rule.
 *   last4   the last 4 characters stay, every other letter/digit becomes '*', separators stay:
 *           "4111 1111 1111 1111" → "**** **** **** 1111", "123-45-6789" → "***-**-6789".
 *           Short values keep at most half their characters ("12345" → "***45"), so a value
 *           is never shown whole.
 *   hash    "h:" + 16 hex digits of HMAC-SHA256(hashKey, value bytes): the same value gives the
 *           same token under the same key, in every session, so joins and GROUP BY still work;
 *           without the key it cannot be reversed or confirmed by guessing.
 *   null    the whole value becomes SQL NULL (a span found by a detector nulls its whole value).
 *           Where there is no NULL (a notice's message text) it falls back to redact.
 *
 * Replacements are plain ASCII without quotes, backslashes, commas, tabs or newlines, so they
 * can go inside JSON strings, XML text, array/record literals and COPY rows without escaping.
 *
 * All functions work on byte strings (see detectors.ts): one char per byte.
 */
export const STRATEGY_NAMES = ["redact", "last4", "hash", "null"] as const;
export type MaskStrategy = (typeof STRATEGY_NAMES)[number];

export function redactMarker(detector: string | null): string {
  return detector === null ? "[redacted]" : `[redacted:${detector}]`;
}

/**
 * Characters last4 keeps in place: whitespace and common separators in cards, phones, IBANs,
 * SSNs and emails. Everything else (letters, digits, quotes, backslashes) is masked.
 */
function isSeparator(c: number): boolean {
  return (
    c === 0x20 ||
    c === 0x09 ||
    c === 0x0a ||
    c === 0x0d ||
    c === 0x2d || // -
    c === 0x2e || // .
    c === 0x40 || // @
    c === 0x2f || // /
    c === 0x3a || // :
    c === 0x5f || // _
    c === 0x2b || // +
    c === 0x28 || // (
    c === 0x29 // )
  );
}

/** A UTF-8 continuation byte: part of the character that started before it. */
function isContinuation(c: number): boolean {
  return c >= 0x80 && c <= 0xbf;
}

/**
 * last4 over a byte string. Characters are counted UTF-8-wise (a multi-byte character is one
 * character; masked, it becomes one '*'), so the result is valid UTF-8 whenever the input was.
 */
export function last4(s: string): string {
  // Count maskable characters (non-separator character starts).
  let count = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (!isContinuation(c) && !isSeparator(c)) count++;
  }
  const keep = Math.min(4, Math.floor(count / 2));
  let toMask = count - keep;
  let out = "";
  let i = 0;
  while (i < s.length && toMask > 0) {
    const c = s.charCodeAt(i);
    if (isSeparator(c)) {
      out += s[i];
      i++;
      continue;
    }
    // One character: its start byte and any continuation bytes.
    i++;
    while (i < s.length && isContinuation(s.charCodeAt(i))) i++;
    out += "*";
    toMask--;
  }
  return out + s.slice(i);
}

/** Keyed hashing, with a small cache of recent results (values repeat: ids, emails in joins). */
export class Hasher {
  readonly #hmac: HmacSha256;
  readonly #cache = new Map<string, Buffer>();
  static readonly CACHE_MAX = 4096;

  constructor(key: string | Buffer) {
    const k = typeof key === "string" ? Buffer.from(key, "utf8") : key;
    if (k.length === 0) throw new TypeError("the hash key is empty");
    this.#hmac = new HmacSha256(k);
  }

  /** HMAC-SHA256 of the bytes of byte string `s`. The result must not be modified. */
  digest(s: string): Buffer {
    let d = this.#cache.get(s);
    if (d === undefined) {
      d = this.#hmac.digest(s);
      if (this.#cache.size >= Hasher.CACHE_MAX) this.#cache.clear();
      if (s.length <= 256) this.#cache.set(s, d);
    }
    return d;
  }

  /** "h:" + the first 16 hex digits (64 bits) of the HMAC. */
  token(s: string): string {
    return "h:" + this.digest(s).toString("hex", 0, 8);
  }

  toJSON(): string {
    return "[hasher]";
  }
}

/**
 * The replacement of a detected span (or a whole text value masked by a column rule, with
 * `detector` null), for strategies other than null.
 */
export function maskString(
  strategy: Exclude<MaskStrategy, "null">,
  detector: string | null,
  s: string,
  hasher: Hasher | null,
): string {
  switch (strategy) {
    case "redact":
      return redactMarker(detector);
    case "last4":
      return last4(s);
    case "hash":
      if (hasher === null) throw new TypeError("hash strategy without a hash key");
      return hasher.token(s);
  }
}
