/**
 * The demo's own parts, offline: its certificates (made without openssl) are what TLS clients
 * accept, its sample data is as fake as it claims (test card numbers pass Luhn, no real
 * domains), and its policy masks every kind of personal data the data holds.
 */
import { X509Certificate } from "node:crypto";
import { createServer } from "node:https";
import { request } from "node:https";
import type { AddressInfo } from "node:net";
import { describe, expect, it } from "vitest";
import { makeDemoCertificates } from "../../src/demo/certs.js";
import { demoCustomers, demoSeedSql, luhnValid, TEST_CARDS } from "../../src/demo/data.js";
import { DEMO_POLICY } from "../../src/demo/config.js";
import { DetectorSet } from "../../src/policy/masking/index.js";

describe("demo certificates", () => {
  it("are a CA and a localhost/127.0.0.1 leaf it signed", () => {
    const c = makeDemoCertificates();
    const ca = new X509Certificate(c.caPem);
    const leaf = new X509Certificate(c.certPem);
    expect(ca.ca).toBe(true);
    expect(leaf.ca).toBe(false);
    expect(leaf.checkIssued(ca)).toBe(true);
    expect(leaf.verify(ca.publicKey)).toBe(true);
    expect(leaf.subjectAltName).toBe("DNS:localhost, IP Address:127.0.0.1");
    expect(leaf.checkHost("localhost")).toBe("localhost");
    expect(new Date(leaf.validTo).getTime()).toBeGreaterThan(Date.now() + 29 * 86_400_000);
  });

  it("are accepted by a TLS client that trusts the CA, by name and by address", async () => {
    const c = makeDemoCertificates();
    const server = createServer({ cert: c.certPem, key: c.keyPem }, (_req, res) => res.end("ok"));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as AddressInfo).port;
    try {
      for (const host of ["localhost", "127.0.0.1"]) {
        const body = await new Promise<string>((resolve, reject) => {
          request({ host, port, ca: c.caPem }, (res) => {
            let s = "";
            res.on("data", (d: Buffer) => (s += d.toString()));
            res.on("end", () => resolve(s));
          })
            .on("error", reject)
            .end();
        });
        expect(body).toBe("ok");
      }
      // And refused by one that does not trust it.
      await expect(
        new Promise((resolve, reject) =>
          request({ host: "localhost", port }, resolve).on("error", reject).end(),
        ),
      ).rejects.toThrow(/self[- ]signed|unable to verify|certificate/i);
    } finally {
      server.close();
    }
  });
});

describe("demo data", () => {
  it("uses only published test card numbers, all Luhn-valid", () => {
    for (const card of TEST_CARDS) expect(luhnValid(card), card).toBe(true);
    expect(luhnValid("4111111111111112")).toBe(false);
    for (const c of demoCustomers()) expect(TEST_CARDS).toContain(c.cardNumber);
  });

  it("uses only reserved example domains and 555 phone numbers in the US", () => {
    const customers = demoCustomers();
    expect(customers).toHaveLength(24);
    for (const c of customers) {
      expect(c.email).toMatch(/@example\.(com|org|net)$/);
      if (c.country === "US") expect(c.phone).toMatch(/^\+1 \(415\) 555-01\d\d$/);
    }
  });

  it("is plain CREATE and INSERT statements (no COPY), the same every time", () => {
    const sql = demoSeedSql();
    expect(sql).toBe(demoSeedSql());
    expect(sql).not.toMatch(/\bCOPY\b/);
    expect(sql).toContain("CREATE TABLE customers");
    expect(sql).toContain("INSERT INTO orders");
  });

  it("has every personal value found by the demo policy's detectors, in every row", () => {
    const detectors = new DetectorSet([...DEMO_POLICY.mask.detectors]);
    const whole = (v: string, kind: string) => {
      const spans = detectors.find(v);
      expect(spans, `${kind} ${v}`).not.toBeNull();
      expect(spans![0]).toMatchObject({ start: 0, end: v.length, detector: kind });
    };
    for (const c of demoCustomers()) {
      whole(c.email, "email");
      whole(c.phone, "phone");
      whole(c.cardNumber, "credit_card");
      if (c.iban) whole(c.iban, "iban");
      if (c.ssn) whole(c.ssn, "us_ssn");
    }
  });
});
