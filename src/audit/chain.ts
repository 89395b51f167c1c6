import { createHash } from "node:crypto";
import type {
  AuditEvent,
  AuditEventKind,
  DecisionCounts,
  ResultPreview,
  SessionRecord,
  StatementApproval,
  StatementDecision,
  StatementProtocol,
} from "../store/types.js";
import type { HttpEvent } from "../protocols/http/session.js";
import type { SshEvent } from "../protocols/ssh/events.js";

/**
 * The tamper-evident record of a session, and exactly what its hashes cover, so that anyone
 * can check it offline (docs/recording.md repeats this for auditors).
 *
 * - The session header (who, where, when it started) hashes to the chain's genesis:
 *     headerHash = sha256("gw-audit/1 session\n" + canonical(header))
 * - Every event is a canonical JSON body, hashed with the previous event's hash (the header
 *   hash for event 1):
 *     hash = sha256("gw-audit/1 event\n" + prevHash + "\n" + body)
 *   The body holds the session id and the event's seq, so an event cannot be moved to another
 *   place or session without its hash changing.
 * - When the session ends, a seal body (header hash, last hash, event count, how the session
 *   ended, decision counts) is digested and the digest signed with the broker's Ed25519 key:
 *     digest = sha256("gw-audit/1 seal\n" + canonical(sealBody)), signature = Ed25519(digest)
 *
 * canonical() is RFC 8785 (JSON Canonicalization Scheme): object keys sorted by UTF-16 code
 * units, no whitespace, ECMAScript number and string serialisation. Hashes are lowercase hex.
 */

export const CHAIN_VERSION = 1;

/** RFC 8785 canonical JSON. Undefined object members are left out; non-finite numbers throw. */
export function canonicalJson(value: unknown): string {
  // RFC 8785 serialises strings and numbers exactly as JSON.stringify does, so the engine's
  // own serialiser does the work once keys are in order. Objects with integer-like keys,
  // which JavaScript enumerates before the others whatever the order they were set in, take
  // the slow path.
  try {
    return JSON.stringify(value, sortedMembers) ?? slowCanonicalJson(value);
  } catch (err) {
    if (err === INTEGER_KEY) return slowCanonicalJson(value);
    throw err;
  }
}

const INTEGER_KEY = new Error("integer-like key");
const INTEGER_LIKE = /^(?:0|[1-9]\d*)$/;

function sortedMembers(this: unknown, _key: string, v: unknown): unknown {
  if (typeof v === "number") {
    if (!Number.isFinite(v)) throw new TypeError("canonical JSON has no NaN or Infinity");
    return v;
  }
  if (v === null || typeof v !== "object" || Array.isArray(v)) {
    if (typeof v === "function" || typeof v === "symbol" || typeof v === "bigint")
      throw new TypeError(`canonical JSON cannot encode a ${typeof v}`);
    return v;
  }
  const keys = Object.keys(v);
  let sorted = true;
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!;
    // Per member of every event: test the first character before the expression.
    const c = k.charCodeAt(0);
    if (c >= 48 && c <= 57 && INTEGER_LIKE.test(k)) throw INTEGER_KEY;
    if (i > 0 && keys[i - 1]! > k) sorted = false;
  }
  if (sorted) return v;
  keys.sort();
  const out: Record<string, unknown> = {};
  for (const k of keys) out[k] = (v as Record<string, unknown>)[k];
  return out;
}

/** The reference implementation: member by member. */
export function slowCanonicalJson(value: unknown): string {
  if (value === null) return "null";
  switch (typeof value) {
    case "boolean":
      return value ? "true" : "false";
    case "number":
      if (!Number.isFinite(value)) throw new TypeError("canonical JSON has no NaN or Infinity");
      return JSON.stringify(value);
    case "string":
      return JSON.stringify(value);
    case "object": {
      if (Array.isArray(value))
        return `[${value.map((v) => slowCanonicalJson(v ?? null)).join(",")}]`;
      const obj = value as Record<string, unknown>;
      const keys = Object.keys(obj)
        .filter((k) => obj[k] !== undefined)
        .sort();
      return `{${keys.map((k) => `${JSON.stringify(k)}:${slowCanonicalJson(obj[k])}`).join(",")}}`;
    }
    default:
      throw new TypeError(`canonical JSON cannot encode a ${typeof value}`);
  }
}

function sha256(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex");
}

/** The parts of a session record fixed when it starts: what the genesis hash covers. */
export interface SessionHeader {
  v: 1;
  id: string;
  identity: { oid: string; name: string; type: string; upn: string | null };
  connection: string;
  protocol: string;
  applicationName: string | null;
  clientAddress: string | null;
  agentLabel: string | null;
  startedAt: number;
}

export function sessionHeader(s: SessionRecord): SessionHeader {
  return {
    v: CHAIN_VERSION,
    id: s.id,
    identity: {
      oid: s.identity.oid,
      name: s.identity.name,
      type: s.identity.type,
      upn: s.identity.upn ?? null,
    },
    connection: s.connection,
    protocol: s.protocol,
    applicationName: s.applicationName,
    clientAddress: s.clientAddress,
    agentLabel: s.agentLabel ?? null,
    startedAt: s.startedAt,
  };
}

export function headerHash(s: SessionRecord): string {
  return sha256(`gw-audit/1 session\n${canonicalJson(sessionHeader(s))}`);
}

export function eventHash(prevHash: string, body: string): string {
  return sha256(`gw-audit/1 event\n${prevHash}\n${body}`);
}

// --- event bodies ------------------------------------------------------------------------

interface BodyBase {
  v: 1;
  sessionId: string;
  seq: number;
  at: number;
  /** ms since the session started. */
  offsetMs: number;
}

/** A statement is about to go to the target (written before it runs). */
export interface StatementStartBody extends BodyBase {
  type: "statement_start";
  sql: string;
  protocol: StatementProtocol;
}

/** A statement completed, or policy refused it. */
export interface StatementBody extends BodyBase {
  type: "statement";
  /** The statement's number in the session (StatementEvent.seq), 1-based. */
  n: number;
  /** The statement_start event of this statement; null when it never went to the target. */
  startSeq: number | null;
  /** The text; null when startSeq names the event that has it. */
  sql: string | null;
  /** sha256 of the text, so the completion binds to the start's text. */
  sqlSha256: string;
  protocol: StatementProtocol;
  durationMs: number;
  commandTag: string | null;
  rows: number | null;
  errorCode: string | null;
  errorMessage: string | null;
  decision: StatementDecision;
  approval: StatementApproval | null;
  preview: ResultPreview | null;
}

/** Something an ssh session did: terminal output, a resize, a command, an exit, an sftp operation. */
export interface SshBody extends BodyBase {
  type: "ssh";
  event: SshEvent;
}

/** A request (or WebSocket) of an http session, with its outcome. */
export interface HttpBody extends BodyBase {
  type: "http";
  event: HttpEvent;
}

export type EventBody = StatementStartBody | StatementBody | SshBody | HttpBody;

/** The body without what the chain fills in. */
export type EventFields =
  | Omit<StatementStartBody, "v" | "sessionId" | "seq">
  | Omit<StatementBody, "v" | "sessionId" | "seq">
  | Omit<SshBody, "v" | "sessionId" | "seq">
  | Omit<HttpBody, "v" | "sessionId" | "seq">;

export function sqlSha256(sql: string): string {
  return sha256(sql);
}

/**
 * One session's chain as the recorder builds it: assigns seqs, links hashes, and knows the
 * head for the seal. Synchronous, so events are linked in exactly the order they are made.
 */
export class ChainBuilder {
  private seqNo = 0;
  private head: string;

  constructor(
    readonly sessionId: string,
    readonly genesis: string,
  ) {
    this.head = genesis;
  }

  get length(): number {
    return this.seqNo;
  }

  get headHash(): string {
    return this.head;
  }

  next(fields: EventFields): { event: AuditEvent; body: EventBody } {
    const seq = ++this.seqNo;
    const body = { v: CHAIN_VERSION, sessionId: this.sessionId, seq, ...fields } as EventBody;
    const text = canonicalJson(body);
    const hash = eventHash(this.head, text);
    const event: AuditEvent = {
      sessionId: this.sessionId,
      seq,
      kind: body.type as AuditEventKind,
      at: body.at,
      body: text,
      prevHash: this.head,
      hash,
    };
    this.head = hash;
    return { event, body };
  }
}

// --- seal ----------------------------------------------------------------------------------

export interface SealBody {
  v: 1;
  sessionId: string;
  header: string;
  head: string;
  events: number;
  end: {
    endedAt: number | null;
    endReason: string | null;
    endDetail: string | null;
    bytesIn: number;
    bytesOut: number;
    statementCount: number;
  };
  decisions: DecisionCounts | null;
  sealedAt: number;
  recovered: boolean;
}

export function sealBody(
  s: SessionRecord,
  chain: { headHash: string; eventCount: number; sealedAt: number; recovered?: boolean },
): SealBody {
  return {
    v: CHAIN_VERSION,
    sessionId: s.id,
    header: headerHash(s),
    head: chain.headHash,
    events: chain.eventCount,
    end: {
      endedAt: s.endedAt,
      endReason: s.endReason,
      endDetail: s.endDetail,
      bytesIn: s.bytesIn,
      bytesOut: s.bytesOut,
      statementCount: s.statementCount,
    },
    decisions: s.decisions ?? null,
    sealedAt: chain.sealedAt,
    recovered: chain.recovered === true,
  };
}

export function sealDigest(body: SealBody): string {
  return sha256(`gw-audit/1 seal\n${canonicalJson(body)}`);
}
