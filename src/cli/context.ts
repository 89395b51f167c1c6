import { ExitCode, GwError } from "../errors.js";
import { BrokerClient, notSignedIn } from "../tunnel/broker-client.js";

/** Options every command that talks to a broker accepts. */
export interface BrokerFlags {
  broker?: string;
  caFile?: string;
}

export function brokerUrl(flags: BrokerFlags): string {
  const url = flags.broker ?? process.env["GW_BROKER"];
  if (!url) {
    throw new GwError("broker_unknown", "no broker given", {
      exitCode: ExitCode.usage,
      hint: "Pass --broker https://gw.example.com or set GW_BROKER.",
    });
  }
  return url;
}

/** The bearer token for the broker. GW_TOKEN is the automation path; `gw login` comes next. */
export function currentToken(): string {
  const t = process.env["GW_TOKEN"]?.trim();
  if (!t) throw notSignedIn();
  return t;
}

export function brokerClient(flags: BrokerFlags, withToken = true): BrokerClient {
  return new BrokerClient({
    url: brokerUrl(flags),
    token: withToken ? currentToken() : undefined,
    caFile: flags.caFile ?? process.env["GW_CA_FILE"],
  });
}
