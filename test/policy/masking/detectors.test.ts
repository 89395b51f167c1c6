import { describe, expect, it } from "vitest";
import {
  DETECTOR_NAMES,
  DetectorSet,
  ibanValid,
  luhnValid,
  prefilterBytes,
  prefilterText,
  type DetectorName,
} from "../../../src/policy/masking/index.js";

const all = new DetectorSet(DETECTOR_NAMES);

/** The texts of what `names` (default: all detectors) find in `s`, as "detector:text". */
function found(s: string, names: readonly DetectorName[] = DETECTOR_NAMES): string[] {
  const set = names === DETECTOR_NAMES ? all : new DetectorSet(names);
  const bytes = Buffer.from(s, "utf8").toString("latin1");
  const spans = set.find(bytes) ?? [];
  return spans.map(
    (sp) =>
      `${sp.detector}:${Buffer.from(bytes.slice(sp.start, sp.end), "latin1").toString("utf8")}`,
  );
}

const JWT =
  "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

describe("email", () => {
  it("finds addresses inside text", () => {
    expect(found("contact alice@example.com now")).toEqual(["email:alice@example.com"]);
    expect(found("a.b+tag@mail.example.co.uk, x_y@sub.example.org")).toEqual([
      "email:a.b+tag@mail.example.co.uk",
      "email:x_y@sub.example.org",
    ]);
    expect(found("<bob@example.com>.")).toEqual(["email:bob@example.com"]);
    expect(found("mailto:carol@example.io")).toEqual(["email:carol@example.io"]);
    expect(found("jörg@exämple.de")).toEqual(["email:jörg@exämple.de"]);
    expect(found("x@xn--bcher-kva.example")).toEqual(["email:x@xn--bcher-kva.example"]);
  });

  it("ignores things that only look a bit like one", () => {
    expect(found("@handle")).toEqual([]);
    expect(found("user@localhost")).toEqual([]);
    expect(found("a @ b.com")).toEqual([]);
    expect(found("foo@bar.c")).toEqual([]);
    expect(found("price@1.50")).toEqual([]);
    expect(found("git@github.com:org/repo.git")).toEqual(["email:git@github.com"]);
  });
});

describe("credit_card", () => {
  it("finds Luhn-valid numbers of the major networks, grouped or not", () => {
    for (const n of [
      "4111111111111111",
      "4111 1111 1111 1111",
      "4111-1111-1111-1111",
      "5555555555554444",
      "378282246310005",
      "3782 822463 10005",
      "6011111111111117",
      "30569309025904",
      "2223003122003222",
      "4222222222222",
    ]) {
      expect(found(`card ${n} ok`, ["credit_card"])).toEqual([`credit_card:${n}`]);
    }
  });

  it("ignores Luhn-invalid numbers, other lengths and non-card prefixes", () => {
    expect(found("4111111111111112", ["credit_card"])).toEqual([]); // bad check digit
    expect(found("4111 1111 1111 1112", ["credit_card"])).toEqual([]);
    expect(found("411111111111", ["credit_card"])).toEqual([]); // 12 digits
    expect(found("41111111111111111111", ["credit_card"])).toEqual([]); // 20 digits
    // Luhn-valid, but starting with 1/7/8/9/0: ids, not cards.
    expect(luhnValid("1234567890123452")).toBe(true);
    expect(found("1234567890123452", ["credit_card"])).toEqual([]);
    expect(found("9999999999999995", ["credit_card"])).toEqual([]);
    // Glued to letters or part of a decimal.
    expect(found("x4111111111111111", ["credit_card"])).toEqual([]);
    expect(found("0.4111111111111111", ["credit_card"])).toEqual([]);
    expect(found("4111111111111111.5", ["credit_card"])).toEqual([]);
  });

  it("ignores timestamps, uuids and plain integers", () => {
    expect(found("2024-01-15 10:30:00.123456+00")).toEqual([]);
    expect(found("12345678-1234-1234-1234-123456789012")).toEqual([]);
    expect(found("42")).toEqual([]);
    expect(found("1700000000000")).toEqual([]);
  });
});

describe("iban", () => {
  it("finds IBANs that pass mod-97, compact or grouped", () => {
    expect(found("pay DE89370400440532013000 today", ["iban"])).toEqual([
      "iban:DE89370400440532013000",
    ]);
    expect(found("IBAN: DE89 3704 0044 0532 0130 00, thanks", ["iban"])).toEqual([
      "iban:DE89 3704 0044 0532 0130 00",
    ]);
    expect(found("GB82WEST12345698765432", ["iban"])).toEqual(["iban:GB82WEST12345698765432"]);
    expect(found("NL91ABNA0417164300", ["iban"])).toEqual(["iban:NL91ABNA0417164300"]);
    expect(found("NO9386011117947", ["iban"])).toEqual(["iban:NO9386011117947"]);
    expect(found("FR14 2004 1010 0505 0001 3M02 606 EUR", ["iban"])).toEqual([
      "iban:FR14 2004 1010 0505 0001 3M02 606",
    ]);
  });

  it("ignores bad checksums, wrong lengths and unknown countries", () => {
    expect(ibanValid("DE89370400440532013000")).toBe(true);
    expect(ibanValid("DE89370400440532013001")).toBe(false);
    expect(found("DE89370400440532013001", ["iban"])).toEqual([]);
    expect(found("DE8937040044053201300", ["iban"])).toEqual([]); // 21 chars
    expect(found("ZZ89370400440532013000", ["iban"])).toEqual([]);
    expect(found("AB12CDEFGHIJKLMNOP", ["iban"])).toEqual([]);
  });
});

describe("us_ssn", () => {
  it("finds valid SSNs", () => {
    expect(found("ssn 123-45-6789.", ["us_ssn"])).toEqual(["us_ssn:123-45-6789"]);
    expect(found("078-05-1120", ["us_ssn"])).toEqual(["us_ssn:078-05-1120"]);
  });

  it("skips never-issued ranges and other shapes", () => {
    for (const s of [
      "000-12-3456",
      "666-12-3456",
      "900-12-3456",
      "999-12-3456",
      "123-00-4567",
      "123-45-0000",
    ]) {
      expect(found(s, ["us_ssn"])).toEqual([]);
    }
    expect(found("123456789", ["us_ssn"])).toEqual([]);
    expect(found("2024-01-15", ["us_ssn"])).toEqual([]);
    expect(found("415-555-2671", ["us_ssn"])).toEqual([]);
    expect(found("1123-45-6789", ["us_ssn"])).toEqual([]);
    expect(found("123-45-67890", ["us_ssn"])).toEqual([]);
  });
});

describe("phone", () => {
  it("finds international and common national formats", () => {
    for (const p of [
      "+14155552671",
      "+1 415 555 2671",
      "+1 (415) 555-2671",
      "+44 20 7946 0958",
      "+49 30 1234567",
      "+33 1 23 45 67 89",
      "(415) 555-2671",
      "415-555-2671",
      "415.555.2671",
      "1-800-555-0199",
      "020 7946 0958",
      "07700 900123",
      "01 23 45 67 89",
    ]) {
      expect(found(`call ${p} please`, ["phone"])).toEqual([`phone:${p}`]);
    }
    expect(found("(call +1 415 555 2671)", ["phone"])).toEqual(["phone:+1 415 555 2671"]);
  });

  it("does not take integers, dates, times, timestamps or IP addresses for phones", () => {
    for (const s of [
      "4155552671",
      "14155552671",
      "20240115103000",
      "2024-01-15",
      "15.01.2024",
      "01/15/2024",
      "2024-01-15 10:30:00",
      "2024-01-15T10:30:00.123456+05:30",
      "2024-01-15 10:30:00+00",
      "2024-01-15 07:30:00-08",
      "10:30:00",
      "192.168.100.200",
      "10.0.0.1",
      "1.2.3.4567",
      "v1.2.3",
      "order 1234567890",
      "+123",
      "x+14155552671",
      "1234.5678",
      "-1234567890",
      "12 345 678",
    ]) {
      expect(found(s, ["phone"]), s).toEqual([]);
    }
  });
});

describe("jwt", () => {
  it("finds tokens whose header is JSON with alg", () => {
    expect(found(`token=${JWT}; path=/`, ["jwt"])).toEqual([`jwt:${JWT}`]);
    const none =
      Buffer.from('{"alg":"none"}').toString("base64url") +
      "." +
      Buffer.from('{"a":1}').toString("base64url") +
      ".";
    expect(found(none, ["jwt"])).toEqual([`jwt:${none}`]);
  });

  it("ignores look-alikes", () => {
    const noAlg = Buffer.from('{"typ":"JWT"}').toString("base64url") + ".eyJhIjoxfQ.c2ln";
    expect(found(noAlg, ["jwt"])).toEqual([]);
    expect(found("eyJhbGciOiJIUzI1NiJ9", ["jwt"])).toEqual([]); // one part
    expect(found("eyJub3QganNvbg.x.y", ["jwt"])).toEqual([]);
  });
});

describe("aws_access_key", () => {
  it("finds AKIA/ASIA key ids", () => {
    expect(found("key=AKIAIOSFODNN7EXAMPLE", ["aws_access_key"])).toEqual([
      "aws_access_key:AKIAIOSFODNN7EXAMPLE",
    ]);
    expect(found("ASIAY34FZKBOKMUTVV7A", ["aws_access_key"])).toEqual([
      "aws_access_key:ASIAY34FZKBOKMUTVV7A",
    ]);
  });
  it("ignores wrong lengths and prefixes", () => {
    expect(found("AKIAIOSFODNN7EXAMPL", ["aws_access_key"])).toEqual([]);
    expect(found("AKIAIOSFODNN7EXAMPLEX", ["aws_access_key"])).toEqual([]);
    expect(found("AIDAIOSFODNN7EXAMPLE", ["aws_access_key"])).toEqual([]);
    expect(found("akiaiosfodnn7example", ["aws_access_key"])).toEqual([]);
  });
});

describe("private_key", () => {
  const pem =
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\nabc=\n-----END RSA PRIVATE KEY-----";
  it("finds whole PEM blocks, OpenSSH and PKCS#8 too", () => {
    expect(found(`key:\n${pem}\nend`, ["private_key"])).toEqual([`private_key:${pem}`]);
    const p8 = "-----BEGIN PRIVATE KEY-----\\nMIIE\\n-----END PRIVATE KEY-----"; // JSON-escaped
    expect(found(`{"k":"${p8}"}`, ["private_key"])).toEqual([`private_key:${p8}`]);
    const ssh = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n-----END OPENSSH PRIVATE KEY-----";
    expect(found(ssh, ["private_key"])).toEqual([`private_key:${ssh}`]);
  });
  it("masks a truncated block to the end, leaves public keys and certificates", () => {
    expect(found("x -----BEGIN EC PRIVATE KEY-----\nMHcC", ["private_key"])).toEqual([
      "private_key:-----BEGIN EC PRIVATE KEY-----\nMHcC",
    ]);
    expect(
      found("-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----", ["private_key"]),
    ).toEqual([]);
    expect(
      found("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----", ["private_key"]),
    ).toEqual([]);
  });
});

describe("bearer_token", () => {
  it("finds the token after Bearer", () => {
    expect(found("Authorization: Bearer abc123def456ghi", ["bearer_token"])).toEqual([
      "bearer_token:abc123def456ghi",
    ]);
    expect(found("bearer Zm9vYmFyYmF6cXV4cXV1eA==.", ["bearer_token"])).toEqual([
      "bearer_token:Zm9vYmFyYmF6cXV4cXV1eA==",
    ]);
  });
  it("ignores prose", () => {
    expect(found("the bearer of this note", ["bearer_token"])).toEqual([]);
    expect(found("Bearer bonds", ["bearer_token"])).toEqual([]);
    expect(found("bearer instruments.", ["bearer_token"])).toEqual([]);
    expect(found("Bearer", ["bearer_token"])).toEqual([]);
  });
  it("merges a JWT inside a bearer header into one span", () => {
    expect(found(`Authorization: Bearer ${JWT}`)).toEqual([`jwt:${JWT}`]);
  });
});

describe("pre-filter", () => {
  it("rejects ordinary values without running any detector", () => {
    for (const s of [
      "Alice Johnson",
      "42",
      "2024-01-15 10:30:00+00",
      "1234.56",
      "pending",
      "",
      "t",
    ]) {
      const b = Buffer.from(s);
      expect(all.prefilterBytes(b, 0, b.length), s).toBe(0);
    }
  });
  it("agrees between bytes and text", () => {
    for (const s of [
      "alice@example.com",
      "4111 1111 1111 1111",
      `x ${JWT}`,
      "AKIAIOSFODNN7EXAMPLE",
      "Bearer abc",
      "BEARER abc",
      "-----BEGIN PRIVATE KEY-----",
      "123-45-6789",
      "DE89370400440532013000",
    ]) {
      const b = Buffer.from(s, "latin1");
      expect(prefilterBytes(b, 0, b.length), s).toBe(prefilterText(s));
      expect(prefilterText(s), s).not.toBe(0);
    }
  });
  it("finds nothing in a value it rejects, for any detector", () => {
    expect(all.find("Alice Johnson")).toBeNull();
  });
});

describe("pre-filter soundness", () => {
  it("never hides a span a detector would find (randomised)", () => {
    let seed = 7;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x80000000;
    };
    const pieces = [
      ..."0123456789012345678901234567890123456789",
      ..."      ----....()++::@@",
      ..."aeyJAKISBEARrxDEGB\n\t",
      "4111",
      "1111 ",
      "555-",
      "+1 ",
      "(415) ",
      "eyJhbGciOiJIUzI1NiJ9",
      ".eyJ4IjoxfQ.",
      "AKIA",
      "ASIA",
      "Bearer ",
      "bearer ",
      "-----BEGIN PRIVATE KEY-----",
      "-----END PRIVATE KEY-----",
      "@example.com",
      "DE89",
      "3704 0044 0532 0130 00",
      "078-05-1120",
      "10:30",
      "2024-01-15 ",
      "é",
    ];
    let hits = 0;
    for (let n = 0; n < 20_000; n++) {
      let s = "";
      const parts = 1 + Math.floor(rand() * 14);
      for (let k = 0; k < parts; k++) s += pieces[Math.floor(rand() * pieces.length)];
      const bytes = Buffer.from(s, "utf8").toString("latin1");
      const full = all.find(bytes, all.mask);
      if (full !== null) hits++;
      expect(all.find(bytes), JSON.stringify(s)).toEqual(full);
    }
    expect(hits).toBeGreaterThan(1000);
  });
});
