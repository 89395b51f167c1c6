import { ExitCode, GwError, isGwError } from "../errors.js";

/*
 * The messages between ThreadedStore (the broker's thread) and the store's worker thread.
 * Calls travel in batches (one postMessage per tick each way): a message costs microseconds
 * whatever it carries, and a busy broker makes many small calls.
 */

export interface StoreCall {
  id: number;
  method: string;
  args: unknown[];
}

export type StoreReply =
  { id: number; ok: true; value: unknown } | { id: number; ok: false; error: WireError };

export type WorkerMessage =
  | { type: "ready"; methods: string[] }
  | { type: "failed"; error: WireError }
  | { type: "replies"; replies: StoreReply[] };

export type HostMessage = { type: "calls"; calls: StoreCall[] };

/** An error as it crosses threads: a GwError keeps its code, hint and exit code. */
export interface WireError {
  gw: boolean;
  code?: string;
  message: string;
  hint?: string;
  exitCode?: number;
  cause?: string;
}

export function toWire(err: unknown): WireError {
  if (isGwError(err)) {
    return {
      gw: true,
      code: err.code,
      message: err.message,
      ...(err.hint !== undefined ? { hint: err.hint } : {}),
      exitCode: err.exitCode,
      ...(err.cause !== undefined ? { cause: String(err.cause) } : {}),
    };
  }
  return { gw: false, message: err instanceof Error ? err.message : String(err) };
}

export function fromWire(e: WireError): Error {
  if (!e.gw) return new Error(e.message);
  return new GwError(e.code ?? "store_error", e.message, {
    exitCode: (e.exitCode ?? ExitCode.failure) as ExitCode,
    ...(e.hint !== undefined ? { hint: e.hint } : {}),
    ...(e.cause !== undefined ? { cause: new Error(e.cause) } : {}),
  });
}
