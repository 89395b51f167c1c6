/**
 * Masking fails closed: whatever goes wrong while masking (a malformed message, a value that
 * does not fit its column's type, a detector that throws) surfaces as a MaskingError, and the
 * caller must then drop the message and end the statement or session. It never forwards the
 * unmasked bytes.
 *
 * The message names what failed, never the value (it may be the very data being masked).
 */
export class MaskingError extends Error {
  override name = "MaskingError";
  constructor(message: string, opts: { cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
  }
}

/** Runs `fn`; anything it throws comes out as a MaskingError (kept as the cause). */
export function failClosed<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof MaskingError) throw err;
    throw new MaskingError(`masking failed: ${what}`, { cause: err });
  }
}
