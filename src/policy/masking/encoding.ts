/**
 * The engine reads values as bytes and looks for ASCII patterns (see detectors.ts). That is
 * exact for UTF-8, the single-byte encodings and the EUC family, where every byte of a
 * multi-byte character is >= 0x80. In the client-only encodings below, the second byte of a
 * character may be an ASCII byte ('@', a digit, a letter): a span could start or end inside a
 * character and masking could cut it in two. The session should fail closed (refuse to relay
 * masked results) while the client_encoding it was told in ParameterStatus is one of these.
 */
const UNSAFE = new Set(["SJIS", "SHIFT_JIS_2004", "BIG5", "GBK", "UHC", "GB18030", "JOHAB"]);

/** Can results in this client_encoding (as PostgreSQL names it) be masked safely? */
export function clientEncodingMaskable(clientEncoding: string): boolean {
  return !UNSAFE.has(clientEncoding.trim().toUpperCase());
}
