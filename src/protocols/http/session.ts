import { readFileSync } from "node:fs";
import {
  Agent as HttpAgent,
  createServer,
  request as httpRequest,
  STATUS_CODES,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type ClientRequest,
  type Server,
  type ServerResponse,
} from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import type { Duplex, Readable } from "node:stream";
import { createBrotliDecompress, createGunzip, createInflate } from "node:zlib";
import { createHash } from "node:crypto";
import { readSecret } from "../../config/secrets.js";
import type { SecretRef } from "../../config/schema.js";
import { LineMasker } from "../tcp/masking.js";
import type { HoldOutcome, Verdict } from "../tcp/rules.js";
import {
  ChannelDuplex,
  elapsedSeconds,
  type ClientChannel,
  type EndReason,
  type SessionEndInfo,
  type SessionLogger,
} from "../tcp/stream.js";
import type { HttpTargetConfig } from "./config.js";
import { JsonSyntaxError } from "./json-mask.js";
import { normaliseTarget, type NormalisedTarget } from "./paths.js";
import type { HttpMasking, HttpRequestPolicy } from "./policy.js";
import { SecretScrubber } from "./scrub.js";

/** The target with its credential resolved (secrets read, files loaded). */
export interface HttpTarget {
  /** The connection name, for messages. */
  name: string;
  /** The base URL; request paths are appended to its path. */
  url: string;
  /** Headers injected into every request (Authorization from bearer/basic included). */
  headers: Record<string, string>;
  ca?: string | Buffer | undefined;
  cert?: string | Buffer | undefined;
  key?: string | Buffer | undefined;
  connectTimeoutMs: number;
}

/** Resolves a config's target: reads its secrets and TLS files. */
export function httpTargetFromConfig(
  name: string,
  t: HttpTargetConfig,
  secrets: (ref: SecretRef, what: string) => string = readSecret,
): HttpTarget {
  const headers: Record<string, string> = {};
  for (const [h, ref] of Object.entries(t.headers ?? {}))
    headers[h.toLowerCase()] = secrets(ref, `connections.${name}.target.headers.${h}`);
  if (t.bearer)
    headers["authorization"] = `Bearer ${secrets(t.bearer, `connections.${name}.target.bearer`)}`;
  if (t.basic) {
    const pw = secrets(t.basic.password, `connections.${name}.target.basic.password`);
    headers["authorization"] = `Basic ${Buffer.from(`${t.basic.user}:${pw}`).toString("base64")}`;
  }
  return {
    name,
    url: t.url,
    headers,
    ca: t.ca ? readFileSync(t.ca) : undefined,
    cert: t.clientCert ? readFileSync(t.clientCert.cert) : undefined,
    key: t.clientCert ? readFileSync(t.clientCert.key) : undefined,
    connectTimeoutMs: t.connectTimeout * 1000,
  };
}

/** The values of the injected credential, as they appear on the wire, for scrubbing. */
export function credentialValues(target: HttpTarget): string[] {
  const out: string[] = [];
  for (const v of Object.values(target.headers)) {
    out.push(v);
    const m = /^(?:Bearer|Basic)\s+(.+)$/i.exec(v);
    if (m) {
      out.push(m[1]!);
      if (/^basic/i.test(v)) {
        const decoded = Buffer.from(m[1]!, "base64").toString("utf8");
        const colon = decoded.indexOf(":");
        if (colon >= 0) out.push(decoded.slice(colon + 1));
      }
    }
  }
  return out;
}

export type RequestDecision = "allowed" | "blocked" | "approved" | "denied";

/** What an http session records, through the onEvent hook. */
export type HttpEvent =
  | {
      kind: "request";
      /** Seconds since the session started. */
      t: number;
      /** 1-based, in the order requests arrived. */
      seq: number;
      method: string;
      /** The path as the rules saw it (decoded, normalised). */
      path: string;
      /** The query string, masked by the detectors when the policy masks ("" when none). */
      query: string;
      /** The status the client got; null when no response was sent. */
      status: number | null;
      decision: RequestDecision;
      reason?: string;
      /** Epoch ms when the request arrived. */
      at: number;
      /** Until the target's response headers; null when it was not asked. */
      ttfbMs: number | null;
      durationMs: number;
      requestBytes: number;
      responseBytes: number;
      requestContentType: string | null;
      responseContentType: string | null;
      /** Textual bodies, masked, up to the recording limit. */
      requestBody?: string;
      responseBody?: string;
      bodiesTruncated?: boolean;
      /** The response body went through masking. */
      masked: boolean;
      error?: string;
    }
  | {
      /** Written before a request goes to the target; its "request" event follows. */
      kind: "request_start";
      t: number;
      seq: number;
      method: string;
      path: string;
      query: string;
      decision: RequestDecision;
      at: number;
    }
  | {
      kind: "websocket";
      t: number;
      seq: number;
      path: string;
      query: string;
      /** 101 when the upgrade happened. */
      status: number | null;
      decision: RequestDecision;
      reason?: string;
      at: number;
      durationMs: number;
      /** Frame bytes from the client and to it (not inspected). */
      bytesIn: number;
      bytesOut: number;
      error?: string;
    };

export interface HttpSessionHooks {
  /** The session began. Must make it durable; until it resolves requests wait, and if it rejects they are refused. */
  onStart(info: { target: string }): Promise<void>;
  /** Something to record. A rejected promise (recording failed) closes the session. */
  onEvent(event: HttpEvent): Promise<void> | void;
  /**
   * A request is about to go to the target: recorded first. The target sees the request only
   * once this settles; a rejection refuses it (503) and ends the session.
   */
  beforeForward?(event: Extract<HttpEvent, { kind: "request_start" }>): Promise<void> | void;
  /** Called once, however the session ended. */
  onEnd(info: SessionEndInfo): void;
}

export interface HttpSessionOptions {
  target: HttpTarget;
  hooks: HttpSessionHooks;
  /** Requests are decided by it; without it every request is allowed. */
  policy?: HttpRequestPolicy;
  /** Response masking; without it responses go out as the target sent them. */
  masking?: HttpMasking | null;
  /** Relay WebSocket upgrades (default true). */
  websocket?: boolean;
  /** Bodies recorded per request, up to this many bytes (default 64 KiB; 0: none). */
  recordBodyBytes?: number;
  /** A held request's body is buffered for the approver, up to this many bytes (default 1 MiB). */
  holdBodyBytes?: number;
  log: SessionLogger;
  /** True once the identity's sign-in lapsed: the next request ends the session. */
  signInExpired?: () => boolean;
}

/** Hop-by-hop headers (RFC 9110 7.6.1) and those the broker owns. */
const HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
]);
const METHOD_OVERRIDES = ["x-http-method-override", "x-http-method", "x-method-override"];
const RANK: Record<Verdict["action"], number> = { allow: 0, hold: 1, block: 2 };

type BodyClass = "json" | "ndjson" | "sse" | "text" | "binary";

function classify(contentType: string | undefined): BodyClass {
  const ct = (contentType ?? "").split(";")[0]!.trim().toLowerCase();
  if (ct === "") return "text"; // unknown: treated as text, so masking still applies
  if (ct === "application/x-ndjson" || ct === "application/jsonl" || ct === "application/json-seq")
    return "ndjson";
  if (ct === "application/json" || ct.endsWith("+json")) return "json";
  if (ct === "text/event-stream") return "sse";
  if (
    ct.startsWith("text/") ||
    ct.endsWith("+xml") ||
    ct === "application/xml" ||
    ct === "application/javascript" ||
    ct === "application/x-www-form-urlencoded" ||
    ct === "application/graphql"
  )
    return "text";
  return "binary";
}

function isTextual(c: BodyClass): boolean {
  return c !== "binary";
}

/** Forwardable request headers: hop-by-hop, Host and the client's own Authorization dropped. */
function forwardHeaders(
  h: IncomingHttpHeaders,
  injected: Record<string, string>,
): OutgoingHttpHeaders {
  const listed = new Set(
    String(h["connection"] ?? "")
      .split(",")
      .map((s) => s.trim().toLowerCase())
      .filter(Boolean),
  );
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined || HOP.has(k) || listed.has(k) || k === "authorization") continue;
    if (k in injected) continue;
    out[k] = v;
  }
  return { ...out, ...injected };
}

class Limit extends Error {}

/**
 * One client connection of a `type: http` connection: HTTP/1.1 served on the tunnel stream
 * (node's own parser), each request decided by policy and proxied to the target with the
 * stored credential, responses masked and scrubbed of the credential, and every request
 * recorded.
 */
export class HttpSession {
  private readonly duplex: ChannelDuplex;
  private readonly server: Server;
  private readonly t0 = performance.now();
  private readonly base: URL;
  private readonly agent: HttpAgent;
  private readonly scrubber: SecretScrubber;
  private readonly aborts = new AbortController();
  private readonly started: Promise<boolean>;
  private readonly open = new Set<ServerResponse>();
  private state: "open" | "closing" | "closed" = "open";
  private seq = 0;
  private events = 0;
  private upgraded = false;

  constructor(
    private readonly channel: ClientChannel,
    private readonly opts: HttpSessionOptions,
  ) {
    this.base = new URL(opts.target.url);
    const tls = this.base.protocol === "https:";
    this.agent = tls
      ? new HttpsAgent({
          keepAlive: true,
          ...(opts.target.ca ? { ca: opts.target.ca } : {}),
          ...(opts.target.cert ? { cert: opts.target.cert } : {}),
          ...(opts.target.key ? { key: opts.target.key } : {}),
        })
      : new HttpAgent({ keepAlive: true });
    this.scrubber = new SecretScrubber(credentialValues(opts.target));
    this.duplex = new ChannelDuplex(channel);
    this.duplex.on("error", () => undefined);
    this.duplex.on("close", () => this.end("client_closed", null));
    this.server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        this.opts.log.log("error", "http request failed", {
          error: err instanceof Error ? err.stack : String(err),
        });
        if (!res.headersSent)
          this.sendError(res, 500, "internal", "gw: internal broker error; see the broker log");
        else res.destroy();
      });
    });
    this.server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      this.upgrade(req, socket, head).catch((err: unknown) => {
        this.opts.log.log("error", "websocket upgrade failed", {
          error: err instanceof Error ? err.stack : String(err),
        });
        socket.destroy();
      });
    });
    this.server.on("connect", (_req: IncomingMessage, socket: Duplex) => {
      rawError(
        socket,
        405,
        "method_not_allowed",
        "gw: CONNECT is not supported on an http connection",
      );
    });
    this.server.on("clientError", (_err: Error, socket: Duplex) => {
      if (socket.writable) rawError(socket, 400, "bad_request", "gw: malformed HTTP request");
      else socket.destroy();
    });
    this.started = opts.hooks.onStart({ target: this.base.origin + this.base.pathname }).then(
      () => this.state === "open",
      (err: unknown) => {
        this.opts.log.log("error", "could not record the session; closing it", {
          error: String(err),
        });
        this.end("recording_failed", "the session could not be recorded");
        return false;
      },
    );
    this.server.emit("connection", this.duplex);
  }

  onClientData(buf: Buffer): void {
    if (this.state === "closed") return;
    this.duplex.feed(buf);
  }

  onClientClosed(): void {
    this.duplex.clientClosed();
    this.end("client_closed", null);
  }

  /** Ends the session from the broker's side: requests still waiting get 503 with `message`. */
  terminate(reason: EndReason, message: string): void {
    if (this.state !== "open") return;
    this.state = "closing";
    this.opts.log.log("info", "session terminated", { reason });
    this.aborts.abort(new Error(message));
    for (const res of this.open) {
      if (!res.headersSent) this.sendError(res, 503, reason, message, { connection: "close" });
      else res.destroy();
    }
    setTimeout(() => this.end(reason, message), 50).unref();
  }

  private now(): number {
    return elapsedSeconds(this.t0);
  }

  private record(e: HttpEvent): void {
    this.events++;
    let r: Promise<void> | void;
    try {
      r = this.opts.hooks.onEvent(e);
    } catch (err) {
      r = Promise.reject(err);
    }
    if (r && typeof r.then === "function")
      r.then(undefined, (err: unknown) => {
        this.opts.log.log("error", "could not record an http event; closing the session", {
          error: String(err),
        });
        this.terminate("recording_failed", "gw: the session could not be recorded; it was closed");
      });
  }

  private sendError(
    res: ServerResponse,
    status: number,
    code: string,
    message: string,
    headers: Record<string, string> = {},
  ): void {
    if (res.headersSent) return void res.destroy();
    const body = JSON.stringify({ error: code, message });
    res.writeHead(status, {
      "content-type": "application/json",
      "content-length": Buffer.byteLength(body),
      ...headers,
    });
    res.end(body);
  }

  /** The most restrictive verdict over the method and any method-override header. */
  private decide(req: IncomingMessage, path: string): { verdict: Verdict; method: string } {
    const method = (req.method ?? "GET").toUpperCase();
    const policy = this.opts.policy;
    if (!policy) return { verdict: { action: "allow" }, method };
    const methods = [method];
    for (const h of METHOD_OVERRIDES) {
      const v = req.headers[h];
      if (typeof v === "string" && /^[A-Za-z]+$/.test(v.trim()))
        methods.push(v.trim().toUpperCase());
    }
    let best: { verdict: Verdict; method: string } | null = null;
    for (const m of methods) {
      const v = policy.decideRequest({ method: m, path });
      if (!best || RANK[v.action] > RANK[best.verdict.action]) best = { verdict: v, method: m };
    }
    return best!;
  }

  /** The query string as recorded: without its "?" ("a=1", or ""), masked by the detectors. */
  private recordQuery(search: string): string {
    const q = search.replace(/^\?/, "");
    const m = this.opts.masking;
    return m && m.detectors ? m.profile.maskUnicodeText(q) : q;
  }

  // --- requests --------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const seq = ++this.seq;
    const t = this.now();
    const at = Date.now();
    const t1 = performance.now();
    this.open.add(res);
    res.on("close", () => this.open.delete(res));
    const method = (req.method ?? "GET").toUpperCase();
    const ev: Extract<HttpEvent, { kind: "request" }> = {
      kind: "request",
      t,
      seq,
      method,
      path: "",
      query: "",
      status: null,
      decision: "allowed",
      at,
      ttfbMs: null,
      durationMs: 0,
      requestBytes: 0,
      responseBytes: 0,
      requestContentType: (req.headers["content-type"] as string | undefined) ?? null,
      responseContentType: null,
      masked: false,
    };
    const finish = (extra: Partial<Extract<HttpEvent, { kind: "request" }>> = {}) => {
      Object.assign(ev, extra);
      ev.durationMs = Math.round(performance.now() - t1);
      this.record(ev);
    };

    if (!(await this.started) || this.state !== "open") {
      req.resume();
      this.sendError(res, 503, "unavailable", "gw: the session is closing", {
        connection: "close",
      });
      return finish({ status: 503, decision: "denied", reason: "session closing" });
    }
    if (this.opts.signInExpired?.()) {
      req.resume();
      this.sendError(res, 401, "sign_in_expired", "gw: your sign-in expired; run `gw login`", {
        connection: "close",
      });
      finish({ status: 401, decision: "denied", reason: "sign-in expired" });
      this.terminate("auth_expired", "gw: your sign-in expired; run `gw login`");
      return;
    }
    const target = normaliseTarget(req.url ?? "");
    if (!target) {
      req.resume();
      this.sendError(res, 400, "bad_request", "gw: the request target is not a path");
      return finish({ status: 400, decision: "denied", reason: "bad request target" });
    }
    ev.path = target.path;
    ev.query = this.recordQuery(target.query);

    const { verdict, method: decisive } = this.decide(req, target.path);
    if (verdict.action === "block") {
      req.resume();
      this.sendError(res, 403, "blocked", verdict.reason);
      return finish({ status: 403, decision: "blocked", reason: verdict.reason });
    }
    let body: Buffer | null = null;
    let notice: string | null = null;
    if (verdict.action === "hold") {
      const limit = this.opts.holdBodyBytes ?? 1 << 20;
      try {
        body = await readBody(req, limit);
      } catch (err) {
        if (err instanceof Limit) {
          this.sendError(
            res,
            413,
            "too_large",
            `gw: a request that needs approval may carry at most ${limit} bytes`,
            {
              connection: "close",
            },
          );
          return finish({ status: 413, decision: "denied", reason: "held request body too large" });
        }
        return finish({ decision: "denied", reason: "the client went away", error: String(err) });
      }
      // The response, not the request: a request "closes" as soon as its body has been read.
      const signal = AbortSignal.any([this.aborts.signal, closedSignal(res)]);
      const text = holdText(decisive, method, target, body, req.headers["content-type"]);
      let outcome: HoldOutcome;
      try {
        outcome = await this.opts.policy!.hold(
          text,
          (n) => {
            notice = n;
          },
          signal,
        );
      } catch (err) {
        this.opts.log.log("error", "could not hold a request for approval", {
          error: err instanceof Error ? err.message : String(err),
        });
        outcome = {
          action: "deny",
          reason: "gw: the request needs approval, but it could not be recorded; try again",
        };
      }
      if (res.destroyed || this.state !== "open")
        return finish({ decision: "denied", reason: "cancelled" });
      const headers: Record<string, string> = notice ? { "x-gw-notice": headerSafe(notice) } : {};
      if (outcome.action === "deny") {
        this.sendError(res, 403, "denied", outcome.reason, headers);
        return finish({ status: 403, decision: "denied", reason: outcome.reason });
      }
      ev.decision = "approved";
      for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
    }
    // Fail closed: the request is on record (durably, under strict audit) before the target sees it.
    if (this.opts.hooks.beforeForward) {
      try {
        await this.opts.hooks.beforeForward({
          kind: "request_start",
          t: this.now(),
          seq,
          method,
          path: ev.path,
          query: ev.query,
          decision: ev.decision,
          at: Date.now(),
        });
      } catch (err) {
        this.opts.log.log("error", "could not record a request; refusing it", {
          error: String(err),
        });
        req.resume();
        this.sendError(
          res,
          503,
          "not_recorded",
          "gw: the request could not be recorded, so it was not sent",
          {
            connection: "close",
          },
        );
        finish({ status: 503, decision: "denied", reason: "not recorded" });
        this.terminate("recording_failed", "gw: the session could not be recorded; it was closed");
        return;
      }
    }
    await this.forward(req, res, target, body, ev, t1, finish);
  }

  private upstreamRequest(
    method: string,
    target: NormalisedTarget,
    headers: OutgoingHttpHeaders,
    agent: HttpAgent | false,
  ): ClientRequest {
    const b = this.base;
    const basePath = b.pathname.replace(/\/+$/, "");
    const opts = {
      protocol: b.protocol,
      hostname: b.hostname.replace(/^\[|\]$/g, ""),
      port: b.port || (b.protocol === "https:" ? 443 : 80),
      method,
      path: basePath + target.forward,
      headers: { ...headers, host: b.host },
      agent,
      ...(agent === false && b.protocol === "https:"
        ? {
            ...(this.opts.target.ca ? { ca: this.opts.target.ca } : {}),
            ...(this.opts.target.cert ? { cert: this.opts.target.cert } : {}),
            ...(this.opts.target.key ? { key: this.opts.target.key } : {}),
          }
        : {}),
    };
    const up = b.protocol === "https:" ? httpsRequest(opts) : httpRequest(opts);
    // A connect timeout only: a slow response (long poll, stream) is the target's business.
    up.on("socket", (sock) => {
      if (!(sock as { connecting?: boolean }).connecting) return;
      const timer = setTimeout(
        () => up.destroy(Object.assign(new Error("connect timeout"), { code: "ETIMEDOUT" })),
        this.opts.target.connectTimeoutMs,
      );
      sock.once(b.protocol === "https:" ? "secureConnect" : "connect", () => clearTimeout(timer));
      sock.once("close", () => clearTimeout(timer));
    });
    return up;
  }

  private forward(
    req: IncomingMessage,
    res: ServerResponse,
    target: NormalisedTarget,
    body: Buffer | null,
    ev: Extract<HttpEvent, { kind: "request" }>,
    t1: number,
    finish: (extra?: Partial<Extract<HttpEvent, { kind: "request" }>>) => void,
  ): Promise<void> {
    return new Promise((resolve) => {
      const method = (req.method ?? "GET").toUpperCase();
      const headers = forwardHeaders(req.headers, this.opts.target.headers);
      // Masked or scrubbed of the credential: the broker must read the body, so uncompressed.
      if (this.opts.masking || !this.scrubber.empty) headers["accept-encoding"] = "identity";
      if (body) {
        delete headers["transfer-encoding"];
        headers["content-length"] = String(body.length);
      }
      const up = this.upstreamRequest(method, target, headers, this.agent);
      const recordLimit = this.opts.recordBodyBytes ?? 64 * 1024;
      const reqBody = new BodyTap(
        recordLimit,
        isTextual(classify(req.headers["content-type"])) &&
          req.headers["content-type"] !== undefined,
      );
      let done = false;
      const settle = (extra: Partial<Extract<HttpEvent, { kind: "request" }>>) => {
        if (done) return;
        done = true;
        const rb = reqBody.text();
        if (rb !== null) extra.requestBody = this.recordText(rb);
        if (reqBody.truncated) extra.bodiesTruncated = true;
        extra.requestBytes = reqBody.bytes;
        finish(extra);
        resolve();
      };
      up.on("error", (err: Error & { code?: string }) => {
        if (!res.headersSent) {
          const msg = upstreamMessage(err, this.opts.target);
          this.sendError(res, 502, "upstream_failed", msg);
          settle({ status: 502, error: msg });
        } else {
          res.destroy();
          settle({ error: `the target connection failed mid-response: ${err.message}` });
        }
      });
      up.on("response", (upRes) => {
        ev.ttfbMs = Math.round(performance.now() - t1);
        this.respond(method, upRes, res, ev, settle);
      });
      res.on("close", () => {
        if (!res.writableFinished) {
          up.destroy();
          settle({ error: "the client went away before the response was complete" });
        }
      });
      if (body) {
        reqBody.push(body);
        up.end(body);
      } else {
        req.on("data", (d: Buffer) => reqBody.push(d));
        req.pipe(up);
      }
    });
  }

  private recordText(text: string): string {
    const m = this.opts.masking;
    const masked = m && m.detectors ? m.profile.maskUnicodeText(text) : text;
    return this.scrubber.scrubText(masked);
  }

  private respond(
    method: string,
    upRes: IncomingMessage,
    res: ServerResponse,
    ev: Extract<HttpEvent, { kind: "request" }>,
    settle: (extra: Partial<Extract<HttpEvent, { kind: "request" }>>) => void,
  ): void {
    const status = upRes.statusCode ?? 502;
    const headers = this.responseHeaders(upRes);
    const ctype = upRes.headers["content-type"];
    ev.responseContentType = ctype ?? null;
    const cls = classify(ctype);
    const noBody =
      method === "HEAD" || status === 204 || status === 304 || (status >= 100 && status < 200);
    const m = this.opts.masking;
    const encoding = String(upRes.headers["content-encoding"] ?? "identity")
      .trim()
      .toLowerCase();
    const mode: "json" | "lines" | "pass" =
      noBody || !m
        ? "pass"
        : cls === "json"
          ? "json"
          : cls === "ndjson"
            ? "lines"
            : (cls === "sse" || cls === "text") &&
                (m.detectors || (cls === "sse" && m.paths.length > 0))
              ? "lines"
              : "pass";
    const recordLimit = this.opts.recordBodyBytes ?? 64 * 1024;
    const tap = new BodyTap(recordLimit, isTextual(cls));
    const done = (extra: Partial<Extract<HttpEvent, { kind: "request" }>> = {}) => {
      const text = tap.text();
      settle({
        status: extra.status ?? status,
        responseBytes: tap.bytes,
        masked: mode !== "pass",
        ...(text !== null ? { responseBody: text } : {}),
        ...(tap.truncated ? { bodiesTruncated: true } : {}),
        ...extra,
      });
    };

    if (noBody) {
      res.writeHead(status, headers);
      res.end();
      upRes.resume();
      return done();
    }

    let src: Readable = upRes;
    // A compressed body hides an echoed credential from the scrubber: unpacked whenever one is
    // injected, as for masking (a target may compress despite accept-encoding: identity).
    if ((mode !== "pass" || !this.scrubber.empty) && encoding !== "identity") {
      const dec =
        encoding === "gzip" || encoding === "x-gzip"
          ? createGunzip()
          : encoding === "deflate"
            ? createInflate()
            : encoding === "br"
              ? createBrotliDecompress()
              : null;
      if (!dec) {
        upRes.destroy();
        const msg = `gw: the response from the target is compressed (${encoding}) in a way the broker cannot unpack, and it must be ${mode !== "pass" ? "masked" : "checked for the credential"}, so it was not forwarded`;
        this.sendError(res, 502, "mask_failed", msg);
        return done({ status: 502, error: msg });
      }
      upRes.pipe(dec);
      src = dec;
      delete headers["content-encoding"];
      delete headers["content-length"]; // the compressed length
    }

    if (mode === "json") {
      delete headers["content-length"];
      const chunks: Buffer[] = [];
      let size = 0;
      let failed = false;
      const fail = (msg: string) => {
        if (failed) return;
        failed = true;
        upRes.destroy();
        src.destroy();
        this.sendError(res, 502, "mask_failed", msg);
        done({ status: 502, error: msg });
      };
      src.on("data", (d: Buffer) => {
        if (failed) return;
        size += d.length;
        if (size > m!.maxBodyBytes)
          return fail(
            `gw: the JSON response from the target is larger than the masking limit (${m!.maxBodyBytes} bytes), so it was not forwarded`,
          );
        chunks.push(d);
      });
      src.on("error", (err) =>
        fail(`gw: the response from the target could not be read: ${err.message}`),
      );
      src.on("end", () => {
        if (failed) return;
        const raw = Buffer.concat(chunks);
        let out: Buffer;
        try {
          const text = raw.toString("utf8");
          const masked = raw.length === 0 ? null : m!.maskJson(text);
          out = masked === null ? raw : Buffer.from(masked, "utf8");
        } catch (err) {
          return fail(
            err instanceof JsonSyntaxError
              ? `gw: the response from the target says it is JSON but is not (${err.message}); it must be masked, so it was not forwarded`
              : `gw: the response from the target could not be masked (${(err as Error).message}), so it was not forwarded`,
          );
        }
        this.scrubber.scrubBuffer(out);
        tap.push(out);
        res.writeHead(status, { ...headers, "content-length": String(out.length) });
        res.end(out);
        done();
      });
      return;
    }

    // Streamed: masked line by line, or passed through; the credential scrubbed either way.
    if (mode === "lines") delete headers["content-length"];
    res.writeHead(status, headers);
    const scrub = this.scrubber.stream();
    scrub.on("data", (d: Buffer) => {
      tap.push(d);
      if (!res.write(d)) {
        scrub.pause();
        res.once("drain", () => scrub.resume());
      }
    });
    scrub.on("end", () => {
      res.end();
      done();
    });
    const abort = (msg: string) => {
      upRes.destroy();
      src.destroy();
      res.destroy();
      done({ error: msg });
    };
    if (mode === "lines") {
      let lineError: string | null = null;
      const maskLine = (b: Buffer): Buffer => {
        if (cls === "ndjson") return maskJsonLines(b, m!, (e) => (lineError = e));
        if (cls === "sse" && m!.paths.length > 0) return maskSseLines(b, m!);
        return m!.text(b);
      };
      const lm = new LineMasker(
        (b) => {
          const out = maskLine(b);
          if (lineError !== null) {
            abort(lineError);
            return Buffer.alloc(0);
          }
          return out;
        },
        (b) => scrub.write(b),
        // JSON lines (ndjson, SSE data with field paths) are masked whole: never cut by a timer.
        {
          flushMs: cls === "ndjson" || cls === "sse" ? null : 25,
          maxLine: cls === "ndjson" ? m!.maxBodyBytes : 64 * 1024,
        },
      );
      src.on("data", (d: Buffer) => lm.push(d));
      src.on("end", () => {
        lm.flush();
        scrub.end();
      });
      src.on("error", (err) => abort(`the response could not be read: ${err.message}`));
    } else {
      src.on("data", (d: Buffer) => {
        if (!scrub.write(d)) {
          src.pause();
          scrub.once("drain", () => src.resume());
        }
      });
      src.on("end", () => scrub.end());
      src.on("error", (err) => abort(`the response could not be read: ${err.message}`));
    }
  }

  private responseHeaders(upRes: IncomingMessage): OutgoingHttpHeaders {
    const listed = new Set(
      String(upRes.headers["connection"] ?? "")
        .split(",")
        .map((s) => s.trim().toLowerCase())
        .filter(Boolean),
    );
    const out: OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(upRes.headers)) {
      if (v === undefined || HOP.has(k) || listed.has(k)) continue;
      if (k === "content-md5" || k === "digest") continue; // would not match a masked body
      out[k] = Array.isArray(v)
        ? v.map((x) => this.scrubber.scrubText(x))
        : this.scrubber.scrubText(v);
    }
    const loc = out["location"];
    if (typeof loc === "string") out["location"] = this.rewriteLocation(loc);
    return out;
  }

  /** A redirect to the target's own base URL becomes a path on the client's side. */
  private rewriteLocation(loc: string): string {
    try {
      const u = new URL(loc, this.base);
      const basePath = this.base.pathname.replace(/\/+$/, "");
      if (
        u.origin === this.base.origin &&
        (u.pathname === basePath || u.pathname.startsWith(basePath + "/"))
      )
        return (u.pathname.slice(basePath.length) || "/") + u.search + u.hash;
    } catch {
      // left as it is
    }
    return loc;
  }

  // --- websocket -------------------------------------------------------------------------

  private async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    this.upgraded = true;
    const seq = ++this.seq;
    const t = this.now();
    const at = Date.now();
    const t1 = performance.now();
    const target = normaliseTarget(req.url ?? "");
    const ev: Extract<HttpEvent, { kind: "websocket" }> = {
      kind: "websocket",
      t,
      seq,
      path: target?.path ?? String(req.url),
      query: target ? this.recordQuery(target.query) : "",
      status: null,
      decision: "allowed",
      at,
      durationMs: 0,
      bytesIn: 0,
      bytesOut: 0,
    };
    const finish = (extra: Partial<typeof ev> = {}) => {
      Object.assign(ev, extra);
      ev.durationMs = Math.round(performance.now() - t1);
      this.record(ev);
    };
    const refuse = (status: number, code: string, message: string, decision: RequestDecision) => {
      rawError(socket, status, code, message);
      finish({ status, decision, reason: message });
    };
    if (!(await this.started))
      return refuse(503, "unavailable", "gw: the session is closing", "denied");
    if (!target)
      return refuse(400, "bad_request", "gw: the request target is not a path", "denied");
    const proto = String(req.headers["upgrade"] ?? "").toLowerCase();
    if (proto !== "websocket")
      return refuse(
        501,
        "not_supported",
        `gw: only WebSocket upgrades are relayed (not ${proto || "none"})`,
        "denied",
      );
    if (this.opts.websocket === false)
      return refuse(
        403,
        "blocked",
        "gw: WebSocket connections are not allowed on this connection",
        "blocked",
      );
    const { verdict, method } = this.decide(req, target.path);
    if (verdict.action === "block") return refuse(403, "blocked", verdict.reason, "blocked");
    let decision: RequestDecision = "allowed";
    if (verdict.action === "hold") {
      const signal = AbortSignal.any([this.aborts.signal, closedSignal(socket)]);
      let outcome: HoldOutcome;
      try {
        outcome = await this.opts.policy!.hold(
          holdText(method, req.method ?? "GET", target, null, undefined),
          () => undefined,
          signal,
        );
      } catch {
        outcome = {
          action: "deny",
          reason: "gw: the request needs approval, but it could not be recorded; try again",
        };
      }
      if (outcome.action === "deny") return refuse(403, "denied", outcome.reason, "denied");
      decision = "approved";
    }
    const headers: OutgoingHttpHeaders = forwardHeaders(req.headers, this.opts.target.headers);
    headers["connection"] = "Upgrade";
    headers["upgrade"] = "websocket";
    const up = this.upstreamRequest(req.method ?? "GET", target, headers, false);
    up.on("error", (err: Error & { code?: string }) => {
      const msg = upstreamMessage(err, this.opts.target);
      refuse(502, "upstream_failed", msg, decision);
    });
    up.on("response", (upRes) => {
      // The target declined the upgrade: its answer goes back as is, then the connection closes.
      const lines = [
        `HTTP/1.1 ${upRes.statusCode} ${upRes.statusMessage ?? STATUS_CODES[upRes.statusCode ?? 502] ?? ""}`,
      ];
      for (let i = 0; i + 1 < upRes.rawHeaders.length; i += 2) {
        const k = upRes.rawHeaders[i]!;
        if (HOP.has(k.toLowerCase())) continue;
        lines.push(`${k}: ${this.scrubber.scrubText(upRes.rawHeaders[i + 1]!)}`);
      }
      lines.push("connection: close", "", "");
      socket.write(lines.join("\r\n"));
      const scrub = this.scrubber.stream();
      upRes.pipe(scrub).pipe(socket);
      finish({ status: upRes.statusCode ?? null, decision });
    });
    up.on("upgrade", (upRes, upSocket, upHead) => {
      const lines = [`HTTP/1.1 101 ${upRes.statusMessage || "Switching Protocols"}`];
      for (let i = 0; i + 1 < upRes.rawHeaders.length; i += 2)
        lines.push(`${upRes.rawHeaders[i]}: ${this.scrubber.scrubText(upRes.rawHeaders[i + 1]!)}`);
      lines.push("", "");
      socket.write(lines.join("\r\n"));
      if (upHead.length > 0) socket.write(upHead);
      if (head.length > 0) upSocket.write(head);
      socket.on("data", (d: Buffer) => (ev.bytesIn += d.length));
      upSocket.on("data", (d: Buffer) => (ev.bytesOut += d.length));
      socket.pipe(upSocket).pipe(socket);
      let ended = false;
      const close = () => {
        if (ended) return;
        ended = true;
        upSocket.destroy();
        socket.destroy();
        finish({ status: 101, decision });
      };
      socket.on("close", close);
      upSocket.on("close", close);
      socket.on("error", close);
      upSocket.on("error", close);
    });
    up.end();
  }

  // --- end -------------------------------------------------------------------------------

  private end(reason: EndReason, detail: string | null): void {
    if (this.state === "closed") return;
    this.state = "closed";
    this.aborts.abort(new Error(detail ?? reason));
    for (const res of this.open) res.destroy();
    this.agent.destroy();
    if (!this.duplex.isClientGone && !this.duplex.destroyed) {
      this.duplex.end();
      setTimeout(() => this.duplex.destroy(), 1000).unref();
    }
    this.opts.hooks.onEnd({
      reason,
      detail,
      bytesIn: this.duplex.bytesIn,
      bytesOut: this.duplex.bytesOut,
      events: this.events,
    });
  }

  /** Whether the connection became a WebSocket. */
  get isUpgraded(): boolean {
    return this.upgraded;
  }
}

/** Records the start of a body (text only), up to a limit. */
class BodyTap {
  bytes = 0;
  truncated = false;
  private readonly chunks: Buffer[] = [];
  private kept = 0;

  constructor(
    private readonly limit: number,
    private readonly textual: boolean,
  ) {}

  push(d: Buffer): void {
    this.bytes += d.length;
    if (!this.textual || this.limit === 0) return;
    const room = this.limit - this.kept;
    if (room <= 0) {
      this.truncated = true;
      return;
    }
    const part = d.length > room ? d.subarray(0, room) : d;
    if (part.length < d.length) this.truncated = true;
    this.chunks.push(Buffer.from(part));
    this.kept += part.length;
  }

  /** The kept text, or null when nothing is recorded. */
  text(): string | null {
    if (!this.textual || this.kept === 0) return null;
    return Buffer.concat(this.chunks).toString("utf8");
  }
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (d: Buffer) => {
      size += d.length;
      if (size > limit) {
        req.removeAllListeners("data");
        req.resume();
        reject(new Limit());
        return;
      }
      chunks.push(d);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
    req.on("close", () => {
      if (!req.complete) reject(new Error("the client went away"));
    });
  });
}

/** An AbortSignal that fires when the client side of a request goes away. */
function closedSignal(
  ...streams: { once(e: "close", cb: () => void): unknown; destroyed?: boolean }[]
): AbortSignal {
  const ac = new AbortController();
  for (const s of streams) {
    if (s.destroyed) ac.abort(new Error("the client went away"));
    s.once("close", () => {
      const res = s as unknown as ServerResponse;
      if (typeof res.writableFinished === "boolean" && res.writableFinished) return;
      ac.abort(new Error("the client went away"));
    });
  }
  return ac.signal;
}

/**
 * What approvers see: "METHOD /path?query", a note when the method came from an override
 * header, and the body (its start, its size and sha256) when there is one.
 */
function holdText(
  decisive: string,
  sent: string,
  target: NormalisedTarget,
  body: Buffer | null,
  contentType: string | undefined,
): string {
  let text = `${decisive} ${target.forward}`;
  if (decisive !== sent.toUpperCase())
    text += `\n(sent as ${sent.toUpperCase()} with a method-override header)`;
  if (body && body.length > 0) {
    const digest = createHash("sha256").update(body).digest("hex");
    const textual = isTextual(classify(contentType));
    const preview = textual
      ? body.subarray(0, 4096).toString("utf8")
      : `<${body.length} bytes of ${contentType ?? "data"}>`;
    text += `\n\n${preview}${textual && body.length > 4096 ? "\n…" : ""}\n(body: ${body.length} bytes, sha256 ${digest})`;
  }
  return text;
}

function headerSafe(s: string): string {
  return s.replace(/[^\x20-\x7e]/g, "-").slice(0, 1000);
}

function rawError(socket: Duplex, status: number, code: string, message: string): void {
  const body = JSON.stringify({ error: code, message });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}\r\ncontent-type: application/json\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

function upstreamMessage(err: Error & { code?: string }, t: HttpTarget): string {
  const where = new URL(t.url).host;
  const code = err.code ?? "";
  if (
    code === "ECONNREFUSED" ||
    code === "ENOTFOUND" ||
    code === "EHOSTUNREACH" ||
    code === "ECONNRESET"
  )
    return `gw: the target ${t.name} (${where}) could not be reached (${code})`;
  if (code === "ETIMEDOUT") return `gw: the target ${t.name} (${where}) did not answer in time`;
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(code))
    return `gw: the target ${t.name} (${where}) presented a certificate the broker does not trust (${code})`;
  return `gw: the request to the target ${t.name} (${where}) failed`;
}

/** ndjson: each line is a JSON document, masked; a line that is not JSON fails the stream. */
function maskJsonLines(b: Buffer, m: HttpMasking, onError: (msg: string) => void): Buffer {
  const text = b.toString("utf8");
  const lines = text.split("\n");
  const out: string[] = [];
  for (const line of lines) {
    const core = line.replace(/\r$/, "");
    if (core.trim() === "") {
      out.push(line);
      continue;
    }
    try {
      const masked = m.maskJson(core);
      out.push(masked === null ? line : masked + (line.endsWith("\r") ? "\r" : ""));
    } catch {
      onError(
        "gw: a line of the streamed JSON from the target is not JSON; the stream was cut off",
      );
      return Buffer.alloc(0);
    }
  }
  return Buffer.from(out.join("\n"), "utf8");
}

/** SSE: `data:` payloads that are JSON get field masking; every line gets the detectors. */
function maskSseLines(b: Buffer, m: HttpMasking): Buffer {
  const lines = b.toString("utf8").split("\n");
  const out = lines.map((line) => {
    const d = /^data: ?(.*?)(\r?)$/.exec(line);
    if (d) {
      try {
        const masked = m.maskJson(d[1]!);
        if (masked !== null) return `data: ${masked}${d[2]}`;
        return line;
      } catch {
        // not JSON: the detectors below
      }
    }
    return m.profile.maskUnicodeText(line);
  });
  return Buffer.from(out.join("\n"), "utf8");
}
