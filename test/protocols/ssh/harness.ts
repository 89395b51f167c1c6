/**
 * Sessions without the broker: a TCP server where each accepted socket becomes one protocol
 * session through a socket-backed ClientChannel (what the broker does with a tunnel stream),
 * plus helpers to run the real OpenSSH client tools against it.
 */
import { spawn } from "node:child_process";
import { createServer, type Server, type Socket } from "node:net";
import type {
  ClientChannel,
  EndReason,
  SessionEndInfo,
} from "../../../src/protocols/tcp/stream.js";
import type { HoldOutcome } from "../../../src/protocols/tcp/rules.js";

export class SocketChannel implements ClientChannel {
  constructor(
    private readonly s: Socket,
    private readonly sent?: Buffer[],
  ) {}
  send(data: Buffer): void {
    this.sent?.push(Buffer.from(data));
    if (!this.s.destroyed) this.s.write(data);
  }
  get congested(): boolean {
    return this.s.writableLength > 1 << 20;
  }
  onDrain(cb: () => void): void {
    this.s.on("drain", cb);
  }
  pause(): void {
    this.s.pause();
  }
  resume(): void {
    this.s.resume();
  }
  close(): void {
    this.s.end();
  }
  get remoteAddress(): string | null {
    return this.s.remoteAddress ?? null;
  }
}

export interface SessionLike {
  onClientData(buf: Buffer): void;
  onClientClosed(): void;
  terminate(reason: EndReason, message: string): void;
}

export interface Harness {
  port: number;
  /** Every byte sent to clients, all sessions. */
  sent: Buffer[];
  ends: SessionEndInfo[];
  sessions: SessionLike[];
  close(): Promise<void>;
}

/** A TCP server whose sockets become sessions made by `make`. */
export async function startHarness(
  make: (channel: ClientChannel, ends: SessionEndInfo[]) => SessionLike,
): Promise<Harness> {
  const sent: Buffer[] = [];
  const ends: SessionEndInfo[] = [];
  const sessions: SessionLike[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    const session = make(new SocketChannel(s, sent), ends);
    sessions.push(session);
    s.on("data", (c: Buffer) => session.onClientData(c));
    s.on("close", () => session.onClientClosed());
    s.on("error", () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    sent,
    ends,
    sessions,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** Holds the test resolves. */
export class HoldQueue {
  readonly holds: {
    text: string;
    notify: (t: string) => void;
    resolve: (o: HoldOutcome) => void;
    signal: AbortSignal;
  }[] = [];

  hold = (text: string, notify: (t: string) => void, signal: AbortSignal): Promise<HoldOutcome> => {
    notify(`gw: waiting for approval of request test-${this.holds.length + 1}`);
    return new Promise((resolve) => this.holds.push({ text, notify, resolve, signal }));
  };

  async next(): Promise<HoldQueue["holds"][number]> {
    for (let i = 0; i < 400 && this.holds.length === 0; i++)
      await new Promise((r) => setTimeout(r, 25));
    const h = this.holds.shift();
    if (!h) throw new Error("nothing was held");
    return h;
  }
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion, optionally feeding stdin. */
export function run(
  cmd: string,
  args: string[],
  opts: { input?: string | Buffer; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      stdio: ["pipe", "pipe", "pipe"],
      env: opts.env ?? { ...process.env, SSH_AUTH_SOCK: "" },
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (d: Buffer) => out.push(d));
    child.stderr.on("data", (d: Buffer) => err.push(d));
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 30_000);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({
        code,
        signal,
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
      });
    });
    if (opts.input !== undefined) child.stdin.end(opts.input);
    else child.stdin.end();
  });
}

/** Waits until `cond` holds (polling), or fails. */
export async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
