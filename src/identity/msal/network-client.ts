/**
 * MSAL's network module on node:https, so a private or corporate CA works (`--ca-file`,
 * GW_CA_FILE): msal-node 7 uses the global fetch, which cannot be given a CA per call.
 *
 * It also keeps a short trace of what happened on the wire. MSAL swallows the cause of most
 * failures (a refused connection, an untrusted certificate and an unknown tenant all end up as
 * `endpoints_resolution_error` or `network_error`); the trace is what lets errors.ts tell the
 * user which one it was. The trace holds URLs, status codes and OAuth error codes, never bodies
 * or headers with tokens.
 */
import type { INetworkModule, NetworkRequestOptions, NetworkResponse } from "@azure/msal-node";
import { makeFetch, type FetchLike } from "../../net/http-client.js";

export interface WireEvent {
  method: "GET" | "POST";
  url: string;
  /** HTTP status, when a response arrived. */
  status?: number;
  /** OAuth `error` of a JSON error response (authorization_pending, invalid_tenant, ...). */
  oauthError?: string;
  /** AADSTS codes and description of an OAuth error response (Entra's explanations). */
  oauthDescription?: string;
  /** Retry-After, seconds, when the server sent one. */
  retryAfter?: number;
  /** Transport failure: Node's error code (ECONNREFUSED, UNABLE_TO_VERIFY_LEAF_SIGNATURE, ...). */
  errorCode?: string;
  errorMessage?: string;
}

export interface NetworkClientOptions {
  /** PEM file of extra CAs to trust, besides the system store. */
  caFile?: string | undefined;
  /** Per-request timeout; default 30 s. */
  timeoutMs?: number;
}

const TRACE_LIMIT = 32;

export class GwNetworkClient implements INetworkModule {
  readonly caFile: string | undefined;
  private readonly fetch: FetchLike;
  private readonly events: WireEvent[] = [];

  constructor(opts: NetworkClientOptions = {}) {
    this.caFile = opts.caFile;
    this.fetch = makeFetch({ caFile: opts.caFile, timeoutMs: opts.timeoutMs ?? 30_000 });
  }

  /** What happened on the wire, oldest first (the last few dozen requests). */
  get trace(): readonly WireEvent[] {
    return this.events;
  }

  /** The most recent event whose URL contains `part` (or the most recent at all). */
  last(part?: string): WireEvent | undefined {
    for (let i = this.events.length - 1; i >= 0; i--) {
      const e = this.events[i]!;
      if (part === undefined || e.url.includes(part)) return e;
    }
    return undefined;
  }

  sendGetRequestAsync<T>(
    url: string,
    options?: NetworkRequestOptions,
    timeout?: number,
  ): Promise<NetworkResponse<T>> {
    return this.send<T>("GET", url, options, timeout);
  }

  sendPostRequestAsync<T>(
    url: string,
    options?: NetworkRequestOptions,
  ): Promise<NetworkResponse<T>> {
    return this.send<T>("POST", url, options);
  }

  private record(e: WireEvent): void {
    this.events.push(e);
    if (this.events.length > TRACE_LIMIT) this.events.shift();
  }

  private async send<T>(
    method: "GET" | "POST",
    url: string,
    options: NetworkRequestOptions | undefined,
    timeout?: number,
  ): Promise<NetworkResponse<T>> {
    const event: WireEvent = { method, url: stripQuery(url) };
    const signal = timeout ? AbortSignal.timeout(timeout) : undefined;
    let res: Response;
    try {
      res = await this.fetch(url, {
        method,
        headers: options?.headers ?? {},
        ...(method === "POST" ? { body: options?.body ?? "" } : {}),
        ...(signal ? { signal } : {}),
      });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      event.errorCode = e?.code ?? (signal?.aborted ? "ETIMEDOUT" : "EUNKNOWN");
      event.errorMessage = e?.message ?? String(err);
      this.record(event);
      // MSAL turns anything that is not its own AuthError into `network_error`; the trace keeps
      // the cause for errors.ts.
      throw new Error(`network request to ${hostOf(url)} failed: ${event.errorMessage}`, {
        cause: err,
      });
    }
    event.status = res.status;
    const headers: Record<string, string> = {};
    res.headers.forEach((v, k) => (headers[k.toLowerCase()] = v));
    const retryAfter = headers["retry-after"];
    if (retryAfter !== undefined) {
      const n = Number(retryAfter);
      const secs = Number.isFinite(n)
        ? n
        : Math.max(0, Math.round((Date.parse(retryAfter) - Date.now()) / 1000));
      if (Number.isFinite(secs)) event.retryAfter = secs;
    }
    const text = await res.text();
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : {};
    } catch {
      event.errorCode = "EBADJSON";
      event.errorMessage = `HTTP ${res.status} with a body that is not JSON`;
      this.record(event);
      throw new Error(`${hostOf(url)} answered HTTP ${res.status} with a body that is not JSON`);
    }
    if (
      body &&
      typeof body === "object" &&
      typeof (body as { error?: unknown }).error === "string"
    ) {
      const b = body as { error: string; error_description?: unknown };
      event.oauthError = b.error;
      if (typeof b.error_description === "string")
        event.oauthDescription = b.error_description.split(/\r?\n/)[0]!.slice(0, 300);
    }
    this.record(event);
    return { headers, body: body as T, status: res.status };
  }
}

function stripQuery(url: string): string {
  const i = url.indexOf("?");
  return i < 0 ? url : url.slice(0, i);
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}
