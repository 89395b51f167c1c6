/** Builders and readers of the backend messages the masking tests feed and check. */
import { expect } from "vitest";
import type { ColumnInfo } from "../../../src/policy/masking/index.js";

export type Cell = string | Buffer | null;

/** A DataRow message; strings are UTF-8, Buffers go as they are, null is NULL. */
export function dataRow(cells: readonly Cell[]): Buffer {
  const parts: Buffer[] = [];
  const n = Buffer.alloc(2);
  n.writeInt16BE(cells.length);
  parts.push(n);
  for (const c of cells) {
    const len = Buffer.alloc(4);
    if (c === null) {
      len.writeInt32BE(-1);
      parts.push(len);
    } else {
      const v = typeof c === "string" ? Buffer.from(c, "utf8") : c;
      len.writeInt32BE(v.length);
      parts.push(len, v);
    }
  }
  return typed(0x44, Buffer.concat(parts));
}

/** The cells of a DataRow message (Buffers; null for NULL). */
export function readDataRow(msg: Buffer): (Buffer | null)[] {
  expect(msg[0]).toBe(0x44);
  expect(msg.readInt32BE(1)).toBe(msg.length - 1);
  const n = msg.readInt16BE(5);
  const out: (Buffer | null)[] = [];
  let pos = 7;
  for (let k = 0; k < n; k++) {
    const len = msg.readInt32BE(pos);
    pos += 4;
    if (len < 0) out.push(null);
    else {
      out.push(msg.subarray(pos, pos + len));
      pos += len;
    }
  }
  expect(pos).toBe(msg.length);
  return out;
}

export function texts(cells: (Buffer | null)[]): (string | null)[] {
  return cells.map((c) => (c === null ? null : c.toString("utf8")));
}

export function typed(type: number, body: Buffer): Buffer {
  const out = Buffer.alloc(5 + body.length);
  out[0] = type;
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

export interface ColSpec {
  name: string;
  typeOid?: number;
  format?: number;
  tableOid?: number;
  attnum?: number;
  qualifiedName?: string | null;
}

export function rowDescription(cols: readonly ColSpec[]): Buffer {
  const parts: Buffer[] = [];
  const n = Buffer.alloc(2);
  n.writeInt16BE(cols.length);
  parts.push(n);
  for (const c of cols) {
    const f = Buffer.alloc(18);
    f.writeUInt32BE(c.tableOid ?? 0, 0);
    f.writeInt16BE(c.attnum ?? 0, 4);
    f.writeUInt32BE(c.typeOid ?? 25, 6);
    f.writeInt16BE(-1, 10);
    f.writeInt32BE(-1, 12);
    f.writeInt16BE(c.format ?? 0, 16);
    parts.push(Buffer.from(c.name + "\0", "utf8"), f);
  }
  return typed(0x54, Buffer.concat(parts));
}

export function columns(cols: readonly ColSpec[]): ColumnInfo[] {
  return cols.map((c) => ({
    name: c.name,
    tableOid: c.tableOid ?? 0,
    attnum: c.attnum ?? 0,
    typeOid: c.typeOid ?? 25,
    typeSize: -1,
    typmod: -1,
    format: c.format ?? 0,
    qualifiedName: c.qualifiedName ?? null,
  }));
}

export function copyData(s: string): Buffer {
  return typed(0x64, Buffer.from(s, "utf8"));
}

export function copyText(msg: Buffer | null): string | null {
  if (msg === null) return null;
  if (msg.length === 0) return "";
  expect(msg[0]).toBe(0x64);
  expect(msg.readInt32BE(1)).toBe(msg.length - 1);
  return msg.subarray(5).toString("utf8");
}

export function notice(type: "E" | "N", fields: Record<string, string>): Buffer {
  const parts: Buffer[] = [];
  for (const [k, v] of Object.entries(fields)) parts.push(Buffer.from(k + v + "\0", "utf8"));
  parts.push(Buffer.from([0]));
  return typed(type.charCodeAt(0), Buffer.concat(parts));
}

export function readNotice(msg: Buffer): Record<string, string> {
  expect(msg.readInt32BE(1)).toBe(msg.length - 1);
  const out: Record<string, string> = {};
  let pos = 5;
  while (msg[pos] !== 0) {
    const nul = msg.indexOf(0, pos + 1);
    out[String.fromCharCode(msg[pos]!)] = msg.toString("utf8", pos + 1, nul);
    pos = nul + 1;
  }
  expect(pos).toBe(msg.length - 1);
  return out;
}
