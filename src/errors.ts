/**
 * One error model for everything a user can see.
 *
 * A GwError carries a stable code (for scripts and docs), a message that says what happened
 * and what to do, and the process exit code the CLI uses. Anything that is not a GwError is a
 * bug or an internal failure: it is logged, and the user gets a generic message instead of
 * internals (which could hold secrets).
 */
export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
  config: 3,
  auth: 4,
  forbidden: 5,
  unavailable: 6,
  conflict: 7,
  internal: 70,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export class GwError extends Error {
  readonly code: string;
  readonly exitCode: ExitCode;
  readonly hint: string | undefined;

  constructor(
    code: string,
    message: string,
    opts: { exitCode?: ExitCode; hint?: string; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "GwError";
    this.code = code;
    this.exitCode = opts.exitCode ?? ExitCode.failure;
    this.hint = opts.hint;
  }

  toJSON(): { code: string; message: string; hint?: string } {
    return this.hint === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, hint: this.hint };
  }
}

export function isGwError(err: unknown): err is GwError {
  return err instanceof GwError;
}
