import { isGwError, ExitCode } from "../errors.js";

/** Terminal output conventions: results on stdout, messages on stderr, colour only on a TTY. */
const useColor = () =>
  process.stderr.isTTY && !process.env["NO_COLOR"] && process.env["TERM"] !== "dumb";
const paint = (code: string, s: string) => (useColor() ? `\x1b[${code}m${s}\x1b[0m` : s);
export const bold = (s: string) => paint("1", s);
export const dim = (s: string) => paint("2", s);
export const red = (s: string) => paint("31", s);
export const green = (s: string) => paint("32", s);
export const yellow = (s: string) => paint("33", s);

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + "\n");
}

export function info(msg: string): void {
  process.stderr.write(msg + "\n");
}

/** Prints an error the way every command does; returns the exit code. */
export function reportError(err: unknown, json: boolean): number {
  if (isGwError(err)) {
    if (json) process.stdout.write(JSON.stringify({ error: err.toJSON() }) + "\n");
    else {
      process.stderr.write(`${red("error:")} ${err.message}\n`);
      if (err.hint) process.stderr.write(`${dim("hint:")} ${err.hint}\n`);
    }
    return err.exitCode;
  }
  const msg = err instanceof Error ? err.message : String(err);
  if (json)
    process.stdout.write(JSON.stringify({ error: { code: "internal", message: msg } }) + "\n");
  else {
    process.stderr.write(`${red("error:")} unexpected failure: ${msg}\n`);
    process.stderr.write(
      `${dim("hint:")} this is a bug in gw; run with GW_DEBUG=1 for details and report it.\n`,
    );
    if (process.env["GW_DEBUG"] && err instanceof Error) process.stderr.write(`${err.stack}\n`);
  }
  return ExitCode.internal;
}
