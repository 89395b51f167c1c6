import { ExitCode, GwError } from "../errors.js";
import {
  azureEnvServicePrincipal,
  ServicePrincipalTokenProvider,
  tokenProviderFor,
  type TokenProvider,
} from "../identity/credentials.js";
import { normalizeBrokerUrl } from "../tunnel/broker-client.js";

/**
 * Where an agent's token comes from: a non-human identity only. GW_TOKEN first (automation,
 * tests), then the AZURE_* variables of a service principal (the usual way to run an agent:
 * a container or a service with its own app registration), then `gw login --service-principal`.
 *
 * Unlike `gw connect`, the AZURE_* variables beat a `gw login` on the same machine: a person
 * signed in there must not end up carrying other people's sessions as the agent.
 */
export function agentTokenProvider(opts: {
  broker: string;
  caFile?: string | undefined;
  env?: NodeJS.ProcessEnv;
}): TokenProvider {
  const env = opts.env ?? process.env;
  const broker = normalizeBrokerUrl(opts.broker);
  const azure = env["GW_TOKEN"]?.trim() ? null : azureEnvServicePrincipal(env);
  const provider = azure
    ? new ServicePrincipalTokenProvider({ broker, caFile: opts.caFile, ...azure }, true)
    : tokenProviderFor({ broker, caFile: opts.caFile, env });
  if (provider.kind === "user") {
    throw new GwError(
      "agent_needs_service_principal",
      "an agent signs in as a service principal, but the only sign-in here is a person's (gw login)",
      {
        exitCode: ExitCode.auth,
        hint: "Set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (or AZURE_CLIENT_CERTIFICATE_PATH, or AZURE_FEDERATED_TOKEN_FILE) for the agent's app registration, or run `gw login --service-principal`.",
      },
    );
  }
  return provider;
}
