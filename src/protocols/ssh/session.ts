import type { Socket } from "node:net";
import type { Duplex, Writable } from "node:stream";
import type { Dial } from "../../net/dial.js";
import { StringDecoder } from "node:string_decoder";
import ssh2 from "ssh2";
import type {
  AuthContext,
  ClientChannel as SshClientChannel,
  Connection,
  ConnectConfig,
  PseudoTtyInfo,
  ServerChannel,
  Session as SshServerSession,
  TcpipBindInfo,
} from "ssh2";
import { LineMasker, type OutputMask } from "../tcp/masking.js";
import {
  ChannelDuplex,
  elapsedSeconds,
  type ClientChannel,
  type EndReason,
  type SessionEndInfo,
  type SessionLogger,
} from "../tcp/stream.js";
import type { CommandDecision, SshEvent } from "./events.js";
import { loadOrCreateHostKey } from "./host-key.js";
import { KnownHosts } from "./known-hosts.js";
import { DEFAULT_SSH_ACCESS, type SshAccess, type SshCommandPolicy } from "./policy.js";
import { SftpRecorder } from "./sftp-recorder.js";

export type { SshEvent } from "./events.js";

/** The target and the broker's credential for it (secrets already read). */
export interface SshTarget {
  /** The connection name, for messages. */
  name: string;
  host: string;
  port: number;
  user: string;
  privateKey?: string | Buffer | undefined;
  passphrase?: string | undefined;
  password?: string | undefined;
  /** A known_hosts file path (read at each session start) or a parsed one. */
  knownHosts: string | KnownHosts;
  connectTimeoutMs: number;
  /** Reaches the target some other way than a direct connect (an outbound agent). */
  dial?: Dial | undefined;
}

export interface SshSessionHooks {
  /**
   * The client signed in (its SSH user name is recorded, not checked) and the target session
   * is open. Must make the session durable; a rejection closes it before anything runs.
   */
  onStart(info: {
    clientUser: string;
    clientSoftware: string | null;
    target: string;
  }): Promise<void>;
  /** Something to record. A rejected promise (recording failed) closes the session. */
  onEvent(event: SshEvent): Promise<void> | void;
  /** Called once, however the session ended (also when it never started). */
  onEnd(info: SessionEndInfo): void;
}

export interface SshSessionOptions {
  target: SshTarget;
  /** The broker's host key file (created on first use, 0600); or give `hostKey`. */
  hostKeyPath?: string;
  /** The broker's host private key itself (OpenSSH or PEM). */
  hostKey?: string | Buffer;
  hooks: SshSessionHooks;
  /** Exec requests are decided by it; without it every command is allowed. */
  policy?: SshCommandPolicy;
  /** Shell, sftp/scp, port and agent forwarding (default: shell and sftp yes, forwarding no). */
  access?: Partial<SshAccess>;
  /** Masks terminal and command output before it reaches the client and the recording. */
  maskOutput?: OutputMask | null;
  log: SessionLogger;
  /** True once the identity's sign-in lapsed: the session ends at the next client data. */
  signInExpired?: () => boolean;
  /** Output recorded per session, in bytes (default 64 MiB); beyond it output is only relayed. */
  maxRecordedOutputBytes?: number;
}

type Exit = { code: number | null; signal: string | null; dump: boolean; desc: string };

const EMPTY = Buffer.alloc(0);
// ssh2's channel window and packet size, for the agent channel opened by hand (see openAgent).
const MAX_WINDOW = 2 * 1024 * 1024;
const PACKET_SIZE = 32 * 1024;

/**
 * One client session of a `type: ssh` connection. The client's SSH is terminated here (ssh2's
 * server over the tunnel stream, with the broker's host key), any client authentication is
 * accepted (the tunnel already carries the identity), and a second SSH connection goes to the
 * target with the stored credential after its host key is checked against known_hosts.
 * Session channels are relayed one to one (shell with pty, exec, env, signals, window changes,
 * sftp), commands go through policy, output through masking, and what happened is recorded.
 */
export class SshSession {
  private readonly duplex: ChannelDuplex;
  private readonly t0 = performance.now();
  private readonly access: SshAccess;
  private readonly aborts = new AbortController();
  private upstream: InstanceType<typeof ssh2.Client> | null = null;
  private client: Connection | null = null;
  private clientUser = "";
  private clientSoftware: string | null = null;
  private state: "connecting" | "handshake" | "ready" | "closed" = "connecting";
  private started: Promise<boolean> | null = null;
  private failure: string | null = null;
  private nextChannel = 0;
  private events = 0;
  private recordedOutput = 0;
  private early: SshEvent[] | null = [];
  private outputTruncated = false;
  private readonly relays = new Set<ChannelRelay>();

  constructor(
    private readonly channel: ClientChannel,
    readonly opts: SshSessionOptions,
  ) {
    this.access = { ...DEFAULT_SSH_ACCESS, ...opts.access };
    this.duplex = new ChannelDuplex(channel);
    this.duplex.on("error", (err) =>
      this.opts.log.log("debug", "ssh client stream error", { error: err.message }),
    );
    // Until the target answers, the client's bytes wait in the stream (unread).
    void this.start();
  }

  onClientData(buf: Buffer): void {
    if (this.state === "closed") return;
    if (this.opts.signInExpired?.()) {
      this.terminate("auth_expired", "gw: your sign-in expired; run `gw login`");
      return;
    }
    this.duplex.feed(buf);
  }

  onClientClosed(): void {
    this.duplex.clientClosed();
    this.end("client_closed", null);
  }

  /**
   * Ends the session from the broker's side (shutdown, expired sign-in): `message` goes to the
   * stderr of every open channel first.
   */
  terminate(reason: EndReason, message: string): void {
    if (this.state === "closed") return;
    this.opts.log.log("info", "session terminated", { reason });
    for (const r of this.relays) r.tell(message);
    // Let the message out before the disconnect.
    setTimeout(() => this.end(reason, message), 50).unref();
  }

  /** Seconds since the session began. */
  now(): number {
    return elapsedSeconds(this.t0);
  }

  record(e: SshEvent): void {
    // Nothing is written before the session record exists: early events (env, pty) wait.
    if (this.early !== null) {
      this.early.push(e);
      return;
    }
    this.events++;
    let r: Promise<void> | void;
    try {
      r = this.opts.hooks.onEvent(e);
    } catch (err) {
      r = Promise.reject(err);
    }
    if (r && typeof r.then === "function")
      r.then(undefined, (err: unknown) => {
        this.opts.log.log("error", "could not record an ssh event; closing the session", {
          error: String(err),
        });
        this.terminate("recording_failed", "gw: the session could not be recorded; it was closed");
      });
  }

  /**
   * Records `e` and waits until it is durable: what must be on record before it happens (a
   * command, before the target runs it). False when recording failed; the session is ending.
   */
  async recordFirst(e: SshEvent): Promise<boolean> {
    if (this.early !== null || this.state === "closed") return false;
    this.events++;
    try {
      await this.opts.hooks.onEvent(e);
      return (this.state as string) !== "closed"; // it may have closed while waiting
    } catch (err) {
      this.opts.log.log("error", "could not record an ssh command; closing the session", {
        error: String(err),
      });
      this.terminate("recording_failed", "gw: the session could not be recorded; it was closed");
      return false;
    }
  }

  /** Whether `bytes` more output may be recorded; notes (once) when the limit is reached. */
  recordOutput(channel: number, bytes: number): boolean {
    if (this.outputTruncated) return false;
    const limit = this.opts.maxRecordedOutputBytes ?? 64 * 1024 * 1024;
    if (this.recordedOutput + bytes > limit) {
      this.outputTruncated = true;
      this.record({
        kind: "output_truncated",
        t: this.now(),
        channel,
        recordedBytes: this.recordedOutput,
      });
      return false;
    }
    this.recordedOutput += bytes;
    return true;
  }

  get maskOutput(): OutputMask | null {
    return this.opts.maskOutput ?? null;
  }

  get policy(): SshCommandPolicy | undefined {
    return this.opts.policy;
  }

  get permissions(): SshAccess {
    return this.access;
  }

  get signal(): AbortSignal {
    return this.aborts.signal;
  }

  get target(): InstanceType<typeof ssh2.Client> | null {
    return this.upstream;
  }

  /** Resolves true once the session is recorded as started (false: it never will be). */
  whenStarted(): Promise<boolean> {
    return this.started ?? Promise.resolve(false);
  }

  channelId(): number {
    return this.nextChannel++;
  }

  forget(r: ChannelRelay): void {
    this.relays.delete(r);
  }

  // --- setup -----------------------------------------------------------------------------

  private async start(): Promise<void> {
    let hostKey: string | Buffer;
    try {
      hostKey = this.opts.hostKey ?? loadOrCreateHostKey(this.opts.hostKeyPath ?? "").privateKey;
    } catch (err) {
      this.opts.log.log("error", "the broker's ssh host key is unusable", {
        error: err instanceof Error ? err.message : String(err),
      });
      this.end("protocol_error", "no usable ssh host key");
      return;
    }
    try {
      this.upstream = await this.connectUpstream();
    } catch (err) {
      const e = err as Error & { clientMessage?: string };
      this.failure = e.clientMessage ?? e.message;
      this.opts.log.log("warn", "cannot open the ssh target", {
        target: `${this.opts.target.host}:${this.opts.target.port}`,
        error: e.message,
      });
    }
    if (this.state === "closed") {
      this.upstream?.end();
      return;
    }
    this.state = "handshake";
    const t = this.opts.target;
    const banner = this.failure ? `gw: cannot open ${t.name}: ${this.failure}\r\n` : undefined;
    let server: InstanceType<typeof ssh2.Server>;
    try {
      server = new ssh2.Server({ hostKeys: [hostKey], ident: "gw", ...(banner ? { banner } : {}) });
    } catch (err) {
      this.opts.log.log("error", "the broker's ssh host key is unusable", {
        error: err instanceof Error ? err.message : String(err),
      });
      this.end("protocol_error", "no usable ssh host key");
      return;
    }
    server.on(
      "connection",
      (client: Connection, info: { header?: { versions?: { software?: string } } }) => {
        this.clientSoftware = info.header?.versions?.software ?? null;
        this.onClient(client);
      },
    );
    server.injectSocket(this.duplex as unknown as Socket);
    if (this.upstream) {
      this.upstream.on("close", () => this.end("upstream_closed", null));
      this.upstream.on("error", (err: Error) =>
        this.opts.log.log("warn", "ssh target connection error", { error: err.message }),
      );
      this.upstream.on("tcp connection", (info, accept, reject) =>
        this.remoteForwardConnection(info, accept, reject),
      );
    }
  }

  private async connectUpstream(): Promise<InstanceType<typeof ssh2.Client>> {
    const t = this.opts.target;
    if (!t.dial) return this.signInUpstream(null);
    let sock: Duplex;
    try {
      sock = await t.dial(t.host, t.port);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      throw Object.assign(new Error(message), { clientMessage: message });
    }
    return this.signInUpstream(sock);
  }

  private signInUpstream(sock: Duplex | null): Promise<InstanceType<typeof ssh2.Client>> {
    const t = this.opts.target;
    let known: KnownHosts;
    try {
      known = typeof t.knownHosts === "string" ? KnownHosts.fromFile(t.knownHosts) : t.knownHosts;
    } catch (err) {
      return Promise.reject(
        Object.assign(
          new Error(`cannot read known_hosts ${String(t.knownHosts)}: ${(err as Error).message}`),
          { clientMessage: "the broker cannot verify the target (its known_hosts is unreadable)" },
        ),
      );
    }
    return new Promise((resolve, reject) => {
      const c = new ssh2.Client();
      let hostProblem: { message: string; summary: string } | null = null;
      const algorithms = known.algorithms(t.host, t.port);
      const auth: string[] = [];
      if (t.privateKey !== undefined) auth.push("publickey");
      if (t.password !== undefined) auth.push("password");
      const cfg: ConnectConfig = {
        host: t.host,
        port: t.port,
        username: t.user,
        readyTimeout: t.connectTimeoutMs,
        keepaliveInterval: 15_000,
        ident: "gw",
        authHandler: auth as never,
        hostVerifier: (key: Buffer) => {
          const r = known.check(t.host, t.port, key);
          if (!r.ok) hostProblem = { message: r.message, summary: r.summary };
          return r.ok;
        },
        ...(algorithms.length > 0 ? { algorithms: { serverHostKey: algorithms as never } } : {}),
        ...(t.privateKey !== undefined ? { privateKey: t.privateKey } : {}),
        ...(t.passphrase !== undefined ? { passphrase: t.passphrase } : {}),
        ...(t.password !== undefined ? { password: t.password } : {}),
        ...(this.access.agentForwarding ? { agent: new ClientAgent(this) } : {}),
      };
      const fail = (err: Error & { level?: string }) => {
        c.removeAllListeners("ready");
        c.end();
        const problem = hostProblem as { message: string; summary: string } | null;
        if (problem)
          return reject(
            Object.assign(new Error(problem.message), { clientMessage: problem.summary }),
          );
        reject(describeUpstreamError(err, t));
      };
      c.once("ready", () => {
        c.removeListener("error", fail);
        resolve(c);
      });
      c.once("error", fail);
      try {
        c.connect(sock ? { ...cfg, sock: sock as never } : cfg);
      } catch (err) {
        fail(err as Error);
      }
    });
  }

  private onClient(client: Connection): void {
    this.client = client;
    client.on("error", (err: Error) =>
      this.opts.log.log("debug", "ssh client connection error", { error: err.message }),
    );
    client.on("authentication", (ctx: AuthContext) => {
      if (this.failure || !this.upstream) {
        // The banner said why; no method can succeed.
        ctx.reject([]);
        return;
      }
      this.clientUser = ctx.username;
      ctx.accept();
    });
    client.on("ready", () => {
      if (this.state === "closed") return;
      const t = this.opts.target;
      this.started = this.opts.hooks
        .onStart({
          clientUser: this.clientUser,
          clientSoftware: this.clientSoftware,
          target: `${t.user}@${t.host}:${t.port}`,
        })
        .then(
          () => {
            if (this.state === "closed") return false;
            this.state = "ready";
            const early = this.early ?? [];
            this.early = null;
            for (const e of early) this.record(e);
            return true;
          },
          (err: unknown) => {
            this.opts.log.log("error", "could not record the session; closing it", {
              error: String(err),
            });
            this.end("recording_failed", "the session could not be recorded");
            return false;
          },
        );
    });
    client.on("session", (accept, reject) => {
      if (this.state === "closed") return reject();
      const relay = new ChannelRelay(this, accept(), this.channelId());
      this.relays.add(relay);
    });
    client.on("tcpip", (accept, reject, info) => {
      void this.localForward(accept, reject, info);
    });
    client.on("request", (accept, reject, name, info) => {
      void this.globalRequest(
        accept as ((port?: number) => void) | undefined,
        reject,
        name as string,
        info as TcpipBindInfo,
      );
    });
    client.on("openssh.streamlocal", (_accept, reject) => reject());
    client.on("close", () => this.end("client_closed", null));
  }

  // --- port forwarding -------------------------------------------------------------------

  private async localForward(
    accept: () => ServerChannel,
    reject: () => void,
    info: { srcIP: string; srcPort: number; destIP: string; destPort: number },
  ): Promise<void> {
    const base = {
      kind: "forward" as const,
      direction: "local" as const,
      host: info.destIP,
      port: info.destPort,
    };
    if (!(await this.whenStarted()) || !this.upstream) return reject();
    if (!this.access.portForwarding) {
      this.record({ ...base, t: this.now(), decision: "denied" });
      return reject();
    }
    this.upstream.forwardOut(info.srcIP, info.srcPort, info.destIP, info.destPort, (err, up) => {
      if (err) return reject();
      const down = accept();
      pipePair(down, up, (bytesIn, bytesOut) =>
        this.record({ ...base, t: this.now(), decision: "allowed", bytesIn, bytesOut }),
      );
    });
  }

  private async globalRequest(
    accept: ((port?: number) => void) | undefined,
    reject: (() => void) | undefined,
    name: string,
    info: TcpipBindInfo,
  ): Promise<void> {
    const up = this.upstream;
    if (!(await this.whenStarted()) || !up) return reject?.();
    if (name === "tcpip-forward") {
      const base = {
        kind: "forward" as const,
        direction: "remote" as const,
        host: info.bindAddr,
        port: info.bindPort,
      };
      if (!this.access.portForwarding) {
        this.record({ ...base, t: this.now(), decision: "denied" });
        return reject?.();
      }
      up.forwardIn(info.bindAddr, info.bindPort, (err, port) => {
        if (err) return reject?.();
        this.record({ ...base, port: port || info.bindPort, t: this.now(), decision: "allowed" });
        accept?.(port);
      });
      return;
    }
    if (name === "cancel-tcpip-forward" && this.access.portForwarding) {
      up.unforwardIn(info.bindAddr, info.bindPort, (err) => (err ? reject?.() : accept?.()));
      return;
    }
    reject?.();
  }

  private remoteForwardConnection(
    info: { destIP: string; destPort: number; srcIP: string; srcPort: number },
    accept: () => SshClientChannel,
    reject: () => void,
  ): void {
    const client = this.client;
    if (!this.access.portForwarding || !client || this.state !== "ready") return reject();
    client.forwardOut(info.destIP, info.destPort, info.srcIP, info.srcPort, (err, down) => {
      if (err) return reject();
      const up = accept();
      pipePair(down, up, (bytesIn, bytesOut) =>
        this.record({
          kind: "forward",
          direction: "remote",
          host: info.destIP,
          port: info.destPort,
          t: this.now(),
          decision: "allowed",
          bytesIn,
          bytesOut,
        }),
      );
    });
  }

  /**
   * Opens an auth-agent@openssh.com channel to the client (agent forwarding). ssh2's server
   * has no public call for it, so this does what its forwardOut does for other channel types.
   */
  openAgent(cb: (err: Error | undefined, stream?: ServerChannel) => void): void {
    const client = this.client as unknown as {
      _chanMgr?: { add(w: unknown): number };
      _protocol?: { openssh_authAgent(id: number, window: number, packet: number): void };
    } | null;
    if (!client?._chanMgr || !client._protocol) return cb(new Error("no client connection"));
    const wrapper = (err: Error | undefined, stream: ServerChannel) => cb(err, stream);
    (wrapper as unknown as { type: string }).type = "auth-agent@openssh.com";
    const id = client._chanMgr.add(wrapper);
    if (id === -1) return cb(new Error("no free channels"));
    client._protocol.openssh_authAgent(id, MAX_WINDOW, PACKET_SIZE);
  }

  // --- end -------------------------------------------------------------------------------

  private end(reason: EndReason, detail: string | null): void {
    if (this.state === "closed") return;
    this.state = "closed";
    // A client that leaves after being told the target cannot be opened: that is why it ended.
    if (this.failure && reason === "client_closed") {
      reason = "upstream_error";
      detail = this.failure;
    }
    this.aborts.abort(new Error(detail ?? reason));
    for (const r of this.relays) r.closeNow();
    this.relays.clear();
    try {
      this.upstream?.end();
    } catch {
      // already gone
    }
    try {
      this.client?.end();
    } catch {
      // already gone
    }
    if (!this.duplex.isClientGone) {
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
}

/** An ssh2 agent whose only use is forwarding: each request opens a channel to the client. */
class ClientAgent extends ssh2.BaseAgent {
  constructor(private readonly session: SshSession) {
    super();
  }
  getIdentities(cb: (err: Error) => void): void {
    cb(new Error("the forwarded agent is not used for the broker's own sign-in"));
  }
  sign(_k: unknown, _d: Buffer, o: unknown, cb?: (err: Error) => void): void {
    const done = (typeof o === "function" ? o : cb) as (err: Error) => void;
    done(new Error("the forwarded agent is not used for the broker's own sign-in"));
  }
  override getStream(cb: (err?: Error | null, stream?: ServerChannel) => void): void {
    this.session.openAgent((err, stream) => cb(err ?? null, stream));
  }
}

/** Relays a forwarded connection both ways; `done` gets the byte counts when it closes. */
function pipePair(
  down: ServerChannel,
  up: SshClientChannel,
  done: (bytesIn: number, bytesOut: number) => void,
): void {
  let bytesIn = 0;
  let bytesOut = 0;
  down.on("data", (d: Buffer) => (bytesIn += d.length));
  up.on("data", (d: Buffer) => (bytesOut += d.length));
  down.pipe(up).pipe(down);
  let finished = false;
  const fin = () => {
    if (finished) return;
    finished = true;
    done(bytesIn, bytesOut);
  };
  down.on("close", () => {
    up.close();
    fin();
  });
  up.on("close", () => {
    down.close();
    fin();
  });
  down.on("error", () => undefined);
  up.on("error", () => undefined);
}

/** Legacy scp's remote side: "scp [-r] [-p] [-d] -t PATH" (upload) or "-f PATH" (download). */
export function scpTransfer(command: string): "upload" | "download" | null {
  const words = command.trim().split(/\s+/);
  if (words[0] !== "scp" && !/\/scp$/.test(words[0] ?? "")) return null;
  for (const w of words.slice(1)) {
    if (!w.startsWith("-") || w === "--") break;
    if (w.includes("t")) return "upload";
    if (w.includes("f")) return "download";
  }
  return null;
}

/**
 * One client session channel and its twin on the target: requests before the real start (env,
 * pty) are collected and replayed on the target's channel; then data, window changes, signals,
 * EOF, exit status and close go across.
 */
class ChannelRelay {
  private readonly env: Record<string, string> = {};
  private pty: PseudoTtyInfo | null = null;
  private agent = false;
  private up: SshClientChannel | null = null;
  private down: ServerChannel | null = null;
  private maskers: LineMasker[] = [];
  private started = false;
  private closed = false;
  private readonly aborts = new AbortController();
  private t0 = 0;

  constructor(
    private readonly s: SshSession,
    private readonly sess: SshServerSession,
    readonly id: number,
  ) {
    const opt = <F extends (...a: never[]) => void>(f: F | undefined): F | undefined => f;
    sess.on("env", (accept, _reject, info) => {
      this.env[info.key] = info.val;
      this.s.record({ kind: "env", t: this.s.now(), channel: id, name: info.key });
      opt(accept)?.();
    });
    sess.on("pty", (accept, _reject, info) => {
      this.pty = info;
      opt(accept)?.();
    });
    sess.on("window-change", (accept, _reject, info) => {
      if (this.pty) Object.assign(this.pty, info);
      this.up?.setWindow(info.rows, info.cols, info.height, info.width);
      this.s.record({
        kind: "resize",
        t: this.s.now(),
        channel: id,
        cols: info.cols,
        rows: info.rows,
      });
      opt(accept)?.();
    });
    sess.on("signal", (accept, _reject, info) => {
      try {
        this.up?.signal(info.name);
      } catch {
        // an unknown signal name: the target would refuse it too
      }
      opt(accept)?.();
    });
    sess.on("auth-agent", (accept, reject) => {
      const ok = this.s.permissions.agentForwarding;
      this.s.record({
        kind: "agent",
        t: this.s.now(),
        channel: id,
        decision: ok ? "allowed" : "denied",
      });
      if (ok) {
        this.agent = true;
        opt(accept)?.();
      } else opt(reject)?.();
    });
    sess.on("x11", (_accept, reject) => {
      this.s.record({
        kind: "refused",
        t: this.s.now(),
        channel: id,
        what: "x11",
        reason: "X11 forwarding is not supported",
      });
      opt(reject)?.();
    });
    sess.on("shell", (accept, reject) => void this.shell(accept, reject));
    sess.on("exec", (accept, reject, info) => void this.exec(accept, reject, info.command));
    sess.on("subsystem", (accept, reject, info) => void this.subsystem(accept, reject, info.name));
    sess.on("close", () => this.closeNow());
  }

  /** Writes a line to the client's stderr (a broker message). */
  tell(text: string): void {
    const d = this.down;
    if (!d || !d.writable) return;
    const nl = this.pty ? "\r\n" : "\n";
    d.stderr.write(text.replace(/\r?\n/g, nl) + nl);
  }

  closeNow(): void {
    if (this.closed) return;
    this.closed = true;
    this.aborts.abort(new Error("the client closed the channel"));
    for (const m of this.maskers) m.discard();
    try {
      this.up?.close();
    } catch {
      // gone
    }
    try {
      this.down?.close();
    } catch {
      // gone
    }
    this.s.forget(this);
  }

  private ptyEvent() {
    return this.pty ? { term: this.pty.term, cols: this.pty.cols, rows: this.pty.rows } : null;
  }

  private ptyOptions() {
    const p = this.pty!;
    return {
      term: p.term,
      cols: p.cols,
      rows: p.rows,
      width: p.width,
      height: p.height,
      modes: (p as unknown as { modes?: Record<string, number> }).modes ?? {},
    };
  }

  /** Refuses an accepted request: the reason on stderr, exit status 1, channel closed. */
  private refuse(reason: string): void {
    const down = this.down;
    if (!down) return;
    this.tell(reason);
    this.finish(down, { code: 1, signal: null, dump: false, desc: "" });
  }

  /**
   * Takes the request that starts the channel (shell, exec, subsystem). It is accepted at once,
   * before policy and the target answer: a client may send EOF right behind its request, and
   * ssh2 would otherwise end the session channel before it is accepted. The client's data
   * waits in the (paused) channel until the target's channel is wired to it.
   */
  private begin(accept: () => ServerChannel, reject: () => void): ServerChannel | null {
    if (this.started || this.closed) {
      reject();
      return null;
    }
    this.started = true;
    const down = accept() as ServerChannel | undefined;
    if (!down) {
      this.closeNow();
      return null;
    }
    this.down = down;
    down.on("error", () => undefined);
    return down;
  }

  /** Whether the session may run anything (recorded, target open); refuses the channel if not. */
  private async ready(): Promise<boolean> {
    const ok = (await this.s.whenStarted()) && this.s.target !== null && !this.closed;
    if (!ok && !this.closed) this.refuse("gw: the session is not available");
    return ok;
  }

  private async shell(accept: () => ServerChannel, reject: () => void): Promise<void> {
    if (!this.begin(accept, reject) || !(await this.ready())) return;
    if (!this.s.permissions.shell) {
      const reason =
        "gw: interactive shells are not allowed on this connection; run a command instead (ssh HOST COMMAND)";
      this.s.record({
        kind: "shell",
        t: this.s.now(),
        channel: this.id,
        pty: this.ptyEvent(),
        decision: "denied",
        reason,
      });
      return this.refuse(reason);
    }
    const opts = { env: this.env, ...(this.agent ? { agentForward: true } : {}) };
    this.s.target!.shell(this.pty ? this.ptyOptions() : false, opts as never, (err, ch) => {
      if (err) {
        this.s.opts.log.log("warn", "the target refused a shell", { error: err.message });
        return this.refuse(`gw: the target refused to open a shell: ${err.message}`);
      }
      if (this.closed) return ch.close();
      this.s.record({
        kind: "shell",
        t: this.s.now(),
        channel: this.id,
        pty: this.ptyEvent(),
        decision: "allowed",
      });
      this.wire(ch, this.down!, { mask: true });
    });
  }

  private async exec(
    accept: () => ServerChannel,
    reject: () => void,
    command: string,
  ): Promise<void> {
    if (!this.begin(accept, reject) || !(await this.ready())) return;
    const transfer = scpTransfer(command);
    const base = {
      kind: "exec" as const,
      channel: this.id,
      command,
      pty: this.pty !== null,
      ...(transfer ? { transfer } : {}),
    };
    const refused = (decision: CommandDecision, reason: string) => {
      this.s.record({ ...base, t: this.s.now(), decision, reason });
      this.refuse(reason);
    };
    if (transfer && !this.s.permissions.sftp)
      return refused("blocked", "gw: file transfer (scp) is not allowed on this connection");
    let decision: CommandDecision = "allowed";
    const policy = this.s.policy;
    if (policy) {
      const v = policy.decideCommand(command);
      if (v.action === "block") return refused("blocked", v.reason);
      if (v.action === "hold") {
        const signal = AbortSignal.any([this.aborts.signal, this.s.signal]);
        let outcome;
        try {
          outcome = await policy.hold(command, (text) => this.tell(text), signal);
        } catch (err) {
          this.s.opts.log.log("error", "could not hold a command for approval", {
            error: err instanceof Error ? err.message : String(err),
          });
          outcome = {
            action: "deny" as const,
            reason:
              "gw: the command needs approval, but the request could not be recorded; try again",
          };
        }
        if (this.closed) return;
        if (outcome.action === "deny") return refused("denied", outcome.reason);
        decision = "approved";
      }
    }
    const up = this.s.target;
    if (!up) return this.refuse("gw: the session is not available");
    const opts = {
      env: this.env,
      ...(this.pty ? { pty: this.ptyOptions() } : {}),
      ...(this.agent ? { agentForward: true } : {}),
    };
    // Fail closed: the command is on record before the target runs it.
    if (!(await this.s.recordFirst({ ...base, t: this.s.now(), decision }))) {
      return this.refuse("gw: the command could not be recorded, so it did not run");
    }
    if (this.closed) return;
    up.exec(command, opts as never, (err, ch) => {
      if (err) {
        this.s.record({
          kind: "refused",
          t: this.s.now(),
          channel: this.id,
          what: "exec",
          reason: `the target refused: ${err.message}`,
        });
        return this.refuse(`gw: the target refused to run the command: ${err.message}`);
      }
      if (this.closed) return ch.close();
      // File transfers are bytes, not text: never masked (the sftp setting governs them).
      this.wire(ch, this.down!, { mask: transfer === null, output: transfer === null });
    });
  }

  private async subsystem(
    accept: () => ServerChannel,
    reject: () => void,
    name: string,
  ): Promise<void> {
    const base = { kind: "subsystem" as const, channel: this.id, name };
    if (name !== "sftp") {
      this.s.record({
        ...base,
        t: this.s.now(),
        decision: "denied",
        reason: "unsupported subsystem",
      });
      return reject();
    }
    if (!this.begin(accept, reject) || !(await this.ready())) return;
    if (!this.s.permissions.sftp) {
      const reason = "gw: file transfer (sftp) is not allowed on this connection";
      this.s.record({ ...base, t: this.s.now(), decision: "denied", reason });
      return this.refuse(reason);
    }
    this.s.target!.subsys("sftp", (err, ch) => {
      if (err) {
        this.s.record({ ...base, t: this.s.now(), decision: "denied", reason: err.message });
        return this.refuse(`gw: the target refused sftp: ${err.message}`);
      }
      if (this.closed) return ch.close();
      this.s.record({ ...base, t: this.s.now(), decision: "allowed" });
      const sftp = new SftpRecorder((op) =>
        this.s.record({ kind: "sftp", t: this.s.now(), channel: this.id, ...op }),
      );
      this.wire(ch, this.down!, { mask: false, output: false, sftp });
    });
  }

  private wire(
    up: SshClientChannel,
    down: ServerChannel,
    o: { mask: boolean; output?: boolean; sftp?: SftpRecorder },
  ): void {
    this.up = up;
    this.down = down;
    this.t0 = performance.now();
    if (this.closed) {
      up.close();
      return;
    }
    let exit: Exit | null = null;
    const record = o.output !== false;
    const decoders = { stdout: new StringDecoder("utf8"), stderr: new StringDecoder("utf8") };
    const send = (stream: "stdout" | "stderr", src: NodeJS.ReadableStream, b: Buffer) => {
      if (b.length === 0) return;
      const dest: Writable = stream === "stdout" ? down : down.stderr;
      if (record && this.s.recordOutput(this.id, b.length)) {
        const text = decoders[stream].write(b);
        if (text.length > 0)
          this.s.record({ kind: "output", t: this.s.now(), channel: this.id, stream, data: text });
      }
      if (!dest.write(b)) {
        src.pause();
        dest.once("drain", () => src.resume());
      }
    };
    const mask = o.mask ? this.s.maskOutput : null;
    const route = (stream: "stdout" | "stderr", src: NodeJS.ReadableStream) => {
      if (mask) {
        const m = new LineMasker(mask, (b) => send(stream, src, b));
        this.maskers.push(m);
        return (d: Buffer) => m.push(d);
      }
      return (d: Buffer) => send(stream, src, d);
    };
    const toStdout = route("stdout", up);
    const toStderr = route("stderr", up.stderr);
    up.on("data", (d: Buffer) => {
      if (o.sftp && !o.sftp.fromServer(d)) return this.violation(o.sftp);
      toStdout(d);
    });
    up.stderr.on("data", (d: Buffer) => toStderr(d));
    down.on("data", (d: Buffer) => {
      if (o.sftp && !o.sftp.fromClient(d)) return this.violation(o.sftp);
      if (!up.write(d)) {
        down.pause();
        up.once("drain", () => down.resume());
      }
    });
    down.on("end", () => up.end());
    down.on("error", () => undefined);
    up.on("error", () => undefined);
    up.on("exit", (code: number | null, signal?: string, dump?: boolean, desc?: string) => {
      exit = { code, signal: signal ?? null, dump: dump ?? false, desc: desc ?? "" };
    });
    up.on("close", () => {
      for (const m of this.maskers) m.flush();
      o.sftp?.finish();
      const e: Exit = exit ?? { code: null, signal: null, dump: false, desc: "" };
      this.s.record({
        kind: "exit",
        t: this.s.now(),
        channel: this.id,
        code: e.code,
        signal: e.signal,
        durationMs: Math.round(performance.now() - this.t0),
      });
      this.finish(down, e);
    });
  }

  private violation(sftp: SftpRecorder): void {
    sftp.finish();
    this.s.record({
      kind: "refused",
      t: this.s.now(),
      channel: this.id,
      what: "sftp",
      reason: "the sftp stream could not be followed (a packet over the size limit or malformed)",
    });
    this.closeNow();
  }

  /** Exit status, then EOF and close, after what was written has gone out. */
  private finish(down: ServerChannel, e: Exit): void {
    const done = () => {
      try {
        if (e.code !== null) down.exit(e.code);
        else if (e.signal !== null) down.exit(e.signal.replace(/^SIG/, ""), e.dump, e.desc);
      } catch {
        down.exit(255); // a signal name the protocol does not know
      }
      down.end();
      this.closed = true;
      this.s.forget(this);
    };
    if (!down.writable) return done();
    down.write(EMPTY, () => (down.stderr as Writable).write(EMPTY, done));
  }
}

function describeUpstreamError(
  err: Error & { level?: string; code?: string },
  t: SshTarget,
): Error {
  const where = `${t.host}:${t.port}`;
  let client: string;
  if (err.level === "client-authentication")
    client = `the target refused the broker's credential for ${t.user}`;
  else if (err.level === "client-timeout" || /timed out/i.test(err.message))
    client = `the target ${where} did not answer in time`;
  else if (err.code === "ECONNREFUSED" || err.code === "ENOTFOUND" || err.code === "EHOSTUNREACH")
    client = `the broker cannot reach the target ${where} (${err.code})`;
  else if (/privateKey|passphrase/i.test(err.message))
    client = "the broker's key for the target is unusable";
  else client = `the connection to the target failed`;
  return Object.assign(new Error(`${client}: ${err.message}`), { clientMessage: client });
}
