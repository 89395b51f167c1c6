/**
 * The token cache MSAL reads and writes through its cache plugin, and where it lives.
 *
 * GW_TOKEN_STORE chooses: `keychain` (the OS keychain, or an error), `file` (a 0600 file in the
 * config dir), `auto` (the default: the keychain when there is one, else the file, with a
 * warning the first time the file is written). Headless Linux boxes (CI runners, containers,
 * servers over SSH) have no Secret Service, so `auto` is what makes `gw login` work there.
 */
import type { ICachePlugin, TokenCacheContext } from "@azure/msal-node";
import { ExitCode, GwError } from "../../errors.js";
import { FileStore, KeychainStore, cacheFilePath, type CacheStore } from "./stores.js";

export { FileStore, KeychainStore, cacheFilePath, KEYCHAIN_SERVICE } from "./stores.js";
export type { CacheStore, StoreKind } from "./stores.js";

export type StoreMode = "keychain" | "file" | "auto";

export function storeMode(env: NodeJS.ProcessEnv = process.env): StoreMode {
  const v = (env["GW_TOKEN_STORE"] ?? "").trim().toLowerCase();
  if (v === "" || v === "auto") return "auto";
  if (v === "keychain" || v === "file") return v;
  throw new GwError(
    "token_store_invalid",
    `GW_TOKEN_STORE must be keychain, file or auto, not "${v}"`,
    {
      exitCode: ExitCode.usage,
    },
  );
}

export interface OpenCacheOptions {
  mode?: StoreMode;
  /** Where a warning goes; stderr by default. */
  warn?: (message: string) => void;
}

function keychainFailure(err: unknown): string {
  const e = err as { code?: string; message?: string };
  const msg = (e?.message ?? String(err)).split("\n")[0]!;
  // The usual headless-Linux failures, in words: keyring's own are D-Bus internals.
  if (/DBUS_SESSION_BUS_ADDRESS|DBus error|org\.freedesktop\.DBus/i.test(msg))
    return "no Secret Service: no D-Bus session";
  if (/AccessDenied/.test(msg)) return "access denied";
  return msg.length > 160 ? `${msg.slice(0, 157)}...` : msg;
}

let warned = false;

const defaultWarn = (m: string) => void process.stderr.write(m + "\n");

/**
 * The file standing in for the keychain, warning the first time a sign-in lands in it (once per
 * process, and only when the file is new: not on every command).
 */
class FallbackFileStore extends FileStore {
  constructor(
    path: string,
    /** Why not the keychain, as the start of the warning. */
    private readonly reason: string,
    private readonly warn: (m: string) => void,
  ) {
    super(path);
  }

  override async write(data: string): Promise<void> {
    const existed = (await this.read()) !== null;
    await super.write(data);
    if (!existed && !warned) {
      warned = true;
      this.warn(
        `warning: ${this.reason}; your sign-in is kept in ${this.path} ` +
          "(mode 0600, readable only by you). Set GW_TOKEN_STORE=file to choose this and silence the warning.",
      );
    }
  }
}

/**
 * `auto` with a working keychain: the keychain first, and the file for a cache the keychain
 * refuses to hold (Windows' Credential Manager takes at most 2.5 KB; one account is ~4.6 KB).
 * Reads look in both, so a cache that went to the file is found again, and moves back to the
 * keychain at the next write that the keychain takes.
 */
export class KeychainOrFileStore implements CacheStore {
  private current: CacheStore;

  constructor(
    private readonly keychain: CacheStore,
    private readonly filePath: string,
    private readonly warn: (m: string) => void = defaultWarn,
  ) {
    this.current = keychain;
  }

  get kind() {
    return this.current.kind;
  }

  get location() {
    return this.current.location;
  }

  async read(): Promise<string | null> {
    const k = await this.keychain.read();
    if (k !== null) {
      this.current = this.keychain;
      return k;
    }
    const file = new FileStore(this.filePath);
    const f = await file.read();
    if (f !== null) this.current = file;
    return f;
  }

  async write(data: string): Promise<void> {
    try {
      await this.keychain.write(data);
    } catch (err) {
      const file = new FallbackFileStore(
        this.filePath,
        `the OS keychain refused the token cache (${keychainFailure(err)})`,
        this.warn,
      );
      await file.write(data);
      this.current = file;
      return;
    }
    this.current = this.keychain;
    await new FileStore(this.filePath).remove(); // moved back to the keychain
  }

  async remove(): Promise<boolean> {
    const k = await this.keychain.remove().catch(() => false);
    const f = await new FileStore(this.filePath).remove();
    return k || f;
  }
}

/** The store for `account` (one per broker), chosen by GW_TOKEN_STORE. */
export async function openCacheStore(
  account: string,
  opts: OpenCacheOptions = {},
): Promise<CacheStore> {
  const mode = opts.mode ?? storeMode();
  const file = cacheFilePath(account);
  if (mode === "file") return new FileStore(file);
  const keychain = new KeychainStore(account);
  try {
    // Reading is the probe: it fails the same way writing would when there is no keychain.
    await keychain.read();
    return mode === "keychain" ? keychain : new KeychainOrFileStore(keychain, file, opts.warn);
  } catch (err) {
    if (mode === "keychain") {
      throw new GwError(
        "keychain_unavailable",
        `the OS keychain cannot be used: ${keychainFailure(err)}`,
        {
          exitCode: ExitCode.config,
          hint: "Unlock or start your keychain (on Linux: a Secret Service such as gnome-keyring), or set GW_TOKEN_STORE=file.",
          cause: err,
        },
      );
    }
    return new FallbackFileStore(
      file,
      `no OS keychain is available (${keychainFailure(err)})`,
      opts.warn ?? defaultWarn,
    );
  }
}

/** Removes the cache for `account` wherever it may be (keychain and file); true when one existed. */
export async function removeCache(account: string): Promise<boolean> {
  let removed = false;
  if (storeMode() !== "file") {
    try {
      removed = (await new KeychainStore(account).remove()) || removed;
    } catch {
      // no keychain: nothing there to remove
    }
  }
  removed = (await new FileStore(cacheFilePath(account)).remove()) || removed;
  return removed;
}

/** MSAL's cache plugin on a store: load before each cache access, save when it changed. */
export function cachePlugin(store: CacheStore): ICachePlugin {
  return {
    async beforeCacheAccess(ctx: TokenCacheContext): Promise<void> {
      let data: string | null;
      try {
        data = await store.read();
      } catch (err) {
        throw new GwError(
          "token_cache_unreadable",
          `cannot read the token cache in ${store.location}: ${keychainFailure(err)}`,
          {
            exitCode: ExitCode.config,
            hint: "Run `gw logout` and `gw login` again, or set GW_TOKEN_STORE=file.",
            cause: err,
          },
        );
      }
      if (!data) return;
      try {
        ctx.tokenCache.deserialize(data);
      } catch {
        // A damaged cache is an empty cache: the user signs in again, which rewrites it.
      }
    },
    async afterCacheAccess(ctx: TokenCacheContext): Promise<void> {
      if (!ctx.cacheHasChanged) return;
      try {
        await store.write(ctx.tokenCache.serialize());
      } catch (err) {
        throw new GwError(
          "token_cache_unwritable",
          `cannot save the token cache in ${store.location}: ${keychainFailure(err)}`,
          {
            exitCode: ExitCode.config,
            hint:
              store.kind === "keychain"
                ? "Unlock your keychain, or set GW_TOKEN_STORE=file."
                : "Check the permissions of the gw config directory.",
            cause: err,
          },
        );
      }
    },
  };
}
