import { describe, expect, it } from "vitest";
import {
  DETECTOR_NAMES,
  MaskingError,
  compileMaskingProfile,
  maskNoticeFields,
  maskNotification,
} from "../../../src/policy/masking/index.js";
import { notice, readNotice, typed } from "./messages.js";

const ALL = compileMaskingProfile({ detectors: [...DETECTOR_NAMES] });

describe("maskNoticeFields", () => {
  it("masks detail, message, hint and context, and leaves the other fields", () => {
    const msg = notice("E", {
      S: "ERROR",
      V: "ERROR",
      C: "23505",
      M: 'duplicate key value violates unique constraint "customers_email_key"',
      D: "Key (email)=(alice@example.com) already exists.",
      H: "Call +1 415 555 2671 for help",
      W: "PL/pgSQL function f(text) line 3 at SQL statement, arg bob@example.com",
      s: "public",
      t: "customers",
      n: "customers_email_key",
      F: "nbtinsert.c",
    });
    const out = maskNoticeFields(ALL, Buffer.concat([Buffer.from("zz"), msg]), 2, 2 + msg.length);
    expect(readNotice(out!)).toEqual({
      S: "ERROR",
      V: "ERROR",
      C: "23505",
      M: 'duplicate key value violates unique constraint "customers_email_key"',
      D: "Key (email)=([redacted:email]) already exists.",
      H: "Call [redacted:phone] for help",
      W: "PL/pgSQL function f(text) line 3 at SQL statement, arg [redacted:email]",
      s: "public",
      t: "customers",
      n: "customers_email_key",
      F: "nbtinsert.c",
    });
    expect(out![0]).toBe(0x45);
  });

  it("masks values quoted in messages, and NoticeResponse too", () => {
    const msg = notice("N", {
      S: "NOTICE",
      C: "22P02",
      M: 'invalid input syntax for type integer: "4111 1111 1111 1111"',
    });
    const out = maskNoticeFields(ALL, msg, 0, msg.length)!;
    expect(out[0]).toBe(0x4e);
    expect(readNotice(out).M).toBe(
      'invalid input syntax for type integer: "[redacted:credit_card]"',
    );
  });

  it("returns null when nothing is found or nothing is configured", () => {
    const msg = notice("E", { S: "ERROR", C: "42P01", M: 'relation "nope" does not exist' });
    expect(maskNoticeFields(ALL, msg, 0, msg.length)).toBeNull();
    const email = notice("E", { S: "ERROR", C: "XX000", M: "alice@example.com" });
    expect(maskNoticeFields(compileMaskingProfile({}), email, 0, email.length)).toBeNull();
  });

  it("hashes with the hash strategy; null falls back to redact", () => {
    const msg = notice("E", { S: "ERROR", D: "Key (email)=(alice@example.com) already exists." });
    const h = maskNoticeFields(
      compileMaskingProfile({ detectors: ["email"], strategy: "hash", hashKey: "k" }),
      msg,
      0,
      msg.length,
    );
    expect(readNotice(h!).D).toMatch(/^Key \(email\)=\(h:[0-9a-f]{16}\) already exists\.$/);
    const n = maskNoticeFields(
      compileMaskingProfile({ detectors: ["email"], strategy: "null" }),
      msg,
      0,
      msg.length,
    );
    expect(readNotice(n!).D).toBe("Key (email)=([redacted:email]) already exists.");
  });

  it("redacts the detail of errors about a table with masked columns", () => {
    const p = compileMaskingProfile({
      columns: ["public.customers.full_name"],
      detectors: ["email"],
    });
    const msg = notice("E", {
      S: "ERROR",
      C: "23514",
      M: 'new row for relation "customers" violates check constraint "c"',
      D: "Failing row contains (1, Alice Smith, null).",
      s: "public",
      t: "customers",
    });
    expect(readNotice(maskNoticeFields(p, msg, 0, msg.length)!).D).toBe("[redacted]");
    const other = notice("E", {
      S: "ERROR",
      D: "Failing row contains (1, Alice Smith).",
      s: "public",
      t: "orders",
    });
    expect(maskNoticeFields(p, other, 0, other.length)).toBeNull();
  });

  it("throws MaskingError on malformed messages", () => {
    const msg = notice("E", { S: "ERROR", M: "alice@example.com" });
    expect(() => maskNoticeFields(ALL, msg, 0, msg.length - 1)).toThrow(MaskingError);
    const unterminated = typed(0x45, Buffer.from("Malice@example.com"));
    expect(() => maskNoticeFields(ALL, unterminated, 0, unterminated.length)).toThrow(MaskingError);
  });
});

describe("maskNotification", () => {
  it("masks the payload, not the channel", () => {
    const body = Buffer.concat([
      Buffer.from([0, 0, 0, 42]),
      Buffer.from("signup\0new user alice@example.com\0"),
    ]);
    const msg = typed(0x41, body);
    const out = maskNotification(ALL, msg, 0, msg.length)!;
    expect(out.readInt32BE(1)).toBe(out.length - 1);
    expect(out.readInt32BE(5)).toBe(42);
    expect(out.subarray(9).toString()).toBe("signup\0new user [redacted:email]\0");
    const clean = typed(
      0x41,
      Buffer.concat([Buffer.from([0, 0, 0, 42]), Buffer.from("signup\0id 7\0")]),
    );
    expect(maskNotification(ALL, clean, 0, clean.length)).toBeNull();
  });
});
