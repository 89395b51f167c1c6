/**
 * Where the CLI's access token comes from, in this order:
 *
 *   1. GW_TOKEN: a ready-made token (automation, tests). It always wins.
 *   2. `gw login` (signin.json, for this broker): a person (MSAL silent: the cached access
 *      token, else the refresh token in the token cache) or a service principal (client
 *      credentials, re-acquired when the token is close to expiry).
 *   3. The Azure SDK's environment variables (AZURE_TENANT_ID, AZURE_CLIENT_ID and one of
 *      AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PATH, AZURE_FEDERATED_TOKEN_FILE): a
 *      service principal with no `gw login` and nothing stored on disk (MCP hosts, CI).
 *
 * An explicit `gw login` beats ambient AZURE_* variables, which are often set for other tools.
 */
import { ExitCode, GwError } from "../errors.js";
import { normalizeBrokerUrl, notSignedIn } from "../tunnel/broker-client.js";
import type { AppClient } from "./msal/confidential-client.js";
import type { UserClient } from "./msal/public-client.js";
import {
  readSignIn,
  type ServicePrincipalSignIn,
  type SignInState,
  type SpMethod,
  type UserSignIn,
} from "./sign-in-state.js";

// MSAL and the keychain module are loaded only when a token is really needed: GW_TOKEN users
// and commands that need no token do not pay for them.
const msalPublic = () => import("./msal/public-client.js");
const msalConfidential = () => import("./msal/confidential-client.js");
const loginSettings = () => import("./msal/login-settings.js");
const tokenCache = () => import("./token-cache/index.js");

export interface AccessToken {
  token: string;
  /** When the token expires; null when unknown. */
  expiresOn: Date | null;
}

export type TokenSourceKind = "env-token" | "user" | "service-principal" | "azure-env";

export interface TokenProvider {
  readonly kind: TokenSourceKind;
  /** For people: where the token comes from ("GW_TOKEN", "gw login (keychain)", ...). */
  readonly description: string;
  /** A token valid for a while yet; renewed when close to expiry. */
  getToken(): Promise<AccessToken>;
}

/** Renew when less than this much of the token's life is left: 5 minutes, or half a short life. */
export function renewalMargin(lifetimeMs: number): number {
  return Math.min(5 * 60_000, Math.max(0, lifetimeMs / 2));
}

/** `exp` of a JWT, unverified (scheduling only; the broker is what verifies). */
export function jwtExpiry(token: string): Date | null {
  const part = token.split(".")[1];
  if (!part) return null;
  try {
    const exp = (JSON.parse(Buffer.from(part, "base64url").toString("utf8")) as { exp?: unknown })
      .exp;
    return typeof exp === "number" ? new Date(exp * 1000) : null;
  } catch {
    return null;
  }
}

/** Keeps the last token and asks `fetch` again once it is close to expiry. */
abstract class RenewingProvider implements TokenProvider {
  abstract readonly kind: TokenSourceKind;
  abstract readonly description: string;
  private current: (AccessToken & { obtainedAt: number }) | undefined;
  private pending: Promise<AccessToken> | undefined;

  protected abstract fetch(): Promise<AccessToken>;

  private fresh(now: number): boolean {
    const c = this.current;
    if (!c) return false;
    if (!c.expiresOn) return true;
    const exp = c.expiresOn.getTime();
    return now < exp - renewalMargin(exp - c.obtainedAt);
  }

  async getToken(): Promise<AccessToken> {
    if (this.fresh(Date.now())) return this.current!;
    this.pending ??= this.fetch()
      .then((t) => {
        this.current = { ...t, obtainedAt: Date.now() };
        return t;
      })
      .finally(() => {
        this.pending = undefined;
      });
    return this.pending;
  }
}

class StaticTokenProvider implements TokenProvider {
  readonly kind = "env-token" as const;
  readonly description = "GW_TOKEN";
  constructor(private readonly token: string) {}
  async getToken(): Promise<AccessToken> {
    return { token: this.token, expiresOn: jwtExpiry(this.token) };
  }
}

/** A person signed in with `gw login`: MSAL silent acquisition from the token cache. */
export class UserTokenProvider extends RenewingProvider {
  readonly kind = "user" as const;
  description = "gw login";
  private client: UserClient | undefined;

  constructor(
    private readonly state: UserSignIn,
    private readonly caFile: string | undefined = state.caFile,
  ) {
    super();
  }

  protected async fetch(): Promise<AccessToken> {
    const { acquireSilently, createPublicClient, findAccount } = await msalPublic();
    if (!this.client) {
      const store = await (await tokenCache()).openCacheStore(this.state.broker);
      this.client = await createPublicClient({
        authority: this.state.authority,
        clientId: this.state.clientId,
        caFile: this.caFile,
        store,
      });
    }
    const account = await findAccount(this.client, this.state.homeAccountId);
    if (!account) {
      throw new GwError("sign_in_expired", "your sign-in is no longer in the token cache", {
        exitCode: ExitCode.auth,
        hint: "Run `gw login` again.",
      });
    }
    const r = await acquireSilently(this.client, account, this.state.scopes);
    const store = this.client.store;
    if (store)
      this.description = `gw login (tokens in ${store.kind === "keychain" ? "the OS keychain" : store.location})`;
    return { token: r.accessToken, expiresOn: r.expiresOn ?? jwtExpiry(r.accessToken) };
  }
}

export interface ServicePrincipalSettings {
  broker: string;
  caFile?: string | undefined;
  tenantId: string;
  clientId: string;
  method: SpMethod;
  /** Known already (from signin.json), or looked up in the broker's discovery document. */
  authority?: string | undefined;
  scopes?: string[] | undefined;
  /** AZURE_AUTHORITY_HOST, for the Azure SDK path. */
  authorityHost?: string | undefined;
}

/** A service principal: a new app token by client credentials whenever the last one is close to expiry. */
export class ServicePrincipalTokenProvider extends RenewingProvider {
  readonly kind: TokenSourceKind;
  readonly description: string;
  private client: AppClient | undefined;
  private scopes: string[] | undefined;

  constructor(
    private readonly sp: ServicePrincipalSettings,
    fromEnv: boolean,
  ) {
    super();
    this.kind = fromEnv ? "azure-env" : "service-principal";
    this.description = fromEnv ? "AZURE_* environment variables" : "gw login --service-principal";
  }

  protected async fetch(): Promise<AccessToken> {
    const { acquireAppToken, createConfidentialClient } = await msalConfidential();
    if (!this.client) {
      let authority = this.sp.authority;
      let scopes = this.sp.scopes;
      if (!authority || !scopes) {
        const { fetchLoginSettings, spAuthority } = await loginSettings();
        const settings = await fetchLoginSettings(this.sp.broker, this.sp.caFile);
        if (this.sp.authorityHost) settings.authorityHost = new URL(this.sp.authorityHost).origin;
        authority ??= spAuthority(settings, this.sp.tenantId);
        scopes ??= [settings.appScope];
      }
      this.scopes = scopes;
      this.client = await createConfidentialClient({
        authority,
        clientId: this.sp.clientId,
        method: this.sp.method,
        caFile: this.sp.caFile,
      });
    }
    const r = await acquireAppToken(this.client, this.scopes!);
    return { token: r.accessToken, expiresOn: r.expiresOn ?? jwtExpiry(r.accessToken) };
  }
}

/** The service principal the Azure SDK variables describe, or null when they do not describe one. */
export function azureEnvServicePrincipal(
  env: NodeJS.ProcessEnv = process.env,
): { tenantId: string; clientId: string; method: SpMethod; authorityHost?: string } | null {
  const tenantId = env["AZURE_TENANT_ID"]?.trim();
  const clientId = env["AZURE_CLIENT_ID"]?.trim();
  if (!tenantId || !clientId) return null;
  let method: SpMethod | undefined;
  if (env["AZURE_CLIENT_SECRET"]) method = { type: "secret", env: "AZURE_CLIENT_SECRET" };
  else if (env["AZURE_CLIENT_CERTIFICATE_PATH"])
    method = { type: "certificate", path: env["AZURE_CLIENT_CERTIFICATE_PATH"] };
  else if (env["AZURE_FEDERATED_TOKEN_FILE"])
    method = { type: "federated", tokenFile: env["AZURE_FEDERATED_TOKEN_FILE"] };
  if (!method) return null;
  const authorityHost = env["AZURE_AUTHORITY_HOST"]?.trim();
  return { tenantId, clientId, method, ...(authorityHost ? { authorityHost } : {}) };
}

/** `caFile` (from --ca-file or GW_CA_FILE) overrides the one remembered at sign-in. */
export function providerForSignIn(state: SignInState, caFile?: string): TokenProvider {
  if (state.kind === "user") return new UserTokenProvider(state, caFile ?? state.caFile);
  const sp: ServicePrincipalSignIn = state;
  return new ServicePrincipalTokenProvider(
    {
      broker: sp.broker,
      caFile: caFile ?? sp.caFile,
      tenantId: sp.tenantId,
      clientId: sp.clientId,
      method: sp.method,
      authority: sp.authority,
      scopes: sp.scopes,
    },
    false,
  );
}

export interface ProviderOptions {
  /** The broker the token is for (already chosen: --broker, GW_BROKER or signin.json). */
  broker: string;
  caFile?: string | undefined;
  env?: NodeJS.ProcessEnv;
}

/** The token source for `broker`, by the order at the top of this file. */
export function tokenProviderFor(opts: ProviderOptions): TokenProvider {
  const env = opts.env ?? process.env;
  const fixed = env["GW_TOKEN"]?.trim();
  if (fixed) return new StaticTokenProvider(fixed);
  const broker = normalizeBrokerUrl(opts.broker);
  const state = readSignIn();
  if (state && normalizeBrokerUrl(state.broker) === broker)
    return providerForSignIn(state, opts.caFile);
  const azure = azureEnvServicePrincipal(env);
  if (azure)
    return new ServicePrincipalTokenProvider({ broker, caFile: opts.caFile, ...azure }, true);
  if (state) {
    const e = notSignedIn();
    throw new GwError(e.code, `you are not signed in to ${broker}`, {
      exitCode: e.exitCode,
      hint: `You are signed in to ${state.broker}. Run \`gw login --broker ${broker}\` to switch.`,
    });
  }
  throw notSignedIn();
}
