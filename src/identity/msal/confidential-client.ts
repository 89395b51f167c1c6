/**
 * Service principals as MSAL confidential clients: app-only tokens by client credentials, with a
 * secret (from an environment variable), a certificate (PEM with its private key), or a
 * federated token file (workload identity: Kubernetes, GitHub Actions, ...) read fresh at every
 * acquisition, since those files are rotated underneath the process.
 */
import { X509Certificate, createPrivateKey, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { ConfidentialClientApplication, type AuthenticationResult } from "@azure/msal-node";
import { ExitCode, GwError } from "../../errors.js";
import type { SpMethod } from "../sign-in-state.js";
import { resolveAuthority, type ResolvedAuthority } from "./authority.js";
import { mapMsalError } from "./errors.js";
import { systemOptions } from "./msal-config.js";
import { GwNetworkClient } from "./network-client.js";

export interface ConfidentialClientOptions {
  /** https://host/tenant: the service principal's own tenant. */
  authority: string;
  clientId: string;
  method: SpMethod;
  caFile?: string | undefined;
  /** Where a secret's environment variable is looked up; process.env by default. */
  env?: NodeJS.ProcessEnv;
}

export interface AppClient {
  app: ConfidentialClientApplication;
  net: GwNetworkClient;
  authority: ResolvedAuthority;
  clientId: string;
  method: SpMethod;
}

export interface ClientCertificate {
  thumbprintSha256: string;
  /** PKCS#8 PEM. */
  privateKey: string;
  /** The certificate chain, leaf first, as PEM (MSAL sends it as the x5c header). */
  x5c: string;
}

/** How the method is described in messages: never its secret, only where it comes from. */
export function describeMethod(m: SpMethod): string {
  switch (m.type) {
    case "secret":
      return `the client secret in $${m.env}`;
    case "certificate":
      return `the certificate ${m.path}`;
    case "federated":
      return `the federated token file ${m.tokenFile}`;
  }
}

function certError(path: string, what: string, hint?: string): GwError {
  return new GwError("certificate_invalid", `${path}: ${what}`, {
    exitCode: ExitCode.config,
    hint: hint ?? "Use a PEM file with the certificate and its unencrypted RSA private key.",
  });
}

/** Reads a PEM file holding a certificate (chain) and its private key, as MSAL wants them. */
export function loadClientCertificate(path: string): ClientCertificate {
  let pem: string;
  try {
    pem = readFileSync(path, "utf8");
  } catch (err) {
    throw new GwError(
      "certificate_unreadable",
      `cannot read the certificate ${path}: ${(err as Error).message}`,
      {
        exitCode: ExitCode.config,
        cause: err,
      },
    );
  }
  if (!pem.includes("-----BEGIN")) {
    throw certError(
      path,
      "not a PEM file (a PFX/PKCS#12 file?)",
      "Convert it: openssl pkcs12 -in cert.pfx -out cert.pem -nodes",
    );
  }
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(pem)) {
    throw certError(
      path,
      "the private key is encrypted",
      "gw needs an unencrypted key (protect the file with its permissions): openssl pkcs8 -topk8 -nocrypt -in key.pem",
    );
  }
  const certs = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  const keyPem = /-----BEGIN (RSA |EC )?PRIVATE KEY-----[\s\S]+?-----END \1?PRIVATE KEY-----/.exec(
    pem,
  )?.[0];
  if (certs.length === 0) throw certError(path, "no certificate in the file");
  if (!keyPem) throw certError(path, "no private key in the file");
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    throw certError(path, `the private key cannot be read (${(err as Error).message})`);
  }
  if (key.asymmetricKeyType !== "rsa") {
    throw certError(
      path,
      `the key is ${key.asymmetricKeyType ?? "unknown"}, but Entra ID certificate credentials are RSA`,
      "Make an RSA certificate (openssl req -x509 -newkey rsa:2048 ...) and upload it to the app registration.",
    );
  }
  const parsed = certs.map((c) => {
    try {
      return { pem: c, x509: new X509Certificate(c) };
    } catch (err) {
      throw certError(path, `a certificate cannot be read (${(err as Error).message})`);
    }
  });
  const leaf = parsed.find((c) => c.x509.checkPrivateKey(key));
  if (!leaf)
    throw certError(path, "the private key does not belong to any certificate in the file");
  const chain = [leaf, ...parsed.filter((c) => c !== leaf)];
  return {
    thumbprintSha256: leaf.x509.fingerprint256.replace(/:/g, "").toLowerCase(),
    privateKey: key.export({ type: "pkcs8", format: "pem" }).toString(),
    x5c: chain.map((c) => c.pem).join("\n"),
  };
}

/** The federated token, read now: the file is replaced while the process runs. */
export function readFederatedToken(path: string): string {
  let token: string;
  try {
    token = readFileSync(path, "utf8").trim();
  } catch (err) {
    throw new GwError(
      "federated_token_unreadable",
      `cannot read the federated token file ${path}: ${(err as Error).message}`,
      {
        exitCode: ExitCode.config,
        hint: "Check --federated-token-file / AZURE_FEDERATED_TOKEN_FILE and that the workload identity is mounted.",
        cause: err,
      },
    );
  }
  if (!token) {
    throw new GwError("federated_token_empty", `the federated token file ${path} is empty`, {
      exitCode: ExitCode.config,
    });
  }
  return token;
}

function readSecret(envName: string, env: NodeJS.ProcessEnv): string {
  const v = env[envName];
  if (!v) {
    throw new GwError(
      "sp_secret_missing",
      `the service principal's secret is read from the environment variable ${envName}, which is not set`,
      {
        exitCode: ExitCode.config,
        hint: `Set ${envName} in this environment (gw never stores the secret itself).`,
      },
    );
  }
  return v;
}

/** A new MSAL application for a service principal; the authority is checked first. */
export async function createConfidentialClient(
  opts: ConfidentialClientOptions,
): Promise<AppClient> {
  const env = opts.env ?? process.env;
  const m = opts.method;
  // Credentials are checked before any network request: a missing secret is not a network problem.
  const credential =
    m.type === "secret"
      ? { clientSecret: readSecret(m.env, env) }
      : m.type === "certificate"
        ? { clientCertificate: loadClientCertificate(m.path) }
        : (readFederatedToken(m.tokenFile),
          {
            clientAssertion: async () => readFederatedToken(m.tokenFile),
          });
  const net = new GwNetworkClient({ caFile: opts.caFile });
  const authority = await resolveAuthority(opts.authority, net);
  const app = new ConfidentialClientApplication({
    auth: {
      clientId: opts.clientId,
      authority: authority.authority,
      knownAuthorities: authority.knownAuthorities,
      authorityMetadata: authority.metadata,
      ...credential,
    },
    system: systemOptions(net),
  });
  return { app, net, authority, clientId: opts.clientId, method: m };
}

/** A new app-only token (never MSAL's cached one: the caller decides when to renew). */
export async function acquireAppToken(
  client: AppClient,
  scopes: string[],
): Promise<AuthenticationResult> {
  const ctx = {
    flow: "client-credentials" as const,
    net: client.net,
    authority: client.authority.authority,
    credential: describeMethod(client.method),
  };
  let result: AuthenticationResult | null;
  try {
    result = await client.app.acquireTokenByClientCredential({ scopes, skipCache: true });
  } catch (err) {
    throw mapMsalError(err, ctx);
  }
  if (!result) {
    throw new GwError(
      "sp_token_failed",
      "getting a token for the service principal failed: no token came back",
      {
        exitCode: ExitCode.auth,
      },
    );
  }
  return result;
}
