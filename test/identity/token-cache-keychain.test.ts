/**
 * The token cache in a real OS keychain: the Secret Service (gnome-keyring) on Linux.
 *
 * Needs a running, unlocked Secret Service, which a headless box does not have. Run it with
 * `scripts/test-keychain.sh` (as root it installs gnome-keyring and starts it on a private D-Bus
 * session with a throwaway HOME); CI does. Without GW_TEST_KEYCHAIN=1 the whole file is
 * SKIPPED, visibly (the reason is in the suite name), never passed silently.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { tokenProviderFor } from "../../src/identity/credentials.js";
import { createPublicClient, signInWithDeviceCode } from "../../src/identity/msal/public-client.js";
import { writeSignIn } from "../../src/identity/sign-in-state.js";
import {
  KEYCHAIN_SERVICE,
  KeychainStore,
  openCacheStore,
  removeCache,
} from "../../src/identity/token-cache/index.js";
import { runGw } from "../helpers/cli.js";
import { startLoginFixture, type LoginFixture } from "./login-fixture.js";

const enabled = process.env["GW_TEST_KEYCHAIN"] === "1";

/** What the Secret Service holds for an account, read with libsecret's own tool. */
function secretTool(account: string): string | null {
  try {
    return execFileSync(
      "secret-tool",
      ["lookup", "service", KEYCHAIN_SERVICE, "username", account],
      {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "ignore"],
      },
    );
  } catch {
    return null; // exit 1: no such item
  }
}

describe.skipIf(!enabled)(
  "token cache in the OS keychain (SKIPPED unless GW_TEST_KEYCHAIN=1: needs a Secret Service; run scripts/test-keychain.sh)",
  () => {
    let fx: LoginFixture;
    let configDir: string;

    beforeAll(async () => {
      fx = await startLoginFixture({ entra: { autoApprove: { afterPolls: 1 } } });
    });
    afterAll(async () => {
      await fx?.stop();
    });
    beforeEach(() => {
      configDir = mkdtempSync(join(tmpdir(), "gw-kc-"));
      process.env["GW_CONFIG_DIR"] = configDir;
      delete process.env["GW_TOKEN_STORE"];
      return () => rmSync(configDir, { recursive: true, force: true });
    });

    it("KeychainStore writes, reads and removes a Secret Service item (service gw, account per broker)", async () => {
      const account = `https://kc-${Date.now()}.example.com`;
      const s = new KeychainStore(account);
      expect(await s.read()).toBeNull();
      const big = JSON.stringify({ blob: "x".repeat(20_000) }); // a cache with a few accounts
      await s.write(big);
      expect(await s.read()).toBe(big);
      expect(secretTool(account)).toBe(big);
      expect(await s.remove()).toBe(true);
      expect(await s.read()).toBeNull();
      expect(secretTool(account)).toBeNull();
    });

    it("auto picks the keychain, with no warning and no file", async () => {
      const warnings: string[] = [];
      const s = await openCacheStore("https://auto.example.com", { warn: (m) => warnings.push(m) });
      expect(s.kind).toBe("keychain");
      await s.write("{}");
      expect(warnings).toEqual([]);
      expect(existsSync(join(configDir, "token-cache"))).toBe(false);
      await removeCache("https://auto.example.com");
    });

    it("a sign-in kept in the keychain gives tokens silently to a new process; removeCache clears it", async () => {
      const store = await openCacheStore(fx.brokerUrl, { mode: "keychain" });
      const client = await createPublicClient({
        authority: fx.entra.authority,
        clientId: fx.entra.clientId,
        caFile: fx.ca.caCert,
        store,
      });
      const r = await signInWithDeviceCode(client, {
        scopes: [fx.entra.apiScope],
        onPrompt: () => undefined,
      });
      expect(secretTool(fx.brokerUrl)).toContain('"RefreshToken"');
      writeSignIn({
        version: 1,
        kind: "user",
        broker: fx.brokerUrl,
        caFile: fx.ca.caCert,
        authority: fx.entra.authority,
        clientId: fx.entra.clientId,
        scopes: [fx.entra.apiScope],
        homeAccountId: r.account!.homeAccountId,
        signedInAt: new Date().toISOString(),
      });
      const p = tokenProviderFor({ broker: fx.brokerUrl, env: {} });
      const t = await p.getToken();
      expect(t.token.split(".")).toHaveLength(3);
      expect(p.description).toBe("gw login (tokens in the OS keychain)");
      expect(await removeCache(fx.brokerUrl)).toBe(true);
      expect(secretTool(fx.brokerUrl)).toBeNull();
    });

    it("gw login / whoami / logout through the CLI keep nothing on disk but signin.json", async () => {
      const env = { GW_CONFIG_DIR: configDir, GW_TOKEN_STORE: "auto", AZURE_CLIENT_ID: undefined };
      const login = await runGw(["login", "--broker", fx.brokerUrl, "--ca-file", fx.ca.caCert], {
        env,
      });
      expect(login.code, login.stderr).toBe(0);
      expect(login.stderr).not.toContain("warning");
      expect(login.stdout).toContain("tokens  gw login (tokens in the OS keychain)");
      expect(readdirSync(configDir)).toEqual(["signin.json"]);
      expect(secretTool(fx.brokerUrl)).toContain('"RefreshToken"');
      const who = await runGw(["whoami", "--json"], { env });
      expect(who.code, who.stderr).toBe(0);
      expect(JSON.parse(who.stdout)).toMatchObject({
        type: "user",
        broker: { identity: { type: "user" } },
      });
      const out = await runGw(["logout"], { env });
      expect(out.code, out.stderr).toBe(0);
      expect(secretTool(fx.brokerUrl)).toBeNull();
      expect(readdirSync(configDir)).toEqual([]);
    });
  },
);
