import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from "node:crypto";
import { describe, expect, it } from "vitest";
import { ScramClient, ScramError } from "../../../src/protocols/postgres/scram.js";

/**
 * The server side of SCRAM-SHA-256 (RFC 5802 / RFC 7677) as PostgreSQL does it, written out
 * independently of the client under test.
 */
const hmac = (key: Buffer, data: string) => createHmac("sha256", key).update(data).digest();
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest();

class ScramServer {
  readonly storedKey: Buffer;
  readonly serverKey: Buffer;
  private clientFirstBare = "";
  private serverFirst = "";
  nonce = "";

  constructor(
    password: string,
    readonly salt: Buffer = randomBytes(16),
    readonly iterations = 4096,
  ) {
    const salted = pbkdf2Sync(Buffer.from(password, "utf8"), salt, iterations, 32, "sha256");
    this.storedKey = sha256(hmac(salted, "Client Key"));
    this.serverKey = hmac(salted, "Server Key");
  }

  /** Reads client-first, answers server-first. `nonce` may override the combined nonce. */
  first(clientFirst: Buffer, nonce?: (clientNonce: string) => string): string {
    const text = clientFirst.toString("utf8");
    const m = /^n,,(n=[^,]*,r=([^,]+))$/.exec(text);
    if (!m) throw new Error(`bad client-first-message: ${text}`);
    this.clientFirstBare = m[1]!;
    const clientNonce = m[2]!;
    this.nonce = nonce ? nonce(clientNonce) : clientNonce + randomBytes(18).toString("base64");
    this.serverFirst = `r=${this.nonce},s=${this.salt.toString("base64")},i=${this.iterations}`;
    return this.serverFirst;
  }

  /** Checks client-final; returns server-final, or throws like the server refusing the proof. */
  final(clientFinal: Buffer): string {
    const text = clientFinal.toString("utf8");
    const m = /^(c=biws,r=([^,]+)),p=([^,]+)$/.exec(text);
    if (!m) throw new Error(`bad client-final-message: ${text}`);
    if (m[2] !== this.nonce) throw new Error("nonce mismatch");
    const authMessage = `${this.clientFirstBare},${this.serverFirst},${m[1]!}`;
    const proof = Buffer.from(m[3]!, "base64");
    const sig = hmac(this.storedKey, authMessage);
    if (proof.length !== sig.length) throw new Error("invalid proof");
    const clientKey = Buffer.alloc(proof.length);
    for (let i = 0; i < proof.length; i++) clientKey[i] = proof[i]! ^ sig[i]!;
    if (!timingSafeEqual(sha256(clientKey), this.storedKey)) throw new Error("invalid proof");
    return `v=${hmac(this.serverKey, authMessage).toString("base64")}`;
  }
}

async function scramError(p: Promise<unknown> | (() => unknown)): Promise<ScramError> {
  try {
    await (typeof p === "function" ? p() : p);
  } catch (err) {
    expect(err).toBeInstanceOf(ScramError);
    return err as ScramError;
  }
  throw new Error("expected a ScramError, nothing was thrown");
}

describe("ScramClient", () => {
  it("sends a client-first-message without channel binding and with an empty user name", () => {
    const first = new ScramClient("pw").clientFirstMessage().toString("utf8");
    expect(first).toMatch(/^n,,n=,r=[A-Za-z0-9+/]{24}$/);
    // A fresh nonce per client.
    expect(new ScramClient("pw").clientFirstMessage().toString("utf8")).not.toBe(first);
  });

  it("signs in against a server that knows the password, and accepts its signature", async () => {
    const password = "correct horse battery staple";
    const server = new ScramServer(password);
    const client = new ScramClient(password);
    const serverFirst = server.first(client.clientFirstMessage());
    const clientFinal = await client.clientFinalMessage(serverFirst);
    const serverFinal = server.final(clientFinal);
    expect(() => client.verifyServerFinal(serverFinal)).not.toThrow();
  });

  it("non-ASCII passwords work (UTF-8, already in normal form)", async () => {
    const password = "pässwörd-密码-🔑";
    const server = new ScramServer(password);
    const client = new ScramClient(password);
    const serverFinal = server.final(
      await client.clientFinalMessage(server.first(client.clientFirstMessage())),
    );
    client.verifyServerFinal(serverFinal);
  });

  it("a wrong password gives a proof the server refuses", async () => {
    const server = new ScramServer("the real one");
    const client = new ScramClient("a wrong one");
    const clientFinal = await client.clientFinalMessage(server.first(client.clientFirstMessage()));
    expect(() => server.final(clientFinal)).toThrow(/invalid proof/);
  });

  it("rejects a server signature that is wrong (a server that does not know the password)", async () => {
    const password = "secret";
    const server = new ScramServer(password);
    const client = new ScramClient(password);
    const serverFinal = server.final(
      await client.clientFinalMessage(server.first(client.clientFirstMessage())),
    );
    const sig = Buffer.from(serverFinal.slice(2), "base64");
    sig[0] = sig[0]! ^ 1;
    const err = await scramError(() => client.verifyServerFinal(`v=${sig.toString("base64")}`));
    expect(err.message).toMatch(/server signature is wrong/);

    // An impostor that learned nothing but the salt: the signature of another password.
    const impostor = new ScramServer("not the password", server.salt, server.iterations);
    const client2 = new ScramClient(password);
    const impostorFirst = impostor.first(client2.clientFirstMessage());
    await client2.clientFinalMessage(impostorFirst);
    // The impostor cannot check the proof; it makes up a signature with its own key.
    const fake = `v=${hmac(impostor.serverKey, "anything").toString("base64")}`;
    await scramError(() => client2.verifyServerFinal(fake));
    // A truncated signature is not a match either.
    await scramError(() =>
      client2.verifyServerFinal(`v=${sig.subarray(0, 16).toString("base64")}`),
    );
  });

  it("rejects a server nonce that does not extend the client's", async () => {
    const server = new ScramServer("pw");
    const client = new ScramClient("pw");
    const first = server.first(client.clientFirstMessage(), () =>
      randomBytes(36).toString("base64"),
    );
    const err = await scramError(client.clientFinalMessage(first));
    expect(err.message).toMatch(/nonce/);
  });

  it("rejects a server nonce equal to the client's (no server part), or one that only shares a prefix", async () => {
    const server = new ScramServer("pw");
    const client = new ScramClient("pw");
    await scramError(
      client.clientFinalMessage(server.first(client.clientFirstMessage(), (c) => c)),
    );

    const client2 = new ScramClient("pw");
    await scramError(
      client2.clientFinalMessage(
        server.first(client2.clientFirstMessage(), (c) => c.slice(0, -1) + "Z" + "extra"),
      ),
    );
  });

  it("rejects malformed server-first-messages", async () => {
    const client = new ScramClient("pw");
    const nonce = client.clientFirstMessage().toString("utf8").slice("n,,n=,r=".length) + "srv";
    for (const bad of [
      "",
      "garbage",
      `r=${nonce},i=4096`,
      `r=${nonce},s=c2FsdA==`,
      `r=${nonce},s=c2FsdA==,i=0`,
      `r=${nonce},s=c2FsdA==,i=-1`,
      `r=${nonce},s=c2FsdA==,i=many`,
      `r=${nonce},s=c2FsdA==,i=1.5`,
      `s=c2FsdA==,i=4096`,
    ]) {
      const err = await scramError(client.clientFinalMessage(bad));
      expect(err.message, bad).toMatch(/malformed|nonce/);
    }
  });

  it("reports a server-final error attribute, and a server-final before any client-final", async () => {
    const client = new ScramClient("pw");
    const err = await scramError(() => client.verifyServerFinal("e=invalid-proof"));
    expect(err.message).toContain("invalid-proof");
    await scramError(() => client.verifyServerFinal("v=AAAA"));
    await scramError(() => client.verifyServerFinal(""));
  });

  it("the same salt and iterations with different passwords do not share a cached key", async () => {
    const salt = randomBytes(16);
    const a = new ScramServer("password A", salt, 4096);
    const b = new ScramServer("password B", salt, 4096);
    for (const [server, pw] of [
      [a, "password A"],
      [b, "password B"],
      [a, "password A"],
    ] as const) {
      const client = new ScramClient(pw);
      const final = server.final(
        await client.clientFinalMessage(server.first(client.clientFirstMessage())),
      );
      client.verifyServerFinal(final);
    }
    // And a wrong password stays wrong after the right one was cached.
    const wrong = new ScramClient("password B");
    const clientFinal = await wrong.clientFinalMessage(a.first(wrong.clientFirstMessage()));
    expect(() => a.final(clientFinal)).toThrow(/invalid proof/);
  });

  it("salt and iteration count cannot be confused in the cache (salt S+'40' at 96 rounds is not salt S at 4096)", async () => {
    const password = "cache me";
    const s = randomBytes(15);
    const first = new ScramServer(password, Buffer.concat([s, Buffer.from("40")]), 96);
    const second = new ScramServer(password, s, 4096);
    for (const server of [first, second]) {
      const client = new ScramClient(password);
      const final = server.final(
        await client.clientFinalMessage(server.first(client.clientFirstMessage())),
      );
      client.verifyServerFinal(final);
    }
  });
});
