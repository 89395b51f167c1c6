import type { IncomingMessage, ServerResponse } from "node:http";
import { APPROVAL_ERRORS, isApprovalErrorCode } from "../approvals/errors.js";
import { canSee, viewerRights, type ViewerRights } from "../approvals/rules.js";
import type { ApprovalEvent, ApprovalService } from "../approvals/service.js";
import { isGwError } from "../errors.js";
import type { Identity } from "../identity/principal.js";
import { APPROVAL_STATUSES, type ApprovalRequest, type ApprovalStatus } from "../store/types.js";
import { ApiError, sendJson } from "./http-util.js";

/**
 * The approvals HTTP API, under /v1/approvals. The broker authenticates the caller and passes
 * every request whose path is /v1/approvals or starts with /v1/approvals/ (any method):
 *
 *   GET  /v1/approvals[?status=pending|all|<status>][&limit=N][&scope=mine|all]
 *        → { approvals: ApprovalView[], scope: "mine" | "all" }
 *        Newest first. "mine" (the default for everyone but auditors): the requests the caller
 *        may act on (as an eligible approver) and its own. Auditors get every request
 *        ("all", their default; ?scope=mine narrows it). Default status pending.
 *   GET  /v1/approvals/events   Server-Sent Events, filtered like the list (see streamEvents)
 *   GET  /v1/approvals/:id      → { approval: ApprovalView }
 *   POST /v1/approvals/:id/approve  body {} or { reason?, statementHash?, sessionId? }
 *   POST /v1/approvals/:id/deny     body { reason, statementHash?, sessionId? }
 *        → { approval: ApprovalView } after the decision is recorded.
 *
 * A request the caller may not see (not its requester, not an eligible approver, not an
 * auditor) answers 404 approval_not_found on every route, deciding included, so ids cannot be
 * probed. statementHash / sessionId bind a decision to what the approver looked at (409
 * approval_statement_mismatch otherwise). Errors are { error: { code, message, hint? } }.
 */

/** An approval request as one caller sees it: the request, plus what that caller may do. */
export type ApprovalView = ApprovalRequest & { viewer: ViewerRights };

export interface ApprovalsApiOptions {
  /** SSE heartbeat comment interval; default 15 s. */
  heartbeatMs?: number;
  /** Largest request body accepted; default 16 KiB. */
  maxBodyBytes?: number;
}

export const MAX_APPROVAL_BODY_BYTES = 16 * 1024;
const HEARTBEAT_MS = 15_000;
/** An SSE client this far behind is dropped rather than buffered without end. */
const MAX_SSE_BACKLOG_BYTES = 1 << 20;
const ID = /^[\w-]{1,64}$/;
const SHA256_HEX = /^[0-9a-fA-F]{64}$/;

export function approvalView(
  identity: Identity,
  approval: ApprovalRequest,
  now: number,
): ApprovalView {
  return { ...approval, viewer: viewerRights(identity, approval, now) };
}

/**
 * Serves /v1/approvals and everything under it; returns false (having done nothing) for any
 * other path. Never rejects for a caller's mistake or a known failure (those are answered);
 * anything else is rethrown for the broker's 500 handler.
 */
export async function handleApprovalsRequest(
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  identity: Identity,
  service: ApprovalService,
  isAuditor = false,
  opts: ApprovalsApiOptions = {},
): Promise<boolean> {
  const path = url.pathname;
  if (path !== "/v1/approvals" && !path.startsWith("/v1/approvals/")) return false;
  try {
    if (path === "/v1/approvals" || path === "/v1/approvals/") {
      allowMethods(req, ["GET", "HEAD"]);
      await list(res, url, identity, service, isAuditor);
      return true;
    }
    if (path === "/v1/approvals/events") {
      allowMethods(req, ["GET", "HEAD"]);
      await streamEvents(req, res, url, identity, service, isAuditor, opts);
      return true;
    }
    const m = /^\/v1\/approvals\/([^/]+)(?:\/(approve|deny))?$/.exec(path);
    const id = m === null ? undefined : safeDecode(m[1]!);
    if (m === null || id === undefined || !ID.test(id)) {
      throw new ApiError(404, "not_found", `no such endpoint: ${path}`);
    }
    const action = m[2] as "approve" | "deny" | undefined;
    if (action === undefined) {
      allowMethods(req, ["GET", "HEAD"]);
      const a = await visible(service, identity, isAuditor, id);
      sendJson(res, 200, { approval: approvalView(identity, a, service.now()) });
      return true;
    }
    allowMethods(req, ["POST"]);
    const body = parseDecisionBody(await readJsonBody(req, opts.maxBodyBytes));
    await visible(service, identity, isAuditor, id);
    const updated = await service.decide(id, identity, action, body.reason, {
      ...(body.statementHash !== undefined ? { statementHash: body.statementHash } : {}),
      ...(body.sessionId !== undefined ? { sessionId: body.sessionId } : {}),
    });
    sendJson(res, 200, { approval: approvalView(identity, updated, service.now()) });
    return true;
  } catch (err) {
    const e = toApiError(err);
    if (res.headersSent) res.destroy();
    else sendProblem(res, e.status, e.code, e.message, e.hint, e.headers);
    return true;
  }
}

// --- routes ------------------------------------------------------------------------------

async function list(
  res: ServerResponse,
  url: URL,
  identity: Identity,
  service: ApprovalService,
  isAuditor: boolean,
): Promise<void> {
  const status = parseStatus(url.searchParams.get("status"));
  const all = parseScope(url.searchParams.get("scope"), isAuditor);
  const limitText = url.searchParams.get("limit");
  const limit = limitText === null ? undefined : Number(limitText);
  const approvals = await service.listFor(identity, {
    all,
    status,
    ...(limit !== undefined && Number.isFinite(limit) ? { limit } : {}),
  });
  const now = service.now();
  sendJson(res, 200, {
    approvals: approvals.map((a) => approvalView(identity, a, now)),
    scope: all ? "all" : "mine",
  });
}

/**
 * GET /v1/approvals/events: a text/event-stream of
 *   event: snapshot  data: { approvals: ApprovalView[] }   first: the pending requests in scope
 *   event: created | decided | expired | cancelled
 *                    data: { type, approval: ApprovalView, decision? }
 *   event: sign_in_expired  data: {}   then the stream ends: reconnect with a fresh token
 * plus a ": heartbeat" comment every 15 s. Events are filtered as the list is (?scope=).
 * Events that happen while the snapshot is read follow it, in order.
 */
async function streamEvents(
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  identity: Identity,
  service: ApprovalService,
  isAuditor: boolean,
  opts: ApprovalsApiOptions,
): Promise<void> {
  const all = parseScope(url.searchParams.get("scope"), isAuditor);
  res.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-store",
    "x-accel-buffering": "no", // reverse proxies: do not buffer the stream
  });
  if (req.method === "HEAD") {
    res.end();
    return;
  }
  let ended = false;
  let queue: ApprovalEvent[] | null = []; // events that arrive while the snapshot is read
  const timers: NodeJS.Timeout[] = [];
  const write = (text: string) => {
    if (ended) return;
    if (res.writableLength > MAX_SSE_BACKLOG_BYTES) {
      stop();
      res.destroy();
      return;
    }
    res.write(text);
  };
  const send = (event: string, data: unknown) =>
    write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  const deliver = (ev: ApprovalEvent) => {
    if (!all && !canSee(identity, ev.approval, false)) return;
    send(ev.type, {
      ...ev,
      approval: approvalView(identity, ev.approval, service.now()),
    });
  };
  const unsubscribe = service.subscribe((ev) => {
    if (queue !== null) queue.push(ev);
    else deliver(ev);
  });
  const stop = () => {
    if (ended) return;
    ended = true;
    unsubscribe();
    for (const t of timers) clearTimeout(t);
  };
  // The response closes when the client goes away (or the stream ends): stop feeding it.
  res.on("close", stop);

  const heartbeat = setInterval(() => write(": heartbeat\n\n"), opts.heartbeatMs ?? HEARTBEAT_MS);
  heartbeat.unref();
  timers.push(heartbeat);
  // The stream carries SQL text: it lasts no longer than the sign-in that opened it.
  const untilExpiry = identity.expiresAt * 1000 - Date.now();
  if (Number.isFinite(untilExpiry) && untilExpiry < 2 ** 31 - 1) {
    const t = setTimeout(
      () => {
        send("sign_in_expired", {});
        stop();
        res.end();
      },
      Math.max(0, untilExpiry),
    );
    t.unref();
    timers.push(t);
  }
  write("retry: 5000\n\n");

  try {
    const snapshot = await service.listFor(identity, { all, status: "pending" });
    const now = service.now();
    send("snapshot", { approvals: snapshot.map((a) => approvalView(identity, a, now)) });
  } catch (err) {
    // Headers are out: say what failed in the stream, then end it (the client reconnects).
    const e = toApiError(err);
    send("error", { error: { code: e.code, message: e.message } });
    stop();
    res.end();
    if (e.status === 500) throw err;
    return;
  }
  const pending = queue;
  queue = null;
  for (const ev of pending) deliver(ev);
}

// --- helpers -----------------------------------------------------------------------------

class HttpProblem extends ApiError {
  constructor(
    status: number,
    code: string,
    message: string,
    readonly hint?: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(status, code, message);
  }
}

function allowMethods(req: IncomingMessage, methods: readonly string[]): void {
  if (!methods.includes(req.method ?? "")) {
    throw new HttpProblem(
      405,
      "method_not_allowed",
      `${req.method} is not supported here; use ${methods.join(" or ")}`,
      undefined,
      { allow: methods.join(", ") },
    );
  }
}

async function visible(
  service: ApprovalService,
  identity: Identity,
  isAuditor: boolean,
  id: string,
): Promise<ApprovalRequest> {
  const a = await service.get(id);
  if (a === null || !canSee(identity, a, isAuditor)) {
    throw new ApiError(404, "approval_not_found", `no approval request ${id} that you may see`);
  }
  return a;
}

function parseStatus(text: string | null): ApprovalStatus | "all" {
  if (text === null || text === "") return "pending";
  if (text === "all" || (APPROVAL_STATUSES as readonly string[]).includes(text))
    return text as ApprovalStatus | "all";
  throw new ApiError(
    400,
    "bad_request",
    `status must be all or one of ${APPROVAL_STATUSES.join(", ")}, not ${JSON.stringify(text)}`,
  );
}

/** true for scope=all: auditors by default; anyone else may not ask for it. */
function parseScope(text: string | null, isAuditor: boolean): boolean {
  if (text === null || text === "") return isAuditor;
  if (text === "mine") return false;
  if (text === "all") {
    if (!isAuditor)
      throw new ApiError(403, "forbidden", "only auditors may see every approval request");
    return true;
  }
  throw new ApiError(400, "bad_request", `scope must be mine or all, not ${JSON.stringify(text)}`);
}

interface DecisionBody {
  reason?: string;
  statementHash?: string;
  sessionId?: string;
}

function parseDecisionBody(body: unknown): DecisionBody {
  if (body === undefined) return {};
  if (typeof body !== "object" || body === null || Array.isArray(body))
    throw new ApiError(400, "bad_request", "the request body must be a JSON object");
  const b = body as Record<string, unknown>;
  const out: DecisionBody = {};
  if (b.reason !== undefined && b.reason !== null) {
    if (typeof b.reason !== "string")
      throw new ApiError(400, "bad_request", "reason must be a string");
    out.reason = b.reason;
  }
  if (b.statementHash !== undefined) {
    if (typeof b.statementHash !== "string" || !SHA256_HEX.test(b.statementHash))
      throw new ApiError(400, "bad_request", "statementHash must be 64 hex characters (sha256)");
    out.statementHash = b.statementHash;
  }
  if (b.sessionId !== undefined) {
    if (typeof b.sessionId !== "string")
      throw new ApiError(400, "bad_request", "sessionId must be a string");
    out.sessionId = b.sessionId;
  }
  return out;
}

/**
 * The body as JSON, or undefined when it is empty. 413 beyond the limit (checked against
 * Content-Length first, then as it streams), 415 for a content type that is not JSON, 400 for
 * JSON that does not parse.
 */
async function readJsonBody(
  req: IncomingMessage,
  maxBytes = MAX_APPROVAL_BODY_BYTES,
): Promise<unknown> {
  const type = req.headers["content-type"];
  if (type !== undefined && !/^application\/([\w.+-]+\+)?json\s*(;|$)/i.test(type)) {
    throw new HttpProblem(
      415,
      "unsupported_media_type",
      `the request body must be application/json, not ${type}`,
    );
  }
  const tooLarge = () =>
    new HttpProblem(
      413,
      "payload_too_large",
      `the request body is larger than ${maxBytes} bytes`,
      undefined,
      { connection: "close" },
    );
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > maxBytes) {
    req.resume();
    throw tooLarge();
  }
  const text = await new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > maxBytes) {
        req.off("data", onData);
        req.resume(); // discard the rest; the connection closes after the answer
        reject(tooLarge());
        return;
      }
      chunks.push(c);
    };
    req.on("data", onData);
    req.once("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.once("error", reject);
  });
  if (text.trim() === "") return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new ApiError(
      400,
      "bad_request",
      `the request body is not valid JSON: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
}

function toApiError(err: unknown): HttpProblem {
  if (err instanceof HttpProblem) return err;
  if (err instanceof ApiError) return new HttpProblem(err.status, err.code, err.message);
  if (isGwError(err)) {
    if (isApprovalErrorCode(err.code))
      return new HttpProblem(APPROVAL_ERRORS[err.code].status, err.code, err.message, err.hint);
    if (err.code.startsWith("store_")) {
      return new HttpProblem(
        503,
        err.code,
        "the broker cannot reach its approval store right now; retry in a moment",
      );
    }
  }
  throw err;
}

function sendProblem(
  res: ServerResponse,
  status: number,
  code: string,
  message: string,
  hint: string | undefined,
  headers: Record<string, string>,
): void {
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  sendJson(res, status, {
    error: hint === undefined ? { code, message } : { code, message, hint },
  });
}

function safeDecode(s: string): string | undefined {
  try {
    return decodeURIComponent(s);
  } catch {
    return undefined;
  }
}
