/**
 * Where the MSAL token cache (the refresh token, above all) is kept between runs: the OS
 * keychain (macOS Keychain, Windows Credential Manager, the Secret Service on Linux), or a file
 * only its owner may read.
 */
import { createHash, randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { configDir } from "../../config/paths.js";

export type StoreKind = "keychain" | "file";

export interface CacheStore {
  readonly kind: StoreKind;
  /** Human-readable location, for messages ("the OS keychain (gw / ...)", a path). */
  readonly location: string;
  /** The serialized cache, or null when there is none. */
  read(): Promise<string | null>;
  write(data: string): Promise<void>;
  /** Removes the cache; true when there was one. */
  remove(): Promise<boolean>;
}

/** The keychain service every gw entry lives under. */
export const KEYCHAIN_SERVICE = "gw";

type KeyringModule = typeof import("@napi-rs/keyring");
let keyring: Promise<KeyringModule> | undefined;
/** Loaded on first use: a machine without the native module still gets the file store. */
function loadKeyring(): Promise<KeyringModule> {
  return (keyring ??= import("@napi-rs/keyring"));
}

export class KeychainStore implements CacheStore {
  readonly kind = "keychain" as const;
  readonly location: string;

  constructor(readonly account: string) {
    this.location = `the OS keychain (service "${KEYCHAIN_SERVICE}", account "${account}")`;
  }

  private async entry() {
    const { AsyncEntry } = await loadKeyring();
    // On Linux, the Secret Service only: keyring's other fallback, the kernel keyring, forgets
    // everything at reboot, which would look like random sign-outs. No Secret Service means the
    // file store instead, with a warning.
    return new AsyncEntry(KEYCHAIN_SERVICE, this.account, {
      linux: { store: "secret-service" },
    });
  }

  async read(): Promise<string | null> {
    return (await this.entry()).getPassword();
  }

  async write(data: string): Promise<void> {
    await (await this.entry()).setPassword(data);
  }

  async remove(): Promise<boolean> {
    return (await this.entry()).deleteCredential();
  }
}

/** A file only its owner can read or write (0600, in a 0700 directory), written atomically. */
export class FileStore implements CacheStore {
  readonly kind = "file" as const;
  readonly location: string;

  constructor(readonly path: string) {
    this.location = path;
  }

  async read(): Promise<string | null> {
    try {
      return readFileSync(this.path, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw err;
    }
  }

  async write(data: string): Promise<void> {
    const dir = dirname(this.path);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const tmp = `${this.path}.${randomBytes(6).toString("hex")}.tmp`;
    try {
      // Created 0600 from the start: the token never sits in a readable file, not even briefly.
      writeFileSync(tmp, data, { mode: 0o600, flag: "wx" });
      chmodSync(tmp, 0o600); // in case the umask or an old file said otherwise
      renameSync(tmp, this.path);
    } catch (err) {
      rmSync(tmp, { force: true });
      throw err;
    }
  }

  async remove(): Promise<boolean> {
    try {
      rmSync(this.path);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
      throw err;
    }
  }
}

/** The file that stands in for the keychain entry `account`. */
export function cacheFilePath(account: string): string {
  let host = "cache";
  try {
    host = new URL(account).host.replace(/[^A-Za-z0-9.-]/g, "_");
  } catch {
    // not a URL: the hash alone names it
  }
  const hash = createHash("sha256").update(account).digest("hex").slice(0, 12);
  return join(configDir(), "token-cache", `${host}-${hash}.json`);
}
