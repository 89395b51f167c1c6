/**
 * Service-principal credentials as MSAL wants them: certificate files (thumbprint, PKCS#8 key,
 * x5c chain) and what goes wrong with them, federated token files, secrets from the
 * environment; and the scope and authority a service principal asks for.
 */
import { execFileSync } from "node:child_process";
import { createPrivateKey } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GwError } from "../../src/errors.js";
import {
  createConfidentialClient,
  describeMethod,
  loadClientCertificate,
  readFederatedToken,
} from "../../src/identity/msal/confidential-client.js";
import {
  defaultScopeFor,
  parseLoginSettings,
  spAuthority,
} from "../../src/identity/msal/login-settings.js";
import { issueCert, makeCa, type IssuedCert, type TestCa } from "../helpers/tls.js";

let ca: TestCa;
let rsa: IssuedCert;
let ec: IssuedCert;
let dir: string;

beforeAll(() => {
  ca = makeCa();
  rsa = issueCert(ca, { cn: "sp", dns: [], ips: [], keyType: "rsa" });
  ec = issueCert(ca, { cn: "sp-ec", dns: [], ips: [], keyType: "ec" });
  dir = mkdtempSync(join(tmpdir(), "gw-cc-"));
});
afterAll(() => {
  rmSync(ca.dir, { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
});

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

function thrown(fn: () => unknown): GwError {
  try {
    fn();
  } catch (e) {
    return e as GwError;
  }
  throw new Error("expected an error");
}

describe("loadClientCertificate", () => {
  it("gives the SHA-256 thumbprint openssl computes, a PKCS#8 key and the chain leaf first", () => {
    // Key first, then the CA, then the leaf: the order in a PEM file is not to be trusted.
    const p = file("sp.pem", rsa.keyPem + ca.caPem + rsa.certPem);
    const c = loadClientCertificate(p);
    const fp = execFileSync("openssl", [
      "x509",
      "-noout",
      "-fingerprint",
      "-sha256",
      "-in",
      rsa.cert,
    ])
      .toString()
      .split("=")[1]!
      .trim()
      .replace(/:/g, "")
      .toLowerCase();
    expect(c.thumbprintSha256).toBe(fp);
    expect(c.privateKey).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    const blocks = c.x5c.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)!;
    expect(blocks).toHaveLength(2);
    expect(blocks[0]).toBe(rsa.certPem.trim());
  });

  it("converts a PKCS#1 (BEGIN RSA PRIVATE KEY) key", () => {
    const pkcs1 = createPrivateKey(rsa.keyPem).export({ type: "pkcs1", format: "pem" }).toString();
    expect(pkcs1).toContain("BEGIN RSA PRIVATE KEY");
    const c = loadClientCertificate(file("pkcs1.pem", rsa.certPem + pkcs1));
    expect(c.privateKey).toMatch(/^-----BEGIN PRIVATE KEY-----/);
  });

  it("refuses, with what to do: EC keys, encrypted keys, no key, a key of another certificate, PFX, a missing file", () => {
    expect(
      thrown(() => loadClientCertificate(file("ec.pem", ec.certPem + ec.keyPem))).message,
    ).toContain("the key is ec, but Entra ID certificate credentials are RSA");
    const encrypted = createPrivateKey(rsa.keyPem)
      .export({ type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase: "pw" })
      .toString();
    const enc = thrown(() => loadClientCertificate(file("enc.pem", rsa.certPem + encrypted)));
    expect(enc.message).toContain("the private key is encrypted");
    expect(enc.hint).toContain("openssl pkcs8");
    expect(thrown(() => loadClientCertificate(file("nokey.pem", rsa.certPem))).message).toContain(
      "no private key in the file",
    );
    const other = issueCert(ca, { cn: "other", dns: [], ips: [], keyType: "rsa" });
    expect(
      thrown(() => loadClientCertificate(file("mismatch.pem", rsa.certPem + other.keyPem))).message,
    ).toContain("does not belong to any certificate");
    const pfx = thrown(() => loadClientCertificate(file("x.pfx", "\u0030\u0082binary")));
    expect(pfx.hint).toContain("openssl pkcs12");
    expect(thrown(() => loadClientCertificate(join(dir, "missing.pem"))).code).toBe(
      "certificate_unreadable",
    );
  });
});

describe("other credentials", () => {
  it("a federated token file is read and trimmed; empty or missing files are errors", () => {
    expect(readFederatedToken(file("t1", "a.b.c\n"))).toBe("a.b.c");
    expect(thrown(() => readFederatedToken(file("t2", "  \n"))).code).toBe("federated_token_empty");
    expect(thrown(() => readFederatedToken(join(dir, "nope"))).code).toBe(
      "federated_token_unreadable",
    );
  });

  it("a secret's variable must be set; that is checked before any network request", async () => {
    const e = await createConfidentialClient({
      authority: "https://localhost:1/t",
      clientId: "c",
      method: { type: "secret", env: "GW_TEST_UNSET_SECRET_VAR" },
      env: {},
    }).then(
      () => undefined,
      (err: unknown) => err as GwError,
    );
    expect(e?.code).toBe("sp_secret_missing");
    expect(e?.message).toContain("GW_TEST_UNSET_SECRET_VAR");
  });

  it("methods are described by where the credential is, never by its value", () => {
    expect(describeMethod({ type: "secret", env: "X" })).toBe("the client secret in $X");
    expect(describeMethod({ type: "certificate", path: "/a.pem" })).toBe("the certificate /a.pem");
    expect(describeMethod({ type: "federated", tokenFile: "/t" })).toBe(
      "the federated token file /t",
    );
  });
});

describe("what a service principal asks for", () => {
  it("<resource>/.default from the login scope, or from the audience", () => {
    expect(defaultScopeFor("api://abc/access")).toBe("api://abc/.default");
    expect(defaultScopeFor("api://abc")).toBe("api://abc/.default");
    expect(defaultScopeFor("api://abc/.default")).toBe("api://abc/.default");
    expect(defaultScopeFor("0f0e0d0c-0000-4000-8000-000000000000")).toBe(
      "0f0e0d0c-0000-4000-8000-000000000000/.default",
    );
    expect(defaultScopeFor("https://gw.example.com/api/access")).toBe(
      "https://gw.example.com/api/.default",
    );
  });

  it("the broker's authority host with the service principal's tenant", () => {
    const s = parseLoginSettings("https://gw.example.com", {
      identity: {
        issuer: "https://login.microsoftonline.com/t1/v2.0",
        audience: "aud",
        login: {
          authority: "https://login.microsoftonline.com/t1",
          clientId: "cli",
          scopes: ["api://aud/access"],
        },
      },
    });
    expect(s.appScope).toBe("api://aud/.default");
    expect(spAuthority(s, "t2")).toBe("https://login.microsoftonline.com/t2");
    // No identity.login: the issuer and audience are enough for service principals.
    const bare = parseLoginSettings("https://gw.example.com", {
      identity: { issuer: "https://localhost:8443/t1/v2.0", audience: ["guid"] },
    });
    expect(bare.login).toBeUndefined();
    expect(spAuthority(bare, "t9")).toBe("https://localhost:8443/t9");
    expect(bare.appScope).toBe("guid/.default");
    expect(() => spAuthority(bare, "../evil")).toThrow("is not a tenant id");
  });
});
