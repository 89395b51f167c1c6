import { createPublicKey } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { verifySessionIn, type AuditService } from "../audit/service.js";
import type { Identity } from "../identity/principal.js";
import {
  effectiveLimit,
  type SessionQuery,
  type SessionRecord,
  type SessionStore,
} from "../store/types.js";
import { ApiError, sendError, sendJson } from "./http-util.js";

/**
 * Recorded sessions and their audit, for the CLI (`gw sessions`, `gw replay`, `gw audit`).
 * Auditors see every session, everyone else their own; a session one may not see answers
 * 404 like one that does not exist. The broker authenticates the caller first.
 *
 *   GET /v1/sessions[?connection=&user=&agent=&application=&since=&until=&grep=&limit=]
 *       → { sessions: SessionRecord[], scope: "all" | "own" }   newest first
 *       since/until: epoch ms or an ISO 8601 time; grep: text in any statement's SQL.
 *   GET /v1/sessions/:id            → { session, statements }
 *   GET /v1/sessions/:id/events     → { session, events: AuditEvent[], statements }
 *   GET /v1/audit/verify[?session=ID...][&connection=&since=&limit=]
 *       → { results: VerifyResult[], keyId, scope }   (without session=: every visible one)
 *   GET /v1/audit/public-key        → { algorithm: "ed25519", keyId, publicKey: PEM }
 *
 * :id may be shortened to a unique prefix (8 characters, as `gw sessions` shows them).
 */
export async function handleAuditRequest(
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  identity: Identity,
  isAuditor: boolean,
  store: SessionStore,
  audit: AuditService,
): Promise<boolean> {
  const path = url.pathname;
  const sessionsPath = path === "/v1/sessions" || path.startsWith("/v1/sessions/");
  const auditPath = path === "/v1/audit" || path.startsWith("/v1/audit/");
  if (!sessionsPath && !auditPath) return false;
  try {
    if (req.method !== "GET" && req.method !== "HEAD") {
      throw new ApiError(405, "method_not_allowed", `${req.method} is not supported on ${path}`);
    }
    const scope = isAuditor ? "all" : "own";
    const own: Pick<SessionQuery, "oid"> = isAuditor ? {} : { oid: identity.oid };
    if (path === "/v1/sessions" || path === "/v1/sessions/") {
      const sessions = await store.listSessions({ ...sessionQuery(url), ...own });
      sendJson(res, 200, { sessions, scope });
      return true;
    }
    const m = /^\/v1\/sessions\/([^/]+)(\/events)?\/?$/.exec(path);
    if (m) {
      const session = await visibleSession(store, own, decode(m[1]!));
      const statements = await store.listStatements(session.id);
      if (m[2] === undefined) {
        sendJson(res, 200, { session, statements });
      } else {
        const events = await store.listEvents(session.id);
        sendJson(res, 200, { session, events, statements });
      }
      return true;
    }
    if (path === "/v1/audit/public-key") {
      sendJson(res, 200, {
        algorithm: "ed25519",
        keyId: audit.signer.keyId,
        publicKey: audit.signer.publicKeyPem,
      });
      return true;
    }
    if (path === "/v1/audit/verify") {
      const key = createPublicKey(audit.signer.publicKeyPem);
      const ids = url.searchParams.getAll("session").filter((s) => s !== "");
      const sessions =
        ids.length > 0
          ? await Promise.all(ids.map((id) => visibleSession(store, own, id)))
          : await store.listSessions({ ...sessionQuery(url), ...own });
      const results = [];
      for (const s of sessions) results.push(await verifySessionIn(store, s, key));
      sendJson(res, 200, { results, keyId: audit.signer.keyId, scope });
      return true;
    }
    throw new ApiError(404, "not_found", `no such endpoint: ${path}`);
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    if (res.headersSent) res.destroy();
    else sendError(res, err);
    return true;
  }
}

/** The filters of a session list, from the query string. */
function sessionQuery(url: URL): SessionQuery {
  const p = url.searchParams;
  const q: SessionQuery = { limit: effectiveLimit(numberParam(p, "limit")) };
  for (const k of ["connection", "user", "agent", "application", "grep"] as const) {
    const v = p.get(k);
    if (v !== null && v !== "") q[k] = v;
  }
  const since = timeParam(p, "since");
  if (since !== undefined) q.since = since;
  const until = timeParam(p, "until");
  if (until !== undefined) q.until = until;
  return q;
}

function numberParam(p: URLSearchParams, name: string): number | undefined {
  const v = p.get(name);
  if (v === null || v === "") return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new ApiError(400, "bad_request", `${name} must be a number`);
  return n;
}

function timeParam(p: URLSearchParams, name: string): number | undefined {
  const v = p.get(name);
  if (v === null || v === "") return undefined;
  const n = /^\d+$/.test(v) ? Number(v) : Date.parse(v);
  if (!Number.isFinite(n)) {
    throw new ApiError(
      400,
      "bad_request",
      `${name} must be epoch milliseconds or an ISO 8601 time`,
    );
  }
  return n;
}

const SESSION_ID = /^[0-9a-zA-Z-]{4,64}$/;

/** The session with this id (or unique id prefix) that the caller may see, else 404. */
async function visibleSession(
  store: SessionStore,
  own: Pick<SessionQuery, "oid">,
  id: string,
): Promise<SessionRecord> {
  const notFound = () =>
    new ApiError(404, "session_not_found", `no session ${id} that you may see`);
  if (!SESSION_ID.test(id)) throw notFound();
  const exact = await store.getSession(id);
  if (exact) {
    if (own.oid !== undefined && exact.identity.oid !== own.oid) throw notFound();
    return exact;
  }
  const found = await store.listSessions({ idPrefix: id, limit: 2, ...own });
  if (found.length === 0) throw notFound();
  if (found.length > 1) {
    throw new ApiError(
      409,
      "session_ambiguous",
      `more than one session starts with ${id}; give more of its id`,
    );
  }
  return found[0]!;
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return "";
  }
}
