import { describe, expect, it } from "vitest";
import {
  DETECTOR_NAMES,
  MaskingError,
  applyResultFormats,
  compileMaskingProfile,
  createRowMasker,
  parseBindResultFormats,
  parseRowDescription,
  tableOidsOf,
  withQualifiedNames,
  type MaskingOptions,
} from "../../../src/policy/masking/index.js";
import { numericBinaryToText, numericIntToBinary } from "../../../src/policy/masking/types.js";
import {
  columns,
  dataRow,
  readDataRow,
  rowDescription,
  texts,
  typed,
  type Cell,
  type ColSpec,
} from "./messages.js";

const OID = {
  bool: 16,
  bytea: 17,
  int8: 20,
  int2: 21,
  int4: 23,
  text: 25,
  json: 114,
  float8: 701,
  varchar: 1043,
  timestamptz: 1184,
  numeric: 1700,
  uuid: 2950,
  jsonb: 3802,
  textArray: 1009,
};

const ALL = { detectors: [...DETECTOR_NAMES] } satisfies MaskingOptions;

function mask(opts: MaskingOptions, cols: ColSpec[], cells: Cell[]): (Buffer | null)[] | null {
  const masker = createRowMasker(compileMaskingProfile(opts), columns(cols));
  const msg = dataRow(cells);
  // Embed the message in a bigger buffer: maskers get (buf, start, end) slices of a chunk.
  const chunk = Buffer.concat([Buffer.from("xxxx"), msg, Buffer.from("yy")]);
  const out = masker.maskDataRow(chunk, 4, 4 + msg.length);
  return out === null ? null : readDataRow(out);
}

function int(oid: number, v: number | bigint): Buffer {
  if (oid === OID.int2) {
    const b = Buffer.alloc(2);
    b.writeInt16BE(Number(v));
    return b;
  }
  if (oid === OID.int4) {
    const b = Buffer.alloc(4);
    b.writeInt32BE(Number(v));
    return b;
  }
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(BigInt(v));
  return b;
}

describe("parseRowDescription", () => {
  it("reads every field, from a slice of a bigger buffer", () => {
    const msg = rowDescription([
      { name: "id", typeOid: OID.int4, tableOid: 16400, attnum: 1 },
      { name: "émail", typeOid: OID.varchar, tableOid: 16400, attnum: 2, format: 1 },
      { name: "n", typeOid: OID.numeric },
    ]);
    const chunk = Buffer.concat([Buffer.from([1, 2, 3]), msg]);
    const cols = parseRowDescription(chunk, 3, chunk.length);
    expect(cols.map((c) => [c.name, c.tableOid, c.attnum, c.typeOid, c.format])).toEqual([
      ["id", 16400, 1, OID.int4, 0],
      ["émail", 16400, 2, OID.varchar, 1],
      ["n", 0, 0, OID.numeric, 0],
    ]);
    expect(tableOidsOf(cols)).toEqual([16400]);
    const named = withQualifiedNames(cols, (oid, attnum) =>
      oid === 16400 ? `public.customers.${attnum === 1 ? "id" : "email"}` : null,
    );
    expect(named.map((c) => c.qualifiedName)).toEqual([
      "public.customers.id",
      "public.customers.email",
      null,
    ]);
  });

  it("rejects malformed messages with MaskingError", () => {
    const msg = rowDescription([{ name: "id" }]);
    expect(() => parseRowDescription(msg, 0, msg.length - 1)).toThrow(MaskingError);
    const bad = Buffer.from(msg);
    bad.writeInt16BE(2, 5);
    expect(() => parseRowDescription(bad, 0, bad.length)).toThrow(MaskingError);
  });

  it("takes result formats from Bind", () => {
    const bind = (codes: number[]) => {
      const parts = [Buffer.from("p\0s\0"), Buffer.from([0, 1, 0, 0]), Buffer.from([0, 1])];
      const v = Buffer.from("42");
      const len = Buffer.alloc(4);
      len.writeInt32BE(v.length);
      parts.push(len, v);
      const n = Buffer.alloc(2);
      n.writeInt16BE(codes.length);
      parts.push(n);
      for (const c of codes) {
        const b = Buffer.alloc(2);
        b.writeInt16BE(c);
        parts.push(b);
      }
      return typed(0x42, Buffer.concat(parts));
    };
    const cols = columns([{ name: "a" }, { name: "b" }]);
    const b1 = bind([1]);
    expect(parseBindResultFormats(b1, 0, b1.length)).toEqual([1]);
    expect(applyResultFormats(cols, [1]).map((c) => c.format)).toEqual([1, 1]);
    const b2 = bind([0, 1]);
    expect(
      applyResultFormats(cols, parseBindResultFormats(b2, 0, b2.length)).map((c) => c.format),
    ).toEqual([0, 1]);
    expect(applyResultFormats(cols, []).map((c) => c.format)).toEqual([0, 0]);
    expect(() => applyResultFormats(cols, [0, 1, 1])).toThrow(MaskingError);
  });
});

describe("DataRow, text format, detectors", () => {
  const cols: ColSpec[] = [
    { name: "id", typeOid: OID.int4 },
    { name: "note", typeOid: OID.text },
    { name: "at", typeOid: OID.timestamptz },
    { name: "contact", typeOid: OID.varchar },
  ];

  it("masks only the spans, in any column, and keeps NULLs", () => {
    const out = mask(ALL, cols, [
      "1",
      "contact alice@example.com now",
      null,
      "card 4111 1111 1111 1111, ssn 123-45-6789",
    ]);
    expect(texts(out!)).toEqual([
      "1",
      "contact [redacted:email] now",
      null,
      "card [redacted:credit_card], ssn [redacted:us_ssn]",
    ]);
  });

  it("returns null (no copy) when nothing is found", () => {
    expect(mask(ALL, cols, ["1", "Alice Johnson", "2024-01-15 10:30:00+00", null])).toBeNull();
    expect(mask(ALL, cols, ["1", "4111111111111112", "2024-01-15 10:30:00+00", "+123"])).toBeNull();
    expect(mask(ALL, cols, [null, null, null, null])).toBeNull();
  });

  it("is inactive when nothing can change", () => {
    const p = compileMaskingProfile({});
    const m = createRowMasker(p, columns(cols));
    expect(m.active).toBe(false);
    const msg = dataRow(["1", "alice@example.com", null, "x"]);
    expect(m.maskDataRow(msg, 0, msg.length)).toBeNull();
    // Detectors do not look at types that hold no text.
    const m2 = createRowMasker(
      compileMaskingProfile(ALL),
      columns([{ name: "at", typeOid: OID.timestamptz }]),
    );
    expect(m2.active).toBe(false);
  });

  it("applies last4 and hash to spans", () => {
    expect(
      texts(
        mask({ detectors: ["credit_card"], strategy: "last4" }, cols, [
          "1",
          "4111-1111-1111-1111",
          null,
          "x",
        ])!,
      ),
    ).toEqual(["1", "****-****-****-1111", null, "x"]);
    const hashed = texts(
      mask({ detectors: ["email"], strategy: "hash", hashKey: "k" }, cols, [
        "1",
        "to alice@example.com",
        null,
        "alice@example.com",
      ])!,
    );
    expect(hashed[1]).toMatch(/^to h:[0-9a-f]{16}$/);
    expect(hashed[3]).toBe(hashed[1]!.slice(3));
  });

  it("nulls the whole value with the null strategy", () => {
    expect(
      texts(
        mask({ detectors: ["email"], strategy: "null" }, cols, [
          "1",
          "to alice@example.com",
          null,
          "x",
        ])!,
      ),
    ).toEqual(["1", null, null, "x"]);
  });

  it("keeps JSON valid when masking inside json text", () => {
    const out = mask(
      ALL,
      [{ name: "doc", typeOid: OID.json }],
      ['{"email": "alice@example.com", "n": 1}'],
    );
    expect(JSON.parse(out![0]!.toString())).toEqual({ email: "[redacted:email]", n: 1 });
    const pem = "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBg\\n-----END PRIVATE KEY-----";
    const l4 = mask(
      { detectors: ["private_key"], strategy: "last4" },
      [{ name: "doc", typeOid: OID.json }],
      [`{"k": "${pem}", "q": "a\\"b"}`],
    );
    const parsed = JSON.parse(l4![0]!.toString()) as { k: string; q: string };
    expect(parsed.k).toBe("-----***** ******* ***-----******************-----*** ******E KEY-----");
    expect(parsed.q).toBe('a"b');
  });

  it("masks a card number in a bigint column with a same-typed value", () => {
    const c = [{ name: "pan", typeOid: OID.int8 }];
    expect(texts(mask(ALL, c, ["4111111111111111"])!)).toEqual(["0"]);
    expect(
      texts(mask({ detectors: ["credit_card"], strategy: "last4" }, c, ["4111111111111111"])!),
    ).toEqual(["1111"]);
    expect(mask(ALL, c, ["1234567890123452"])).toBeNull();
  });
});

describe("DataRow, column rules", () => {
  const cols: ColSpec[] = [
    { name: "id", typeOid: OID.int4, qualifiedName: "public.customers.id" },
    { name: "email", typeOid: OID.text, qualifiedName: "public.customers.email" },
    { name: "card_number", typeOid: OID.varchar, qualifiedName: "public.customers.card_number" },
    { name: "balance", typeOid: OID.numeric, qualifiedName: "public.customers.balance" },
  ];
  const rules = ["public.customers.email", "*.*.card_number", "public.customers.balance"];

  it("replace whole values; NULL stays NULL", () => {
    const out = mask({ columns: rules }, cols, ["7", "alice", null, "12.50"]);
    expect(texts(out!)).toEqual(["7", "[redacted]", null, "0"]);
  });

  it("apply every strategy", () => {
    const row = ["7", "alice@example.com", "4111 1111 1111 1111", "1234567.00"];
    expect(texts(mask({ columns: rules, strategy: "last4" }, cols, row)!)).toEqual([
      "7",
      "*****@******e.com",
      "**** **** **** 1111",
      "567", // at most half the digits
    ]);
    expect(texts(mask({ columns: rules, strategy: "null" }, cols, row)!)).toEqual([
      "7",
      null,
      null,
      null,
    ]);
    const h1 = texts(mask({ columns: rules, strategy: "hash", hashKey: "k1" }, cols, row)!);
    const h1again = texts(mask({ columns: rules, strategy: "hash", hashKey: "k1" }, cols, row)!);
    const h2 = texts(mask({ columns: rules, strategy: "hash", hashKey: "k2" }, cols, row)!);
    expect(h1[1]).toMatch(/^h:[0-9a-f]{16}$/);
    expect(h1[3]).toMatch(/^[0-9]+$/); // numeric stays numeric
    expect(h1again).toEqual(h1);
    expect(h2[1]).not.toBe(h1[1]);
    expect(h2[3]).not.toBe(h1[3]);
  });

  it("match output names when the source is unknown (expressions)", () => {
    const out = mask({ columns: ["*.*.email"] }, [{ name: "email", typeOid: OID.text }], ["alice"]);
    expect(texts(out!)).toEqual(["[redacted]"]);
    expect(
      mask(
        { columns: ["public.customers.email"] },
        [{ name: "email", typeOid: OID.text }],
        ["alice"],
      ),
    ).toBeNull();
  });

  it("keep typed text values parseable", () => {
    const c = (typeOid: number): ColSpec[] => [{ name: "v", typeOid, qualifiedName: "s.t.v" }];
    const one = (typeOid: number, v: string, strategy: MaskingOptions["strategy"] = "redact") =>
      texts(mask({ columns: ["s.t.v"], strategy, hashKey: "k" }, c(typeOid), [v])!)[0];
    expect(one(OID.int4, "123456")).toBe("0");
    expect(one(OID.int4, "123456", "last4")).toBe("456");
    expect(one(OID.bool, "t")).toBe("f");
    expect(one(OID.float8, "3.14")).toBe("0");
    expect(one(OID.uuid, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")).toBe(
      "00000000-0000-0000-0000-000000000000",
    );
    expect(one(OID.uuid, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "hash")).toMatch(
      /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
    );
    expect(JSON.parse(one(OID.json, '{"a": 1}')!)).toBe("[redacted]");
    expect(JSON.parse(one(OID.jsonb, '{"a": "x\\"y"}', "last4")!)).toBe('****: ***"y"}');
    expect(one(OID.bytea, "\\x616263")).toBe("\\x" + Buffer.from("[redacted]").toString("hex"));
    expect(one(OID.timestamptz, "2024-01-15 10:30:00+00")).toBeNull();
    expect(one(OID.textArray, "{a,b}")).toBeNull();
    expect(one(16500, "happy")).toBe("[redacted]"); // an enum / citext: text in text format
  });
});

describe("DataRow, binary format", () => {
  it("rewrites text-like values with any length and fixes the lengths", () => {
    const cols: ColSpec[] = [
      { name: "a", typeOid: OID.varchar, format: 1 },
      { name: "b", typeOid: OID.int4, format: 1 },
      { name: "c", typeOid: OID.jsonb, format: 1 },
      { name: "d", typeOid: OID.text, format: 1 },
    ];
    const jsonb = Buffer.concat([Buffer.from([1]), Buffer.from('{"to": "bob@example.com"}')]);
    const out = mask(ALL, cols, ["mail a@b.co", int(OID.int4, 5), jsonb, null])!;
    expect(out[0]!.toString()).toBe("mail [redacted:email]");
    expect(out[1]!.readInt32BE(0)).toBe(5);
    expect(out[2]![0]).toBe(1);
    expect(JSON.parse(out[2]!.subarray(1).toString())).toEqual({ to: "[redacted:email]" });
    expect(out[3]).toBeNull();
  });

  it("gives non-text types a same-typed value or NULL", () => {
    const cols: ColSpec[] = [
      { name: "i2", typeOid: OID.int2, format: 1 },
      { name: "i4", typeOid: OID.int4, format: 1 },
      { name: "i8", typeOid: OID.int8, format: 1 },
      { name: "n", typeOid: OID.numeric, format: 1 },
      { name: "u", typeOid: OID.uuid, format: 1 },
      { name: "ts", typeOid: OID.timestamptz, format: 1 },
      { name: "b", typeOid: OID.bytea, format: 1 },
      { name: "f", typeOid: OID.float8, format: 1 },
    ];
    const rule = { columns: ["*"] };
    const ts = Buffer.alloc(8, 7);
    const f = Buffer.alloc(8);
    f.writeDoubleBE(2.5);
    const row = [
      int(OID.int2, 12),
      int(OID.int4, 123456),
      int(OID.int8, 4111111111111111n),
      numericIntToBinary("98765"),
      Buffer.alloc(16, 0xab),
      ts,
      Buffer.from([0, 1, 2]),
      f,
    ];
    const out = mask(rule, cols, row)!;
    expect(out[0]!.readInt16BE(0)).toBe(0);
    expect(out[1]!.readInt32BE(0)).toBe(0);
    expect(out[2]!.readBigInt64BE(0)).toBe(0n);
    expect(numericBinaryToText(out[3]!, 0, out[3]!.length)).toBe("0");
    expect(out[4]).toEqual(Buffer.alloc(16));
    expect(out[5]).toBeNull();
    expect(out[6]!.toString()).toBe("[redacted]");
    expect(out[7]!.readDoubleBE(0)).toBe(0);

    const l4 = mask({ ...rule, strategy: "last4" }, cols, row)!;
    expect(l4[0]!.readInt16BE(0)).toBe(2);
    expect(l4[1]!.readInt32BE(0)).toBe(456);
    expect(l4[2]!.readBigInt64BE(0)).toBe(1111n);
    expect(numericBinaryToText(l4[3]!, 0, l4[3]!.length)).toBe("65");
  });

  it("masks inside the elements of binary text and jsonb arrays", () => {
    const c = [{ name: "tags", typeOid: OID.textArray, format: 1 }];
    const arr = binaryArray(25, ["ok", null, "mail alice@example.com", "x"]);
    const out = mask(ALL, c, [arr])!;
    expect(readBinaryArray(out[0]!)).toEqual({
      elemType: 25,
      elems: ["ok", null, "mail [redacted:email]", "x"],
    });
    expect(mask(ALL, c, [binaryArray(25, ["a", "b"])])).toBeNull();
    expect(mask({ ...ALL, strategy: "null" }, c, [arr])![0]).toBeNull();
    expect(mask({ columns: ["*"] }, c, [arr])![0]).toBeNull();
    const jc = [{ name: "docs", typeOid: 3807, format: 1 }];
    const jarr = binaryArray(3802, ['\x01{"e": "bob@example.com"}']);
    expect(readBinaryArray(mask(ALL, jc, [jarr])![0]!).elems).toEqual([
      '\x01{"e": "[redacted:email]"}',
    ]);
    // Text format: the array literal is text.
    expect(
      texts(mask(ALL, [{ name: "tags", typeOid: OID.textArray }], ['{ok,"a b@example.com"}'])!),
    ).toEqual(['{ok,"a [redacted:email]"}']);
  });

  it("hashes ints to the same value in text and binary format", () => {
    const opts = { columns: ["*.*.id"], strategy: "hash" as const, hashKey: "k" };
    for (const oid of [OID.int2, OID.int4, OID.int8]) {
      const text = mask(opts, [{ name: "id", typeOid: oid }], ["42"])!;
      const bin = mask(opts, [{ name: "id", typeOid: oid, format: 1 }], [int(oid, 42)])!;
      const binValue =
        oid === OID.int2
          ? bin[0]!.readInt16BE(0)
          : oid === OID.int4
            ? bin[0]!.readInt32BE(0)
            : bin[0]!.readBigInt64BE(0);
      expect(String(binValue)).toBe(text[0]!.toString());
      expect(text[0]!.toString()).not.toBe("42");
    }
    const nt = mask({ ...opts, columns: ["*"] }, [{ name: "n", typeOid: OID.numeric }], ["12.50"])!;
    const nb = mask(
      { ...opts, columns: ["*"] },
      [{ name: "n", typeOid: OID.numeric, format: 1 }],
      [numericBin(1250, 2)],
    )!;
    expect(numericBinaryToText(nb[0]!, 0, nb[0]!.length)).toBe(nt[0]!.toString());
  });

  it("finds card numbers in binary bigint and numeric values", () => {
    const c8 = [{ name: "pan", typeOid: OID.int8, format: 1 }];
    expect(mask(ALL, c8, [int(OID.int8, 4111111111111111n)])![0]!.readBigInt64BE(0)).toBe(0n);
    expect(mask(ALL, c8, [int(OID.int8, 123456789)])).toBeNull();
    expect(mask(ALL, c8, [int(OID.int8, -4111111111111111n)])![0]!.readBigInt64BE(0)).toBe(0n);
    const cn = [{ name: "pan", typeOid: OID.numeric, format: 1 }];
    const out = mask(ALL, cn, [numericIntToBinary("5555555555554444")])!;
    expect(numericBinaryToText(out[0]!, 0, out[0]!.length)).toBe("0");
    expect(mask(ALL, cn, [numericIntToBinary("5555555555554445")])).toBeNull();
  });

  it("decodes binary numerics like numeric_out", () => {
    expect(numericBinaryToText(numericBin(1250, 2), 0, 12)).toBe("12.50");
    const cases: [number[], number, number, number, string][] = [
      [[], 0, 0, 0, "0"],
      [[], 0, 0, 2, "0.00"],
      [[1, 2345], 1, 0, 0, "12345"],
      [[1, 2345], 1, 0x4000, 3, "-12345.000"],
      [[5000], -1, 0, 1, "0.5"],
      [[12], -2, 0, 8, "0.00000012"],
      [[1], 2, 0, 0, "100000000"],
    ];
    for (const [digits, weight, sign, dscale, want] of cases) {
      const b = Buffer.alloc(8 + 2 * digits.length);
      b.writeInt16BE(digits.length, 0);
      b.writeInt16BE(weight, 2);
      b.writeUInt16BE(sign, 4);
      b.writeUInt16BE(dscale, 6);
      digits.forEach((d, k) => b.writeInt16BE(d, 8 + 2 * k));
      expect(numericBinaryToText(b, 0, b.length)).toBe(want);
    }
    expect(numericBinaryToText(numericIntToBinary("-10000"), 0, 10)).toBe("-10000");
    expect(numericBinaryToText(numericIntToBinary("123456789"), 0, 14)).toBe("123456789");
  });
});

/** A one-dimensional binary array (array_send). */
function binaryArray(elemType: number, elems: (string | null)[]): Buffer {
  const head = Buffer.alloc(20);
  head.writeInt32BE(1, 0);
  head.writeInt32BE(elems.includes(null) ? 1 : 0, 4);
  head.writeUInt32BE(elemType, 8);
  head.writeInt32BE(elems.length, 12);
  head.writeInt32BE(1, 16);
  const parts = [head];
  for (const e of elems) {
    const len = Buffer.alloc(4);
    if (e === null) {
      len.writeInt32BE(-1);
      parts.push(len);
    } else {
      const b = Buffer.from(e, "latin1");
      len.writeInt32BE(b.length);
      parts.push(len, b);
    }
  }
  return Buffer.concat(parts);
}

function readBinaryArray(b: Buffer): { elemType: number; elems: (string | null)[] } {
  const n = b.readInt32BE(12);
  const elems: (string | null)[] = [];
  let p = 20;
  for (let k = 0; k < n; k++) {
    const len = b.readInt32BE(p);
    p += 4;
    if (len < 0) elems.push(null);
    else {
      elems.push(b.toString("latin1", p, p + len));
      p += len;
    }
  }
  expect(p).toBe(b.length);
  return { elemType: b.readUInt32BE(8), elems };
}

/** numeric binary of value/10^dscale for small values (value < 10^8). */
function numericBin(value: number, dscale: number): Buffer {
  // 1250 with dscale 2 → 12.50 → digits [12, 5000], weight 0
  const intPart = Math.floor(value / 10 ** dscale);
  const frac = value % 10 ** dscale;
  const b = Buffer.alloc(12);
  b.writeInt16BE(2, 0);
  b.writeInt16BE(0, 2);
  b.writeUInt16BE(0, 4);
  b.writeUInt16BE(dscale, 6);
  b.writeInt16BE(intPart, 8);
  b.writeInt16BE(frac * 10 ** (4 - dscale), 10);
  return b;
}

describe("failing closed", () => {
  const cols: ColSpec[] = [
    { name: "a", typeOid: OID.text },
    { name: "b", typeOid: OID.int4, format: 1, qualifiedName: "s.t.b" },
  ];

  function err(fn: () => unknown): MaskingError {
    try {
      fn();
    } catch (e) {
      expect(e).toBeInstanceOf(MaskingError);
      return e as MaskingError;
    }
    throw new Error("expected a MaskingError");
  }

  it("throws MaskingError for rows that do not fit the columns", () => {
    const m = createRowMasker(compileMaskingProfile({ ...ALL, columns: ["s.t.b"] }), columns(cols));
    const three = dataRow(["a", int(OID.int4, 1), "c"]);
    expect(err(() => m.maskDataRow(three, 0, three.length)).message).toMatch(/3 columns/);
    const wrongLen = dataRow(["a", Buffer.from([1, 2])]);
    err(() => m.maskDataRow(wrongLen, 0, wrongLen.length));
    const ok = dataRow(["alice@example.com", int(OID.int4, 1)]);
    err(() => m.maskDataRow(ok, 0, ok.length - 1)); // truncated
    const lying = Buffer.from(ok);
    lying.writeInt32BE(1000, 7); // first value's length beyond the message
    err(() => m.maskDataRow(lying, 0, lying.length));
    const notRow = typed(0x43, Buffer.from("SELECT 1\0"));
    err(() => m.maskDataRow(notRow, 0, notRow.length));
  });

  it("throws MaskingError when a detector throws, never passing the value", () => {
    const p = compileMaskingProfile({
      customDetectors: [
        {
          name: "boom",
          find: () => {
            throw new Error("detector bug");
          },
        },
      ],
    });
    const m = createRowMasker(p, columns([{ name: "a" }]));
    const msg = dataRow(["alice@example.com"]);
    const e = err(() => m.maskDataRow(msg, 0, msg.length));
    expect(e.message).not.toContain("alice");
    expect((e.cause as Error).message).toBe("detector bug");
  });

  it("throws MaskingError for a detector span outside the value and a bad jsonb version", () => {
    const p = compileMaskingProfile({
      customDetectors: [
        {
          name: "bad",
          find: (s, out) => out.push({ start: 0, end: s.length + 5, detector: "bad" }),
        },
      ],
    });
    const m = createRowMasker(p, columns([{ name: "a" }]));
    const msg = dataRow(["x"]);
    err(() => m.maskDataRow(msg, 0, msg.length));
    const mj = createRowMasker(
      compileMaskingProfile(ALL),
      columns([{ name: "j", typeOid: OID.jsonb, format: 1 }]),
    );
    const bad = dataRow([Buffer.from('\x02{"a":1}')]);
    err(() => mj.maskDataRow(bad, 0, bad.length));
  });

  it("custom detectors see every value and mask what they return", () => {
    const p = compileMaskingProfile({
      customDetectors: [
        {
          name: "emp",
          find: (s, out) => {
            const i = s.indexOf("EMP-");
            if (i >= 0) out.push({ start: i, end: i + 8, detector: "emp" });
          },
        },
      ],
    });
    const m = createRowMasker(p, columns([{ name: "a" }]));
    const msg = dataRow(["id EMP-1234 ok"]);
    expect(texts(readDataRow(m.maskDataRow(msg, 0, msg.length)!))).toEqual([
      "id [redacted:emp] ok",
    ]);
  });
});
