/**
 * The masking engine against a real PostgreSQL: DataRows and RowDescriptions as the server
 * sends them (text and binary format), and masked binary values sent back to the server as
 * binary parameters, so its own *_recv functions check that what we produce is valid.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DETECTOR_NAMES,
  compileMaskingProfile,
  createRowMasker,
  parseRowDescription,
  type MaskingOptions,
} from "../../../src/policy/masking/index.js";
import { numericBinaryToText } from "../../../src/policy/masking/types.js";
import { MessageFramer } from "../../../src/protocols/postgres/framing.js";
import { startPostgres, type PgServer } from "../../helpers/postgres.js";
import { readDataRow } from "./messages.js";

let server: PgServer;
let client: pg.Client;
/** Raw messages from the server, as the broker would see them. */
let captured: { type: number; msg: Buffer }[] = [];

beforeAll(async () => {
  server = await startPostgres();
  client = new pg.Client({ connectionString: server.url });
  await client.connect();
  const framer = new MessageFramer(1 << 30);
  const stream = (client as unknown as { connection: { stream: NodeJS.ReadableStream } }).connection
    .stream;
  stream.on("data", (chunk: Buffer) =>
    framer.push(chunk, (type, buf, start, end) => {
      captured.push({ type, msg: Buffer.from(buf.subarray(start, end)) });
    }),
  );
});

afterAll(async () => {
  await client?.end();
  await server?.stop();
});

/** Runs `sql` and returns the RowDescription and DataRows the server sent. */
async function raw(sql: string, binary: boolean, values: unknown[] = []) {
  captured = [];
  await client.query({ text: sql, values, binary, queryMode: "extended" } as pg.QueryConfig);
  const t = captured.find((m) => m.type === 0x54)!;
  return {
    columns: parseRowDescription(t.msg, 0, t.msg.length),
    rows: captured.filter((m) => m.type === 0x44).map((m) => m.msg),
  };
}

/** Masks the single row of `sql` under `opts`; returns the masked row message (or null). */
async function maskOne(sql: string, binary: boolean, opts: MaskingOptions, qualify?: string) {
  const { columns, rows } = await raw(sql, binary);
  const cols = columns.map((c) => ({
    ...c,
    qualifiedName: qualify ? `${qualify}.${c.name}` : null,
  }));
  const m = createRowMasker(compileMaskingProfile(opts), cols);
  return { columns, out: m.maskDataRow(rows[0]!, 0, rows[0]!.length), original: rows[0]! };
}

/** Sends a value back as a parameter (binary for a Buffer, else text) of type `type`; returns the server's text of it. */
async function roundTrip(value: Buffer | string | null, type: string): Promise<string | null> {
  const r = await client.query({ text: `SELECT $1::${type}::text AS v`, values: [value] });
  return (r.rows[0] as { v: string | null }).v;
}

/** roundTrip of each value, one query at a time. */
async function roundTripAll(
  values: (Buffer | string | null)[],
  types: string[],
): Promise<(string | null)[]> {
  const out: (string | null)[] = [];
  for (const [k, v] of values.entries()) out.push(await roundTrip(v, types[k]!));
  return out;
}

describe("against PostgreSQL", () => {
  it("decodes binary numerics exactly as numeric_out prints them", async () => {
    const values = [
      "0",
      "0.00",
      "12.50",
      "-12345.000",
      "0.5",
      "0.00000012",
      "100000000",
      "123456789012345678901234567890.123456789",
      "-0.0001",
      "NaN",
      "9999.9999",
      "10000",
    ];
    const list = values.map((v) => `'${v}'::numeric`).join(", ");
    const bin = await raw(`SELECT ${list}`, true);
    const cells = readDataRow(bin.rows[0]!);
    const text = await client.query({
      text: `SELECT ${values.map((v) => `'${v}'::numeric::text`).join(", ")}`,
      rowMode: "array",
    });
    cells.forEach((c, k) =>
      expect(numericBinaryToText(c!, 0, c!.length)).toBe((text.rows[0] as string[])[k]),
    );
  });

  it("masks text and binary rows of every kind, and the server accepts the binary results", async () => {
    const sql = `SELECT 7::int4 AS id, 'mail alice@example.com'::text AS note, '4111111111111111'::int8 AS pan,
      '{"to": "bob@example.com", "n": 1}'::jsonb AS doc, ARRAY['ok', NULL, 'x 078-05-1120']::text[] AS tags,
      '5555555555554444'::numeric AS pan2, now() AS at, NULL::text AS nothing`;
    const opts: MaskingOptions = { detectors: [...DETECTOR_NAMES] };
    const t = await maskOne(sql, false, opts);
    expect(readDataRow(t.out!).map((c) => c?.toString() ?? null)).toEqual([
      "7",
      "mail [redacted:email]",
      "0",
      '{"n": 1, "to": "[redacted:email]"}',
      '{ok,NULL,"x [redacted:us_ssn]"}',
      "0",
      readDataRow(t.original)[6]!.toString(),
      null,
    ]);
    const b = await maskOne(sql, true, opts);
    const cells = readDataRow(b.out!);
    const types = ["int4", "text", "int8", "jsonb", "text[]", "numeric", "timestamptz", "text"];
    const back = await roundTripAll(cells, types);
    expect(back.slice(0, 6)).toEqual([
      "7",
      "mail [redacted:email]",
      "0",
      '{"n": 1, "to": "[redacted:email]"}',
      '{ok,NULL,"x [redacted:us_ssn]"}',
      "0",
    ]);
    expect(back[7]).toBeNull();
  });

  it("produces valid typed values for column rules, in both formats", async () => {
    const sql = `SELECT 123456::int4 AS a, 4111111111111111::int8 AS b, 12.50::numeric AS c, true AS d,
      'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS e, 2.5::float8 AS f, '\\x0102'::bytea AS g,
      '{"k": "v"}'::json AS h, '{"k": "v"}'::jsonb AS i, 'x'::varchar AS j, now() AS k`;
    const types = [
      "int4",
      "int8",
      "numeric",
      "bool",
      "uuid",
      "float8",
      "bytea",
      "json",
      "jsonb",
      "varchar",
      "timestamptz",
    ];
    for (const strategy of ["redact", "last4", "hash"] as const) {
      const opts: MaskingOptions = { columns: ["s.t.*"], strategy, hashKey: "k" };
      const text = readDataRow((await maskOne(sql, false, opts, "s.t")).out!).map(
        (c) => c?.toString() ?? null,
      );
      const bin = readDataRow((await maskOne(sql, true, opts, "s.t")).out!);
      const back = await roundTripAll(bin, types);
      const textBack = await roundTripAll(text, types);
      // The server reads our values in both formats, and they say the same.
      expect(back, strategy).toEqual(textBack);
      expect(text[10]).toBeNull();
      if (strategy === "redact")
        expect(text.slice(0, 9)).toEqual([
          "0",
          "0",
          "0",
          "f",
          "00000000-0000-0000-0000-000000000000",
          "0",
          "\\x5b72656461637465645d",
          '"[redacted]"',
          '"[redacted]"',
        ]);
      if (strategy === "last4") expect(text.slice(0, 3)).toEqual(["456", "1111", "0"]);
    }
  });
});
