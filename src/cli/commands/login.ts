import type { Command } from "commander";
import { resolve } from "node:path";
import { ExitCode, GwError, isGwError } from "../../errors.js";
import type { DeviceCodePrompt } from "../../identity/msal/public-client.js";
import {
  readSignIn,
  writeSignIn,
  type SignInState,
  type SpMethod,
} from "../../identity/sign-in-state.js";
import { normalizeBrokerUrl } from "../../tunnel/broker-client.js";
import { parseBrokerUrls } from "../../tunnel/broker-urls.js";
import type { BrokerFlags } from "../context.js";
import { bold, dim, info, printJson } from "../output.js";
import { describeToken, stdoutColors, type WhoamiInfo } from "./whoami.js";

interface LoginOptions extends BrokerFlags {
  json?: boolean;
  servicePrincipal?: boolean;
  tenant?: string;
  clientId?: string;
  clientSecretEnv?: string;
  certificate?: string;
  federatedTokenFile?: string;
}

const SP_FLAGS = [
  "tenant",
  "clientId",
  "clientSecretEnv",
  "certificate",
  "federatedTokenFile",
] as const;
const FLAG_NAME: Record<(typeof SP_FLAGS)[number], string> = {
  tenant: "--tenant",
  clientId: "--client-id",
  clientSecretEnv: "--client-secret-env",
  certificate: "--certificate",
  federatedTokenFile: "--federated-token-file",
};

function usage(message: string, hint?: string): GwError {
  return new GwError("usage", message, { exitCode: ExitCode.usage, ...(hint ? { hint } : {}) });
}

/** A waiting indicator on a terminal; nothing at all when stderr is not one. */
function spinner(text: () => string): { stop(): void } {
  if (!process.stderr.isTTY) return { stop() {} };
  const frames = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
  let i = 0;
  const draw = () =>
    process.stderr.write(`\r\x1b[K${dim(`${frames[i++ % frames.length]} ${text()}`)}`);
  draw();
  const timer = setInterval(draw, 100);
  return {
    stop() {
      clearInterval(timer);
      process.stderr.write("\r\x1b[K");
    },
  };
}

function mmss(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

function showPrompt(p: DeviceCodePrompt): void {
  info("");
  info(`  To sign in, open  ${bold(p.verificationUri)}`);
  info(`  and enter the code  ${bold(p.userCode)}`);
  info("");
  if (!process.stderr.isTTY)
    info(
      dim(`Waiting for the sign-in (the code expires in ${Math.round(p.expiresIn / 60)} min)...`),
    );
}

/** The broker and CA for this login: flags, then environment, then the last login's. */
function target(opts: LoginOptions): { broker: string; caFile: string | undefined } {
  const previous = readSignIn();
  const given = opts.broker ?? process.env["GW_BROKER"];
  const url = given ?? previous?.broker;
  if (!url) {
    throw new GwError("broker_unknown", "no broker given", {
      exitCode: ExitCode.usage,
      hint: "Pass --broker https://gw.example.com (or set GW_BROKER).",
    });
  }
  // Replicas share one identity configuration: sign in through the first of a list (the
  // tunnel and the other commands then use the whole list from --broker / GW_BROKER).
  const broker = parseBrokerUrls(url)[0]!;
  const explicitCa = opts.caFile ?? process.env["GW_CA_FILE"];
  const sameBroker = previous && normalizeBrokerUrl(previous.broker) === broker;
  const ca = explicitCa ? resolve(explicitCa) : sameBroker ? previous.caFile : undefined;
  return { broker, caFile: ca };
}

function spMethodFrom(opts: LoginOptions): SpMethod | undefined {
  const given: SpMethod[] = [];
  if (opts.clientSecretEnv) given.push({ type: "secret", env: opts.clientSecretEnv });
  if (opts.certificate) given.push({ type: "certificate", path: resolve(opts.certificate) });
  if (opts.federatedTokenFile)
    given.push({ type: "federated", tokenFile: resolve(opts.federatedTokenFile) });
  if (given.length > 1) {
    throw usage("give only one of --client-secret-env, --certificate and --federated-token-file");
  }
  if (given[0]) return given[0];
  const env = process.env;
  if (env["AZURE_CLIENT_SECRET"]) return { type: "secret", env: "AZURE_CLIENT_SECRET" };
  if (env["AZURE_CLIENT_CERTIFICATE_PATH"])
    return { type: "certificate", path: resolve(env["AZURE_CLIENT_CERTIFICATE_PATH"]) };
  if (env["AZURE_FEDERATED_TOKEN_FILE"])
    return { type: "federated", tokenFile: resolve(env["AZURE_FEDERATED_TOKEN_FILE"]) };
  return undefined;
}

/** Forgets an earlier sign-in's tokens when this one replaces it (one sign-in at a time). */
async function forgetPrevious(previous: SignInState | null, keep: string | null): Promise<void> {
  if (!previous || previous.kind !== "user") return;
  if (normalizeBrokerUrl(previous.broker) === keep) return; // same cache: MSAL updated it
  const { removeCache } = await import("../../identity/token-cache/index.js");
  await removeCache(normalizeBrokerUrl(previous.broker)).catch(() => false);
}

async function loginUser(opts: LoginOptions, signal: AbortSignal): Promise<WhoamiInfo> {
  const { broker, caFile } = target(opts);
  const { fetchLoginSettings } = await import("../../identity/msal/login-settings.js");
  const settings = await fetchLoginSettings(broker, caFile);
  if (!settings.login) {
    throw new GwError(
      "broker_login_unsupported",
      `the broker at ${broker} does not publish sign-in settings`,
      {
        exitCode: ExitCode.config,
        hint: "Its operators must set identity.login (authority, clientId, scopes); until then use GW_TOKEN or a service principal (--service-principal).",
      },
    );
  }
  const login = settings.login;
  const { openCacheStore } = await import("../../identity/token-cache/index.js");
  const { createPublicClient, signInWithDeviceCode } =
    await import("../../identity/msal/public-client.js");
  const store = await openCacheStore(broker);
  const client = await createPublicClient({
    authority: login.authority,
    clientId: login.clientId,
    caFile,
    store,
  });
  let spin: { stop(): void } | undefined;
  let result;
  try {
    result = await signInWithDeviceCode(client, {
      scopes: login.scopes,
      signal,
      onPrompt: (p) => {
        showPrompt(p);
        const until = Date.now() + p.expiresIn * 1000;
        spin = spinner(
          () =>
            `Waiting for you to sign in (code expires in ${mmss((until - Date.now()) / 1000)}; Ctrl-C to cancel)`,
        );
      },
    });
  } finally {
    spin?.stop();
  }
  const account = result.account;
  if (!account) {
    throw new GwError("login_failed", "sign-in failed: the identity provider returned no account", {
      exitCode: ExitCode.auth,
    });
  }
  // One account per broker: drop whoever was signed in here before.
  const cache = client.app.getTokenCache();
  for (const other of await cache.getAllAccounts()) {
    if (other.homeAccountId !== account.homeAccountId) await cache.removeAccount(other);
  }
  const previous = readSignIn();
  writeSignIn({
    version: 1,
    kind: "user",
    broker,
    ...(caFile ? { caFile } : {}),
    authority: client.authority.authority,
    clientId: login.clientId,
    scopes: login.scopes,
    homeAccountId: account.homeAccountId,
    ...(account.username ? { username: account.username } : {}),
    signedInAt: new Date().toISOString(),
  });
  await forgetPrevious(previous, broker);
  const where = store.kind === "keychain" ? "the OS keychain" : store.location;
  return describeToken(result.accessToken, result.expiresOn, `gw login (tokens in ${where})`, {
    url: broker,
    caFile,
  });
}

async function loginServicePrincipal(opts: LoginOptions): Promise<WhoamiInfo> {
  const { broker, caFile } = target(opts);
  const tenantId = opts.tenant ?? process.env["AZURE_TENANT_ID"];
  const clientId = opts.clientId ?? process.env["AZURE_CLIENT_ID"];
  if (!tenantId)
    throw usage(
      "--tenant is required with --service-principal",
      "Pass --tenant <tenant-id> (or set AZURE_TENANT_ID).",
    );
  if (!clientId)
    throw usage(
      "--client-id is required with --service-principal",
      "Pass --client-id <app-id> (or set AZURE_CLIENT_ID).",
    );
  const method = spMethodFrom(opts);
  if (!method) {
    throw usage(
      "a service principal needs a credential",
      "Pass one of --client-secret-env VAR, --certificate FILE.pem or --federated-token-file FILE.",
    );
  }
  const { fetchLoginSettings, spAuthority } = await import("../../identity/msal/login-settings.js");
  const { acquireAppToken, createConfidentialClient } =
    await import("../../identity/msal/confidential-client.js");
  const settings = await fetchLoginSettings(broker, caFile);
  const authority = spAuthority(settings, tenantId);
  const scopes = [settings.appScope];
  const client = await createConfidentialClient({ authority, clientId, method, caFile });
  const result = await acquireAppToken(client, scopes);
  const previous = readSignIn();
  writeSignIn({
    version: 1,
    kind: "service-principal",
    broker,
    ...(caFile ? { caFile } : {}),
    authority: client.authority.authority,
    clientId,
    scopes,
    tenantId,
    method,
    signedInAt: new Date().toISOString(),
  });
  await forgetPrevious(previous, null);
  return describeToken(result.accessToken, result.expiresOn, "gw login --service-principal", {
    url: broker,
    caFile,
  });
}

/** Who signed in, and whether the broker agrees: the result of a login, on stdout. */
export function formatLogin(who: WhoamiInfo): string {
  const c = stdoutColors();
  const name =
    who.type === "app"
      ? `service principal ${who.appId ?? who.oid ?? "?"}`
      : `${who.name ?? who.upn ?? who.oid ?? "?"}${who.upn && who.name ? ` (${who.upn})` : ""}`;
  const b = who.broker;
  const seen = b.identity
    ? `it sees you as ${String(b.identity["name"] ?? "?")} (${String(b.identity["type"] ?? "?")})${b.auditor ? ", auditor" : ""}`
    : `${c.yellow("not confirmed")}: ${b.error?.message ?? "no answer"}`;
  return [
    `${c.green("Signed in")} as ${c.bold(name)}, tenant ${who.tenant ?? "?"}`,
    `  ${c.dim("broker")}  ${b.url} (${seen})`,
    `  ${c.dim("tokens")}  ${who.source}`,
  ].join("\n");
}

export function registerLogin(program: Command): void {
  program
    .command("login")
    .description("Sign in to a broker (device code in a browser), or set up a service principal")
    .option("--broker <url>", "broker URL (or GW_BROKER; default: the last one)")
    .option(
      "--ca-file <file>",
      "PEM file of a private or corporate CA for the broker and sign-in (or GW_CA_FILE)",
    )
    .option("--service-principal", "sign in as an app (client credentials), not as a person")
    .option("--tenant <id>", "service principal: its tenant id (or AZURE_TENANT_ID)")
    .option(
      "--client-id <id>",
      "service principal: its application (client) id (or AZURE_CLIENT_ID)",
    )
    .option(
      "--client-secret-env <var>",
      "service principal: the environment variable holding its secret",
    )
    .option(
      "--certificate <file>",
      "service principal: PEM file with its certificate and private key",
    )
    .option(
      "--federated-token-file <file>",
      "service principal: file with a federated token (workload identity)",
    )
    .option("--json", "print who you are as JSON on success")
    .addHelpText(
      "after",
      [
        "",
        "Examples:",
        "  gw login --broker https://gw.example.com",
        "  gw login --service-principal --tenant $TENANT --client-id $APP --client-secret-env AGENT_SECRET",
        "  gw login --service-principal --tenant $TENANT --client-id $APP --certificate /etc/gw/agent.pem",
        "",
        "Service principals need no login at all when AZURE_TENANT_ID, AZURE_CLIENT_ID and one of",
        "AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PATH, AZURE_FEDERATED_TOKEN_FILE are set.",
        "Tokens are kept in the OS keychain (GW_TOKEN_STORE=keychain|file|auto).",
      ].join("\n"),
    )
    .action(async (opts: LoginOptions) => {
      if (!opts.servicePrincipal) {
        const stray = SP_FLAGS.find((f) => opts[f] !== undefined);
        if (stray) throw usage(`${FLAG_NAME[stray]} only goes with --service-principal`);
      }
      const controller = new AbortController();
      const onSignal = () => controller.abort();
      process.once("SIGINT", onSignal);
      process.once("SIGTERM", onSignal);
      let who: WhoamiInfo;
      try {
        who = opts.servicePrincipal
          ? await loginServicePrincipal(opts)
          : await loginUser(opts, controller.signal);
      } catch (err) {
        if (isGwError(err) && err.code === "login_cancelled") {
          if (opts.json) process.stdout.write(JSON.stringify({ error: err.toJSON() }) + "\n");
          else info("sign-in cancelled");
          process.exitCode = 130;
          // MSAL's poll timer may still be pending: leave now rather than up to an interval later.
          setTimeout(() => process.exit(130), 50).unref();
          return;
        }
        throw err;
      } finally {
        process.off("SIGINT", onSignal);
        process.off("SIGTERM", onSignal);
      }
      if (process.env["GW_TOKEN"]?.trim())
        info(
          "Note: GW_TOKEN is set in this environment; gw uses it instead of this sign-in until you unset it.",
        );
      if (opts.json) return printJson(who);
      process.stdout.write(formatLogin(who) + "\n");
    });
}
