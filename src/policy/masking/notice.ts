import { MaskingError } from "./errors.js";
import type { MaskingProfile } from "./profile.js";
import { redactMarker } from "./strategies.js";

/**
 * ErrorResponse ('E') / NoticeResponse ('N') masking. Errors quote data: "Key
 * (email)=(alice@example.com) already exists.", "Failing row contains (1, 4111 1111 1111 1111)",
 * `invalid input syntax for type integer: "123-45-6789"`.
 *
 * Detectors run over the message (M), detail (D), hint (H), context (W) and internal query (q)
 * fields. The null strategy falls back to redact (a field cannot be NULL). Column rules cannot
 * see values inside an error's text, so when the error names its table (the schema 's' and
 * table 't' fields of constraint violations) and a column rule covers any column of that
 * table, the whole detail field is replaced: it is where the offending row's values are.
 */
const MASKED_FIELDS = new Set([0x4d, 0x44, 0x48, 0x57, 0x71]); // M D H W q

export function maskNoticeFields(
  profile: MaskingProfile,
  buf: Buffer,
  start: number,
  end: number,
): Buffer | null {
  if (!profile.enabled) return null;
  try {
    const type = buf[start];
    if (end - start < 6 || (type !== 0x45 && type !== 0x4e))
      throw new MaskingError("not an ErrorResponse or NoticeResponse message");
    if (buf.readInt32BE(start + 1) !== end - start - 1)
      throw new MaskingError("ErrorResponse length does not match");
    const fields: { code: number; start: number; end: number }[] = [];
    let pos = start + 5;
    while (pos < end && buf[pos] !== 0) {
      const nul = buf.indexOf(0, pos + 1);
      if (nul < 0 || nul >= end) throw new MaskingError("unterminated ErrorResponse field");
      fields.push({ code: buf[pos]!, start: pos + 1, end: nul });
      pos = nul + 1;
    }
    if (pos !== end - 1) throw new MaskingError("malformed ErrorResponse");

    let tableMasked = false;
    if (profile.hasColumnRules) {
      const f = (c: string) => fields.find((x) => x.code === c.charCodeAt(0));
      const s = f("s");
      const t = f("t");
      if (s && t)
        tableMasked = profile.matchesTable(
          buf.toString("utf8", s.start, s.end),
          buf.toString("utf8", t.start, t.end),
        );
    }

    let changed = false;
    const values: (Buffer | null)[] = fields.map((f) => {
      if (!MASKED_FIELDS.has(f.code)) return null;
      if (f.code === 0x44 && tableMasked) {
        changed = true;
        return Buffer.from(redactMarker(null), "latin1");
      }
      if (profile.detectors.prefilterBytes(buf, f.start, f.end) === 0) return null;
      const masked = profile.maskText(buf.toString("latin1", f.start, f.end));
      if (masked === null) return null;
      changed = true;
      return Buffer.from(masked, "latin1");
    });
    if (!changed) return null;

    const parts: Buffer[] = [Buffer.from([type, 0, 0, 0, 0])];
    fields.forEach((f, k) => {
      parts.push(
        Buffer.from([f.code]),
        values[k] ?? buf.subarray(f.start, f.end),
        Buffer.from([0]),
      );
    });
    parts.push(Buffer.from([0]));
    const out = Buffer.concat(parts);
    out.writeInt32BE(out.length - 1, 1);
    return out;
  } catch (err) {
    if (err instanceof MaskingError) throw err;
    throw new MaskingError("masking an ErrorResponse failed", { cause: err });
  }
}

/**
 * NotificationResponse ('A'): detectors over the payload of NOTIFY / pg_notify (the channel
 * name is left alone). Returns null when unchanged.
 */
export function maskNotification(
  profile: MaskingProfile,
  buf: Buffer,
  start: number,
  end: number,
): Buffer | null {
  if (profile.detectors.empty) return null;
  try {
    if (end - start < 11 || buf[start] !== 0x41)
      throw new MaskingError("not a NotificationResponse");
    if (buf.readInt32BE(start + 1) !== end - start - 1)
      throw new MaskingError("NotificationResponse length does not match");
    const chanEnd = buf.indexOf(0, start + 9);
    if (chanEnd < 0 || chanEnd >= end - 1) throw new MaskingError("malformed NotificationResponse");
    const payEnd = end - 1;
    if (buf[payEnd] !== 0 || buf.indexOf(0, chanEnd + 1) !== payEnd)
      throw new MaskingError("malformed NotificationResponse");
    if (profile.detectors.prefilterBytes(buf, chanEnd + 1, payEnd) === 0) return null;
    const masked = profile.maskText(buf.toString("latin1", chanEnd + 1, payEnd));
    if (masked === null) return null;
    const body = Buffer.from(masked, "latin1");
    const out = Buffer.allocUnsafe(chanEnd + 1 - start + body.length + 1);
    buf.copy(out, 0, start, chanEnd + 1);
    body.copy(out, chanEnd + 1 - start);
    out[out.length - 1] = 0;
    out.writeInt32BE(out.length - 1, 1);
    return out;
  } catch (err) {
    if (err instanceof MaskingError) throw err;
    throw new MaskingError("masking a NotificationResponse failed", { cause: err });
  }
}
