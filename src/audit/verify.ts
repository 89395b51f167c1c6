import type { KeyObject } from "node:crypto";
import type { AuditEvent, SessionRecord, StatementEvent } from "../store/types.js";
import {
  canonicalJson,
  eventHash,
  headerHash,
  sealBody,
  sealDigest,
  sqlSha256,
  type EventBody,
  type HttpBody,
  type SshBody,
  type StatementBody,
} from "./chain.js";
import { keyIdOf, verifyDigest } from "./signer.js";

/**
 * Checks one session's record against its chain and signed digest, and says exactly what is
 * wrong: which event was edited, deleted or moved, naming its seq.
 *
 * An event's seq is the one in its (hashed) body; the stored seq column is only where it sits.
 * So an edited event fails its own hash; a deleted one leaves a gap in the recorded seqs (or,
 * at the end, fewer events than the seal counts); reordered ones sit out of their recorded
 * order; an event replaced with a recomputed hash no longer links to its successor; and a
 * chain rebuilt from some event to the end no longer matches the signed digest.
 */

export type VerifyStatus = "intact" | "open" | "pruned" | "unsealed" | "broken";

export type ProblemKind =
  | "edited"
  | "deleted"
  | "reordered"
  | "added"
  | "chain_broken"
  | "session_edited"
  | "statement_edited"
  | "statement_deleted"
  | "seal_mismatch"
  | "signature_invalid"
  | "wrong_key";

export interface VerifyProblem {
  kind: ProblemKind;
  /** The event's seq; 0 for the session record itself; null when no single event is to blame. */
  seq: number | null;
  message: string;
}

export interface VerifyResult {
  sessionId: string;
  status: VerifyStatus;
  /** One line for people: "intact (12 events, signed by key …)", "event 3 was edited", … */
  summary: string;
  events: number;
  keyId: string | null;
  problems: VerifyProblem[];
}

export interface VerifyInput {
  session: SessionRecord;
  events: AuditEvent[];
  statements: StatementEvent[];
  /** The broker's public key; signatures cannot be checked without it. */
  publicKey: KeyObject;
}

interface Placed {
  row: AuditEvent;
  body: EventBody | null;
  /** The hash matches the body and the previous hash stored with it. */
  contentOk: boolean;
  /** The seq it was recorded with (from its body when intact, else where it is stored). */
  seq: number;
}

export function verifySession(input: VerifyInput): VerifyResult {
  const { session, publicKey } = input;
  const problems: VerifyProblem[] = [];
  const seal = session.seal;
  const pruned = session.prunedAt !== undefined;
  const rows = [...input.events].sort((a, b) => a.seq - b.seq);

  // 1. Each event on its own: does its hash cover its body, and where was it recorded?
  const placed: Placed[] = rows.map((row) => {
    const contentOk = eventHash(row.prevHash, row.body) === row.hash;
    const body = parseBody(row.body);
    const recorded =
      contentOk && body !== null && body.sessionId === session.id && Number.isInteger(body.seq)
        ? body.seq
        : row.seq;
    if (!contentOk) {
      problems.push({
        kind: "edited",
        seq: row.seq,
        message: `event ${row.seq} was edited: its content does not match its hash`,
      });
    } else if (body === null || body.sessionId !== session.id) {
      problems.push({
        kind: "edited",
        seq: row.seq,
        message: `event ${row.seq} does not belong to this session (it was copied from another one)`,
      });
    }
    return { row, body, contentOk, seq: recorded };
  });

  // 2. Order: recorded seqs must rise in stored order. Those out of place were moved.
  const inverted = placed.some((p, i) => i > 0 && p.seq < placed[i - 1]!.seq);
  if (inverted) {
    const moved = placed.filter((p) => p.seq !== p.row.seq).sort((a, b) => a.seq - b.seq);
    const names = moved.map((p) => p.seq);
    const list =
      names.length === 2
        ? `${names[0]} and ${names[1]}`
        : names.slice(0, 10).join(", ") + (names.length > 10 ? ", …" : "");
    problems.push({
      kind: "reordered",
      seq: names[0] ?? null,
      message: `events ${list} were reordered: ${moved
        .slice(0, 10)
        .map((p, i) => `${i === 0 ? "event " : ""}${p.seq} is stored at position ${p.row.seq}`)
        .join(", ")}`,
    });
  }

  // 3. Nothing missing, nothing extra, and each event follows the one before it.
  const bySeq = new Map<number, Placed>();
  for (const p of placed) {
    if (bySeq.has(p.seq)) {
      problems.push({
        kind: "added",
        seq: p.seq,
        message: `event ${p.seq} appears twice (stored at positions ${bySeq.get(p.seq)!.row.seq} and ${p.row.seq})`,
      });
    } else bySeq.set(p.seq, p);
  }
  const maxRecorded = placed.reduce((m, p) => Math.max(m, p.seq), 0);
  const expected = seal ? seal.eventCount : maxRecorded;
  if (!pruned) {
    for (let k = 1; k <= Math.max(expected, maxRecorded); k++) {
      if (!bySeq.has(k)) {
        problems.push({
          kind: "deleted",
          seq: k,
          message:
            k > maxRecorded
              ? `event ${k} was deleted (the signed digest counts ${expected} events; ${maxRecorded} remain)`
              : `event ${k} was deleted`,
        });
      }
    }
    if (seal && maxRecorded > seal.eventCount) {
      problems.push({
        kind: "added",
        seq: seal.eventCount + 1,
        message: `events ${seal.eventCount + 1}..${maxRecorded} were added after the session was sealed`,
      });
    }
    const genesis = headerHash(session);
    for (const p of placed) {
      if (!p.contentOk) continue;
      const before = p.seq === 1 ? genesis : bySeq.get(p.seq - 1)?.row.hash;
      if (before === undefined || p.row.prevHash === before) continue;
      if (p.seq === 1) {
        problems.push({
          kind: "session_edited",
          seq: 0,
          message:
            "the session record (who, where, when it started) was edited: event 1 does not follow it",
        });
      } else if (bySeq.get(p.seq - 1)!.contentOk) {
        problems.push({
          kind: "chain_broken",
          seq: p.seq - 1,
          message: `event ${p.seq - 1} was replaced: event ${p.seq} does not follow it`,
        });
      }
    }
    if (seal && problems.length === 0) {
      const head = seal.eventCount === 0 ? genesis : bySeq.get(seal.eventCount)?.row.hash;
      if (head !== seal.headHash) {
        problems.push({
          kind: "seal_mismatch",
          seq: null,
          message:
            "the events do not match the signed digest: the chain was rebuilt after the session was sealed",
        });
      }
    }
    checkStatements(input.statements, bySeq, problems);
  }

  // 4. The seal: its digest covers the session record, and the broker's key signed it.
  let keyId: string | null = null;
  if (seal) {
    keyId = seal.keyId;
    const digest = sealDigest(
      sealBody(session, {
        headHash: seal.headHash,
        eventCount: seal.eventCount,
        sealedAt: seal.sealedAt,
        recovered: seal.recovered === true,
      }),
    );
    if (digest !== seal.digest) {
      problems.push({
        kind: "seal_mismatch",
        seq: 0,
        message:
          "the session record (how it ended, its counts, or who and where) does not match its signed digest",
      });
    }
    const given = keyIdOf(publicKey);
    if (given !== seal.keyId) {
      problems.push({
        kind: "wrong_key",
        seq: null,
        message: `the digest was signed with key ${seal.keyId}, not with the public key given (${given})`,
      });
    } else if (!verifyDigest(publicKey, seal.digest, seal.signature)) {
      problems.push({
        kind: "signature_invalid",
        seq: null,
        message: "the signature over the session's digest is not valid",
      });
    }
  }

  problems.sort((a, b) => (a.seq ?? -1) - (b.seq ?? -1));
  const events = pruned ? (seal?.eventCount ?? 0) : rows.length;
  let status: VerifyStatus;
  let summary: string;
  if (problems.length > 0) {
    status = "broken";
    summary = problems[0]!.message + (problems.length > 1 ? ` (+${problems.length - 1} more)` : "");
  } else if (pruned) {
    status = "pruned";
    summary = seal
      ? "pruned; digest intact"
      : "pruned; it was never sealed, so nothing is left to check";
    if (!seal) status = "unsealed";
  } else if (seal) {
    status = "intact";
    summary = `intact: ${events} event${events === 1 ? "" : "s"}, signed by key ${seal.keyId}${seal.recovered ? (session.endReason === "broker_lost" ? " (sealed by another replica: its broker was lost)" : " (sealed at the next broker start)") : ""}`;
  } else if (session.endedAt === null) {
    status = "open";
    summary = `open: ${events} event${events === 1 ? "" : "s"} so far, chain intact (signed when the session ends)`;
  } else {
    status = "unsealed";
    summary =
      rows.length === 0 && input.statements.length > 0
        ? "not verifiable: recorded before tamper evidence (no chain, no signature)"
        : `ended without a signed digest: ${events} event${events === 1 ? "" : "s"} chained but not signed`;
  }
  return { sessionId: session.id, status, summary, events, keyId, problems };
}

/** The statements table is a searchable copy of the statement events: it must agree. */
function checkStatements(
  statements: StatementEvent[],
  bySeq: Map<number, Placed>,
  problems: VerifyProblem[],
): void {
  const seen = new Set<number>();
  for (const st of statements) {
    if (st.eventSeq === undefined) continue;
    seen.add(st.eventSeq);
    const p = bySeq.get(st.eventSeq);
    if (!p || !p.contentOk) continue; // reported already
    if (p.body?.type === "ssh" || p.body?.type === "http") {
      const diff = protocolRowDiff(st, p.body, bySeq);
      if (diff.length > 0)
        problems.push({
          kind: "statement_edited",
          seq: p.seq,
          message: `statement #${st.seq} was edited in the statements table (${diff.join(", ")} differ from event ${p.seq})`,
        });
      continue;
    }
    if (p.body?.type !== "statement") continue;
    const body = p.body;
    const start = body.startSeq === null ? undefined : bySeq.get(body.startSeq);
    const diff: string[] = [];
    // The row's text must be the one the completion hashed; so must the start event's.
    if (sqlSha256(st.sql) !== body.sqlSha256 || (body.sql !== null && st.sql !== body.sql)) {
      diff.push("sql");
    }
    if (
      start?.body?.type === "statement_start" &&
      start.contentOk &&
      sqlSha256(start.body.sql) !== body.sqlSha256 &&
      !problems.some((x) => x.seq === start.seq)
    ) {
      problems.push({
        kind: "edited",
        seq: start.seq,
        message: `event ${start.seq} was edited: its statement text is not the one event ${p.seq} recorded`,
      });
    }
    if (st.seq !== body.n) diff.push("number");
    if (st.at !== body.at) diff.push("at");
    if (st.durationMs !== body.durationMs) diff.push("durationMs");
    if (st.protocol !== body.protocol) diff.push("protocol");
    if (st.commandTag !== body.commandTag) diff.push("commandTag");
    if (st.rows !== body.rows) diff.push("rows");
    if (st.errorCode !== body.errorCode) diff.push("errorCode");
    if (st.errorMessage !== body.errorMessage) diff.push("errorMessage");
    if ((st.decision ?? "allowed") !== body.decision) diff.push("decision");
    if (canonicalJson(st.approval ?? null) !== canonicalJson(body.approval)) diff.push("approval");
    // The recorder keeps previews in the events only; a row that has one must agree.
    if (st.preview !== undefined && canonicalJson(st.preview) !== canonicalJson(body.preview)) {
      diff.push("preview");
    }
    if (diff.length > 0) {
      problems.push({
        kind: "statement_edited",
        seq: p.seq,
        message: `statement #${st.seq} was edited in the statements table (${diff.join(", ")} differ from event ${p.seq})`,
      });
    }
  }
  for (const p of bySeq.values()) {
    if (p.contentOk && p.body?.type === "statement" && !seen.has(p.seq)) {
      problems.push({
        kind: "statement_deleted",
        seq: p.seq,
        message: `statement #${(p.body as StatementBody).n} was deleted from the statements table (event ${p.seq} records it)`,
      });
    }
  }
}

/**
 * What differs between the searchable row of an ssh command or http request and the event it
 * copies (src/broker/protocol-recording.ts writes them). An exit event does not repeat its
 * command: that comes from the channel's exec event before it.
 */
function protocolRowDiff(
  st: StatementEvent,
  body: SshBody | HttpBody,
  bySeq: Map<number, Placed>,
): string[] {
  const diff: string[] = [];
  if (st.at !== body.at) diff.push("at");
  if (body.type === "http") {
    const e = body.event;
    if (e.kind !== "request" && e.kind !== "websocket") return ["kind"];
    const line = `${e.kind === "request" ? e.method : "GET"} ${e.path}${e.query ? `?${e.query}` : ""}`;
    if (st.sql !== (e.kind === "websocket" ? `${line} (websocket)` : line)) diff.push("sql");
    if (st.commandTag !== (e.status === null ? null : String(e.status))) diff.push("commandTag");
    if ((st.decision ?? "allowed") !== e.decision) diff.push("decision");
    if (st.durationMs !== e.durationMs) diff.push("durationMs");
    if (st.protocol !== "http") diff.push("protocol");
    return diff;
  }
  const e = body.event;
  if (st.protocol !== "exec") diff.push("protocol");
  if (e.kind === "exec") {
    if (st.sql !== e.command) diff.push("sql");
    if ((st.decision ?? "allowed") !== e.decision) diff.push("decision");
    return diff;
  }
  if (e.kind === "exit" || e.kind === "refused") {
    if (e.kind === "exit") {
      const tag =
        e.code !== null ? `exit ${e.code}` : e.signal !== null ? `signal ${e.signal}` : null;
      if (st.commandTag !== tag) diff.push("commandTag");
    }
    // The command: the latest exec on the same channel before this event.
    let command: string | null = null;
    for (let seq = body.seq - 1; seq >= 1 && command === null; seq--) {
      const b = bySeq.get(seq)?.body;
      if (b?.type === "ssh" && b.event.kind === "exec" && b.event.channel === e.channel)
        command = b.event.command;
    }
    if (command !== null && st.sql !== command) diff.push("sql");
    return diff;
  }
  return ["kind"];
}

function parseBody(text: string): EventBody | null {
  try {
    const v = JSON.parse(text) as EventBody;
    return typeof v === "object" && v !== null ? v : null;
  } catch {
    return null;
  }
}

/** Whether a result is good enough for `gw audit verify` to exit 0. */
export function verified(r: VerifyResult): boolean {
  return r.status === "intact" || r.status === "open" || r.status === "pruned";
}
