import { connect as netConnect, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { Backend, Frontend, SqlState, StartupCode } from "./codes.js";
import { FramingError, MessageFramer, RETRY } from "./framing.js";
import { PgWireError, internalWireError } from "./pg-wire-error.js";
import { OutputBatch } from "./output-batch.js";
import type { ResultMasking } from "./result-masking.js";
import { MaskingError } from "../../policy/masking/index.js";
import { StatementTracker, type CompletedStatement } from "./statement-tracker.js";
import type { CancelRegistry } from "./cancel-registry.js";
import { openUpstream, type UpstreamTarget } from "./upstream.js";
import {
  authenticationOk,
  backendKeyData,
  cancelRequest,
  cstr,
  errorResponse,
  noticeResponse,
  readCString,
  readNoticeFields,
  readStartupParams,
  readyForQuery,
  typed,
} from "./wire.js";

/**
 * One client session: the PostgreSQL protocol terminated on the client side of the tunnel and
 * re-originated to the target with the broker's credentials.
 *
 * States: startup (SSL/GSS refusals, startup packet or cancel) → connecting (upstream sign-in)
 * → relaying → closed. Every message in both directions is framed and checked; complete
 * messages are forwarded as the bytes that arrived (no re-encoding), and partial ones wait
 * for their rest, so nothing half-parsed reaches the target.
 */

/** The client side of the session, whatever carries it (a tunnel stream, a socket in tests). */
export interface ClientChannel {
  send(data: Buffer): void;
  /** True when the channel buffers too much; the session pauses the target until `onDrain`. */
  readonly congested: boolean;
  onDrain(cb: () => void): void;
  pause(): void;
  resume(): void;
  close(): void;
  readonly remoteAddress: string | null;
}

export type EndReason =
  | "client_closed"
  | "upstream_closed"
  | "upstream_error"
  | "protocol_error"
  | "auth_expired"
  | "broker_shutdown"
  | "recording_failed";

export interface SessionHooks {
  /** The client's startup is known and the target session is open. Must make the session durable. */
  onStart(info: { applicationName: string | null; startup: Map<string, string> }): Promise<void>;
  /** A statement finished. A rejected promise (recording failed) closes the session. */
  onStatement(s: CompletedStatement): Promise<void> | void;
  onEnd(info: {
    reason: EndReason;
    detail: string | null;
    bytesIn: number;
    bytesOut: number;
    statements: number;
  }): void;
  /**
   * A statement is about to go to the target. A returned promise makes it wait (audit strict:
   * its start must be on disk first); a rejection means it cannot be recorded: it does not run
   * and the session ends.
   */
  beforeStatement?(info: { sql: string; protocol: "simple" | "extended" }): Promise<void> | void;
  /** Internal errors go to the broker log, never to the client. */
  log(level: "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>): void;
}

export interface SessionOptions {
  target: UpstreamTarget;
  ownerOid: string;
  maxMessageBytes: number;
  maxStartupBytes: number;
  cancels: CancelRegistry;
  hooks: SessionHooks;
  /** True once the identity's sign-in has lapsed: the next client message ends the session. */
  signInExpired?: () => boolean;
  /** Per-statement decisions; without it every statement is allowed. */
  policy?: SessionPolicy;
  /** Masking of results; without it results go out as the target sent them. */
  masking?: ResultMasking;
}

/**
 * What the session asks of policy. The session knows the protocol (where a statement starts,
 * how to refuse it so the client stays in step); the policy knows what is allowed.
 */
export type Verdict =
  { action: "allow" } | { action: "block"; reason: string } | { action: "hold"; reason: string };

export type HoldOutcome =
  | { action: "allow"; approvalId?: string }
  | { action: "deny"; reason: string; approvalId?: string };

export interface SessionPolicy {
  /** The client's startup is known; says whether the session runs read-only. */
  begin?(applicationName: string | null): { readOnly: boolean };
  /** Synchronous: classification is cached by text. */
  decide(sql: string): Verdict;
  /**
   * A named Parse that was not blocked reached the target: SQL `EXECUTE name` can run that
   * statement too (one namespace on the server), so the policy must know what it runs.
   */
  parsed?(name: string, sql: string): void;
  /** Fast-path function calls carry only an oid. */
  decideFunctionCall(oid: number): Verdict;
  /**
   * Waits for a human on a held statement. `notify` shows the client a notice while it waits;
   * the signal aborts when the requester goes away.
   */
  hold(sql: string, notify: (text: string) => void, signal: AbortSignal): Promise<HoldOutcome>;
}

/** The error a refused statement gets; 42501 like PostgreSQL's own permission errors. */
function refusalError(message: string): Buffer {
  return errorResponse({ severity: "ERROR", code: SqlState.insufficientPrivilege, message });
}

const ALLOW: Verdict = { action: "allow" };
interface Decided {
  v: Verdict;
  sql: string;
}
const ALLOWED: Decided = { v: ALLOW, sql: "" };
const STRICTNESS: Record<Verdict["action"], number> = { allow: 0, hold: 1, block: 2 };
/** Previews are for people replaying a session: a few rows are enough. */
const PREVIEW_ROWS = 20;
const PREVIEW_BYTES = 16 * 1024;

/** A statement's start could not be recorded (after its approval): it must not run. */
class RecordingFailure extends Error {
  constructor(override readonly cause: unknown) {
    super("recording failed");
  }
}

const SYNC = Buffer.from([0x53, 0, 0, 0, 4]);
const DESCRIBE_PORTAL = Buffer.from("P");
const EMPTY = Buffer.alloc(0);

/** What a client sees when its token lapsed and no fresh one arrived. */
export function signInExpiredError(): PgWireError {
  return new PgWireError(
    SqlState.invalidAuthorization,
    "gw: your sign-in expired; run `gw login`",
    {
      hint: "gw connect refreshes tokens by itself while it can; it could not, so sign in again and reconnect.",
    },
  );
}

type State = "startup" | "connecting" | "relaying" | "closed";

/** Startup parameters a client may not choose: the broker decides who and where. */
const RESERVED_PARAMS = new Set(["user", "database", "replication"]);

/** Startup settings a client keeps when a policy watches its SQL: none changes how SQL lexes. */
const SAFE_PARAMS_UNDER_POLICY = new Set([
  "application_name",
  "datestyle",
  "timezone",
  "intervalstyle",
  "extra_float_digits",
  "search_path",
  "statement_timeout",
  "lock_timeout",
  "idle_in_transaction_session_timeout",
]);

/** PostgreSQL's MaxAllocSize (1 GiB - 1) plus the length word: the largest message a target sends. */
const TARGET_MESSAGE_MAX = 0x3fffffff + 4;

/** What a client may queue behind a held statement before it is no longer read. */
const HOLD_QUEUE_BYTES = 1 << 20;

export class PostgresSession {
  private state: State = "startup";
  private readonly clientFramer: MessageFramer;
  private readonly upstreamFramer: MessageFramer;
  /** A TCP or TLS socket, or a stream through an outbound agent. */
  private upstream: Duplex | null = null;
  private readonly pendingClient: Buffer[] = [];
  private readonly tracker: StatementTracker;
  private cancelKey: { pid: number; secret: number } | null = null;
  /** The target's own backend pid, which clients never see (they get cancelKey.pid). */
  private upstreamPid = 0;
  private bytesIn = 0;
  private bytesOut = 0;
  private statements = 0;
  private endInfo: { reason: EndReason; detail: string | null } | null = null;
  /**
   * Decisions that follow named statements and portals from Parse to Bind to Execute, with the
   * text they were made on (a hold asks about that text).
   */
  private readonly statementVerdicts = new Map<string, Decided>();
  private readonly portalVerdicts = new Map<string, Decided>();
  /** After a refusal in an extended batch, the rest of the batch is dropped up to Sync. */
  private discardError: Buffer | null = null;
  /** A held statement waits for a human; the client's later bytes wait behind it. */
  private holding: AbortController | null = null;
  /** Bytes the client sent behind the held statement. */
  private heldBytes = 0;
  /** The first rows of the current statement's result as the client got them (for replay). */
  private previewColumns: string[] | null = null;
  private previewRows: (string | null)[][] = [];
  private previewBytes = 0;
  private previewTruncated = false;
  /** Under policy, the settings the broker's parser relies on; read-only sessions add theirs. */
  private readOnlySession = false;
  /** Masking waits for the catalog; the target's later bytes wait behind it. */
  private upstreamWaiting: Buffer[] | null = null;
  /** What the current client chunk becomes upstream, and vice versa. */
  private readonly toUpstream = new OutputBatch();
  private readonly toClient = new OutputBatch();

  constructor(
    private readonly client: ClientChannel,
    private readonly opts: SessionOptions,
  ) {
    this.clientFramer = new MessageFramer(opts.maxMessageBytes, {
      startup: true,
      maxStartupBytes: opts.maxStartupBytes,
    });
    // maxMessageBytes limits what clients send. The target's answers (a wide row, say) may be
    // bigger; PostgreSQL builds no message over 1 GiB, so anything longer is garbage.
    this.upstreamFramer = new MessageFramer(Math.max(opts.maxMessageBytes, TARGET_MESSAGE_MAX));
    this.tracker = new StatementTracker((s) => this.statementDone(s));
  }

  /** Bytes from the client. */
  onClientData(chunk: Buffer): void {
    if (this.state === "closed") return;
    this.bytesIn += chunk.length;
    if (this.state === "connecting" || this.holding) {
      this.pendingClient.push(chunk);
      // A held statement can wait for minutes. The client is still read, so that one that goes
      // away is noticed (its request is cancelled); only one that queues a lot is paused.
      if (this.holding && (this.heldBytes += chunk.length) > HOLD_QUEUE_BYTES) this.client.pause();
      return;
    }
    if (this.opts.signInExpired?.()) {
      this.terminate("auth_expired", signInExpiredError());
      return;
    }
    try {
      if (this.state === "startup") this.clientFramer.push(chunk, this.onStartupMessage);
      else this.relayFromClient(chunk);
    } catch (err) {
      this.fail(err);
    }
  }

  onClientClosed(): void {
    this.end("client_closed", null);
  }

  /** Ends the session with a message to the client (token expiry, broker shutdown). */
  terminate(reason: EndReason, err: PgWireError): void {
    if (this.state === "closed") return;
    this.client.send(err.toBuffer());
    this.end(reason, err.message);
  }

  // --- startup -------------------------------------------------------------------------

  private readonly onStartupMessage = (
    _type: number,
    buf: Buffer,
    start: number,
    end: number,
  ): boolean => {
    const code = buf.readInt32BE(start + 4);
    switch (code) {
      case StartupCode.sslRequest:
      case StartupCode.gssEncRequest:
        // The local hop is loopback and the tunnel is the encrypted part.
        this.client.send(Buffer.from("N"));
        this.clientFramer.expectStartup(true);
        return true;
      case StartupCode.cancelRequest:
        if (end - start !== 16)
          throw new PgWireError(SqlState.protocolViolation, "gw: malformed cancel request");
        this.forwardCancel(buf.readInt32BE(start + 8), buf.readInt32BE(start + 12));
        return false;
      case StartupCode.protocol3: {
        let params: Map<string, string>;
        try {
          params = readStartupParams(buf, start, end);
        } catch {
          throw new PgWireError(SqlState.protocolViolation, "gw: malformed startup packet");
        }
        const repl = params.get("replication");
        if (repl !== undefined && !/^(false|off|no|0)$/i.test(repl)) {
          throw new PgWireError(
            SqlState.featureNotSupported,
            "gw: replication connections are not allowed through gw",
          );
        }
        // Bytes behind the startup packet stay in the framer (returning false keeps them) and
        // are relayed once the target session is open; they must not be queued a second time.
        this.connect(params);
        return false;
      }
      default: {
        const major = code >> 16;
        throw new PgWireError(
          SqlState.protocolViolation,
          major === 3 || major === 2
            ? `gw: unsupported frontend protocol ${major}.${code & 0xffff}; gw speaks 3.0`
            : "gw: this port speaks the PostgreSQL protocol; the bytes received are not a PostgreSQL startup packet",
        );
      }
    }
  };

  private connect(params: Map<string, string>): void {
    this.state = "connecting";
    const applicationName = params.get("application_name") ?? null;
    const forward = this.upstreamParams(params, applicationName);
    const upstreamP = openUpstream(this.opts.target, forward);
    const startP = this.opts.hooks.onStart({ applicationName, startup: params });
    Promise.all([upstreamP, startP]).then(
      ([up]) => {
        if (this.state === "closed") {
          up.socket.destroy();
          return;
        }
        if (up.socket.destroyed) {
          // Lost while the session start was being recorded.
          this.fail(
            new PgWireError(
              SqlState.connectionFailure,
              `gw: lost the connection to the target of ${this.opts.target.name}`,
            ),
            "upstream_error",
          );
          return;
        }
        this.upstream = up.socket;
        this.attachUpstream(up.socket);
        if (up.backendKey) {
          this.upstreamPid = up.backendKey.pid;
          this.cancelKey = this.opts.cancels.register({
            host: this.opts.target.host,
            port: this.opts.target.port,
            pid: up.backendKey.pid,
            secret: up.backendKey.secret,
            ownerOid: this.opts.ownerOid,
            connection: this.opts.target.name,
            dial: this.opts.target.dial,
          });
        }
        if (this.opts.masking) {
          for (const m of up.parameterMessages)
            this.opts.masking.onBackend(Backend.parameterStatus, m, 0, m.length);
        }
        const hello = [authenticationOk(), ...up.parameterMessages];
        if (this.cancelKey) hello.push(backendKeyData(this.cancelKey.pid, this.cancelKey.secret));
        hello.push(readyForQuery("I"));
        const helloBuf = Buffer.concat(hello);
        this.bytesOut += helloBuf.length;
        this.client.send(helloBuf);
        this.state = "relaying";
        if (up.leftover) this.onUpstreamData(up.leftover);
        // openUpstream paused the socket; what arrived since comes after the leftover.
        up.socket.resume();
        const queued = this.pendingClient.splice(0);
        // First what the client pipelined right behind its startup packet, then the rest.
        if (this.clientFramer.buffered > 0) queued.unshift(Buffer.alloc(0));
        for (const chunk of queued) {
          if (this.state !== "relaying") break;
          try {
            this.relayFromClient(chunk);
          } catch (err) {
            this.fail(err);
          }
        }
      },
      (err: unknown) => {
        upstreamP.then(
          (up) => up.socket.destroy(),
          () => undefined,
        );
        this.fail(err, "upstream_error");
      },
    );
  }

  /**
   * The startup parameters the target gets. Without policy: the client's, less who and where.
   * With policy, the broker's parser must read SQL exactly as the target will, so settings that
   * change how SQL is lexed are fixed, and `options` (any -c setting) is not passed on; a
   * read-only session starts with default_transaction_read_only on.
   */
  private upstreamParams(
    params: Map<string, string>,
    applicationName: string | null,
  ): Record<string, string> {
    const out: Record<string, string> = {};
    if (!this.opts.policy) {
      for (const [k, v] of params) if (!RESERVED_PARAMS.has(k)) out[k] = v;
      return out;
    }
    for (const [k, v] of params) if (SAFE_PARAMS_UNDER_POLICY.has(k.toLowerCase())) out[k] = v;
    out["client_encoding"] = "UTF8";
    out["standard_conforming_strings"] = "on";
    const { readOnly } = this.opts.policy.begin?.(applicationName) ?? { readOnly: false };
    if (readOnly) out["default_transaction_read_only"] = "on";
    this.readOnlySession = readOnly;
    return out;
  }

  private forwardCancel(pid: number, secret: number): void {
    const t = this.opts.cancels.lookup(pid, secret);
    // Like PostgreSQL, say nothing either way: a cancel request gets no answer.
    if (t && t.ownerOid === this.opts.ownerOid && t.connection === this.opts.target.name) {
      const failed = (err: Error) =>
        this.opts.hooks.log("warn", "cancel request to target failed", { error: err.message });
      if (t.dial) {
        // Behind an agent, the cancel goes the way the session went.
        t.dial(t.host, t.port).then((s) => {
          s.on("error", failed);
          s.end(cancelRequest(t.pid, t.secret));
        }, failed);
      } else {
        const s = netConnect({ host: t.host, port: t.port }, () =>
          s.end(cancelRequest(t.pid, t.secret)),
        );
        s.on("error", failed);
        s.setTimeout(5000, () => s.destroy());
      }
    } else {
      this.opts.hooks.log(
        "warn",
        "cancel request with an unknown key or another identity's key was dropped",
      );
    }
    this.state = "closed";
    this.client.close();
  }

  // --- relaying ------------------------------------------------------------------------

  private attachUpstream(up: Duplex): void {
    up.on("data", (chunk: Buffer) => this.onUpstreamData(chunk));
    up.on("drain", () => this.client.resume());
    up.on("error", (err) => {
      if (this.state === "closed") return;
      this.opts.hooks.log("warn", "target connection error", { error: err.message });
      this.fail(
        new PgWireError(
          SqlState.connectionFailure,
          `gw: lost the connection to the target of ${this.opts.target.name}`,
        ),
        "upstream_error",
      );
    });
    up.on("close", () => {
      if (this.state === "closed") return;
      this.fail(
        new PgWireError(
          SqlState.adminShutdown,
          `gw: the target of ${this.opts.target.name} closed the session`,
        ),
        "upstream_closed",
      );
    });
    this.client.onDrain(() => up.resume());
  }

  private relayFromClient(chunk: Buffer, keepPending = false): void {
    if (!keepPending) this.toUpstream.reset();
    this.clientFramer.push(chunk, this.onClientMessage);
    this.toUpstream.flush((b) => {
      if (!this.upstream!.write(b)) this.client.pause();
    });
  }

  private readonly onClientMessage = (
    type: number,
    buf: Buffer,
    start: number,
    end: number,
  ): boolean => {
    if (this.discardError !== null) {
      // The rest of a refused extended batch: nothing reaches the target until Sync, which
      // does, so the target answers ReadyForQuery and the client gets the error before it.
      if (type !== Frontend.sync) return true;
      this.tracker.sync(this.discardError);
      this.opts.masking?.onSync();
      this.discardError = null;
      this.toUpstream.forward(buf, start, end);
      return true;
    }
    switch (type) {
      case Frontend.query: {
        const sql = readCString(buf, start + 5, end)[0];
        const v = this.decide(sql);
        if (v.action === "block") {
          this.refuseSimple(sql, "blocked", v.reason);
          return true;
        }
        if (v.action === "hold") return this.startHold(buf, start, end, sql, "simple");
        const gate = this.recordStart(sql, "simple");
        if (gate) return this.startHold(buf, start, end, sql, "simple", undefined, gate);
        this.tracker.query(sql);
        this.opts.masking?.onQuery(sql);
        break;
      }
      case Frontend.parse: {
        const [name, p] = readCString(buf, start + 5, end);
        const sql = readCString(buf, p, end)[0];
        const v = this.decide(sql);
        if (v.action === "block") {
          this.refuseExtended(sql, "blocked", v.reason);
          return true;
        }
        // A named statement is not replaced by another Parse of its name unless it was closed
        // first, and a Close after an error is skipped by the target: a name's decision never
        // gets less strict, or a refused Parse could stand in for a statement held earlier.
        const prev = name === "" ? undefined : this.statementVerdicts.get(name);
        this.statementVerdicts.set(
          name,
          prev && STRICTNESS[prev.v.action] >= STRICTNESS[v.action] ? prev : { v, sql },
        );
        if (name !== "") this.opts.policy?.parsed?.(name, sql);
        this.tracker.parse(name, sql);
        break;
      }
      case Frontend.bind: {
        const [portal, p] = readCString(buf, start + 5, end);
        const stmt = readCString(buf, p, end)[0];
        let decided = this.statementVerdicts.get(stmt);
        if (!decided && stmt !== "" && this.opts.policy) {
          // No Parse of it in this session: a statement made with SQL PREPARE, judged by what
          // it runs, as SQL EXECUTE of it is.
          const sql = `EXECUTE "${stmt.replace(/"/g, '""')}"`;
          const v = this.decide(sql);
          if (v.action === "block") {
            this.refuseExtended(sql, "blocked", v.reason);
            return true;
          }
          decided = { v, sql };
          this.tracker.parse(stmt, sql);
        }
        this.portalVerdicts.set(portal, decided ?? ALLOWED);
        this.tracker.bind(portal, stmt);
        this.opts.masking?.onBind(buf, start, end);
        break;
      }
      case Frontend.execute: {
        const portal = readCString(buf, start + 5, end)[0];
        const decided = this.portalVerdicts.get(portal);
        if (decided?.v.action === "hold") {
          return this.startHold(buf, start, end, decided.sql, "extended", portal);
        }
        const text = this.tracker.portalText(portal);
        const gate = this.recordStart(text, "extended");
        if (gate) return this.startHold(buf, start, end, text, "extended", portal, gate);
        this.tracker.execute(portal);
        this.describeForMasking(portal);
        this.opts.masking?.onExecute(portal);
        break;
      }
      case Frontend.sync:
        this.tracker.sync();
        this.opts.masking?.onSync();
        break;
      case Frontend.close: {
        const kind = buf[start + 5] === 0x53 ? "S" : "P";
        const name = readCString(buf, start + 6, end)[0];
        this.tracker.close(kind, name);
        this.opts.masking?.onClose(kind, name);
        break;
      }
      case Frontend.functionCall: {
        const oid = end - start >= 9 ? buf.readInt32BE(start + 5) : 0;
        const v = this.opts.policy?.decideFunctionCall(oid) ?? ALLOW;
        if (v.action !== "allow") {
          this.refuseSimple(
            `-- function call (oid ${oid})`,
            "blocked",
            v.action === "block"
              ? v.reason
              : "gw: fast-path function calls cannot be held for approval",
          );
          return true;
        }
        const gate = this.recordStart(`-- function call (oid ${oid})`, "simple");
        if (gate)
          return this.startHold(
            buf,
            start,
            end,
            `-- function call (oid ${oid})`,
            "function",
            undefined,
            gate,
          );
        this.tracker.functionCall(oid);
        break;
      }
      case Frontend.terminate:
        this.toUpstream.forward(buf, start, end);
        this.toUpstream.flush((b) => this.upstream!.write(b));
        this.end("client_closed", null);
        return false;
      case Frontend.describe:
        this.opts.masking?.onDescribe(
          buf[start + 5] === 0x53 ? "S" : "P",
          readCString(buf, start + 6, end)[0],
        );
        break;
      case Frontend.flush:
      case Frontend.copyData:
      case Frontend.copyDone:
      case Frontend.copyFail:
        break;
      case Frontend.password:
        throw new PgWireError(
          SqlState.protocolViolation,
          "gw: unexpected password message; the tunnel already carries your identity",
        );
      default:
        throw new PgWireError(
          SqlState.protocolViolation,
          `gw: unknown message type 0x${type.toString(16)} from the client`,
        );
    }
    this.toUpstream.forward(buf, start, end);
    return true;
  };

  private onUpstreamData(chunk: Buffer): void {
    if (this.state !== "relaying") return;
    if (this.upstreamWaiting) {
      this.upstreamWaiting.push(chunk);
      return;
    }
    this.toClient.reset();
    try {
      this.upstreamFramer.push(chunk, this.onUpstreamMessage);
    } catch (err) {
      if (err instanceof FramingError) {
        this.opts.hooks.log("error", "malformed message from the target", { error: err.message });
        return this.fail(
          new PgWireError(
            SqlState.protocolViolation,
            "gw: the target sent a malformed message; the session was closed",
          ),
          "upstream_error",
        );
      }
      if (err instanceof MaskingError) {
        // Fail closed: the unmasked value does not go out, and nothing after it either.
        this.opts.hooks.log("error", "masking failed; closing the session", { error: err.message });
        this.toClient.reset();
        return this.fail(
          new PgWireError(
            SqlState.internalError,
            err.message.startsWith("gw:")
              ? err.message
              : "gw: a result could not be masked, so it was withheld and the session closed",
            {
              hint: "Nothing unmasked was sent. Reconnect; if it happens again, tell the broker's operators.",
            },
          ),
          "protocol_error",
        );
      }
      return this.fail(err, "upstream_error");
    }
    this.toClient.flush((b) => {
      this.bytesOut += b.length;
      this.client.send(b);
    });
    if (this.client.congested) this.upstream?.pause();
  }

  private readonly onUpstreamMessage = (
    type: number,
    buf: Buffer,
    start: number,
    end: number,
  ): boolean | typeof RETRY => {
    let replacement: Buffer | null = null;
    if (this.opts.masking) {
      const action = this.opts.masking.onBackend(type, buf, start, end);
      if (action.kind === "wait") {
        this.waitUpstream(action.until);
        return RETRY;
      }
      if (action.kind === "replace") replacement = action.bytes;
    }
    switch (type) {
      case Backend.commandComplete:
        this.tracker.commandComplete(readCString(buf, start + 5, end)[0]);
        break;
      case Backend.emptyQueryResponse:
        this.tracker.emptyQuery();
        break;
      case Backend.portalSuspended:
        this.tracker.portalSuspended();
        break;
      case Backend.errorResponse: {
        const f = readNoticeFields(buf, start, end);
        // Errors quote data; the recording (which the requester may read) gets it masked too.
        const message = f.get("M") ?? "";
        this.tracker.error(
          f.get("C") ?? "XX000",
          this.opts.masking ? this.opts.masking.maskMessage(message) : message,
        );
        break;
      }
      case Backend.notificationResponse:
        // Clients recognise their own notifications by comparing the sender's pid with the
        // pid they were given; keep that true through the broker.
        if (this.cancelKey && end - start >= 9 && buf.readInt32BE(start + 5) === this.upstreamPid) {
          buf.writeInt32BE(this.cancelKey.pid, start + 5);
        }
        break;
      case Backend.readyForQuery: {
        const inject = this.tracker.readyForQuery();
        if (inject) this.toClient.insert(inject);
        break;
      }
      case Backend.parameterStatus:
        if (this.opts.policy) this.checkPinnedSetting(buf, start, end);
        break;
      case Backend.authentication:
      case Backend.backendKeyData:
        // Mid-session these would leak or replace the broker's own keys.
        throw new PgWireError(
          SqlState.protocolViolation,
          "gw: the target sent an unexpected authentication message",
        );
      default:
        break;
    }
    if (replacement) this.toClient.insert(replacement);
    else this.toClient.forward(buf, start, end);
    if (type === Backend.dataRow) this.previewRow(replacement ?? buf.subarray(start, end));
    else if (type === Backend.rowDescription) this.previewDescribe(buf, start, end);
    return true;
  };

  /** Pauses the target's stream until masking can go on (a catalog reload), then resumes it. */
  private waitUpstream(until: Promise<void>): void {
    this.upstreamWaiting = [];
    this.upstream?.pause();
    until.then(
      () => {
        const queued = this.upstreamWaiting ?? [];
        this.upstreamWaiting = null;
        if (this.state !== "relaying") return;
        this.upstream?.resume();
        this.onUpstreamData(EMPTY);
        for (const c of queued) this.onUpstreamData(c);
      },
      (err: unknown) => {
        this.upstreamWaiting = null;
        this.opts.hooks.log("error", "masking could not load the catalog", { error: String(err) });
        this.fail(
          new PgWireError(
            SqlState.internalError,
            "gw: the broker could not read the target's catalog to mask this result, so it was withheld",
            {
              hint: "Nothing unmasked was sent. Reconnect; if it happens again, tell the broker's operators.",
            },
          ),
          "protocol_error",
        );
      },
    );
  }

  /**
   * Rows of a portal the client did not describe are masked by the target's own description
   * of that portal, asked for right before its Execute (masking keeps the answer to itself).
   */
  private describeForMasking(portal: string): void {
    if (this.opts.masking?.describeBeforeExecute(portal))
      this.toUpstream.insert(
        typed(Frontend.describe, Buffer.concat([DESCRIBE_PORTAL, cstr(portal)])),
      );
  }

  // --- recording before running ----------------------------------------------------------

  /** Asks the recorder to write a statement's start; a promise means: wait for it. */
  private recordStart(
    sql: string,
    protocol: "simple" | "extended" | "function",
  ): Promise<void> | null {
    const hook = this.opts.hooks.beforeStatement;
    if (!hook) return null;
    let r: Promise<void> | void;
    try {
      r = hook({ sql, protocol: protocol === "extended" ? "extended" : "simple" });
    } catch (err) {
      return Promise.reject(err);
    }
    return r ?? null;
  }

  // --- result previews -------------------------------------------------------------------

  private previewDescribe(buf: Buffer, start: number, end: number): void {
    const n = buf.readInt16BE(start + 5);
    const cols: string[] = [];
    let pos = start + 7;
    for (let i = 0; i < n && pos < end; i++) {
      const [name, next] = readCString(buf, pos, end);
      cols.push(name);
      pos = next + 18;
    }
    this.previewColumns = cols;
  }

  private previewRow(msg: Buffer): void {
    if (this.previewTruncated) return;
    if (this.previewRows.length >= PREVIEW_ROWS || this.previewBytes >= PREVIEW_BYTES) {
      this.previewTruncated = true;
      return;
    }
    const n = msg.readInt16BE(5);
    const row: (string | null)[] = [];
    let pos = 7;
    for (let i = 0; i < n && pos + 4 <= msg.length; i++) {
      const len = msg.readInt32BE(pos);
      pos += 4;
      if (len < 0) row.push(null);
      else {
        row.push(msg.toString("utf8", pos, pos + Math.min(len, 1024)));
        pos += len;
      }
    }
    this.previewBytes += msg.length;
    this.previewRows.push(row);
  }

  private takePreview(): CompletedStatement["preview"] {
    if (this.previewRows.length === 0 && this.previewColumns === null) return undefined;
    const p = {
      columns: this.previewColumns ?? [],
      rows: this.previewRows,
      truncated: this.previewTruncated,
    };
    this.previewColumns = null;
    this.previewRows = [];
    this.previewBytes = 0;
    this.previewTruncated = false;
    return p;
  }

  // --- policy ----------------------------------------------------------------------------

  /**
   * The target reports these settings whenever they change (PostgreSQL 14+ reports
   * default_transaction_read_only too). A change the broker did not allow (a function that
   * flips them, say) would let the target read SQL differently from the broker's parser, or
   * leave read-only mode: the session ends.
   */
  private checkPinnedSetting(buf: Buffer, start: number, end: number): void {
    const [name, p] = readCString(buf, start + 5, end);
    const value = readCString(buf, p, end)[0];
    const pinned =
      name === "standard_conforming_strings"
        ? "on"
        : name === "client_encoding"
          ? "UTF8"
          : name === "default_transaction_read_only" && this.readOnlySession
            ? "on"
            : null;
    if (pinned !== null && value !== pinned) {
      throw new PgWireError(
        SqlState.insufficientPrivilege,
        `gw: the target's ${name} became ${value}, which this connection's policy does not allow; the session was closed`,
      );
    }
  }

  private decide(sql: string): Verdict {
    return this.opts.policy ? this.opts.policy.decide(sql) : ALLOW;
  }

  /** A refused simple Query becomes a Sync: the target answers ReadyForQuery, we add the error. */
  private refuseSimple(
    sql: string,
    decision: "blocked" | "denied",
    reason: string,
    approvalId?: string,
  ): void {
    this.tracker.refused(
      sql,
      "simple",
      decision,
      SqlState.insufficientPrivilege,
      reason,
      approvalId,
    );
    this.tracker.sync(refusalError(reason));
    this.opts.masking?.onSync();
    this.toUpstream.insert(SYNC);
  }

  /** A refused Parse or Execute: drop the rest of the batch; its Sync carries the error. */
  private refuseExtended(
    sql: string,
    decision: "blocked" | "denied",
    reason: string,
    approvalId?: string,
  ): void {
    this.tracker.refused(
      sql,
      "extended",
      decision,
      SqlState.insufficientPrivilege,
      reason,
      approvalId,
    );
    this.discardError = refusalError(reason);
  }

  /**
   * Holds the client's stream at this message until a human decides. What came before it has
   * gone upstream; what comes after waits (the framer keeps it, later chunks queue).
   */
  private startHold(
    buf: Buffer,
    start: number,
    end: number,
    sql: string,
    kind: "simple" | "extended" | "function",
    portal?: string,
    /** Not a person's decision: the statement waits for its start to be recorded. */
    recording?: Promise<void>,
  ): boolean {
    this.toUpstream.flush((b) => this.upstream!.write(b));
    const message = Buffer.from(buf.subarray(start, end));
    const ctl = new AbortController();
    this.holding = ctl;
    this.heldBytes = 0;
    const notify = (text: string) => {
      if (this.state === "relaying")
        this.client.send(noticeResponse({ code: "01000", message: text, severity: "NOTICE" }));
    };
    const wait: Promise<HoldOutcome> = recording
      ? recording.then((): HoldOutcome => ({ action: "allow" }))
      : this.opts.policy!.hold(sql, notify, ctl.signal).then(async (outcome) => {
          // An approved statement is recorded before it runs, like any other.
          if (outcome.action !== "allow" || kind === "function") return outcome;
          const gate = this.recordStart(sql, kind);
          if (gate) await gate.catch((e: unknown) => Promise.reject(new RecordingFailure(e)));
          return outcome;
        });
    const decision = recording ? "allowed" : "approved";
    wait.then(
      (outcome) => this.endHold(ctl, outcome, message, sql, kind, portal, decision),
      (err: unknown) => {
        if (recording || err instanceof RecordingFailure) {
          // Nothing unrecorded runs: the statement is dropped and the session ends.
          if (this.holding === ctl) this.holding = null;
          return this.recordingFailed(err instanceof RecordingFailure ? err.cause : err);
        }
        this.opts.hooks.log("error", "holding a statement failed", { error: String(err) });
        this.endHold(
          ctl,
          {
            action: "deny",
            reason: "gw: the approval could not be recorded, so the statement was not run",
          },
          message,
          sql,
          kind,
          portal,
        );
      },
    );
    return false;
  }

  private endHold(
    ctl: AbortController,
    outcome: HoldOutcome,
    message: Buffer,
    sql: string,
    kind: "simple" | "extended" | "function",
    portal?: string,
    decision: "allowed" | "approved" = "approved",
  ): void {
    if (this.holding !== ctl || this.state !== "relaying") return;
    this.holding = null;
    this.toUpstream.reset();
    if (outcome.action === "allow") {
      if (kind === "function") {
        this.tracker.query(sql, decision);
      } else if (kind === "simple") {
        this.tracker.query(sql, decision, outcome.approvalId);
        this.opts.masking?.onQuery(sql);
      } else {
        this.tracker.execute(portal ?? "", decision, outcome.approvalId);
        this.describeForMasking(portal ?? "");
        this.opts.masking?.onExecute(portal ?? "");
      }
      this.toUpstream.insert(message);
    } else if (kind === "extended") {
      this.refuseExtended(sql, "denied", outcome.reason, outcome.approvalId);
    } else {
      this.refuseSimple(sql, "denied", outcome.reason, outcome.approvalId);
    }
    // Go on with what queued behind the held message, in order.
    this.client.resume();
    const queued = this.pendingClient.splice(0);
    try {
      this.relayFromClient(EMPTY, true);
      for (const chunk of queued) {
        if (this.state !== "relaying") break;
        if (this.holding) {
          this.pendingClient.push(chunk);
          continue;
        }
        this.relayFromClient(chunk);
      }
    } catch (err) {
      this.fail(err);
    }
  }

  // --- recording and ending --------------------------------------------------------------

  private statementDone(s: CompletedStatement): void {
    this.statements++;
    // Refused statements never ran: the rows being collected belong to one that did.
    if (s.decision !== "blocked" && s.decision !== "denied") {
      const preview = this.takePreview();
      if (preview) s.preview = preview;
    }
    let r: Promise<void> | void;
    try {
      r = this.opts.hooks.onStatement(s);
    } catch (err) {
      return this.recordingFailed(err);
    }
    if (r) r.catch((err: unknown) => this.recordingFailed(err));
  }

  private recordingFailed(err: unknown): void {
    this.opts.hooks.log("error", "recording a statement failed; closing the session", {
      error: String(err),
    });
    this.fail(
      new PgWireError(
        SqlState.systemError,
        "gw: the broker could not record this session, so it was closed (nothing runs unrecorded)",
        {
          hint: "Reconnect; if it happens again, tell the broker's operators (the store is failing).",
        },
      ),
      "recording_failed",
    );
  }

  private fail(err: unknown, reason: EndReason = "protocol_error"): void {
    if (this.state === "closed") return;
    let wire: PgWireError;
    if (err instanceof PgWireError) wire = err;
    else if (err instanceof FramingError) {
      wire = new PgWireError(
        err.kind === "too_large" ? SqlState.programLimitExceeded : SqlState.protocolViolation,
        `gw: ${err.message}; the session was closed`,
      );
    } else if (err instanceof RangeError) {
      wire = new PgWireError(
        SqlState.protocolViolation,
        "gw: malformed message from the client; the session was closed",
      );
    } else {
      this.opts.hooks.log("error", "session failed", {
        error: err instanceof Error ? (err.stack ?? err.message) : String(err),
      });
      wire = internalWireError();
    }
    try {
      this.client.send(wire.toBuffer());
    } catch {
      // The client may be gone already.
    }
    this.end(reason, wire.message);
  }

  private end(reason: EndReason, detail: string | null): void {
    if (this.state === "closed") return;
    this.state = "closed";
    this.endInfo = { reason, detail };
    if (this.cancelKey) this.opts.cancels.unregister(this.cancelKey);
    // A held statement whose requester is gone must not wait for (or get) a decision.
    this.holding?.abort();
    this.holding = null;
    if (this.upstream) {
      this.upstream.end();
      (this.upstream as Partial<Socket>).destroySoon?.();
    }
    this.client.close();
    this.opts.hooks.onEnd({
      reason,
      detail,
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
      statements: this.statements,
    });
  }

  get ended(): { reason: EndReason; detail: string | null } | null {
    return this.endInfo;
  }
}
