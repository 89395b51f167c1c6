import { Backend, StartupCode } from "./codes.js";

/**
 * Encoders for the few messages gw writes itself, and small readers for the fields it needs.
 * Relayed messages are never re-encoded: they go through as the bytes that arrived.
 */

export function typed(type: number, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = type;
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

export function cstr(s: string): Buffer {
  return Buffer.from(s + "\0", "utf8");
}

function int32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeInt32BE(n);
  return b;
}

export function startupMessage(params: Record<string, string>): Buffer {
  const parts: Buffer[] = [int32(StartupCode.protocol3)];
  for (const [k, v] of Object.entries(params)) parts.push(cstr(k), cstr(v));
  parts.push(Buffer.from([0]));
  const body = Buffer.concat(parts);
  return Buffer.concat([int32(body.length + 4), body]);
}

export function sslRequest(): Buffer {
  return Buffer.concat([int32(8), int32(StartupCode.sslRequest)]);
}

export function cancelRequest(pid: number, secret: number): Buffer {
  const b = Buffer.allocUnsafe(16);
  b.writeInt32BE(16, 0);
  b.writeInt32BE(StartupCode.cancelRequest, 4);
  b.writeInt32BE(pid, 8);
  b.writeInt32BE(secret, 12);
  return b;
}

export function passwordMessage(password: string): Buffer {
  return typed(0x70, cstr(password));
}

export function saslInitialResponse(mechanism: string, data: Buffer): Buffer {
  return typed(0x70, Buffer.concat([cstr(mechanism), int32(data.length), data]));
}

export function saslResponse(data: Buffer): Buffer {
  return typed(0x70, data);
}

export function authenticationOk(): Buffer {
  return typed(Backend.authentication, int32(0));
}

export function parameterStatus(name: string, value: string): Buffer {
  return typed(Backend.parameterStatus, Buffer.concat([cstr(name), cstr(value)]));
}

export function backendKeyData(pid: number, secret: number): Buffer {
  const body = Buffer.allocUnsafe(8);
  body.writeInt32BE(pid, 0);
  body.writeInt32BE(secret, 4);
  return typed(Backend.backendKeyData, body);
}

export function readyForQuery(status: "I" | "T" | "E" = "I"): Buffer {
  return typed(Backend.readyForQuery, Buffer.from(status, "latin1"));
}

export interface NoticeFields {
  severity: "ERROR" | "FATAL" | "WARNING" | "NOTICE" | "INFO" | "LOG";
  code: string;
  message: string;
  detail?: string | undefined;
  hint?: string | undefined;
}

function noticeBody(f: NoticeFields): Buffer {
  const parts: Buffer[] = [
    Buffer.from("S"),
    cstr(f.severity),
    Buffer.from("V"),
    cstr(f.severity),
    Buffer.from("C"),
    cstr(f.code),
    Buffer.from("M"),
    cstr(f.message),
  ];
  if (f.detail) parts.push(Buffer.from("D"), cstr(f.detail));
  if (f.hint) parts.push(Buffer.from("H"), cstr(f.hint));
  parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

export function errorResponse(
  f: Omit<NoticeFields, "severity"> & { severity?: "ERROR" | "FATAL" },
): Buffer {
  return typed(Backend.errorResponse, noticeBody({ severity: "ERROR", ...f }));
}

export function noticeResponse(
  f: Omit<NoticeFields, "severity"> & { severity?: NoticeFields["severity"] },
): Buffer {
  return typed(Backend.noticeResponse, noticeBody({ severity: "NOTICE", ...f }));
}

/** Reads a NUL-terminated string at `pos`; returns it and the position after the NUL. */
export function readCString(buf: Buffer, pos: number, end: number): [string, number] {
  const nul = buf.indexOf(0, pos);
  if (nul < 0 || nul >= end) throw new RangeError("unterminated string");
  return [buf.toString("utf8", pos, nul), nul + 1];
}

/** Fields of an ErrorResponse or NoticeResponse message, keyed by their one-letter codes. */
export function readNoticeFields(buf: Buffer, start: number, end: number): Map<string, string> {
  const out = new Map<string, string>();
  let pos = start + 5;
  while (pos < end && buf[pos] !== 0) {
    const code = String.fromCharCode(buf[pos]!);
    const [value, next] = readCString(buf, pos + 1, end);
    out.set(code, value);
    pos = next;
  }
  return out;
}

/** Startup parameters (key/value pairs) of a protocol-3 startup message. */
export function readStartupParams(buf: Buffer, start: number, end: number): Map<string, string> {
  const out = new Map<string, string>();
  let pos = start + 8;
  while (pos < end && buf[pos] !== 0) {
    const [k, p1] = readCString(buf, pos, end);
    const [v, p2] = readCString(buf, p1, end);
    out.set(k, v);
    pos = p2;
  }
  if (pos >= end) throw new RangeError("startup parameters are not terminated");
  return out;
}
