/**
 * The masking engine: a pure library over PostgreSQL backend messages. No I/O, no catalog
 * access; the session feeds it messages and what it knows about them.
 *
 * Wiring it into a session (backend → client direction):
 *
 *   const profile = compileMaskingProfile(config.mask)        // once per connection config
 *   if (!profile.enabled) → relay as today.
 *
 *   RowDescription 'T'  cols = parseRowDescription(buf, start, end)
 *                       if the rows belong to a portal bound with result formats (extended
 *                       protocol), cols = applyResultFormats(cols, parseBindResultFormats(bind))
 *                       if profile.hasColumnRules: resolve tableOidsOf(cols) through the catalog
 *                       (cached), cols = withQualifiedNames(cols, (oid, attnum) => "s.t.c")
 *                       masker = createRowMasker(profile, cols)   // until the next T / portal
 *   DataRow 'D'         out = masker.maskDataRow(buf, start, end)
 *                       null → forward the original bytes; else forward `out` instead.
 *   CopyOutResponse 'H' { format } = parseCopyOutResponse(...); if !canMaskCopyFormat(format)
 *                       → refuse (end the statement/session with an error): binary COPY cannot
 *                       be masked. Else the dialect from parseCopyStatement(sql) (null → refuse),
 *                       and the columns by position when COPY names a table (its column list,
 *                       else the table's columns in attnum order, from the catalog);
 *                       copy = createCopyMasker(profile, { dialect, columns }) — it throws
 *                       MaskingError (refuse) for COPY (query) when the profile has column rules.
 *   CopyData 'd'        out = copy.maskCopyData(...): null → forward; else send `out` (may be
 *                       empty: a partial row is held back).
 *   CopyDone 'c'        send copy.finish() (if not null) before the CopyDone.
 *   ErrorResponse 'E' / NoticeResponse 'N'   maskNoticeFields(profile, buf, start, end)
 *   NotificationResponse 'A'                 maskNotification(profile, buf, start, end)
 *
 * ParameterStatus 'S' client_encoding: while !clientEncodingMaskable(value), refuse results
 *                       that need masking (fail closed).
 *
 * Any MaskingError means: do not forward the message; fail closed (end the session with an
 * error to the client). Masked messages are new buffers: the caller's segment batching must
 * flush what it has and send the replacement separately.
 */
export { MaskingError } from "./errors.js";
export {
  DETECTOR_NAMES,
  DetectorSet,
  ibanValid,
  luhnValid,
  prefilterBytes,
  prefilterText,
  type CustomDetector,
  type DetectorName,
  type Span,
} from "./detectors.js";
export {
  Hasher,
  STRATEGY_NAMES,
  last4,
  maskString,
  redactMarker,
  type MaskStrategy,
} from "./strategies.js";
export {
  MaskingProfile,
  compileMaskingProfile,
  splitQualified,
  type MaskingOptions,
} from "./profile.js";
export {
  applyResultFormats,
  parseBindResultFormats,
  parseRowDescription,
  qualifiedName,
  tableOidsOf,
  withQualifiedNames,
  type ColumnInfo,
} from "./rowdesc.js";
export { createRowMasker, type RowMasker } from "./row-masker.js";
export {
  canMaskCopyFormat,
  copyDialect,
  createCopyMasker,
  parseCopyOutResponse,
  type CopyColumn,
  type CopyDialect,
  type CopyMasker,
  type CopyMaskerOptions,
  type CopyOutFormat,
} from "./copy-masker.js";
export { parseCopyStatement, type CopyStatement } from "./copy-statement.js";
export { maskNoticeFields, maskNotification } from "./notice.js";
export { TypeClass, typeClassOf } from "./types.js";
export { clientEncodingMaskable } from "./encoding.js";
