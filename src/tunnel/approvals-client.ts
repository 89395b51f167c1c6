import { request as httpRequest, type ClientRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { APPROVAL_ERRORS, isApprovalErrorCode } from "../approvals/errors.js";
import type { ViewerRights } from "../approvals/rules.js";
import { ExitCode, GwError, isGwError } from "../errors.js";
import type { ApprovalDecision, ApprovalRequest } from "../store/types.js";
import { httpError, notSignedIn, unreachable } from "./broker-client.js";
import { failoverStatus, failsOver, failureReason, statusReason } from "./broker-failures.js";
import { BrokerPool } from "./broker-pool.js";
import { parseBrokerUrls } from "./broker-urls.js";

/**
 * The CLI's client of the broker's approvals API (/v1/approvals): list, show, approve, deny,
 * and the live feed (Server-Sent Events) with reconnection. Every failure is a GwError; the
 * broker's own code, message and hint are kept, so a refusal (approval_self,
 * approval_not_approver, approval_app_not_allowed, approval_not_pending, approval_not_found)
 * reaches the user as the broker worded it, with the exit code of its kind.
 */

/** An approval request as the caller sees it (GET /v1/approvals): plus what it may do. */
export type ApprovalView = ApprovalRequest & { viewer: ViewerRights };

/** One message of the live feed. */
export type ApprovalFeedEvent =
  | { type: "snapshot"; approvals: ApprovalView[] }
  | { type: "created"; approval: ApprovalView }
  | { type: "decided"; approval: ApprovalView; decision: ApprovalDecision }
  | { type: "expired"; approval: ApprovalView }
  | { type: "cancelled"; approval: ApprovalView };

/** Where the feed stands, for a status line. */
export type FeedStatus =
  | { state: "connecting"; attempt: number }
  | { state: "live" }
  | {
      state: "reconnecting";
      attempt: number;
      /** When the next attempt starts, epoch ms. */
      retryAt: number;
      /** Why the last stream ended, for people. */
      reason: string;
      /** The error when it was one (a refused sign-in, a broker that is down). */
      error?: GwError;
    }
  | { state: "stopped" };

export interface ApprovalsClientOptions {
  /** The broker's URL, or its replicas' (see BrokerClientOptions). */
  url: string | readonly string[];
  /** A token, or where to get a fresh one (called for every request and reconnect). */
  token: string | (() => Promise<string>);
  caFile?: string | undefined;
  /** Per request (not the feed); default 15 s. */
  timeoutMs?: number;
  /** The replicas' pool; default the one this process shares for these URLs. */
  pool?: BrokerPool;
}

export interface WatchOptions {
  /** ?scope=mine|all; default the broker's (mine, all for auditors). */
  scope?: "mine" | "all";
  onEvent(event: ApprovalFeedEvent): void;
  onStatus?(status: FeedStatus): void;
  /** Stops the feed. */
  signal?: AbortSignal;
  /**
   * Decides whether an error ends the watch (resolve rejects with it) instead of a retry.
   * Default: never; every failure is retried with backoff.
   */
  fatal?(err: GwError): boolean;
  /** Backoff: first delay, ceiling (ms); default 500 ms doubling to 30 s. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** A stream silent this long (no heartbeat) is taken as dead; default 45 s. */
  idleTimeoutMs?: number;
}

export const FEED_BACKOFF_INITIAL_MS = 500;
export const FEED_BACKOFF_MAX_MS = 30_000;
const IDLE_TIMEOUT_MS = 45_000;
/** A single SSE event larger than this is a broken stream, not an approval request. */
const MAX_EVENT_BYTES = 8 * 1024 * 1024;
const ID = /^[\w-]{1,64}$/;

export class ApprovalsClient {
  readonly url: string;
  /** Requests, and each (re)connect of the feed, go to a replica that is up. */
  private readonly pool: BrokerPool;

  constructor(private readonly opts: ApprovalsClientOptions) {
    const urls = parseBrokerUrls(opts.url);
    this.url = urls[0]!;
    this.pool = opts.pool ?? BrokerPool.shared(urls, { caFile: opts.caFile });
  }

  async list(
    q: { status?: "pending" | "all"; scope?: "mine" | "all"; limit?: number } = {},
  ): Promise<{ approvals: ApprovalView[]; scope: "mine" | "all" }> {
    const p = new URLSearchParams();
    if (q.status) p.set("status", q.status);
    if (q.scope) p.set("scope", q.scope);
    if (q.limit) p.set("limit", String(q.limit));
    const qs = p.toString();
    return this.call("GET", `/v1/approvals${qs ? `?${qs}` : ""}`);
  }

  async get(id: string): Promise<ApprovalView> {
    return (await this.call<{ approval: ApprovalView }>("GET", `/v1/approvals/${checkId(id)}`))
      .approval;
  }

  /**
   * Records an approval. `expect` binds it to the statement the approver looked at (the
   * broker refuses with approval_statement_mismatch when the request holds another).
   */
  async approve(
    id: string,
    opts: { reason?: string | undefined; statementHash?: string; sessionId?: string } = {},
  ): Promise<ApprovalView> {
    return this.decide(id, "approve", opts);
  }

  /** Records a deny; a reason is required (approval_reason_required otherwise). */
  async deny(
    id: string,
    opts: { reason: string; statementHash?: string; sessionId?: string },
  ): Promise<ApprovalView> {
    return this.decide(id, "deny", opts);
  }

  private async decide(
    id: string,
    decision: "approve" | "deny",
    opts: { reason?: string | undefined; statementHash?: string; sessionId?: string },
  ): Promise<ApprovalView> {
    const body: Record<string, string> = {};
    if (opts.reason !== undefined && opts.reason.trim() !== "") body["reason"] = opts.reason;
    if (opts.statementHash !== undefined) body["statementHash"] = opts.statementHash;
    if (opts.sessionId !== undefined) body["sessionId"] = opts.sessionId;
    const res = await this.call<{ approval: ApprovalView }>(
      "POST",
      `/v1/approvals/${checkId(id)}/${decision}`,
      body,
    );
    return res.approval;
  }

  /**
   * Follows GET /v1/approvals/events until `signal` aborts (then resolves) or `fatal` says an
   * error is final (then rejects with it). Every stream starts with a snapshot; a stream that
   * drops, goes silent past the idle timeout, or ends (sign_in_expired, a broker restart) is
   * opened again after a backoff (doubling, reset once a stream is live), with a fresh token.
   */
  async watch(opts: WatchOptions): Promise<void> {
    const initial = opts.backoff?.initialMs ?? FEED_BACKOFF_INITIAL_MS;
    const max = opts.backoff?.maxMs ?? FEED_BACKOFF_MAX_MS;
    const signal = opts.signal;
    let attempt = 0;
    let delay = initial;
    const status = (s: FeedStatus) => {
      try {
        opts.onStatus?.(s);
      } catch {
        // a status line that fails to draw must not end the feed
      }
    };
    while (!signal?.aborted) {
      attempt++;
      status({ state: "connecting", attempt });
      let live = false;
      let reason: string;
      let error: GwError | undefined;
      try {
        reason = await this.stream(opts, () => {
          live = true;
          attempt = 0;
          delay = initial;
          status({ state: "live" });
        });
      } catch (err) {
        if (signal?.aborted) break;
        error = isGwError(err) ? err : unreachable(this.url, err);
        if (opts.fatal?.(error)) {
          status({ state: "stopped" });
          throw error;
        }
        reason = error.message;
      }
      if (signal?.aborted) break;
      const wait = live ? initial : delay;
      if (!live) delay = Math.min(max, delay * 2);
      const retryAt = Date.now() + wait;
      status({
        state: "reconnecting",
        attempt: attempt + 1,
        retryAt,
        reason,
        ...(error ? { error } : {}),
      });
      await sleep(wait, signal);
    }
    status({ state: "stopped" });
  }

  /** One stream: resolves with why it ended; rejects when it could not be opened. */
  private async stream(opts: WatchOptions, onLive: () => void): Promise<string> {
    const token = await this.token();
    const qs = opts.scope ? `?scope=${opts.scope}` : "";
    // One replica per stream: one that fails is marked down, so the reconnect goes elsewhere.
    const endpoint = (await this.pool.candidates())[0]!;
    const u = new URL(endpoint.dialUrl + `/v1/approvals/events${qs}`);
    const signal = opts.signal;
    return new Promise<string>((resolve, reject) => {
      let settled = false;
      // Set once the request is made; the callbacks above may run before that (an abort).
      const held: { req?: ClientRequest } = {};
      let idle: NodeJS.Timeout | undefined;
      const finish = (fn: () => void) => {
        if (settled) return;
        settled = true;
        if (idle) clearTimeout(idle);
        signal?.removeEventListener("abort", onAbort);
        fn();
      };
      const onAbort = () => {
        finish(() => resolve("stopped"));
        held.req?.destroy();
      };
      const idleMs = opts.idleTimeoutMs ?? IDLE_TIMEOUT_MS;
      const touch = () => {
        if (idle) clearTimeout(idle);
        idle = setTimeout(() => {
          finish(() => resolve(`no word from the broker for ${Math.round(idleMs / 1000)} s`));
          held.req?.destroy();
        }, idleMs);
        idle.unref?.();
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
      const headers = {
        accept: "text/event-stream",
        authorization: `Bearer ${token}`,
        "cache-control": "no-store",
        ...endpoint.headers,
      };
      const req = (u.protocol === "https:" ? httpsRequest : httpRequest)(
        u,
        {
          method: "GET",
          headers,
          agent: this.pool.streamAgent(endpoint),
          ...(endpoint.servername ? { servername: endpoint.servername } : {}),
        },
        (res: IncomingMessage) => {
          const status = res.statusCode ?? 500;
          const type = String(res.headers["content-type"] ?? "");
          if (status !== 200 || !type.startsWith("text/event-stream")) {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("end", () => {
              const text = Buffer.concat(chunks).toString("utf8");
              let body: unknown;
              try {
                body = text ? JSON.parse(text) : undefined;
              } catch {
                body = undefined;
              }
              if (failoverStatus(status, "read"))
                this.pool.failed(endpoint, statusReason(status, body));
              finish(() =>
                reject(
                  status === 200
                    ? new GwError(
                        "broker_bad_response",
                        `${endpoint.label} did not answer with an event stream; is it a gw broker?`,
                        { exitCode: ExitCode.unavailable },
                      )
                    : apiError(endpoint.label, status, body),
                ),
              );
            });
            res.on("error", (err) => finish(() => reject(err)));
            return;
          }
          this.pool.succeeded(endpoint);
          touch();
          const parser = new SseParser((ev) => {
            if (settled) return;
            if (ev.event === "sign_in_expired") {
              finish(() => resolve("your sign-in expired"));
              held.req?.destroy();
              return;
            }
            if (ev.event === "error") {
              const e = parseJson(ev.data) as { error?: { code?: string; message?: string } };
              finish(() =>
                resolve(`the broker ended the feed: ${e?.error?.message ?? "an error"}`),
              );
              held.req?.destroy();
              return;
            }
            const feed = toFeedEvent(ev.event, ev.data);
            if (feed === null) return; // an event this client does not know: skip it
            if (feed.type === "snapshot") onLive();
            try {
              opts.onEvent(feed);
            } catch {
              // the consumer's failure is its own; the feed goes on
            }
          });
          res.setEncoding("utf8");
          res.on("data", (chunk: string) => {
            touch();
            if (!parser.push(chunk)) {
              finish(() => resolve("the broker sent an event too large to be an approval"));
              held.req?.destroy();
            }
          });
          res.on("end", () => finish(() => resolve("the broker closed the feed")));
          res.on("error", (err) => finish(() => resolve(`the feed broke: ${err.message}`)));
          res.on("close", () => finish(() => resolve("the feed closed")));
        },
      );
      held.req = req;
      req.on("error", (err) => {
        if (settled) return;
        if (failsOver(err)) this.pool.failed(endpoint, failureReason(err));
        finish(() => reject(unreachable(endpoint.label, err)));
      });
      // Nothing (not even headers) within the idle timeout: the broker is not answering.
      touch();
      req.end();
    });
  }

  private async token(): Promise<string> {
    const t = typeof this.opts.token === "function" ? await this.opts.token() : this.opts.token;
    if (!t) throw notSignedIn();
    return t;
  }

  private async call<T>(method: "GET" | "POST", path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = {
      accept: "application/json",
      authorization: `Bearer ${await this.token()}`,
    };
    let payload: string | undefined;
    if (body !== undefined) {
      payload = JSON.stringify(body);
      headers["content-type"] = "application/json";
    }
    // An approval sent twice is not the same as one: it moves to another replica only when
    // it cannot have reached the first (see RequestKind).
    const { res, endpoint } = await this.pool.request(
      path,
      {
        method,
        headers,
        ...(payload !== undefined ? { body: payload } : {}),
        timeoutMs: this.opts.timeoutMs ?? 15_000,
      },
      method === "GET" ? "read" : "change",
    );
    const text = await res.text();
    const parsed = parseJson(text);
    if (res.ok) {
      if (parsed === undefined) {
        throw new GwError(
          "broker_bad_response",
          `${endpoint.label} did not answer with JSON; is it a gw broker?`,
          { exitCode: ExitCode.unavailable },
        );
      }
      return parsed as T;
    }
    throw apiError(endpoint.label, res.status, parsed);
  }
}

/**
 * A broker error answer as a GwError: approval errors keep the broker's message and hint and
 * take the exit code of their kind; anything else is mapped as for every other command.
 */
export function apiError(url: string, status: number, body: unknown): GwError {
  const e = (body as { error?: { code?: unknown; message?: unknown; hint?: unknown } } | undefined)
    ?.error;
  const code = typeof e?.code === "string" ? e.code : "";
  const message = typeof e?.message === "string" ? e.message : undefined;
  const hint = typeof e?.hint === "string" ? e.hint : undefined;
  if (isApprovalErrorCode(code) && message !== undefined) {
    const h = hint ?? defaultHint(code);
    return new GwError(code, message, {
      exitCode: APPROVAL_ERRORS[code].exitCode,
      ...(h !== undefined ? { hint: h } : {}),
    });
  }
  const err = httpError(url, status, body);
  if (hint !== undefined && err.hint === undefined)
    return new GwError(err.code, err.message, { exitCode: err.exitCode, hint });
  return err;
}

function defaultHint(code: string): string | undefined {
  if (code === "approval_not_found")
    return "Check the id with `gw approvals list`; a request you are neither the requester nor an approver of is not shown to you.";
  return undefined;
}

function checkId(id: string): string {
  if (!ID.test(id)) {
    throw new GwError("approval_id_invalid", `"${id}" is not an approval request id`, {
      exitCode: ExitCode.usage,
      hint: "Ids are short hex strings such as 3f2c9a1e; `gw approvals list` shows them.",
    });
  }
  return encodeURIComponent(id);
}

function parseJson(text: string): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

const FEED_TYPES = new Set(["created", "decided", "expired", "cancelled"]);

function toFeedEvent(event: string, data: string): ApprovalFeedEvent | null {
  const d = parseJson(data) as Record<string, unknown> | undefined;
  if (d === undefined || typeof d !== "object" || d === null) return null;
  if (event === "snapshot") {
    return Array.isArray(d["approvals"])
      ? { type: "snapshot", approvals: d["approvals"] as ApprovalView[] }
      : null;
  }
  if (!FEED_TYPES.has(event)) return null;
  const approval = d["approval"] as ApprovalView | undefined;
  if (typeof approval !== "object" || approval === null || typeof approval.id !== "string")
    return null;
  if (event === "decided") {
    return {
      type: "decided",
      approval,
      decision: d["decision"] as ApprovalDecision,
    };
  }
  return { type: event as "created" | "expired" | "cancelled", approval };
}

export interface SseMessage {
  event: string;
  data: string;
  id?: string;
}

/**
 * The text/event-stream format (WHATWG HTML, "server-sent events"): lines ending in LF, CR or
 * CRLF; `field: value`; a blank line dispatches; `:` starts a comment (heartbeats).
 */
export class SseParser {
  private buf = "";
  private event = "";
  private data: string[] = [];
  private id: string | undefined;
  private size = 0;

  constructor(private readonly dispatch: (m: SseMessage) => void) {}

  /** Feeds a chunk; false when one event grows past the size limit (the stream is broken). */
  push(chunk: string): boolean {
    this.buf += chunk;
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.buf);
      if (m === null) break;
      // A lone CR at the very end may be the first half of CRLF: wait for more.
      if (m[0] === "\r" && m.index === this.buf.length - 1) break;
      const line = this.buf.slice(0, m.index);
      this.buf = this.buf.slice(m.index + m[0].length);
      this.line(line);
    }
    this.size = this.buf.length + this.data.reduce((n, d) => n + d.length, 0);
    return this.size <= MAX_EVENT_BYTES;
  }

  private line(line: string): void {
    if (line === "") {
      if (this.data.length > 0) {
        const msg: SseMessage = { event: this.event || "message", data: this.data.join("\n") };
        if (this.id !== undefined) msg.id = this.id;
        this.dispatch(msg);
      }
      this.event = "";
      this.data = [];
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.event = value;
    else if (field === "data") this.data.push(value);
    else if (field === "id" && !value.includes("\0")) this.id = value;
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}
