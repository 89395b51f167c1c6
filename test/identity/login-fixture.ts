/**
 * What `gw login` needs to run for real: the local Entra-compatible server (HTTPS, private CA)
 * with the gw CLI as a public client and three service principals (secret, certificate,
 * federated credential), and an HTTPS broker whose discovery document points `gw login` at it.
 *
 * No PostgreSQL: sign-in never touches a database.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { SignJWT, exportJWK, generateKeyPair } from "jose";
import { Broker } from "../../src/broker/broker.js";
import { createLogger } from "../../src/broker/logger.js";
import { brokerConfig } from "../../src/config/schema.js";
import {
  startLocalEntra,
  type LocalEntra,
  type LocalEntraOptions,
} from "../../src/identity/local-entra/server.js";
import { MemoryStore } from "../../src/store/memory-store.js";
import { issueCert, makeCa, type TestCa } from "../helpers/tls.js";

export const SP_SECRET = {
  clientId: "c0000000-0000-4000-8000-000000000001",
  objectId: "c1000000-0000-4000-8000-000000000001",
  secret: "s3cret-for-tests-only",
};
export const SP_CERT = {
  clientId: "c0000000-0000-4000-8000-000000000002",
  objectId: "c1000000-0000-4000-8000-000000000002",
};
export const SP_FEDERATED = {
  clientId: "c0000000-0000-4000-8000-000000000003",
  objectId: "c1000000-0000-4000-8000-000000000003",
  issuer: "https://token.actions.example.test",
  subject: "repo:example/gw:ref:refs/heads/main",
};

export interface LoginFixture {
  ca: TestCa;
  entra: LocalEntra;
  broker: Broker;
  /** https://127.0.0.1:PORT */
  brokerUrl: string;
  /** A temp dir for files the test writes (certificates, federated tokens). */
  dir: string;
  /** PEM file with the certificate service principal's certificate and RSA key. */
  spCertificatePem: string;
  /** A fresh federated token (as a CI system would mount it), valid for `lifetime` seconds. */
  federatedToken(lifetime?: number): Promise<string>;
  stop(): Promise<void>;
}

export interface FixtureOptions {
  entra?: Partial<Omit<LocalEntraOptions, "tls">>;
  /** Publish identity.login in the broker's discovery document; default true. */
  login?: boolean;
}

export async function startLoginFixture(opts: FixtureOptions = {}): Promise<LoginFixture> {
  const dir = mkdtempSync(join(tmpdir(), "gw-login-"));
  const ca = makeCa();
  const serverCert = issueCert(ca, { cn: "localhost" });
  const spCert = issueCert(ca, { cn: "gw-test-sp", dns: [], ips: [], keyType: "rsa" });
  const spCertificatePem = join(dir, "sp.pem");
  writeFileSync(spCertificatePem, spCert.certPem + spCert.keyPem, { mode: 0o600 });

  const fedKeys = await generateKeyPair("RS256", { extractable: true });
  const fedJwk = {
    ...(await exportJWK(fedKeys.publicKey)),
    kid: "fed-1",
    alg: "RS256",
    use: "sig",
  };

  const entra = await startLocalEntra({
    tls: { cert: serverCert.cert, key: serverCert.key },
    interval: 1,
    clients: [
      {
        type: "confidential",
        clientId: SP_SECRET.clientId,
        objectId: SP_SECRET.objectId,
        displayName: "Secret Agent",
        roles: ["gw.connect"],
        secrets: [SP_SECRET.secret],
      },
      {
        type: "confidential",
        clientId: SP_CERT.clientId,
        objectId: SP_CERT.objectId,
        displayName: "Certificate Agent",
        roles: ["gw.connect"],
        certificates: [spCert.certPem],
      },
      {
        type: "confidential",
        clientId: SP_FEDERATED.clientId,
        objectId: SP_FEDERATED.objectId,
        displayName: "Federated Agent",
        roles: ["gw.connect"],
        federatedCredentials: [{ issuer: SP_FEDERATED.issuer, subject: SP_FEDERATED.subject }],
      },
    ],
    federatedIssuers: [{ issuer: SP_FEDERATED.issuer, jwks: { keys: [fedJwk] } }],
    ...opts.entra,
  });

  const config = brokerConfig.parse({
    listen: "127.0.0.1:0",
    tls: { cert: serverCert.cert, key: serverCert.key },
    identity: {
      issuer: entra.issuer,
      audience: entra.audience,
      ca: ca.caCert,
      ...(opts.login === false
        ? {}
        : {
            login: {
              authority: entra.authority,
              clientId: entra.clientId,
              scopes: [entra.apiScope],
            },
          }),
    },
    store: { memory: true },
    connections: {},
  });
  const broker = await Broker.start({
    config,
    store: new MemoryStore(),
    listen: { host: "127.0.0.1", port: 0 },
    logger: createLogger({ level: "error", write: () => undefined }),
  });

  return {
    ca,
    entra,
    broker,
    brokerUrl: broker.url,
    dir,
    spCertificatePem,
    async federatedToken(lifetime = 600) {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({ jti: randomUUID() })
        .setProtectedHeader({ alg: "RS256", kid: "fed-1", typ: "JWT" })
        .setIssuer(SP_FEDERATED.issuer)
        .setSubject(SP_FEDERATED.subject)
        .setAudience("api://AzureADTokenExchange")
        .setIssuedAt(now)
        .setNotBefore(now)
        .setExpirationTime(now + lifetime)
        .sign(fedKeys.privateKey);
    },
    async stop() {
      await broker.close();
      await entra.close();
      rmSync(dir, { recursive: true, force: true });
      rmSync(ca.dir, { recursive: true, force: true });
    },
  };
}
