import { describe, expect, it } from "vitest";
import {
  DETECTOR_NAMES,
  MaskingError,
  canMaskCopyFormat,
  compileMaskingProfile,
  createCopyMasker,
  parseCopyOutResponse,
  parseCopyStatement,
  type CopyMaskerOptions,
  type MaskingOptions,
} from "../../../src/policy/masking/index.js";
import { copyData, copyText, typed } from "./messages.js";

const ALL: MaskingOptions = { detectors: [...DETECTOR_NAMES] };

function run(opts: MaskingOptions, copy: CopyMaskerOptions, messages: string[]): (string | null)[] {
  const m = createCopyMasker(compileMaskingProfile(opts), copy);
  const out = messages.map((s) => {
    const msg = copyData(s);
    return copyText(m.maskCopyData(msg, 0, msg.length));
  });
  const fin = m.finish();
  if (fin !== null) out.push(`<finish>${copyText(fin)}`);
  return out;
}

describe("CopyOutResponse", () => {
  it("parses the formats; binary COPY cannot be masked", () => {
    const body = Buffer.from([0, 0, 2, 0, 0, 0, 0]);
    const msg = typed(0x48, body);
    expect(parseCopyOutResponse(msg, 0, msg.length)).toEqual({ format: 0, columnFormats: [0, 0] });
    expect(canMaskCopyFormat(0)).toBe(true);
    expect(canMaskCopyFormat(1)).toBe(false);
    expect(() => parseCopyOutResponse(msg, 0, msg.length - 1)).toThrow(MaskingError);
  });
});

describe("COPY text format", () => {
  it("masks detected spans per field and leaves clean rows untouched", () => {
    expect(
      run(ALL, {}, [
        "1\tAlice\talice@example.com\t\\N\n",
        "2\tBob\tno email\t2024-01-15 10:30:00+00\n",
      ]),
    ).toEqual(["1\tAlice\t[redacted:email]\t\\N\n", null]);
  });

  it("decodes escapes before detecting and re-escapes what it changed", () => {
    // "\t" inside a value is escaped; the phone follows an escaped tab.
    expect(run(ALL, {}, ["1\tcall\\t+1 415 555 2671\\\\x\n"])).toEqual([
      "1\tcall\\t[redacted:phone]\\\\x\n",
    ]);
    // A PEM block with escaped newlines is one value.
    const pem = "-----BEGIN PRIVATE KEY-----\\nMIIE\\n-----END PRIVATE KEY-----";
    expect(run(ALL, {}, [`k\t${pem}\\nrest\n`])).toEqual(["k\t[redacted:private_key]\\nrest\n"]);
  });

  it("applies column rules by position and the null strategy", () => {
    const columns = [
      { name: "id", qualifiedName: "public.customers.id" },
      { name: "name", qualifiedName: "public.customers.name" },
      { name: "email", qualifiedName: "public.customers.email" },
    ];
    expect(
      run({ columns: ["*.customers.name"], strategy: "null" }, { columns }, [
        "1\tAlice\ta@b.co\n",
        "2\t\\N\tx\n",
      ]),
    ).toEqual(["1\t\\N\ta@b.co\n", null]);
    expect(
      run({ columns: ["*.customers.name"], strategy: "last4" }, { columns }, [
        "1\tAlice Smith\tx\n",
      ]),
    ).toEqual(["1\t***** *mith\tx\n"]);
    expect(() => run({ columns: ["*.customers.name"] }, { columns }, ["1\tonly two\n"])).toThrow(
      MaskingError,
    );
  });

  it("refuses (fails closed) when column rules exist but the columns are unknown", () => {
    const p = compileMaskingProfile({ columns: ["*.*.card_number"], detectors: ["email"] });
    expect(() => createCopyMasker(p, {})).toThrow(MaskingError);
    const m = createCopyMasker(p, { noColumnRulesApply: true });
    const msg = copyData("x\ta@example.com\n");
    expect(copyText(m.maskCopyData(msg, 0, msg.length))).toBe("x\t[redacted:email]\n");
  });

  it("handles rows split across and packed into CopyData messages", () => {
    expect(run(ALL, {}, ["1\talice@exa", "mple.com\n2\tbob@example.com\n3\tx"])).toEqual([
      "",
      "1\t[redacted:email]\n2\t[redacted:email]\n",
      "<finish>3\tx",
    ]);
    // Packed clean rows, nothing held back: forwarded as they are.
    expect(run(ALL, {}, ["1\ta\n2\tb\n"])).toEqual([null]);
  });

  it("honours another delimiter and NULL string", () => {
    expect(
      run(ALL, { dialect: { delimiter: "|", null: "NULL" } }, ["NULL|a|b@example.com\\|x\n"]),
    ).toEqual(["NULL|a|[redacted:email]\\|x\n"]);
  });
});

describe("COPY CSV", () => {
  const csv = { dialect: { csv: true } };

  it("unquotes, masks and re-quotes", () => {
    expect(run(ALL, csv, ['1,"Smith, Alice","alice@example.com"\n'])).toEqual([
      '1,"Smith, Alice","[redacted:email]"\n',
    ]);
    expect(run(ALL, csv, ['1,"say ""hi"" to bob@example.com",x\n'])).toEqual([
      '1,"say ""hi"" to [redacted:email]",x\n',
    ]);
  });

  it("keeps records with quoted newlines whole, even split across messages", () => {
    expect(run(ALL, csv, ['1,"line one\nalice@exam', 'ple.com",\n'])).toEqual([
      "",
      '1,"line one\n[redacted:email]",\n',
    ]);
  });

  it("tells NULL (unquoted empty) from an empty string", () => {
    expect(
      run({ columns: ["*"] }, { ...csv, columns: [{ name: "a" }, { name: "b" }] }, ['"",\n']),
    ).toEqual(['"[redacted]",\n']);
    expect(
      run(
        { columns: ["*"], strategy: "null" },
        { ...csv, columns: [{ name: "a" }, { name: "b" }] },
        ["x,y\n"],
      ),
    ).toEqual([",\n"]);
  });

  it("skips column rules on the header row, and honours other quote/escape characters", () => {
    const columns = [{ name: "id" }, { name: "card_number" }];
    expect(
      run({ columns: ["*.*.card_number"] }, { dialect: { csv: true, header: true }, columns }, [
        "id,card_number\n",
        "1,4111111111111111\n",
      ]),
    ).toEqual([null, '1,"[redacted]"\n']);
    expect(
      run(ALL, { dialect: { csv: true, quote: "'", escape: "\\" } }, [
        "'it\\'s bob@example.com',1\n",
      ]),
    ).toEqual(["'it\\'s [redacted:email]',1\n"]);
  });

  it("fails closed on an unterminated quote at the end of the data", () => {
    const m = createCopyMasker(compileMaskingProfile(ALL), csv);
    const msg = copyData('1,"open alice@example.com\n');
    expect(copyText(m.maskCopyData(msg, 0, msg.length))).toBe("");
    expect(() => m.finish()).toThrow(MaskingError);
  });
});

describe("parseCopyStatement", () => {
  it("reads table, columns, format and options, in both syntaxes", () => {
    expect(
      parseCopyStatement(
        "COPY public.customers (id, email) TO STDOUT WITH (FORMAT csv, HEADER, DELIMITER ';')",
      ),
    ).toEqual({
      relation: { schema: "public", table: "customers" },
      columns: ["id", "email"],
      toStdout: true,
      format: "csv",
      dialect: { csv: true, delimiter: ";", null: "", quote: '"', escape: '"', header: true },
    });
    const old = parseCopyStatement(
      "copy \"My Table\" to stdout csv header quote as '''' force quote *;",
    );
    expect(old?.relation).toEqual({ schema: null, table: "My Table" });
    expect(old?.dialect).toMatchObject({ csv: true, header: true, quote: "'" });
    const q = parseCopyStatement(
      "COPY (SELECT email FROM t WHERE note = 'a)') TO STDOUT (FORMAT text, NULL 'none', DELIMITER E'\\t')",
    );
    expect(q?.relation).toBeNull();
    expect(q?.dialect).toMatchObject({ csv: false, null: "none", delimiter: "\t" });
    expect(parseCopyStatement("COPY t TO STDOUT (FORMAT binary)")?.format).toBe("binary");
    expect(parseCopyStatement("COPY t TO STDOUT BINARY")?.format).toBe("binary");
    expect(parseCopyStatement("/* x */ COPY t TO STDOUT")?.dialect).toMatchObject({
      delimiter: "\t",
      null: "\\N",
    });
  });

  it("gives null for what it does not understand", () => {
    expect(parseCopyStatement("SELECT 1")).toBeNull();
    expect(parseCopyStatement("COPY t FROM STDIN")).toBeNull();
    expect(parseCopyStatement("COPY t TO STDOUT (FORMAT xml)")).toBeNull();
    expect(parseCopyStatement("COPY t TO STDOUT (WHATEVER 1)")).toBeNull();
    expect(parseCopyStatement("COPY (SELECT $$a$$) TO STDOUT")).toBeNull();
    expect(parseCopyStatement("COPY t TO STDOUT; DROP TABLE t")).toBeNull();
  });
});
