import { ExitCode, GwError } from "../errors.js";
import { tokenProviderFor, type TokenProvider } from "../identity/credentials.js";
import { readSignIn } from "../identity/sign-in-state.js";
import { BrokerClient, normalizeBrokerUrl } from "../tunnel/broker-client.js";

/** Options every command that talks to a broker accepts. */
export interface BrokerFlags {
  broker?: string;
  caFile?: string;
}

/** --broker, else GW_BROKER, else the broker of the last `gw login`. */
export function brokerUrl(flags: BrokerFlags): string {
  const url = flags.broker ?? process.env["GW_BROKER"] ?? readSignIn()?.broker;
  if (!url) {
    throw new GwError("broker_unknown", "no broker given", {
      exitCode: ExitCode.usage,
      hint: "Pass --broker https://gw.example.com, set GW_BROKER, or run `gw login --broker URL` once.",
    });
  }
  return url;
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
  return !url || normalizeBrokerUrl(url) === normalizeBrokerUrl(state.broker)
    ? state.caFile
    : undefined;
}

const providers = new Map<string, TokenProvider>();

/**
 * Where tokens for the broker come from (GW_TOKEN first, then `gw login`, then the AZURE_*
 * variables); one per broker per process, so renewals are shared.
 */
export function tokenProvider(flags: BrokerFlags): TokenProvider {
  const url = normalizeBrokerUrl(brokerUrl(flags));
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
  return new BrokerClient({
    url: brokerUrl(flags),
    token: withToken ? await currentToken(flags) : undefined,
    caFile: caFile(flags),
  });
}
