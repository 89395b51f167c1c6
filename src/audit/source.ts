import { readFileSync } from "node:fs";
import { ExitCode, GwError, isGwError } from "../errors.js";
import { parseDuration } from "../policy/duration.js";
import { SqliteStore } from "../store/sqlite-store.js";
import { MAX_SESSION_LIMIT, effectiveLimit, type SessionRecord } from "../store/types.js";
import type { AuditClient, PublicKeyInfo, SessionEvents, SessionFilters } from "./client.js";
import { sessionNotFound } from "./errors.js";
import { verifySessionIn } from "./service.js";
import { keyIdOf, parsePublicKey } from "./signer.js";
import type { VerifyResult } from "./verify.js";

/**
 * Where the CLI reads recorded sessions: the broker's API (what the caller may see), or a
 * copy of the broker's SQLite file (`--db`, an auditor offline, with the broker's public key).
 */
export interface AuditSource {
  /** The broker URL or the file, for messages. */
  readonly where: string;
  sessions(f: SessionFilters): Promise<{ sessions: SessionRecord[]; scope: string }>;
  events(id: string): Promise<SessionEvents>;
  /** The session and its statements (no events: cheaper, and older brokers serve it). */
  session(id: string): Promise<Omit<SessionEvents, "events">>;
  verify(ids: string[], f: SessionFilters): Promise<VerifyResult[]>;
  publicKey(): Promise<PublicKeyInfo>;
  close(): Promise<void>;
}

export function brokerSource(client: AuditClient): AuditSource {
  return {
    where: client.url,
    sessions: (f) => client.sessions(f),
    // A broker from before recording events serves the session and statements only.
    events: (id) =>
      client.events(id).catch(async (err: unknown) => {
        if (!isGwError(err) || err.code !== "broker_too_old") throw err;
        return { ...(await client.session(id)), events: [] };
      }),
    session: (id) => client.session(id),
    verify: async (ids, f) => (await client.verify(ids, f)).results,
    publicKey: () => client.publicKey(),
    close: async () => undefined,
  };
}

export function offlineSource(dbPath: string, publicKeyFile?: string): AuditSource {
  const store = SqliteStore.openReadOnly(dbPath);
  let key: ReturnType<typeof parsePublicKey> | undefined;
  const publicKey = () => {
    if (key) return key;
    if (!publicKeyFile) {
      throw new GwError(
        "audit_public_key_required",
        "verifying a database offline needs the broker's public key",
        {
          exitCode: ExitCode.usage,
          hint: "Pass --public-key FILE (from `gw audit public-key --out FILE`, or the broker's <signing key>.pub).",
        },
      );
    }
    let pem: string;
    try {
      pem = readFileSync(publicKeyFile, "utf8");
    } catch (err) {
      throw new GwError(
        "audit_public_key_invalid",
        `cannot read ${publicKeyFile}: ${(err as Error).message}`,
        {
          exitCode: ExitCode.usage,
        },
      );
    }
    key = parsePublicKey(pem, publicKeyFile);
    return key;
  };
  const resolve = async (id: string): Promise<SessionRecord> => {
    const exact = await store.getSession(id);
    if (exact) return exact;
    if (!/^[0-9a-zA-Z-]{4,64}$/.test(id)) throw sessionNotFound(id);
    const found = await store.listSessions({ idPrefix: id, limit: 2 });
    if (found.length === 0) throw sessionNotFound(id);
    if (found.length > 1) {
      throw new GwError("session_ambiguous", `more than one session starts with ${id}`, {
        hint: "Give more of its id.",
      });
    }
    return found[0]!;
  };
  const list = (f: SessionFilters) => {
    const q: Parameters<typeof store.listSessions>[0] = { limit: effectiveLimit(f.limit) };
    for (const k of ["connection", "user", "agent", "application", "grep"] as const) {
      if (f[k] !== undefined && f[k] !== "") q[k] = f[k];
    }
    if (f.since !== undefined) q.since = f.since;
    if (f.until !== undefined) q.until = f.until;
    return store.listSessions(q);
  };
  return {
    where: dbPath,
    sessions: async (f) => ({ sessions: await list(f), scope: "all" }),
    session: async (id) => {
      const session = await resolve(id);
      return { session, statements: await store.listStatements(session.id) };
    },
    events: async (id) => {
      const session = await resolve(id);
      const [events, statements] = await Promise.all([
        store.listEvents(session.id),
        store.listStatements(session.id),
      ]);
      return { session, events, statements };
    },
    verify: async (ids, f) => {
      const k = publicKey();
      const sessions =
        ids.length > 0
          ? await Promise.all(ids.map(resolve))
          : await list({ ...f, limit: f.limit ?? MAX_SESSION_LIMIT });
      const out: VerifyResult[] = [];
      for (const s of sessions) out.push(await verifySessionIn(store, s, k));
      return out;
    },
    publicKey: async () => {
      const k = publicKey();
      return {
        algorithm: "ed25519",
        keyId: keyIdOf(k),
        publicKey: k.export({ type: "spki", format: "pem" }).toString(),
      };
    },
    close: () => store.close(),
  };
}

/**
 * A --since / --until value: a duration back from now ("2h", "7d", "1h30m") or a time
 * (ISO 8601, "2025-01-31", "2025-01-31T12:00"). Epoch ms; throws a usage GwError.
 */
export function parseTimeFilter(flag: string, text: string, now = Date.now()): number {
  const ms = parseDuration(text.trim());
  if (ms !== undefined) return now - ms;
  const t = Date.parse(text);
  if (Number.isFinite(t)) return t;
  throw new GwError(
    "usage",
    `${flag} ${text}: expected a duration ago (2h, 7d) or a date (2025-01-31T12:00Z)`,
    {
      exitCode: ExitCode.usage,
    },
  );
}
