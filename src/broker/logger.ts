/**
 * Structured log lines (JSON, one per line) on stderr. Secrets never belong in a log line;
 * as a second line of defence, every value registered with `redact` is scrubbed from output.
 */
export type LogLevel = "debug" | "info" | "warn" | "error";
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  log(level: LogLevel, msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

const secrets = new Set<string>();

/** Registers a value that must never appear in a log line (target passwords, tokens). */
export function redact(value: string | undefined): void {
  if (value && value.length >= 4) secrets.add(value);
}

export function scrub(text: string): string {
  let out = text;
  for (const s of secrets) if (out.includes(s)) out = out.split(s).join("[redacted]");
  // Bearer tokens and JWTs have a recognisable shape; never let one through.
  return out.replace(/eyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]*/g, "[redacted-jwt]");
}

export function createLogger(
  opts: { level?: LogLevel; write?: (line: string) => void; base?: Record<string, unknown> } = {},
): Logger {
  const min =
    ORDER[opts.level ?? (process.env["GW_LOG_LEVEL"] as LogLevel | undefined) ?? "info"] ??
    ORDER.info;
  const write = opts.write ?? ((line: string) => process.stderr.write(line + "\n"));
  const base = opts.base ?? {};
  const make = (bound: Record<string, unknown>): Logger => ({
    log(level, msg, fields) {
      if (ORDER[level] < min) return;
      write(
        scrub(JSON.stringify({ time: new Date().toISOString(), level, msg, ...bound, ...fields })),
      );
    },
    child(fields) {
      return make({ ...bound, ...fields });
    },
  });
  return make(base);
}
