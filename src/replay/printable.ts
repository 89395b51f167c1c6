/**
 * Recorded text (paths, commands, bodies) is whatever a client or target sent: printed raw it
 * could move the cursor, retitle the window or hide lines of the transcript. Control
 * characters other than newline and tab are shown as Unicode control pictures instead.
 */
export function printable(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]/g, (c) => {
    const code = c.charCodeAt(0);
    if (code < 0x20) return String.fromCharCode(0x2400 + code);
    if (code === 0x7f) return "\u2421";
    return `\\x${code.toString(16)}`;
  });
}

/** As printable(), on one line: newlines and tabs shown too. */
export function oneLine(s: string): string {
  return printable(s).replace(/\n/g, "\u2424").replace(/\t/g, "\u2409");
}
