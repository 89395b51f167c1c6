import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";

/**
 * OpenSSH known_hosts, enough to verify a target the way `ssh` does: plain and hashed
 * (`|1|salt|hash`) host names, `[host]:port` for other ports than 22, `*`/`?` wildcards,
 * `!negated` patterns, and `@revoked` keys. `@cert-authority` lines are not supported (they
 * are skipped, so a target known only through a CA is refused as unknown).
 */
export interface KnownHostEntry {
  marker: "revoked" | "cert-authority" | null;
  patterns: string[];
  keyType: string;
  key: Buffer;
  line: number;
}

export function parseKnownHosts(text: string): KnownHostEntry[] {
  const out: KnownHostEntry[] = [];
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const fields = line.split(/\s+/);
    let marker: KnownHostEntry["marker"] = null;
    if (fields[0]?.startsWith("@")) {
      const m = fields.shift()!;
      if (m === "@revoked") marker = "revoked";
      else if (m === "@cert-authority") marker = "cert-authority";
      else return;
    }
    const [hosts, keyType, b64] = fields;
    if (!hosts || !keyType || !b64) return;
    const key = Buffer.from(b64, "base64");
    if (key.length < 8 || blobType(key) !== keyType) return;
    out.push({ marker, patterns: hosts.split(","), keyType, key, line: i + 1 });
  });
  return out;
}

/** The name ssh looks a target up by: "host" on port 22, "[host]:port" otherwise. */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

function wildcardMatch(pattern: string, name: string): boolean {
  let re = "";
  for (const ch of pattern) {
    if (ch === "*") re += ".*";
    else if (ch === "?") re += ".";
    else re += ch.replace(/[\\^$.|+()[\]{}]/g, "\\$&");
  }
  return new RegExp(`^${re}$`, "i").test(name);
}

function hashedMatch(pattern: string, name: string): boolean {
  const parts = pattern.split("|"); // ["", "1", salt, hash]
  if (parts.length !== 4 || parts[1] !== "1") return false;
  const salt = Buffer.from(parts[2]!, "base64");
  const want = Buffer.from(parts[3]!, "base64");
  const got = createHmac("sha1", salt).update(name).digest();
  return want.length === got.length && timingSafeEqual(want, got);
}

/** Does an entry's host list name this target? Negations veto; hashed names compare exactly. */
export function entryMatches(entry: KnownHostEntry, host: string, port: number): boolean {
  const name = knownHostsName(host, port);
  let hit = false;
  for (const p of entry.patterns) {
    if (p.startsWith("|")) {
      if (hashedMatch(p, name)) hit = true;
      continue;
    }
    const negated = p.startsWith("!");
    const pat = negated ? p.slice(1) : p;
    if (wildcardMatch(pat, name)) {
      if (negated) return false;
      hit = true;
    }
  }
  return hit;
}

/** The key type a public key blob names (its first SSH string). */
export function blobType(key: Buffer): string | null {
  if (key.length < 4) return null;
  const len = key.readUInt32BE(0);
  if (len > 64 || 4 + len > key.length) return null;
  return key.subarray(4, 4 + len).toString("latin1");
}

/** "SHA256:..." as ssh-keygen -l prints it. */
export function fingerprint(key: Buffer): string {
  return "SHA256:" + createHash("sha256").update(key).digest("base64").replace(/=+$/, "");
}

/** message: for the broker log (names the file); summary: for the client (does not). */
export type HostKeyCheck =
  | { ok: true }
  | { ok: false; problem: "unknown" | "changed" | "revoked"; message: string; summary: string };

/**
 * A verifier for one target: `check(key)` says whether the key the target presented is one
 * known_hosts lists for it, and `algorithms` are the host key algorithms to offer so the
 * target presents a key of a known type (as ssh does).
 */
export class KnownHosts {
  private readonly entries: KnownHostEntry[];

  constructor(
    text: string,
    private readonly source: string,
  ) {
    this.entries = parseKnownHosts(text);
  }

  static fromFile(path: string): KnownHosts {
    return new KnownHosts(readFileSync(path, "utf8"), path);
  }

  private forHost(host: string, port: number): KnownHostEntry[] {
    return this.entries.filter((e) => e.marker !== "cert-authority" && entryMatches(e, host, port));
  }

  /** Host key algorithms for the key types known for this target, best first; [] if none. */
  algorithms(host: string, port: number): string[] {
    const types = new Set(
      this.forHost(host, port)
        .filter((e) => e.marker === null)
        .map((e) => e.keyType),
    );
    const out: string[] = [];
    for (const t of [
      "ssh-ed25519",
      "ecdsa-sha2-nistp256",
      "ecdsa-sha2-nistp384",
      "ecdsa-sha2-nistp521",
    ])
      if (types.has(t)) out.push(t);
    if (types.has("ssh-rsa")) out.push("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa");
    return out;
  }

  check(host: string, port: number, key: Buffer): HostKeyCheck {
    const name = knownHostsName(host, port);
    const entries = this.forHost(host, port);
    const presented = `${blobType(key) ?? "unknown"} key ${fingerprint(key)}`;
    if (entries.some((e) => e.marker === "revoked" && e.key.equals(key))) {
      return {
        ok: false,
        problem: "revoked",
        summary: `the target presented a revoked host key (${presented}); the broker refused to connect`,
        message:
          `the target ${name} presented a revoked host key (${presented}, marked @revoked in ` +
          `${this.source}); the broker refused to connect`,
      };
    }
    const valid = entries.filter((e) => e.marker === null);
    if (valid.some((e) => e.key.equals(key))) return { ok: true };
    if (valid.length === 0) {
      return {
        ok: false,
        problem: "unknown",
        summary: `the target's host key is not known to the broker (it presented ${presented}); the broker refused to connect. Ask the connection's operators to add it`,
        message:
          `the target ${name} is not in the broker's known_hosts (${this.source}); it presented ` +
          `${presented}. The broker only connects to targets whose host key it knows: check the ` +
          `key and add it (ssh-keyscan${port === 22 ? "" : ` -p ${port}`} ${host})`,
      };
    }
    return {
      ok: false,
      problem: "changed",
      summary: `the target's host key has CHANGED (it presented ${presented}, not the key the broker knows); the broker refused to connect. Tell the connection's operators`,
      message:
        `the host key of the target ${name} has CHANGED: it presented ${presented}, which is not ` +
        `the key ${this.source} lists for it (line ${valid.map((e) => e.line).join(", ")}). ` +
        `Someone may be intercepting the connection, or the host was rebuilt; the broker ` +
        `refused to connect. If the change is expected, update the broker's known_hosts`,
    };
  }
}
