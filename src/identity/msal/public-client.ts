/**
 * The gw CLI as an MSAL public client: device-code sign-in for people, and silent token
 * acquisition (cached access token, else the refresh token) afterwards.
 */
import {
  PublicClientApplication,
  type AccountInfo,
  type AuthenticationResult,
  type DeviceCodeRequest,
} from "@azure/msal-node";
import { ExitCode, GwError } from "../../errors.js";
import { cachePlugin, type CacheStore } from "../token-cache/index.js";
import {
  isMicrosoftHost,
  parseAuthority,
  resolveAuthority,
  type ResolvedAuthority,
} from "./authority.js";
import { mapMsalError, signInCancelled, throttled, transportError } from "./errors.js";
import { systemOptions } from "./msal-config.js";
import { GwNetworkClient } from "./network-client.js";

export interface PublicClientOptions {
  /** https://host/tenant, from the broker's discovery document. */
  authority: string;
  clientId: string;
  caFile?: string | undefined;
  /** Where the token cache is kept; in memory only when omitted. */
  store?: CacheStore | undefined;
}

export interface UserClient {
  app: PublicClientApplication;
  net: GwNetworkClient;
  authority: ResolvedAuthority;
  store: CacheStore | undefined;
}

/**
 * A new MSAL application. Make a new one for each sign-in attempt: MSAL remembers throttling
 * answers per instance for a minute.
 */
export async function createPublicClient(opts: PublicClientOptions): Promise<UserClient> {
  const net = new GwNetworkClient({ caFile: opts.caFile });
  const authority = await resolveAuthority(opts.authority, net);
  const app = new PublicClientApplication({
    auth: {
      clientId: opts.clientId,
      authority: authority.authority,
      knownAuthorities: authority.knownAuthorities,
      authorityMetadata: authority.metadata,
    },
    ...(opts.store ? { cache: { cachePlugin: cachePlugin(opts.store) } } : {}),
    system: systemOptions(net),
  });
  return { app, net, authority, store: opts.store };
}

/**
 * An application for cache work only (logout): no network request is made to build it, so
 * signing out works offline and when the identity provider is gone.
 */
export function offlinePublicClient(opts: PublicClientOptions): UserClient {
  const u = parseAuthority(opts.authority);
  const tenant = u.pathname.split("/").filter((p) => p !== "")[0]!;
  const net = new GwNetworkClient({ caFile: opts.caFile });
  const authority: ResolvedAuthority = {
    authority: `${u.origin}/${tenant}`,
    host: u.host,
    tenant,
    knownAuthorities: isMicrosoftHost(u.hostname) ? [] : [u.host],
    metadata: "",
    issuer: "",
  };
  const app = new PublicClientApplication({
    auth: {
      clientId: opts.clientId,
      authority: authority.authority,
      knownAuthorities: authority.knownAuthorities,
    },
    ...(opts.store ? { cache: { cachePlugin: cachePlugin(opts.store) } } : {}),
    system: systemOptions(net),
  });
  return { app, net, authority, store: opts.store };
}

export interface DeviceCodePrompt {
  userCode: string;
  verificationUri: string;
  /** Seconds until the code expires. */
  expiresIn: number;
  /** Seconds between polls. */
  interval: number;
  /** The identity provider's own instructions (localized by Entra). */
  message: string;
}

export interface DeviceCodeOptions {
  scopes: string[];
  /** Called once the code is known: show it to the user. */
  onPrompt: (prompt: DeviceCodePrompt) => void;
  /** Aborting cancels the sign-in at once (MSAL's `cancel` flag stops its polling). */
  signal?: AbortSignal | undefined;
}

/** What the device-code endpoint answered when MSAL got no code out of it. */
function deviceCodeRequestFailed(client: UserClient): GwError {
  const e = client.net.last("/devicecode");
  const host = client.authority.host;
  if (!e || e.errorCode) return transportError(host, e);
  if (e.status === 429) return throttled(host, e.retryAfter);
  if (e.oauthError === "invalid_tenant")
    return new GwError("unknown_tenant", `the tenant does not exist at ${host}`, {
      exitCode: ExitCode.config,
      hint: "Check the broker's identity.login.authority.",
    });
  return new GwError(
    "login_rejected",
    `the identity provider refused to start a device-code sign-in (${e.oauthError ?? `HTTP ${e.status}`})${e.oauthDescription ? `: ${e.oauthDescription}` : ""}`,
    {
      exitCode: ExitCode.auth,
      hint: "The broker's identity.login settings (client id, scopes) may be wrong, or the app does not allow public client flows; tell the broker's operators.",
    },
  );
}

export async function signInWithDeviceCode(
  client: UserClient,
  opts: DeviceCodeOptions,
): Promise<AuthenticationResult> {
  const ctx = {
    flow: "device-code" as const,
    net: client.net,
    authority: client.authority.authority,
  };
  if (opts.signal?.aborted) throw signInCancelled();
  const request: DeviceCodeRequest = {
    scopes: opts.scopes,
    deviceCodeCallback: (r) => {
      if (!r.userCode || !r.deviceCode) throw deviceCodeRequestFailed(client);
      opts.onPrompt({
        userCode: r.userCode,
        verificationUri: r.verificationUri,
        expiresIn: r.expiresIn,
        interval: r.interval,
        message: r.message,
      });
    },
  };
  const acquisition = client.app.acquireTokenByDeviceCode(request);
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => {
      request.cancel = true; // MSAL stops at its next poll; nobody waits for that.
      reject(signInCancelled());
    };
    opts.signal?.addEventListener("abort", onAbort, { once: true });
  });
  // Whichever loses the race must not become an unhandled rejection.
  acquisition.catch(() => undefined);
  aborted.catch(() => undefined);
  try {
    const result = await Promise.race([acquisition, aborted]);
    if (!result)
      throw new GwError("login_failed", "sign-in failed: no token came back", {
        exitCode: ExitCode.auth,
      });
    return result;
  } catch (err) {
    throw mapMsalError(err, ctx);
  } finally {
    if (onAbort) opts.signal?.removeEventListener("abort", onAbort);
  }
}

/** The signed-in account in the cache, by MSAL's homeAccountId. */
export async function findAccount(
  client: UserClient,
  homeAccountId: string,
): Promise<AccountInfo | null> {
  try {
    return await client.app.getTokenCache().getAccountByHomeId(homeAccountId);
  } catch (err) {
    throw mapMsalError(err, {
      flow: "silent",
      net: client.net,
      authority: client.authority.authority,
    });
  }
}

/** A valid access token for the account: the cached one, or a new one from the refresh token. */
export async function acquireSilently(
  client: UserClient,
  account: AccountInfo,
  scopes: string[],
  forceRefresh = false,
): Promise<AuthenticationResult> {
  try {
    return await client.app.acquireTokenSilent({ account, scopes, forceRefresh });
  } catch (err) {
    throw mapMsalError(err, {
      flow: "silent",
      net: client.net,
      authority: client.authority.authority,
    });
  }
}

/** Removes the account from the token cache (which saves the cache). */
export async function removeAccount(client: UserClient, account: AccountInfo): Promise<void> {
  await client.app.getTokenCache().removeAccount(account);
}
