import { ExitCode, GwError } from "../errors.js";
import { BrokerPool } from "./broker-pool.js";
import { parseBrokerUrls } from "./broker-urls.js";

/**
 * The CLI's view of a broker's HTTP API. Every failure becomes a GwError whose message says
 * what happened and what to do; tokens never appear in messages.
 */
export interface BrokerConnectionInfo {
  name: string;
  type: "postgres" | "ssh" | "http" | "tcp";
  description: string | null;
  /** postgres: the database the broker opens. */
  database: string | null;
  /** ssh: the user the broker signs in to the target as. */
  user?: string | null;
}

export interface BrokerClientOptions {
  /** The broker's URL, or the URLs of its replicas (a list, or one string with commas). */
  url: string | readonly string[];
  token?: string | undefined;
  caFile?: string | undefined;
  /** The replicas' pool; default the one this process shares for these URLs. */
  pool?: BrokerPool;
}

export class BrokerClient {
  /** The first broker URL given: the broker's name in messages. */
  readonly url: string;
  /** Every request goes to a replica that is up (see broker-pool.ts). */
  readonly pool: BrokerPool;

  constructor(private readonly opts: BrokerClientOptions) {
    const urls = parseBrokerUrls(opts.url);
    this.url = urls[0]!;
    this.pool = opts.pool ?? BrokerPool.shared(urls, { caFile: opts.caFile });
  }

  get caFile(): string | undefined {
    return this.opts.caFile;
  }

  async discovery(): Promise<Record<string, unknown>> {
    return this.get("/.well-known/gw-configuration", false);
  }

  async connections(): Promise<BrokerConnectionInfo[]> {
    const body = await this.get<{ connections: BrokerConnectionInfo[] }>("/v1/connections");
    return body.connections;
  }

  async whoami(): Promise<Record<string, unknown>> {
    return this.get("/v1/whoami");
  }

  async sessions(
    q: { connection?: string | undefined; limit?: number | undefined } = {},
  ): Promise<{ sessions: unknown[]; scope: string }> {
    const p = new URLSearchParams();
    if (q.connection) p.set("connection", q.connection);
    if (q.limit) p.set("limit", String(q.limit));
    const qs = p.toString();
    return this.get(`/v1/sessions${qs ? `?${qs}` : ""}`);
  }

  async session(id: string): Promise<{ session: unknown; statements: unknown[] }> {
    return this.get(`/v1/sessions/${encodeURIComponent(id)}`);
  }

  /** URL of the tunnel endpoint for a connection (ws: or wss:) on the first broker given. */
  tunnelUrl(connection: string): string {
    return this.url.replace(/^http/, "ws") + tunnelPath(connection);
  }

  private async get<T>(path: string, auth = true): Promise<T> {
    const headers: Record<string, string> = { accept: "application/json" };
    if (auth) {
      if (!this.opts.token) throw notSignedIn();
      headers["authorization"] = `Bearer ${this.opts.token}`;
    }
    const { res, endpoint } = await this.pool.request(path, { headers }, "read");
    const text = await res.text();
    let body: unknown = undefined;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      // not JSON: reported below by status
    }
    if (res.ok) {
      if (body === undefined)
        throw new GwError(
          "broker_bad_response",
          `${endpoint.label} did not answer with JSON; is it a gw broker?`,
          { exitCode: ExitCode.unavailable },
        );
      return body as T;
    }
    throw httpError(endpoint.label, res.status, body);
  }
}

/** The path of a connection's tunnel endpoint on any replica. */
export function tunnelPath(connection: string): string {
  return `/v1/tunnel/${encodeURIComponent(connection)}`;
}

export function normalizeBrokerUrl(url: string): string {
  // A list would otherwise parse as one odd URL ("https://a,https//b").
  if (url.includes(",")) {
    throw new GwError("broker_url_invalid", `"${url}" is several broker URLs; one is needed here`, {
      exitCode: ExitCode.usage,
      hint: "Give one of them here: signing in through one replica holds for all of them.",
    });
  }
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new GwError("broker_url_invalid", `"${url}" is not a broker URL`, {
      exitCode: ExitCode.usage,
      hint: "Use a URL such as https://gw.example.com",
    });
  }
  if (u.protocol !== "https:" && u.protocol !== "http:") {
    throw new GwError(
      "broker_url_invalid",
      `the broker URL must be https:// (or http:// on loopback), not ${u.protocol}`,
      { exitCode: ExitCode.usage },
    );
  }
  return u.origin + u.pathname.replace(/\/+$/, "");
}

export function notSignedIn(): GwError {
  return new GwError("not_signed_in", "you are not signed in", {
    exitCode: ExitCode.auth,
    hint: "Run `gw login`, or set GW_TOKEN to an access token for the broker.",
  });
}

export function unreachable(url: string, err: unknown): GwError {
  const { why, hint } = unreachableReason(err);
  return new GwError("broker_unreachable", `cannot reach the broker at ${url}: ${why}`, {
    exitCode: ExitCode.unavailable,
    hint,
    cause: err,
  });
}

/** Why a broker could not be reached, for people, and what to do about it. */
export function unreachableReason(err: unknown): { why: string; hint: string } {
  const e = err as NodeJS.ErrnoException;
  const code = e?.code ?? "";
  let why = e?.message ?? String(err);
  let hint = "Check the broker URL and that the broker is running.";
  if (code === "ECONNREFUSED") why = "connection refused";
  else if (code === "ENOTFOUND" || code === "EAI_AGAIN") why = "host not found";
  else if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(code)) {
    why = `TLS certificate not trusted (${code})`;
    hint =
      "If the broker uses a private CA, pass --ca-file (or set GW_CA_FILE) with its certificate.";
  }
  return { why, hint };
}

/** Maps a broker's JSON error (or its absence) to a user-facing error. */
export function httpError(url: string, status: number, body: unknown): GwError {
  const err = (body as { error?: { code?: string; message?: string } } | undefined)?.error;
  const code = err?.code ?? `http_${status}`;
  const message = err?.message ?? `the broker at ${url} answered HTTP ${status}`;
  if (status === 401) {
    return new GwError(code, `the broker refused your sign-in: ${message}`, {
      exitCode: ExitCode.auth,
      hint:
        code === "token_expired"
          ? "Run `gw login` (or refresh GW_TOKEN) and try again."
          : "Run `gw login` again, or check GW_TOKEN.",
    });
  }
  if (status === 403) return new GwError(code, message, { exitCode: ExitCode.forbidden });
  if (status === 404) return new GwError(code, message, { exitCode: ExitCode.failure });
  if (status >= 500)
    return new GwError(code, `the broker failed: ${message}`, {
      exitCode: ExitCode.unavailable,
      hint: "Try again; if it persists, tell the broker's operators.",
    });
  return new GwError(code, message);
}
