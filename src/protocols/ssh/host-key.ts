import { mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import ssh2 from "ssh2";
import { fingerprint } from "./known-hosts.js";

/**
 * The broker's own SSH host key: what `ssh` clients pin for the broker side of an ssh
 * connection. Generated once (ed25519, OpenSSH format, file mode 0600) where the operator
 * points, then reused, so the fingerprint clients pinned stays valid across restarts.
 */
export interface BrokerHostKey {
  path: string;
  /** The private key, OpenSSH format. */
  privateKey: string;
  /** "ssh-ed25519 AAAA..." */
  publicKey: string;
  /** "SHA256:..." */
  fingerprint: string;
}

const cache = new Map<string, BrokerHostKey>();

/**
 * Reads the host key at `path`, creating it (and its directory, 0700) when missing. A key
 * that others may read is refused: the broker would otherwise be impersonable.
 */
export function loadOrCreateHostKey(path: string): BrokerHostKey {
  const cached = cache.get(path);
  if (cached) return cached;
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    const pair = ssh2.utils.generateKeyPairSync("ed25519", { comment: "gw-broker" });
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    try {
      writeFileSync(path, pair.private, { mode: 0o600, flag: "wx" });
      text = pair.private;
    } catch (e) {
      // Another broker process created it first: use theirs.
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      text = readFileSync(path, "utf8");
    }
  }
  if (process.platform !== "win32" && (statSync(path).mode & 0o077) !== 0)
    throw new Error(
      `the ssh host key ${path} may be read by others (mode ${(statSync(path).mode & 0o777).toString(8)}); chmod 600 it`,
    );
  const hk = hostKeyOf(text, path);
  cache.set(path, hk);
  return hk;
}

/** A host key for this process only, for a broker with nowhere to keep one. */
export function ephemeralHostKey(): BrokerHostKey {
  const pair = ssh2.utils.generateKeyPairSync("ed25519", { comment: "gw-broker" });
  return hostKeyOf(pair.private, "");
}

function hostKeyOf(text: string, path: string): BrokerHostKey {
  const parsed = ssh2.utils.parseKey(text);
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key || key instanceof Error || key.getPrivatePEM() === null)
    throw new Error(`${path || "the key"} does not hold an SSH private key the broker can use`);
  const blob = key.getPublicSSH();
  return {
    path,
    privateKey: text,
    publicKey: `${key.type} ${blob.toString("base64")}`,
    fingerprint: fingerprint(blob),
  };
}

/**
 * The known_hosts line a client pins the broker with, for `gw connect` to write next to the
 * local port it opens (`[127.0.0.1]:PORT ssh-ed25519 AAAA...`).
 */
export function brokerKnownHostsLine(key: BrokerHostKey, host: string, port: number): string {
  const name = port === 22 ? host : `[${host}]:${port}`;
  return `${name} ${key.publicKey}`;
}
