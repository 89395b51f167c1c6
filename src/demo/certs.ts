/**
 * A private CA and a `localhost` certificate for the demo, made with node:crypto alone.
 *
 * The demo's identity server must speak HTTPS (MSAL insists) and the demo broker does too, so
 * the demo needs certificates. Requiring the openssl CLI for a first run would be one more thing
 * to install, so the few DER structures of an X.509 v3 certificate are written here by hand:
 * EC P-256 keys, ECDSA-with-SHA-256 signatures, a CA (basicConstraints CA:TRUE, keyCertSign) and
 * a leaf for DNS:localhost and IP:127.0.0.1 (serverAuth). Node's X509Certificate reads them
 * back in the tests; any TLS client that trusts the CA file accepts the leaf.
 */
import {
  createHash,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  sign,
  type KeyObject,
} from "node:crypto";

// --- DER ---------------------------------------------------------------------------------------

function len(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), len(body.length), body]);
}

const seq = (...items: Buffer[]) => tlv(0x30, Buffer.concat(items));
const set = (...items: Buffer[]) => tlv(0x31, Buffer.concat(items));
const octets = (b: Buffer) => tlv(0x04, b);
const utf8 = (s: string) => tlv(0x0c, Buffer.from(s, "utf8"));
const bool = (v: boolean) => tlv(0x01, Buffer.from([v ? 0xff : 0x00]));
/** A context-specific constructed (EXPLICIT) tag. */
const explicit = (n: number, inner: Buffer) => tlv(0xa0 | n, inner);

function integer(b: Buffer): Buffer {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0 && (b[i + 1]! & 0x80) === 0) i++;
  const v = b.subarray(i);
  return tlv(0x02, (v[0]! & 0x80) !== 0 ? Buffer.concat([Buffer.from([0]), v]) : v);
}

function oid(dotted: string): Buffer {
  const parts = dotted.split(".").map(Number);
  const bytes: number[] = [40 * parts[0]! + parts[1]!];
  for (const p of parts.slice(2)) {
    const chunk: number[] = [p & 0x7f];
    for (let v = Math.floor(p / 128); v > 0; v = Math.floor(v / 128))
      chunk.unshift(0x80 | (v & 0x7f));
    bytes.push(...chunk);
  }
  return tlv(0x06, Buffer.from(bytes));
}

function bitString(bytes: Buffer, unusedBits = 0): Buffer {
  return tlv(0x03, Buffer.concat([Buffer.from([unusedBits]), bytes]));
}

function utcTime(d: Date): Buffer {
  const p = (n: number) => String(n).padStart(2, "0");
  const s = `${p(d.getUTCFullYear() % 100)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`;
  return tlv(0x17, Buffer.from(s, "ascii"));
}

const name = (cn: string) => seq(set(seq(oid("2.5.4.3"), utf8(cn))));

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return critical ? seq(oid(id), bool(true), octets(value)) : seq(oid(id), octets(value));
}

const ECDSA_SHA256 = seq(oid("1.2.840.10045.4.3.2"));

/** The subjectPublicKey bits' SHA-1: the key identifier RFC 5280 suggests. */
function keyId(pub: KeyObject): Buffer {
  const spki = pub.export({ type: "spki", format: "der" });
  // The BIT STRING is the last element of the SPKI; for P-256 it is the final 65 bytes.
  return createHash("sha1")
    .update(spki.subarray(spki.length - 65))
    .digest();
}

function ipBytes(ip: string): Buffer {
  return Buffer.from(ip.split(".").map(Number));
}

interface CertSpec {
  subject: string;
  issuer: string;
  subjectKey: KeyObject;
  issuerKey: KeyObject;
  days: number;
  extensions: Buffer[];
}

function certificate(spec: CertSpec): string {
  const serial = randomBytes(16);
  serial[0] = serial[0]! & 0x7f;
  const notBefore = new Date(Date.now() - 60_000);
  const notAfter = new Date(Date.now() + spec.days * 86_400_000);
  const tbs = seq(
    explicit(0, integer(Buffer.from([2]))),
    integer(serial),
    ECDSA_SHA256,
    name(spec.issuer),
    seq(utcTime(notBefore), utcTime(notAfter)),
    name(spec.subject),
    createPublicKey(spec.subjectKey).export({ type: "spki", format: "der" }),
    explicit(3, seq(...spec.extensions)),
  );
  const signature = sign("sha256", tbs, spec.issuerKey);
  const der = seq(tbs, ECDSA_SHA256, bitString(signature));
  const b64 = der.toString("base64").replace(/(.{64})/g, "$1\n");
  return `-----BEGIN CERTIFICATE-----\n${b64.trimEnd()}\n-----END CERTIFICATE-----\n`;
}

export interface DemoCertificates {
  /** The CA certificate (PEM): what clients trust (GW_CA_FILE). */
  caPem: string;
  /** The server certificate for localhost and 127.0.0.1 (PEM). */
  certPem: string;
  /** Its private key (PKCS#8 PEM). */
  keyPem: string;
}

/** A fresh CA and a leaf for `localhost` / 127.0.0.1 it signed, valid for `days` (default 30). */
export function makeDemoCertificates(opts: { days?: number; cn?: string } = {}): DemoCertificates {
  const days = opts.days ?? 30;
  const ca = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const leaf = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const caName = opts.cn ?? "gw demo CA (throwaway)";
  const caId = keyId(ca.publicKey);
  const caPem = certificate({
    subject: caName,
    issuer: caName,
    subjectKey: ca.privateKey,
    issuerKey: ca.privateKey,
    days,
    extensions: [
      extension("2.5.29.19", true, seq(bool(true))),
      // keyCertSign (bit 5) and cRLSign (bit 6): 0b0000_0110, one unused bit.
      extension("2.5.29.15", true, bitString(Buffer.from([0x06]), 1)),
      extension("2.5.29.14", false, octets(caId)),
    ],
  });
  const certPem = certificate({
    subject: "localhost",
    issuer: caName,
    subjectKey: leaf.privateKey,
    issuerKey: ca.privateKey,
    days,
    extensions: [
      extension("2.5.29.19", true, seq()),
      // digitalSignature (bit 0): 0b1000_0000, seven unused bits.
      extension("2.5.29.15", true, bitString(Buffer.from([0x80]), 7)),
      extension("2.5.29.37", false, seq(oid("1.3.6.1.5.5.7.3.1"))),
      extension(
        "2.5.29.17",
        false,
        seq(tlv(0x82, Buffer.from("localhost", "ascii")), tlv(0x87, ipBytes("127.0.0.1"))),
      ),
      extension("2.5.29.14", false, octets(keyId(leaf.publicKey))),
      extension("2.5.29.35", false, seq(tlv(0x80, caId))),
    ],
  });
  const keyPem = leaf.privateKey.export({ type: "pkcs8", format: "pem" }).toString();
  return { caPem, certPem, keyPem };
}
