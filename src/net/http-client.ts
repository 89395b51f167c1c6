import { request as httpRequest, type Agent as HttpAgent, type IncomingMessage } from "node:http";
import { request as httpsRequest, Agent as HttpsAgent } from "node:https";
import { contextTrusting } from "./tls-context.js";

/**
 * A fetch-shaped client on node:http(s) that can trust a private CA. Node 20's global fetch
 * cannot be given a CA per call, and both the broker (issuer JWKS) and the CLI (broker API behind
 * a corporate or private CA) need one.
 */
export interface HttpClientOptions {
  /** PEM file(s) of extra CAs to trust, besides the system store. */
  caFile?: string | undefined;
  timeoutMs?: number;
  /**
   * Dial through this agent instead (for the URLs' protocol; caFile is then the agent's
   * business): a broker pool's agents add a connect deadline.
   */
  agent?: HttpAgent | undefined;
}

const agents = new Map<string, HttpsAgent>();

function agentFor(caFile: string | undefined): HttpsAgent | undefined {
  if (!caFile) return undefined;
  let agent = agents.get(caFile);
  if (!agent) {
    agent = new HttpsAgent({
      secureContext: contextTrusting(caFile),
      keepAlive: true,
    });
    agents.set(caFile, agent);
  }
  return agent;
}

export function makeFetch(opts: HttpClientOptions = {}) {
  const own = opts.agent;
  const agent = own ?? agentFor(opts.caFile);
  const timeoutMs = opts.timeoutMs ?? 10_000;
  return (
    url: string | URL,
    init: {
      method?: string;
      headers?: Record<string, string> | Headers;
      body?: string;
      signal?: AbortSignal;
    } = {},
  ): Promise<Response> =>
    new Promise((resolve, reject) => {
      const u = typeof url === "string" ? new URL(url) : url;
      const headers: Record<string, string> = {};
      if (init.headers instanceof Headers) init.headers.forEach((v, k) => (headers[k] = v));
      else if (init.headers) Object.assign(headers, init.headers);
      const req = (u.protocol === "https:" ? httpsRequest : httpRequest)(
        u,
        {
          method: init.method ?? "GET",
          headers,
          ...((own || u.protocol === "https:") && agent ? { agent } : {}),
          timeout: timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            const h = new Headers();
            for (const [k, v] of Object.entries(res.headers)) {
              if (typeof v === "string") h.set(k, v);
              else if (Array.isArray(v)) for (const x of v) h.append(k, x);
            }
            const status = res.statusCode ?? 500;
            const body = status === 204 || status === 304 ? null : Buffer.concat(chunks);
            resolve(new Response(body, { status, headers: h }));
          });
          res.on("error", reject);
        },
      );
      req.on("timeout", () =>
        req.destroy(
          Object.assign(new Error(`request to ${u.host} timed out`), { code: "ETIMEDOUT" }),
        ),
      );
      req.on("error", reject);
      if (init.signal) {
        if (init.signal.aborted) req.destroy(new Error("aborted"));
        init.signal.addEventListener("abort", () => req.destroy(new Error("aborted")), {
          once: true,
        });
      }
      if (init.body !== undefined) req.end(init.body);
      else req.end();
    });
}

export type FetchLike = ReturnType<typeof makeFetch>;

/**
 * The body of a refused WebSocket upgrade (ws's "unexpected-response"), parsed as the broker's
 * JSON error; undefined when it is not JSON.
 */
export function refusalBody(res: IncomingMessage): Promise<unknown> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    res.on("data", (c: Buffer) => chunks.push(c));
    res.on("error", () => resolve(undefined));
    res.on("end", () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString("utf8")));
      } catch {
        resolve(undefined);
      }
    });
  });
}
