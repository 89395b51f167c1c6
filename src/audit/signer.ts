import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign,
  verify,
  type KeyObject,
} from "node:crypto";
import {
  chmodSync,
  closeSync,
  mkdirSync,
  openSync,
  readFileSync,
  statSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { dirname } from "node:path";
import { ExitCode, GwError } from "../errors.js";

/**
 * The broker's own Ed25519 key, which signs each closed session's digest. It is made on the
 * broker's first start and kept (PKCS#8 PEM, mode 0600) at `signingKey.file`, by default next
 * to the SQLite store; its public half is served at /v1/audit/public-key and written beside
 * it as `<file>.pub`, so auditors can verify sessions offline.
 */
export class AuditSigner {
  readonly keyId: string;
  readonly publicKeyPem: string;

  private constructor(
    private readonly privateKey: KeyObject,
    readonly path: string | null,
  ) {
    const pub = createPublicKey(privateKey);
    this.publicKeyPem = pub.export({ type: "spki", format: "pem" }).toString();
    this.keyId = keyIdOf(pub);
  }

  /** A key that lives as long as this process (the memory store keeps nothing either). */
  static ephemeral(): AuditSigner {
    return new AuditSigner(generateKeyPairSync("ed25519").privateKey, null);
  }

  /** Reads the key at `path`, or makes one there (0600, directory 0700) when there is none. */
  static loadOrCreate(path: string): AuditSigner {
    try {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    } catch (err) {
      throw keyError(`cannot create the directory for the audit signing key ${path}`, err);
    }
    let fd: number | undefined;
    try {
      fd = openSync(path, "wx", 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") {
        throw keyError(`cannot create the audit signing key ${path}`, err);
      }
    }
    if (fd !== undefined) {
      const { privateKey } = generateKeyPairSync("ed25519");
      try {
        writeSync(fd, privateKey.export({ type: "pkcs8", format: "pem" }).toString());
      } finally {
        closeSync(fd);
      }
      const signer = new AuditSigner(privateKey, path);
      try {
        writeFileSync(`${path}.pub`, signer.publicKeyPem, { mode: 0o644 });
      } catch {
        // A convenience copy; the broker serves the public key either way.
      }
      return signer;
    }
    return AuditSigner.load(path);
  }

  private static load(path: string): AuditSigner {
    let mode: number;
    try {
      const st = statSync(path);
      if (!st.isFile()) throw new Error("not a regular file");
      mode = st.mode;
    } catch (err) {
      throw keyError(`cannot read the audit signing key ${path}`, err);
    }
    if ((mode & 0o077) !== 0) {
      try {
        chmodSync(path, 0o600);
      } catch (err) {
        throw keyError(
          `the audit signing key ${path} is readable by other users and gw cannot change that`,
          err,
          `Run: chmod 600 ${path}`,
        );
      }
    }
    let key: KeyObject;
    try {
      key = createPrivateKey(readFileSync(path));
    } catch (err) {
      throw keyError(`${path} is not a PEM private key`, err);
    }
    if (key.asymmetricKeyType !== "ed25519") {
      throw keyError(
        `${path} holds a ${key.asymmetricKeyType ?? "non-asymmetric"} key; the audit signing key must be Ed25519`,
        undefined,
      );
    }
    return new AuditSigner(key, path);
  }

  /** Ed25519 over the 32 bytes of a sha256 hex digest, base64. */
  sign(digestHex: string): string {
    return sign(null, Buffer.from(digestHex, "hex"), this.privateKey).toString("base64");
  }
}

/** The first 16 hex digits of sha256 over the public key's SPKI DER. */
export function keyIdOf(publicKey: KeyObject): string {
  const der = publicKey.export({ type: "spki", format: "der" });
  return createHash("sha256").update(der).digest("hex").slice(0, 16);
}

/** An Ed25519 public key from PEM text (SPKI); throws GwError audit_public_key_invalid. */
export function parsePublicKey(pem: string, where: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (err) {
    throw new GwError("audit_public_key_invalid", `${where} is not a PEM public key`, {
      exitCode: ExitCode.usage,
      hint: "Use the file `gw audit public-key --out FILE` writes (or the broker's <signing key>.pub).",
      cause: err,
    });
  }
  if (key.asymmetricKeyType !== "ed25519") {
    throw new GwError(
      "audit_public_key_invalid",
      `${where} is a ${key.asymmetricKeyType ?? "non-asymmetric"} key, not the broker's Ed25519 key`,
      { exitCode: ExitCode.usage },
    );
  }
  return key;
}

export function verifyDigest(publicKey: KeyObject, digestHex: string, signature: string): boolean {
  try {
    return verify(null, Buffer.from(digestHex, "hex"), publicKey, Buffer.from(signature, "base64"));
  } catch {
    return false;
  }
}

function keyError(message: string, cause: unknown, hint?: string): GwError {
  const why = cause instanceof Error ? `: ${cause.message}` : "";
  return new GwError("audit_key_unavailable", message + why, {
    exitCode: ExitCode.config,
    hint:
      hint ??
      "Set signingKey.file in the broker config to a path the broker can write (its directory is created 0700).",
    cause,
  });
}
