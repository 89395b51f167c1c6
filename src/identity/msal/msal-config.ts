/** What every MSAL application gw makes has in common: the network client and the logger. */
import { LogLevel, type NodeSystemOptions } from "@azure/msal-node";
import type { GwNetworkClient } from "./network-client.js";

/** MSAL's own log goes to stderr with GW_DEBUG=1 (without personal data); otherwise nowhere. */
export function systemOptions(net: GwNetworkClient): NodeSystemOptions {
  const debug = !!process.env["GW_DEBUG"];
  return {
    networkClient: net,
    loggerOptions: {
      piiLoggingEnabled: false,
      logLevel: debug ? LogLevel.Verbose : LogLevel.Error,
      loggerCallback: (_level, message) => {
        if (debug) process.stderr.write(`msal: ${message}\n`);
      },
    },
  };
}
