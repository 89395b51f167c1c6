import { describe, expect, it } from "vitest";
import {
  Hasher,
  clientEncodingMaskable,
  MaskingError,
  compileMaskingProfile,
  last4,
  maskString,
  redactMarker,
  splitQualified,
} from "../../../src/policy/masking/index.js";

const u = (s: string) => Buffer.from(s, "utf8").toString("latin1");
const back = (s: string) => Buffer.from(s, "latin1").toString("utf8");

describe("redact", () => {
  it("names the detector, or not for column rules", () => {
    expect(redactMarker("email")).toBe("[redacted:email]");
    expect(redactMarker(null)).toBe("[redacted]");
    expect(maskString("redact", "credit_card", "4111111111111111", null)).toBe(
      "[redacted:credit_card]",
    );
  });
});

describe("last4", () => {
  it("keeps the last 4 and the separators", () => {
    expect(last4("4111 1111 1111 1111")).toBe("**** **** **** 1111");
    expect(last4("4111-1111-1111-1111")).toBe("****-****-****-1111");
    expect(last4("123-45-6789")).toBe("***-**-6789");
    expect(last4("+1 (415) 555-2671")).toBe("+* (***) ***-2671");
    expect(last4("alice@example.com")).toBe("*****@******e.com");
  });

  it("never shows a short value whole", () => {
    expect(last4("12345")).toBe("***45");
    expect(last4("1234")).toBe("**34");
    expect(last4("ab")).toBe("*b");
    expect(last4("x")).toBe("*");
    expect(last4("")).toBe("");
  });

  it("counts UTF-8 characters, and keeps the result valid UTF-8", () => {
    expect(back(last4(u("Jürgen Müller")))).toBe("****** **ller");
    expect(back(last4(u("日本語テキスト")))).toBe("****キスト");
    expect(back(last4(u("é")))).toBe("*");
  });

  it("masks quotes and backslashes (safe inside JSON strings)", () => {
    expect(last4('ab"c\\d-efgh')).toBe("******-efgh");
  });
});

describe("hash", () => {
  it("is stable for a key, differs across keys, and looks like h:<16 hex>", () => {
    const a1 = new Hasher("key-one");
    const a2 = new Hasher(Buffer.from("key-one"));
    const b = new Hasher("key-two");
    const t = a1.token("alice@example.com");
    expect(t).toMatch(/^h:[0-9a-f]{16}$/);
    expect(a2.token("alice@example.com")).toBe(t);
    expect(a1.token("alice@example.com")).toBe(t); // cached
    expect(b.token("alice@example.com")).not.toBe(t);
    expect(a1.token("bob@example.com")).not.toBe(t);
  });

  it("is HMAC-SHA256 (checkable by anyone holding the key)", async () => {
    const { createHmac } = await import("node:crypto");
    const want = createHmac("sha256", "k").update("x").digest("hex").slice(0, 16);
    expect(new Hasher("k").token("x")).toBe(`h:${want}`);
  });

  it("does not show its key", () => {
    const h = new Hasher("super-secret");
    expect(JSON.stringify({ h })).not.toContain("super-secret");
    expect(
      JSON.stringify(compileMaskingProfile({ strategy: "hash", hashKey: "super-secret" })),
    ).not.toContain("super-secret");
  });
});

describe("profiles", () => {
  it("require a key for hash and know their detectors and strategies", () => {
    expect(() => compileMaskingProfile({ strategy: "hash" })).toThrow(MaskingError);
    expect(() => compileMaskingProfile({ detectors: ["nope" as never] })).toThrow(MaskingError);
    expect(() => compileMaskingProfile({ strategy: "blur" as never })).toThrow(MaskingError);
    expect(() => compileMaskingProfile({ columns: ["a..b"] })).toThrow(MaskingError);
    expect(compileMaskingProfile({}).enabled).toBe(false);
  });

  it("match column globs on schema.table.column, ignoring case", () => {
    const p = compileMaskingProfile({
      columns: [
        "public.customers.email",
        "*.*.card_number",
        "billing.*.iban",
        "ssn",
        "users.pass?",
      ],
    });
    expect(p.matchesColumn("public.customers.email", "email")).toBe(true);
    expect(p.matchesColumn("public.Customers.EMAIL", "x")).toBe(true);
    expect(p.matchesColumn("public.orders.email", "email")).toBe(false);
    expect(p.matchesColumn("sales.payments.card_number", "card_number")).toBe(true);
    expect(p.matchesColumn("billing.accounts.iban", "iban")).toBe(true);
    expect(p.matchesColumn("public.accounts.iban", "iban")).toBe(false);
    expect(p.matchesColumn("hr.people.ssn", "ssn")).toBe(true);
    expect(p.matchesColumn("auth.users.passw", "passw")).toBe(true);
    expect(p.matchesColumn("auth.users.password", "password")).toBe(false);
    // Unknown source (an expression): only rules that name no schema or table apply, by name.
    expect(p.matchesColumn(null, "card_number")).toBe(true);
    expect(p.matchesColumn(null, "email")).toBe(false);
    expect(p.matchesTable("public", "customers")).toBe(true);
    // "*.*.card_number" may be a column of any table.
    expect(p.matchesTable("public", "orders")).toBe(true);
    const q = compileMaskingProfile({ columns: ["public.customers.email"] });
    expect(q.matchesTable("public", "customers")).toBe(true);
    expect(q.matchesTable("public", "orders")).toBe(false);
    expect(p.matchesColumn('public."we.ird".card_number', "x")).toBe(true);
  });

  it("split quoted qualified names", () => {
    expect(splitQualified("a.b.c")).toEqual(["a", "b", "c"]);
    expect(splitQualified('"my.schema"."t""q".c')).toEqual(["my.schema", 't"q', "c"]);
    expect(splitQualified("a.b")).toBeNull();
  });

  it("mask free text (for notices or recordings); null falls back to redact", () => {
    const p = compileMaskingProfile({ detectors: ["email"], strategy: "null" });
    expect(p.maskText("to alice@example.com")).toBe("to [redacted:email]");
    expect(p.maskText("nothing here")).toBeNull();
    expect(p.maskUnicodeText("für jörg@example.com")).toBe("für [redacted:email]");
  });
});

describe("HMAC-SHA256", () => {
  it("matches node:crypto for every message length across block boundaries and for long keys", async () => {
    const { createHmac, randomBytes } = await import("node:crypto");
    const { HmacSha256 } = await import("../../../src/policy/masking/hmac-sha256.js");
    for (const key of [
      Buffer.from("k"),
      randomBytes(32),
      randomBytes(64),
      randomBytes(65),
      randomBytes(200),
    ]) {
      const h = new HmacSha256(key);
      for (let len = 0; len <= 200; len++) {
        const msg = randomBytes(len);
        const want = createHmac("sha256", key).update(msg).digest();
        expect(h.digest(msg.toString("latin1")).equals(want), `key ${key.length}, len ${len}`).toBe(
          true,
        );
      }
      const big = randomBytes(10_000);
      expect(h.digest(big.toString("latin1"))).toEqual(
        createHmac("sha256", key).update(big).digest(),
      );
    }
  });
});

describe("client encodings", () => {
  it("are maskable unless their multi-byte characters hold ASCII bytes", () => {
    for (const e of ["UTF8", "LATIN1", "WIN1252", "EUC_JP", "SQL_ASCII"])
      expect(clientEncodingMaskable(e)).toBe(true);
    for (const e of ["SJIS", "big5", "GBK", "UHC", "GB18030", "JOHAB", "SHIFT_JIS_2004"])
      expect(clientEncodingMaskable(e)).toBe(false);
  });
});
