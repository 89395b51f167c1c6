import { ExitCode, GwError } from "../errors.js";
import type { AuditEvent, SessionRecord, StatementEvent } from "../store/types.js";
import { httpError, normalizeBrokerUrl, notSignedIn } from "../tunnel/broker-client.js";
import { BrokerPool } from "../tunnel/broker-pool.js";
import type { VerifyResult } from "./verify.js";

/** Filters of `gw sessions`, as the broker API takes them (src/broker/audit-api.ts). */
export interface SessionFilters {
  connection?: string | undefined;
  user?: string | undefined;
  agent?: string | undefined;
  application?: string | undefined;
  since?: number | undefined;
  until?: number | undefined;
  grep?: string | undefined;
  limit?: number | undefined;
}

export interface SessionEvents {
  session: SessionRecord;
  events: AuditEvent[];
  statements: StatementEvent[];
}

export interface PublicKeyInfo {
  algorithm: "ed25519";
  keyId: string;
  publicKey: string;
}

/** The broker's session and audit API, for the CLI. Failures are GwErrors that say what to do. */
export class AuditClient {
  readonly url: string;
  /** The broker's replicas this process knows of (see broker-pool.ts): reads go to one up. */
  private readonly pool: BrokerPool;

  constructor(
    private readonly opts: { url: string; token?: string | undefined; caFile?: string | undefined },
  ) {
    this.url = normalizeBrokerUrl(opts.url);
    this.pool = BrokerPool.shared([this.url], { caFile: opts.caFile });
  }

  sessions(f: SessionFilters = {}): Promise<{ sessions: SessionRecord[]; scope: string }> {
    return this.get(`/v1/sessions${query(f)}`);
  }

  session(id: string): Promise<{ session: SessionRecord; statements: StatementEvent[] }> {
    return this.get(`/v1/sessions/${encodeURIComponent(id)}`);
  }

  events(id: string): Promise<SessionEvents> {
    return this.get(`/v1/sessions/${encodeURIComponent(id)}/events`);
  }

  verify(
    ids: string[],
    f: SessionFilters = {},
  ): Promise<{ results: VerifyResult[]; keyId: string }> {
    const p = new URLSearchParams(query(f).slice(1));
    for (const id of ids) p.append("session", id);
    const qs = p.toString();
    return this.get(`/v1/audit/verify${qs ? `?${qs}` : ""}`);
  }

  publicKey(): Promise<PublicKeyInfo> {
    return this.get("/v1/audit/public-key");
  }

  private async get<T>(path: string): Promise<T> {
    if (!this.opts.token) throw notSignedIn();
    const { res } = await this.pool.request(
      path,
      {
        headers: { accept: "application/json", authorization: `Bearer ${this.opts.token}` },
        timeoutMs: 60_000,
      },
      "read",
    );
    const text = await res.text();
    let body: unknown = undefined;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      // not JSON: reported below
    }
    if (res.ok && body !== undefined) return body as T;
    if (res.ok) {
      throw new GwError(
        "broker_bad_response",
        `${this.url} did not answer with JSON; is it a gw broker?`,
        {
          exitCode: ExitCode.unavailable,
        },
      );
    }
    if (
      res.status === 404 &&
      (body as { error?: { code?: string } })?.error?.code === "not_found"
    ) {
      throw new GwError(
        "broker_too_old",
        `the broker at ${this.url} does not serve ${path.split("?")[0]}`,
        {
          exitCode: ExitCode.unavailable,
          hint: "Upgrade the broker to a gw version with recording and audit.",
        },
      );
    }
    throw httpError(this.url, res.status, body);
  }
}

function query(f: SessionFilters): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(f)) {
    if (v !== undefined && v !== "") p.set(k, String(v));
  }
  const qs = p.toString();
  return qs ? `?${qs}` : "";
}
