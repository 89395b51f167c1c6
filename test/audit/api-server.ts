/**
 * The broker's session and audit API (src/broker/audit-api.ts) on a plain HTTP server, with
 * bearer tokens that name who is calling ("auditor", "dana", "erin"), so CLI tests can run
 * `gw sessions`, `gw replay` and `gw audit` against it without a whole broker.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { AuditService } from "../../src/audit/service.js";
import type { AuditSigner } from "../../src/audit/signer.js";
import { handleAuditRequest } from "../../src/broker/audit-api.js";
import { sendJson } from "../../src/broker/http-util.js";
import { brokerConfig } from "../../src/config/schema.js";
import type { Identity } from "../../src/identity/principal.js";
import type { SessionStore } from "../../src/store/types.js";
import { DANA } from "./fixtures.js";

const PEOPLE: Record<string, { identity: Identity; auditor: boolean }> = {
  auditor: {
    identity: { ...DANA, oid: "oid-avery", name: "Avery Auditor", upn: "avery@example.com" },
    auditor: true,
  },
  dana: { identity: DANA, auditor: false },
  erin: {
    identity: { ...DANA, oid: "oid-erin", name: "Erin", upn: "erin@example.com" },
    auditor: false,
  },
};

export interface ApiServer {
  url: string;
  close(): Promise<void>;
}

export async function startAuditApi(store: SessionStore, signer: AuditSigner): Promise<ApiServer> {
  const audit = AuditService.open({
    config: brokerConfig.parse({
      identity: { issuer: "https://login.example.com/t/v2.0", audience: "api://gw" },
      store: { memory: true },
      connections: {},
    }),
    store,
    signer,
  });
  const server: Server = createServer((req, res) => {
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1] ?? "";
    const who = PEOPLE[token];
    if (!who)
      return sendJson(res, 401, { error: { code: "invalid_token", message: "who are you?" } });
    const url = new URL(req.url ?? "/", "http://x");
    handleAuditRequest(req, res, url, who.identity, who.auditor, store, audit).then(
      (handled) => {
        if (!handled)
          sendJson(res, 404, { error: { code: "not_found", message: "no such endpoint" } });
      },
      (err: unknown) => sendJson(res, 500, { error: { code: "internal", message: String(err) } }),
    );
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}
