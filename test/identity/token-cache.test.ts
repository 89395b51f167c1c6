/**
 * The token cache's stores and MSAL plugin, without a keychain: the 0600 file, the choice made
 * by GW_TOKEN_STORE, and the fallback (with its one warning) when the keychain cannot be used.
 * The real keychain has its own test: token-cache-keychain.test.ts.
 */
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PublicClientApplication } from "@azure/msal-node";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { GwError } from "../../src/errors.js";
import type { CacheStore } from "../../src/identity/token-cache/index.js";
import {
  FileStore,
  cacheFilePath,
  cachePlugin,
  openCacheStore,
  removeCache,
  storeMode,
} from "../../src/identity/token-cache/index.js";

let configDir: string;
const savedEnv = { ...process.env };

beforeEach(() => {
  configDir = mkdtempSync(join(tmpdir(), "gw-tc-"));
  process.env["GW_CONFIG_DIR"] = configDir;
  delete process.env["GW_TOKEN_STORE"];
  // No Secret Service, whatever the machine running the tests has: a bus that is not there.
  process.env["DBUS_SESSION_BUS_ADDRESS"] = "unix:path=/nonexistent/gw-test-bus";
});
afterEach(() => {
  rmSync(configDir, { recursive: true, force: true });
  process.env = { ...savedEnv };
});

const ACCOUNT = "https://gw.example.com";
const mode = (p: string) => statSync(p).mode & 0o777;

describe("FileStore", () => {
  it("writes 0600 in a 0700 directory, atomically, and tightens an old file's mode", async () => {
    const path = join(configDir, "token-cache", "x.json");
    const s = new FileStore(path);
    expect(await s.read()).toBeNull();
    await s.write("one");
    expect(mode(path)).toBe(0o600);
    expect(mode(join(configDir, "token-cache"))).toBe(0o700);
    chmodSync(path, 0o644);
    await s.write("two");
    expect(mode(path)).toBe(0o600);
    expect(await s.read()).toBe("two");
    expect(readdirSync(join(configDir, "token-cache"))).toEqual(["x.json"]); // no temp files left
    expect(await s.remove()).toBe(true);
    expect(await s.remove()).toBe(false);
  });

  it("is never readable by others, even with a permissive umask", async () => {
    const old = process.umask(0);
    try {
      const path = join(configDir, "u", "c.json");
      await new FileStore(path).write("x");
      expect(mode(path)).toBe(0o600);
    } finally {
      process.umask(old);
    }
  });

  it("one file per broker, named after its host", () => {
    const a = cacheFilePath("https://gw.example.com");
    expect(a.startsWith(join(configDir, "token-cache", "gw.example.com-"))).toBe(true);
    expect(cacheFilePath("https://other.example.com")).not.toBe(a);
  });
});

describe("GW_TOKEN_STORE", () => {
  it("accepts keychain, file, auto (default); anything else is a usage error", () => {
    expect(storeMode({})).toBe("auto");
    expect(storeMode({ GW_TOKEN_STORE: "FILE" })).toBe("file");
    expect(storeMode({ GW_TOKEN_STORE: "keychain" })).toBe("keychain");
    let e: GwError | undefined;
    try {
      storeMode({ GW_TOKEN_STORE: "vault" });
    } catch (err) {
      e = err as GwError;
    }
    expect(e?.code).toBe("token_store_invalid");
    expect(e?.exitCode).toBe(2);
  });

  it("file: the file, no keychain attempt, no warning", async () => {
    const warnings: string[] = [];
    const s = await openCacheStore(ACCOUNT, { mode: "file", warn: (m) => warnings.push(m) });
    expect(s.kind).toBe("file");
    await s.write("{}");
    expect(warnings).toEqual([]);
  });

  it("keychain: no keychain is an error that says what to do", async () => {
    const e = await openCacheStore(ACCOUNT, { mode: "keychain" }).then(
      () => undefined,
      (err: unknown) => err as GwError,
    );
    expect(e?.code).toBe("keychain_unavailable");
    expect(e?.exitCode).toBe(3);
    expect(e?.message).toBe("the OS keychain cannot be used: no Secret Service: no D-Bus session");
    expect(e?.hint).toContain("GW_TOKEN_STORE=file");
  });

  it("auto: falls back to the 0600 file, warning once (when the sign-in first lands there)", async () => {
    const warnings: string[] = [];
    const warn = (m: string) => warnings.push(m);
    const s = await openCacheStore(ACCOUNT, { warn });
    expect(s.kind).toBe("file");
    expect(await s.read()).toBeNull();
    expect(warnings).toEqual([]); // reading warns nobody
    await s.write("{}");
    await s.write("{}");
    const again = await openCacheStore("https://other.example.com", { warn });
    await again.write("{}");
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toBe(
      `warning: no OS keychain is available (no Secret Service: no D-Bus session); your sign-in is kept in ${cacheFilePath(ACCOUNT)} ` +
        "(mode 0600, readable only by you). Set GW_TOKEN_STORE=file to choose this and silence the warning.",
    );
    expect(mode(cacheFilePath(ACCOUNT))).toBe(0o600);
  });

  it("removeCache removes the file (and would the keychain entry)", async () => {
    process.env["GW_TOKEN_STORE"] = "file";
    await new FileStore(cacheFilePath(ACCOUNT)).write("{}");
    expect(await removeCache(ACCOUNT)).toBe(true);
    expect(existsSync(cacheFilePath(ACCOUNT))).toBe(false);
    expect(await removeCache(ACCOUNT)).toBe(false);
  });
});

/** A keychain in memory that holds at most `limit` characters, like Windows' Credential Manager. */
function smallKeychain(limit: number): CacheStore & { data: string | null } {
  return {
    kind: "keychain",
    location: "the test keychain",
    data: null,
    async read() {
      return this.data;
    },
    async write(d: string) {
      if (d.length > limit) throw new Error("Attribute 'password' is longer than platform limit");
      this.data = d;
    },
    async remove() {
      const had = this.data !== null;
      this.data = null;
      return had;
    },
  };
}

describe("auto with a keychain that refuses big caches", () => {
  it("keeps a cache the keychain refuses in the file, finds it there, and moves it back when it fits", async () => {
    // A fresh module: the warning is once per process, and an earlier test has had it.
    vi.resetModules();
    const { KeychainOrFileStore } = await import("../../src/identity/token-cache/index.js");
    const kc = smallKeychain(2560);
    const file = cacheFilePath(ACCOUNT);
    const warnings: string[] = [];
    const s = new KeychainOrFileStore(kc, file, (m) => warnings.push(m));
    expect(s.kind).toBe("keychain");
    const big = "x".repeat(4600);
    await s.write(big);
    expect(s.kind).toBe("file");
    expect(mode(file)).toBe(0o600);
    expect(kc.data).toBeNull();
    expect(warnings.join("")).toContain(
      "the OS keychain refused the token cache (Attribute 'password' is longer",
    );
    // Another process: finds it in the file.
    const again = new KeychainOrFileStore(kc, file, (m) => warnings.push(m));
    expect(await again.read()).toBe(big);
    expect(again.kind).toBe("file");
    // A cache that fits goes back to the keychain, and the file goes away.
    await again.write("small");
    expect(again.kind).toBe("keychain");
    expect(kc.data).toBe("small");
    expect(existsSync(file)).toBe(false);
    expect(await again.remove()).toBe(true);
    expect(kc.data).toBeNull();
  });
});

describe("cachePlugin", () => {
  const app = (store: FileStore) =>
    new PublicClientApplication({
      auth: {
        clientId: "c",
        authority: "https://localhost:1/t",
        knownAuthorities: ["localhost:1"],
      },
      cache: { cachePlugin: cachePlugin(store) },
    });

  it("a damaged cache is an empty one (the user signs in again), not a crash", async () => {
    const path = join(configDir, "damaged.json");
    writeFileSync(path, "{not json");
    expect(await app(new FileStore(path)).getTokenCache().getAllAccounts()).toEqual([]);
  });

  it("an unreadable cache is an error naming where it is", async () => {
    const path = join(configDir, "dir-not-file.json");
    mkdirSync(path);
    const e = await app(new FileStore(path))
      .getTokenCache()
      .getAllAccounts()
      .then(
        () => undefined,
        (err: unknown) => err as GwError,
      );
    expect(e?.code).toBe("token_cache_unreadable");
    expect(e?.message).toContain(path);
  });
});
