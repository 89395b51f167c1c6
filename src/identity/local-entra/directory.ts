/**
 * The local identity server's directory: the applications, users and APIs of its one tenant.
 *
 * Modelled on an Entra tenant as far as gw sees it:
 * - a public client (the gw CLI) that signs users in with the device-code flow;
 * - confidential clients (service principals: AI agents, CI jobs) that get app-only tokens with
 *   a client secret, a certificate, or a federated credential (a token from another OIDC issuer,
 *   such as GitHub Actions or Kubernetes);
 * - users with groups and app roles;
 * - the API (the gw broker) that access tokens are for, with its delegated scopes.
 *
 * Everything is fixed when the server starts.
 */
import { X509Certificate, createHash, randomBytes, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import type { JSONWebKeySet } from "jose";
import { ExitCode, GwError } from "../../errors.js";

/** The audience Entra requires of federated credentials' external tokens. */
export const FEDERATED_AUDIENCE = "api://AzureADTokenExchange";

/** Microsoft Graph's application id: what Entra issues a token for when no API scope is asked. */
export const GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000";

export interface DirectoryUser {
  /** Object id (GUID): the `oid` of the user's tokens. */
  oid: string;
  /** Display name: `name`. */
  name: string;
  /** Sign-in name (UPN or email): `preferred_username`. */
  preferred_username: string;
  /** Group object ids: the `groups` claim (left out when empty, as Entra does). */
  groups?: string[];
  /** App roles assigned to the user on the API: the `roles` claim. */
  roles?: string[];
}

/** A public client: no credentials, may use the device-code and refresh-token grants. */
export interface PublicClientRegistration {
  type: "public";
  clientId: string;
  displayName?: string;
}

export interface FederatedCredential {
  /** `iss` of the external token, exactly. */
  issuer: string;
  /** `sub` of the external token, exactly (e.g. `repo:org/repo:ref:refs/heads/main`). */
  subject: string;
  /** `aud` the external token must carry; default api://AzureADTokenExchange. */
  audience?: string;
}

/** A confidential client (an app registration and its service principal). */
export interface ConfidentialClientRegistration {
  type: "confidential";
  /** Application (client) id: `azp` of its tokens. */
  clientId: string;
  /** The service principal's object id: `oid` and `sub` of its app-only tokens. */
  objectId?: string;
  displayName?: string;
  /** App roles granted to it on the API: the `roles` claim. */
  roles?: string[];
  /** Client secrets (the secret values). */
  secrets?: string[];
  /** Certificates: PEM text or paths. RSA only, as Entra. */
  certificates?: string[];
  federatedCredentials?: FederatedCredential[];
}

export type ClientRegistration = PublicClientRegistration | ConfidentialClientRegistration;

/** An external OIDC issuer whose tokens federated credentials accept (GitHub Actions, ...). */
export interface FederatedIssuer {
  issuer: string;
  /** Its key set, inline. */
  jwks?: JSONWebKeySet;
  /** Or where to fetch it (HTTPS; fetched on every assertion, never cached). */
  jwksUri?: string;
  /** A private CA (PEM text or path) for jwksUri. */
  ca?: string;
}

/** An API (resource) tokens can be issued for. */
export interface ApiRegistration {
  /** Application id: the `aud` of its access tokens. */
  appId: string;
  /** Names it can be asked for by in scopes; `api://{appId}` is always one. */
  identifierUris?: string[];
  /** Delegated scopes users can grant; default ["access"]. */
  scopes?: string[];
}

export interface Certificate {
  pem: string;
  /** SHA-256 of the DER, base64url: the assertion's `x5t#S256`. */
  x5tS256: string;
  /** SHA-1 of the DER, base64url: the assertion's `x5t` (older clients). */
  x5t: string;
  x509: X509Certificate;
}

export interface PublicClient {
  type: "public";
  clientId: string;
  displayName: string;
}

export interface ConfidentialClient {
  type: "confidential";
  clientId: string;
  objectId: string;
  displayName: string;
  roles: string[];
  secrets: string[];
  certificates: Certificate[];
  federatedCredentials: Required<FederatedCredential>[];
}

export type Client = PublicClient | ConfidentialClient;

export interface Api {
  appId: string;
  identifierUris: string[];
  scopes: string[];
}

/** Well-known ids of the default demo directory, so a demo broker config can name them. */
export const DEMO_GROUPS = {
  dba: "11111111-1111-1111-1111-111111111111",
  auditors: "22222222-2222-2222-2222-222222222222",
} as const;

export const DEMO_USERS: readonly DirectoryUser[] = [
  {
    oid: "aaaaaaaa-0000-4000-8000-000000000001",
    name: "Dana DBA",
    preferred_username: "dana@localentra.test",
    groups: [DEMO_GROUPS.dba],
  },
  {
    oid: "aaaaaaaa-0000-4000-8000-000000000002",
    name: "Avery Auditor",
    preferred_username: "avery@localentra.test",
    groups: [DEMO_GROUPS.auditors, DEMO_GROUPS.dba],
  },
  {
    oid: "aaaaaaaa-0000-4000-8000-000000000003",
    name: "Oscar Outsider",
    preferred_username: "oscar@localentra.test",
    groups: [],
  },
];

/** The default service principal: an agent with the gw.connect role and a random secret. */
export const DEMO_AGENT = {
  clientId: "bbbbbbbb-0000-4000-8000-000000000001",
  objectId: "33333333-3333-3333-3333-333333333333",
  displayName: "Demo Agent",
  roles: ["gw.connect"],
} as const;

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function configError(message: string, cause?: unknown): GwError {
  return new GwError("local_entra_config", message, { exitCode: ExitCode.config, cause });
}

function pemOrFile(value: string, what: string): string {
  if (value.includes("-----BEGIN ")) return value;
  try {
    return readFileSync(value, "utf8");
  } catch (err) {
    throw configError(`cannot read ${what} ${value}`, err);
  }
}

export function loadCertificate(pemOrPath: string, clientId: string): Certificate {
  const pem = pemOrFile(pemOrPath, `the certificate of client ${clientId}`);
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(pem);
  } catch (err) {
    throw configError(`the certificate of client ${clientId} is not a PEM certificate`, err);
  }
  if (x509.publicKey.asymmetricKeyType !== "rsa") {
    throw configError(
      `the certificate of client ${clientId} has a ${x509.publicKey.asymmetricKeyType ?? "non-RSA"} key; ` +
        "Entra accepts only RSA certificates for client assertions",
    );
  }
  const hash = (alg: string): string => createHash(alg).update(x509.raw).digest("base64url");
  return { pem, x509, x5tS256: hash("sha256"), x5t: hash("sha1") };
}

export interface DirectoryOptions {
  /** The gw CLI's client id: always registered as a public client. */
  cliClientId: string;
  /** The main API's app id. */
  audience: string;
  clients?: ClientRegistration[];
  users?: DirectoryUser[];
  apis?: ApiRegistration[];
  federatedIssuers?: FederatedIssuer[];
}

export class Directory {
  readonly clients: readonly Client[];
  readonly users: readonly DirectoryUser[];
  readonly apis: readonly Api[];
  readonly federatedIssuers: readonly FederatedIssuer[];

  constructor(opts: DirectoryOptions) {
    const clients: Client[] = [
      { type: "public", clientId: opts.cliClientId, displayName: "gw CLI" },
    ];
    const registrations: ClientRegistration[] = opts.clients ?? [
      {
        type: "confidential",
        ...DEMO_AGENT,
        roles: [...DEMO_AGENT.roles],
        secrets: [randomBytes(24).toString("base64url")],
      },
    ];
    for (const reg of registrations) {
      if (!reg.clientId) throw configError("a client registration has no clientId");
      if (clients.some((c) => c.clientId === reg.clientId)) {
        // The CLI client can be re-registered (e.g. to name it); anything else is a mistake.
        if (reg.clientId === opts.cliClientId && reg.type === "public") {
          clients[0] = {
            type: "public",
            clientId: reg.clientId,
            displayName: reg.displayName ?? "gw CLI",
          };
          continue;
        }
        throw configError(`client ${reg.clientId} is registered twice`);
      }
      if (reg.type === "public") {
        clients.push({
          type: "public",
          clientId: reg.clientId,
          displayName: reg.displayName ?? reg.clientId,
        });
        continue;
      }
      const certificates = (reg.certificates ?? []).map((c) => loadCertificate(c, reg.clientId));
      const federatedCredentials = (reg.federatedCredentials ?? []).map((f) => ({
        issuer: f.issuer,
        subject: f.subject,
        audience: f.audience ?? FEDERATED_AUDIENCE,
      }));
      const secrets = reg.secrets ?? [];
      if (secrets.some((s) => s.length === 0)) {
        throw configError(`client ${reg.clientId} has an empty secret`);
      }
      if (secrets.length + certificates.length + federatedCredentials.length === 0) {
        throw configError(
          `confidential client ${reg.clientId} has no secret, certificate or federated credential`,
        );
      }
      clients.push({
        type: "confidential",
        clientId: reg.clientId,
        objectId: reg.objectId ?? randomUUID(),
        displayName: reg.displayName ?? reg.clientId,
        roles: [...(reg.roles ?? [])],
        secrets: [...secrets],
        certificates,
        federatedCredentials,
      });
    }

    const users: DirectoryUser[] = (opts.users ?? DEMO_USERS).map((u) => ({
      ...u,
      ...(u.groups ? { groups: [...u.groups] } : {}),
      ...(u.roles ? { roles: [...u.roles] } : {}),
    }));
    const oids = new Set<string>();
    for (const u of users) {
      if (!GUID.test(u.oid)) throw configError(`user ${u.name}: oid ${u.oid} is not a GUID`);
      if (oids.has(u.oid)) throw configError(`user oid ${u.oid} is registered twice`);
      oids.add(u.oid);
    }

    const apis: Api[] = (opts.apis ?? []).map((a) => ({
      appId: a.appId,
      identifierUris: uniq([`api://${a.appId}`, ...(a.identifierUris ?? [])]),
      scopes: [...(a.scopes ?? ["access"])],
    }));
    if (!apis.some((a) => a.appId === opts.audience)) {
      apis.unshift({
        appId: opts.audience,
        identifierUris: [`api://${opts.audience}`],
        scopes: ["access"],
      });
    }

    for (const f of opts.federatedIssuers ?? []) {
      if ((f.jwks === undefined) === (f.jwksUri === undefined)) {
        throw configError(`federated issuer ${f.issuer} needs exactly one of jwks and jwksUri`);
      }
    }

    this.clients = clients;
    this.users = users;
    this.apis = apis;
    this.federatedIssuers = [...(opts.federatedIssuers ?? [])];
  }

  client(clientId: string): Client | undefined {
    return this.clients.find((c) => c.clientId === clientId);
  }

  user(oid: string): DirectoryUser | undefined {
    return this.users.find((u) => u.oid === oid);
  }

  /** The API a scope's resource part names: its app id, `api://...` or another identifier URI. */
  api(resource: string): Api | undefined {
    const r = resource.replace(/\/+$/, "");
    return this.apis.find(
      (a) => a.appId === r || a.identifierUris.some((u) => u.replace(/\/+$/, "") === r),
    );
  }

  federatedIssuer(issuer: string): FederatedIssuer | undefined {
    return this.federatedIssuers.find((f) => f.issuer === issuer);
  }
}

function uniq(values: string[]): string[] {
  return [...new Set(values)];
}
