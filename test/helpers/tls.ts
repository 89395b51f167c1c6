/**
 * A private CA and leaf certificates for tests, made with the `openssl` CLI.
 *
 * Tests need real certificates (the broker, the local identity server and PostgreSQL all speak
 * TLS), and checking them in would mean they expire one day and fail CI for no reason. The CLI
 * is used instead of a JS library because it is what operators use too, and it is always there
 * on Debian. EC P-256 keys are the default: generating them takes milliseconds, RSA 2048 ~100ms.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export type KeyType = "ec" | "rsa";

export interface TestCa {
  dir: string;
  /** Path of the CA certificate (PEM). */
  caCert: string;
  /** Path of the CA private key (PEM, mode 0600). */
  caKey: string;
  caPem: string;
}

export interface IssuedCert {
  /** Path of the leaf certificate (PEM). */
  cert: string;
  /** Path of the leaf private key (PKCS#8 PEM, mode 0600). */
  key: string;
  certPem: string;
  keyPem: string;
}

export interface IssueOptions {
  cn?: string;
  /** DNS subjectAltNames; ["localhost"] when omitted. Pass [] for none. */
  dns?: string[];
  /** IP subjectAltNames; ["127.0.0.1"] when omitted. Pass [] for none. */
  ips?: string[];
  keyType?: KeyType;
  days?: number;
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString() ?? "";
    throw new Error(`openssl ${args[0]} failed: ${stderr.trim() || String(err)}`, { cause: err });
  }
}

function newKeyArgs(keyType: KeyType): string[] {
  return keyType === "ec"
    ? ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    : ["-newkey", "rsa:2048"];
}

/** A new CA in `dir` (a fresh temp dir when omitted). The caller removes the dir when done. */
export function makeCa(dir?: string, opts: { keyType?: KeyType; cn?: string } = {}): TestCa {
  const out = dir ?? mkdtempSync(join(tmpdir(), "gw-tls-"));
  mkdirSync(out, { recursive: true });
  const caCert = join(out, "ca.crt");
  const caKey = join(out, "ca.key");
  openssl(
    [
      "req",
      "-x509",
      ...newKeyArgs(opts.keyType ?? "ec"),
      "-nodes",
      "-keyout",
      caKey,
      "-out",
      caCert,
      "-days",
      "3650",
      "-subj",
      `/CN=${opts.cn ?? "gw test CA"}`,
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    ],
    out,
  );
  chmodSync(caKey, 0o600);
  return { dir: out, caCert, caKey, caPem: readFileSync(caCert, "utf8") };
}

/** A leaf certificate signed by `ca`, good for both TLS server and client authentication. */
export function issueCert(ca: TestCa, opts: IssueOptions = {}): IssuedCert {
  const cn = opts.cn ?? "localhost";
  const dns = opts.dns ?? ["localhost"];
  const ips = opts.ips ?? ["127.0.0.1"];
  // Unique names so several leaves can live in one CA dir, even when issued concurrently.
  const base = join(
    ca.dir,
    `${cn.replace(/[^a-zA-Z0-9.-]/g, "_")}-${randomBytes(4).toString("hex")}`,
  );
  const key = `${base}.key`;
  const csr = `${base}.csr`;
  const cert = `${base}.crt`;
  const ext = `${base}.ext`;

  const san = [...dns.map((d) => `DNS:${d}`), ...ips.map((ip) => `IP:${ip}`)];
  writeFileSync(
    ext,
    [
      "basicConstraints=critical,CA:FALSE",
      "keyUsage=critical,digitalSignature,keyEncipherment",
      "extendedKeyUsage=serverAuth,clientAuth",
      "subjectKeyIdentifier=hash",
      "authorityKeyIdentifier=keyid,issuer",
      ...(san.length > 0 ? [`subjectAltName=${san.join(",")}`] : []),
      "",
    ].join("\n"),
  );
  openssl(
    [
      "req",
      "-new",
      ...newKeyArgs(opts.keyType ?? "ec"),
      "-nodes",
      "-keyout",
      key,
      "-out",
      csr,
      "-subj",
      `/CN=${cn}`,
    ],
    ca.dir,
  );
  chmodSync(key, 0o600);
  openssl(
    [
      "x509",
      "-req",
      "-in",
      csr,
      "-CA",
      ca.caCert,
      "-CAkey",
      ca.caKey,
      // A random serial instead of a serial file: no shared state between concurrent issuers.
      "-set_serial",
      `0x${randomBytes(16)
        .toString("hex")
        .replace(/^[89a-f]/, "1")}`,
      "-days",
      String(opts.days ?? 365),
      "-sha256",
      "-extfile",
      ext,
      "-out",
      cert,
    ],
    ca.dir,
  );
  return { cert, key, certPem: readFileSync(cert, "utf8"), keyPem: readFileSync(key, "utf8") };
}
