/**
 * Throughput of the masking engine's DataRow path, on one core, no I/O.
 *
 *   npm run build && node dist/bench/masking.js [--cells 1000000] [--passes 5] [--pii 0.03]
 *
 * Builds `--cells` cells of realistic mixed values (names, ids, amounts, timestamps, statuses,
 * uuids, short notes; a fraction `--pii` of text cells hold an email, phone, card, IBAN, SSN or
 * token) as DataRow messages of 5 columns, packed back to back in one buffer as they would
 * arrive from a target, then runs maskDataRow over every row under several profiles and prints
 * cells/s (the best of `--passes` passes: this machine's speed drifts).
 *
 * Scenarios:
 *   off               no detectors, no rules: the masker is inactive (the cost of asking)
 *   rule, 1 column    no detectors, a column rule on one text column: every row rewritten
 *   detectors, typed  all 9 detectors; int4, text, text, timestamptz, numeric columns
 *   detectors, text   all 9 detectors; 5 text columns (everything is scanned)
 *   detectors, binary all 9 detectors; the typed shape in binary format
 *   detectors+hash    all 9 detectors and a column rule, hash strategy; the text shape
 */
import { parseArgs } from "node:util";
import {
  DETECTOR_NAMES,
  compileMaskingProfile,
  createRowMasker,
  type ColumnInfo,
  type MaskingOptions,
} from "../src/policy/masking/index.js";

const { values: args } = parseArgs({
  options: {
    cells: { type: "string", default: "1000000" },
    passes: { type: "string", default: "5" },
    pii: { type: "string", default: "0.03" },
  },
});
const CELLS = Number(args.cells);
const PASSES = Number(args.passes);
const PII = Number(args.pii);
const COLS = 5;
const ROWS = Math.ceil(CELLS / COLS);

// --- deterministic data ----------------------------------------------------------------------

let seed = 42;
function rand(): number {
  // mulberry32
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
const int = (lo: number, hi: number): number => lo + Math.floor(rand() * (hi - lo + 1));

const FIRST = [
  "Alice",
  "Bob",
  "Carol",
  "Dmitri",
  "Eve",
  "François",
  "Grace",
  "Hiro",
  "Inés",
  "José",
  "Kofi",
  "Liam",
];
const LAST = [
  "Johnson",
  "Smith",
  "Müller",
  "García",
  "Nakamura",
  "O'Brien",
  "Nguyen",
  "Kowalski",
  "Rossi",
  "Okafor",
];
const STATUS = [
  "pending",
  "shipped",
  "delivered",
  "cancelled",
  "refund requested",
  "ok",
  "n/a",
  "ACTIVE",
  "on hold",
];
const NOTES = [
  "customer asked to change the delivery date",
  "left at the front door, signed by neighbour",
  "Order #48213 split into two parcels",
  "VIP - handle with care",
  "address verified on 2024-03-02",
  "see ticket SUP-10234 for details",
  "payment retried 3 times",
];
const PII_VALUES = [
  () => `${pick(FIRST).toLowerCase()}.${pick(LAST).toLowerCase().replace(/\W/g, "")}@example.com`,
  () => `contact me at ${pick(FIRST).toLowerCase()}@mail.example.org please`,
  () => `+1 (415) 555-${String(int(1000, 9999))}`,
  () => "4111 1111 1111 1111",
  () => "card on file 5555555555554444",
  () => "DE89 3704 0044 0532 0130 00",
  () => "ssn 078-05-1120",
  () => "Authorization: Bearer abc123def456ghi789",
  () => "key AKIAIOSFODNN7EXAMPLE",
];

function pad2(n: number): string {
  return String(n).padStart(2, "0");
}
function timestamp(): string {
  return `2024-${pad2(int(1, 12))}-${pad2(int(1, 28))} ${pad2(int(0, 23))}:${pad2(int(0, 59))}:${pad2(int(0, 59))}.${String(int(0, 999999)).padStart(6, "0")}+00`;
}
function uuid(): string {
  const h = () => int(0, 0xffff).toString(16).padStart(4, "0");
  return `${h()}${h()}-${h()}-${h()}-${h()}-${h()}${h()}${h()}`;
}
function textValue(): string {
  if (rand() < PII) return pick(PII_VALUES)();
  const r = rand();
  if (r < 0.3) return `${pick(FIRST)} ${pick(LAST)}`;
  if (r < 0.45) return pick(STATUS);
  if (r < 0.55) return String(int(1, 10_000_000));
  if (r < 0.65) return `${int(0, 99999)}.${pad2(int(0, 99))}`;
  if (r < 0.75) return timestamp();
  if (r < 0.85) return uuid();
  return pick(NOTES);
}

// --- messages --------------------------------------------------------------------------------

type Cell = Buffer | null;

function dataRow(cells: Cell[]): Buffer {
  let size = 7;
  for (const c of cells) size += 4 + (c ? c.length : 0);
  const b = Buffer.allocUnsafe(size);
  b[0] = 0x44;
  b.writeInt32BE(size - 1, 1);
  b.writeInt16BE(cells.length, 5);
  let p = 7;
  for (const c of cells) {
    if (c === null) {
      b.writeInt32BE(-1, p);
      p += 4;
    } else {
      b.writeInt32BE(c.length, p);
      c.copy(b, p + 4);
      p += 4 + c.length;
    }
  }
  return b;
}

function col(name: string, typeOid: number, format = 0): ColumnInfo {
  return {
    name,
    tableOid: 16400,
    attnum: 1,
    typeOid,
    typeSize: -1,
    typmod: -1,
    format,
    qualifiedName: `public.orders.${name}`,
  };
}

const TYPED = [
  col("id", 23),
  col("customer", 25),
  col("note", 25),
  col("created_at", 1184),
  col("amount", 1700),
];
const TYPED_BIN = TYPED.map((c) => ({ ...c, format: 1 }));
const TEXT = ["a", "b", "c", "d", "e"].map((n) => col(n, 25));

interface Shape {
  columns: ColumnInfo[];
  /** Back-to-back DataRows, as a chunk from the target. */
  buf: Buffer;
  offsets: Int32Array;
}

function shape(columns: ColumnInfo[], row: () => Cell[]): Shape {
  const rows: Buffer[] = [];
  for (let r = 0; r < ROWS; r++) rows.push(dataRow(row()));
  const offsets = new Int32Array(ROWS + 1);
  let o = 0;
  rows.forEach((b, k) => {
    offsets[k] = o;
    o += b.length;
  });
  offsets[ROWS] = o;
  return { columns, buf: Buffer.concat(rows), offsets };
}

function numericBinary(intPart: number, cents: number): Buffer {
  // intPart < 10^8: digits [hi, lo] base 10000, weight 1 (or 0 when hi = 0), dscale 2
  const hi = Math.floor(intPart / 10000);
  const lo = intPart % 10000;
  const digits = hi > 0 ? [hi, lo, cents * 100] : [lo, cents * 100];
  const b = Buffer.alloc(8 + 2 * digits.length);
  b.writeInt16BE(digits.length, 0);
  b.writeInt16BE(hi > 0 ? 1 : 0, 2);
  b.writeUInt16BE(0, 4);
  b.writeUInt16BE(2, 6);
  digits.forEach((d, k) => b.writeInt16BE(d, 8 + 2 * k));
  return b;
}

function typedRow(binary: boolean): () => Cell[] {
  return () => {
    const id = int(1, 2_000_000);
    const amount = int(0, 99999);
    const cents = int(0, 99);
    const note = rand() < 0.2 ? null : textValue();
    const customer = rand() < PII ? pick(PII_VALUES)() : `${pick(FIRST)} ${pick(LAST)}`;
    if (!binary) {
      return [
        Buffer.from(String(id)),
        Buffer.from(customer),
        note === null ? null : Buffer.from(note),
        Buffer.from(timestamp()),
        Buffer.from(`${amount}.${pad2(cents)}`),
      ];
    }
    const idb = Buffer.alloc(4);
    idb.writeInt32BE(id);
    const ts = Buffer.alloc(8);
    ts.writeBigInt64BE(BigInt(int(0, 2 ** 40)) * 1000n);
    return [
      idb,
      Buffer.from(customer),
      note === null ? null : Buffer.from(note),
      ts,
      numericBinary(amount, cents),
    ];
  };
}

// --- run -------------------------------------------------------------------------------------

function measure(name: string, opts: MaskingOptions, s: Shape): void {
  const masker = createRowMasker(compileMaskingProfile(opts), s.columns);
  const { buf, offsets } = s;
  let best = Infinity;
  let changed = 0;
  let bytesOut = 0;
  for (let pass = 0; pass < PASSES; pass++) {
    changed = 0;
    bytesOut = 0;
    const t0 = process.hrtime.bigint();
    for (let r = 0; r < ROWS; r++) {
      const out = masker.maskDataRow(buf, offsets[r]!, offsets[r + 1]!);
      if (out !== null) {
        changed++;
        bytesOut += out.length;
      }
    }
    const ns = Number(process.hrtime.bigint() - t0);
    if (ns < best) best = ns;
  }
  const cells = ROWS * COLS;
  const perSec = cells / (best / 1e9);
  console.log(
    `${name.padEnd(20)} ${fmt(perSec).padStart(12)} cells/s  ${(best / cells).toFixed(1).padStart(7)} ns/cell  ` +
      `${((changed / ROWS) * 100).toFixed(1).padStart(5)}% rows rewritten`,
  );
  void bytesOut;
}

function fmt(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

console.log(
  `masking bench: ${fmt(ROWS * COLS)} cells (${fmt(ROWS)} DataRows x ${COLS}), PII rate ${PII}, best of ${PASSES}`,
);
console.log(`node ${process.version}\n`);
const typed = shape(TYPED, typedRow(false));
const typedBin = shape(TYPED_BIN, typedRow(true));
const text = shape(TEXT, () =>
  [0, 1, 2, 3, 4].map(() => (rand() < 0.05 ? null : Buffer.from(textValue()))),
);
const ALL = [...DETECTOR_NAMES];

measure("off", {}, text);
measure("rule, 1 column", { columns: ["public.orders.c"] }, text);
measure("detectors, typed", { detectors: ALL }, typed);
measure("detectors, text", { detectors: ALL }, text);
measure("detectors, binary", { detectors: ALL }, typedBin);
measure(
  "detectors+hash",
  { detectors: ALL, columns: ["public.orders.c"], strategy: "hash", hashKey: "bench-key" },
  text,
);
