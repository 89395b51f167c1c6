import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from "node:crypto";
import { promisify } from "node:util";

/**
 * SCRAM-SHA-256 client side (RFC 5802 / RFC 7677), as PostgreSQL speaks it: no channel binding
 * ("n,,"), user name left empty because the server takes it from the startup message.
 *
 * The salted password costs thousands of HMAC rounds; it depends only on (password, salt,
 * iterations), so it is cached: a broker opening many upstream sessions pays it once.
 */
const pbkdf2Async = promisify(pbkdf2);
const saltedCache = new Map<string, Buffer>();
const SALTED_CACHE_MAX = 256;

async function saltedPassword(password: string, salt: Buffer, iterations: number): Promise<Buffer> {
  // Fields that cannot contain the separator come first, so no two inputs share a key
  // (salt bytes and iteration digits once ran together: salt S+"40" at 96 = salt S at 4096).
  const key = createHash("sha256")
    .update(`${iterations}\0${salt.toString("base64")}\0`)
    .update(password)
    .digest("base64");
  const hit = saltedCache.get(key);
  if (hit) return hit;
  const salted = await pbkdf2Async(
    Buffer.from(password.normalize("NFKC"), "utf8"),
    salt,
    iterations,
    32,
    "sha256",
  );
  if (saltedCache.size >= SALTED_CACHE_MAX) saltedCache.clear();
  saltedCache.set(key, salted);
  return salted;
}

const hmac = (key: Buffer, data: string) => createHmac("sha256", key).update(data).digest();

export class ScramError extends Error {
  override name = "ScramError";
}

export class ScramClient {
  private readonly clientNonce = randomBytes(18).toString("base64");
  private readonly clientFirstBare = `n=,r=${this.clientNonce}`;
  private expectedServerSignature: Buffer | null = null;

  constructor(private readonly password: string) {}

  clientFirstMessage(): Buffer {
    return Buffer.from(`n,,${this.clientFirstBare}`, "utf8");
  }

  async clientFinalMessage(serverFirst: string): Promise<Buffer> {
    const attrs = parseAttributes(serverFirst);
    const nonce = attrs.get("r");
    const saltB64 = attrs.get("s");
    const iterations = Number(attrs.get("i"));
    if (!nonce || !saltB64 || !Number.isInteger(iterations) || iterations < 1) {
      throw new ScramError("malformed SCRAM server-first-message");
    }
    if (!nonce.startsWith(this.clientNonce) || nonce.length === this.clientNonce.length) {
      throw new ScramError("SCRAM server nonce does not extend the client nonce");
    }
    const salted = await saltedPassword(this.password, Buffer.from(saltB64, "base64"), iterations);
    const clientKey = hmac(salted, "Client Key");
    const storedKey = createHash("sha256").update(clientKey).digest();
    const withoutProof = `c=biws,r=${nonce}`;
    const authMessage = `${this.clientFirstBare},${serverFirst},${withoutProof}`;
    const signature = hmac(storedKey, authMessage);
    const proof = Buffer.alloc(clientKey.length);
    for (let i = 0; i < proof.length; i++) proof[i] = clientKey[i]! ^ signature[i]!;
    this.expectedServerSignature = hmac(hmac(salted, "Server Key"), authMessage);
    return Buffer.from(`${withoutProof},p=${proof.toString("base64")}`, "utf8");
  }

  /** The server proves it knows the password too; a mismatch means we talk to an impostor. */
  verifyServerFinal(serverFinal: string): void {
    const attrs = parseAttributes(serverFinal);
    const err = attrs.get("e");
    if (err) throw new ScramError(`SCRAM authentication failed: ${err}`);
    const v = attrs.get("v");
    if (!v || !this.expectedServerSignature)
      throw new ScramError("malformed SCRAM server-final-message");
    const got = Buffer.from(v, "base64");
    if (
      got.length !== this.expectedServerSignature.length ||
      !timingSafeEqual(got, this.expectedServerSignature)
    ) {
      throw new ScramError("the target's SCRAM server signature is wrong");
    }
  }
}

function parseAttributes(msg: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of msg.split(",")) {
    const eq = part.indexOf("=");
    if (eq === 1) out.set(part[0]!, part.slice(2));
  }
  return out;
}
