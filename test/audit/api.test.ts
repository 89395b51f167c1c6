/**
 * The broker's session and audit endpoints (src/broker/audit-api.ts): auditors see every
 * session, others their own (and one they may not see looks like one that does not exist),
 * id prefixes, filters, verification and the public key.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditSigner } from "../../src/audit/signer.js";
import { MemoryStore } from "../../src/store/memory-store.js";
import { startAuditApi, type ApiServer } from "./api-server.js";
import { Clock, DANA, recordSession } from "./fixtures.js";

const signer = AuditSigner.ephemeral();
const store = new MemoryStore();
let api: ApiServer;
const DANA_S = "da7a0000-0000-4000-8000-000000000001";
const ERIN_S = "e1e10000-0000-4000-8000-000000000002";

beforeAll(async () => {
  await recordSession(store, DANA_S, { signer, agentLabel: "claude" });
  await recordSession(store, ERIN_S, {
    signer,
    clock: new Clock(Date.UTC(2026, 1, 1)),
    identity: { ...DANA, oid: "oid-erin", name: "Erin" },
  });
  api = await startAuditApi(store, signer);
});
afterAll(() => api.close());

async function get(token: string, path: string, method = "GET") {
  const res = await fetch(api.url + path, {
    method,
    headers: { authorization: `Bearer ${token}` },
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}
const ids = (body: Record<string, unknown>) =>
  (body["sessions"] as { id: string }[]).map((s) => s.id);

describe("session and audit API", () => {
  it("lists every session for auditors, their own for others, with filters", async () => {
    expect(ids((await get("auditor", "/v1/sessions")).body)).toEqual([ERIN_S, DANA_S]);
    const own = await get("dana", "/v1/sessions");
    expect(own.body["scope"]).toBe("own");
    expect(ids(own.body)).toEqual([DANA_S]);
    expect(ids((await get("auditor", "/v1/sessions?agent=claude")).body)).toEqual([DANA_S]);
    expect(ids((await get("auditor", "/v1/sessions?user=erin")).body)).toEqual([ERIN_S]);
    expect(ids((await get("auditor", "/v1/sessions?grep=select%203")).body)).toEqual([
      ERIN_S,
      DANA_S,
    ]);
    expect(ids((await get("auditor", "/v1/sessions?since=2026-01-20T00:00:00Z")).body)).toEqual([
      ERIN_S,
    ]);
    const bad = await get("auditor", "/v1/sessions?since=soon");
    expect(bad.status).toBe(400);
    expect(bad.body).toEqual({
      error: {
        code: "bad_request",
        message: "since must be epoch milliseconds or an ISO 8601 time",
      },
    });
  });

  it("serves a session's events by id or prefix, and hides others' sessions", async () => {
    const r = await get("dana", `/v1/sessions/${DANA_S.slice(0, 8)}/events`);
    expect(r.status).toBe(200);
    expect((r.body["events"] as unknown[]).length).toBe(8);
    expect((r.body["session"] as { id: string }).id).toBe(DANA_S);
    const hidden = await get("dana", `/v1/sessions/${ERIN_S}/events`);
    expect(hidden.status).toBe(404);
    expect(hidden.body).toEqual({
      error: { code: "session_not_found", message: `no session ${ERIN_S} that you may see` },
    });
    expect((await get("dana", `/v1/sessions/${ERIN_S.slice(0, 8)}`)).status).toBe(404);
    expect((await get("auditor", `/v1/sessions/${ERIN_S}`)).status).toBe(200);
  });

  it("verifies, and serves the public key", async () => {
    const v = await get("auditor", `/v1/audit/verify?session=${DANA_S}&session=${ERIN_S}`);
    expect((v.body["results"] as { status: string }[]).map((x) => x.status)).toEqual([
      "intact",
      "intact",
    ]);
    expect(v.body["keyId"]).toBe(signer.keyId);
    const mine = await get("erin", "/v1/audit/verify");
    expect((mine.body["results"] as { sessionId: string }[]).map((x) => x.sessionId)).toEqual([
      ERIN_S,
    ]);
    expect((await get("erin", `/v1/audit/verify?session=${DANA_S}`)).status).toBe(404);
    const key = await get("erin", "/v1/audit/public-key");
    expect(key.body).toEqual({
      algorithm: "ed25519",
      keyId: signer.keyId,
      publicKey: signer.publicKeyPem,
    });
  });

  it("answers only GET, and 404 for anything else under its paths", async () => {
    expect((await get("auditor", "/v1/sessions", "POST")).status).toBe(405);
    expect((await get("auditor", "/v1/audit/nothing")).status).toBe(404);
  });
});
