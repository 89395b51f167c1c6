import { ExitCode, GwError } from "../errors.js";
import { tokenProviderFor, type TokenProvider } from "../identity/credentials.js";
import { readSignIn } from "../identity/sign-in-state.js";
import { BrokerClient, normalizeBrokerUrl } from "../tunnel/broker-client.js";
import { BrokerPool } from "../tunnel/broker-pool.js";
import { parseBrokerUrls } from "../tunnel/broker-urls.js";

/** Options every command that talks to a broker accepts. */
export interface BrokerFlags {
  /** One URL, or a broker's replicas separated by commas (`gw connect` joins repeated flags). */
  broker?: string;
  caFile?: string;
}

/** --broker, else GW_BROKER, else the broker of the last `gw login`: every replica given. */
export function brokerUrls(flags: BrokerFlags): string[] {
  const given = flags.broker ?? process.env["GW_BROKER"] ?? readSignIn()?.broker;
  if (!given) {
    throw new GwError("broker_unknown", "no broker given", {
      exitCode: ExitCode.usage,
      hint: "Pass --broker https://gw.example.com, set GW_BROKER, or run `gw login --broker URL` once.",
    });
  }
  return parseBrokerUrls(given);
}

/**
 * The broker, by its first URL given. Every client made in this process for it (or for
 * another of its replicas) shares one pool of all of them, so requests go to a replica that
 * is up (a service principal's discovery lookup too).
 */
export function brokerUrl(flags: BrokerFlags): string {
  brokerPool(flags);
  return brokerUrls(flags)[0]!;
}

/** The pool of the broker's replicas this process shares. */
export function brokerPool(flags: BrokerFlags): BrokerPool {
  return BrokerPool.shared(brokerUrls(flags), { caFile: caFile(flags) });
}

/**
 * The URL sign-in state is kept under: of the replicas given, the one `gw login` signed in to
 * (tokens are the same for all of them), else the first.
 */
function signInBrokerUrl(flags: BrokerFlags): string {
  const urls = brokerUrls(flags);
  brokerPool(flags);
  let signedIn: string | undefined;
  try {
    const state = readSignIn();
    signedIn = state ? normalizeBrokerUrl(state.broker) : undefined;
  } catch {
    signedIn = undefined; // a damaged signin.json is reported where a token is needed
  }
  return signedIn !== undefined && urls.includes(signedIn) ? signedIn : urls[0]!;
}

/** --ca-file, else GW_CA_FILE, else the one given to `gw login` for the same broker. */
export function caFile(flags: BrokerFlags): string | undefined {
  const explicit = flags.caFile ?? process.env["GW_CA_FILE"];
  if (explicit) return explicit;
  let state;
  try {
    state = readSignIn();
  } catch {
    return undefined; // a damaged signin.json is reported where a token is needed
  }
  if (!state?.caFile) return undefined;
  const url = flags.broker ?? process.env["GW_BROKER"];
  return !url || parseBrokerUrls(url).includes(normalizeBrokerUrl(state.broker))
    ? state.caFile
    : undefined;
}

const providers = new Map<string, TokenProvider>();

/**
 * Where tokens for the broker come from (GW_TOKEN first, then `gw login`, then the AZURE_*
 * variables); one per broker per process, so renewals are shared.
 */
export function tokenProvider(flags: BrokerFlags): TokenProvider {
  const url = signInBrokerUrl(flags);
  let p = providers.get(url);
  if (!p) {
    p = tokenProviderFor({ broker: url, caFile: caFile(flags) });
    providers.set(url, p);
  }
  return p;
}

/** The bearer token for the broker, renewed when it is close to expiry. */
export async function currentToken(flags: BrokerFlags = {}): Promise<string> {
  return (await tokenProvider(flags).getToken()).token;
}

export async function brokerClient(flags: BrokerFlags, withToken = true): Promise<BrokerClient> {
  // The pool first: a token that needs the broker's discovery document finds it through it.
  const pool = brokerPool(flags);
  return new BrokerClient({
    url: pool.urls,
    pool,
    token: withToken ? await currentToken(flags) : undefined,
    caFile: caFile(flags),
  });
}
