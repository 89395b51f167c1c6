import type { Command } from "commander";
import { azureEnvServicePrincipal } from "../../identity/credentials.js";
import { readSignIn, removeSignIn, signInPath } from "../../identity/sign-in-state.js";
import { normalizeBrokerUrl } from "../../tunnel/broker-client.js";
import { info, printJson } from "../output.js";

export function registerLogout(program: Command): void {
  program
    .command("logout")
    .description("Sign out: forget the account, its tokens (keychain or file) and the sign-in")
    .option("--json", "print what was removed as JSON")
    .addHelpText("after", "\nExamples:\n  gw logout")
    .action(async (opts: { json?: boolean }) => {
      // A damaged signin.json must not keep anyone from signing out.
      let state;
      try {
        state = readSignIn();
      } catch {
        state = null;
      }
      const result = {
        signedOut: false,
        broker: state?.broker ?? null,
        kind: state?.kind ?? null,
        account:
          state?.kind === "user"
            ? (state.username ?? null)
            : state?.kind === "service-principal"
              ? state.clientId
              : null,
        removed: { account: false, tokenCache: false, signIn: false },
      };
      if (state?.kind === "user") {
        const broker = normalizeBrokerUrl(state.broker);
        const { openCacheStore, removeCache, storeMode } =
          await import("../../identity/token-cache/index.js");
        const { offlinePublicClient } = await import("../../identity/msal/public-client.js");
        try {
          // Remove the account through MSAL first (its tokens leave the cache), then the cache.
          const store = await openCacheStore(broker, { mode: storeMode(), warn: () => undefined });
          const client = offlinePublicClient({
            authority: state.authority,
            clientId: state.clientId,
            store,
          });
          const cache = client.app.getTokenCache();
          const account = await cache.getAccountByHomeId(state.homeAccountId);
          if (account) {
            await cache.removeAccount(account);
            result.removed.account = true;
          }
        } catch {
          // An unreadable cache is removed below all the same.
        }
        result.removed.tokenCache = await removeCache(broker);
      }
      result.removed.signIn = removeSignIn();
      result.signedOut = result.removed.signIn;
      const azure = azureEnvServicePrincipal();
      if (opts.json) return printJson({ ...result, azureEnvironment: azure !== null });
      if (!state && !result.removed.signIn) info("You were not signed in.");
      else {
        const who = result.account ? ` ${result.account}` : "";
        info(`Signed out${who} from ${result.broker ?? "the broker"}.`);
        if (result.removed.tokenCache) info("Removed the cached tokens and " + signInPath() + ".");
        else info("Removed " + signInPath() + ".");
      }
      if (azure)
        info(
          `Note: AZURE_TENANT_ID, AZURE_CLIENT_ID and a credential are set in this environment, so gw still acts as the service principal ${azure.clientId}.`,
        );
      if (process.env["GW_TOKEN"])
        info("Note: GW_TOKEN is set in this environment, and gw still uses it.");
    });
}
