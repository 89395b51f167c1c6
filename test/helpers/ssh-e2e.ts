/**
 * Shared pieces of the ssh end-to-end tests (test/e2e/ssh-*.test.ts): secret files for the
 * target's credential, the broker's ssh host key pinned the way docs/ssh-http.md says
 * (known_hosts under a HostKeyAlias, StrictHostKeyChecking=yes), the real OpenSSH tools run
 * against a tunnel, and the recording read back from the store.
 */
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { SshEvent } from "../../src/protocols/ssh/events.js";
import type { AuditEvent, SessionRecord, SessionStore } from "../../src/store/types.js";
import type { Tunnel, TunnelEvent } from "../../src/tunnel/tunnel.js";
import { run, type RunResult } from "../protocols/ssh/harness.js";
import type { Stack } from "./stack.js";

/** Writes `text` to `dir/name`, mode 0600 (as a key file must be); returns the path. */
export function secretFile(dir: string, name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text, { mode: 0o600 });
  chmodSync(p, 0o600);
  return p;
}

export interface BrokerPin {
  alias: string;
  knownHostsFile: string;
  /** "ssh-ed25519 AAAA..." */
  hostKey: string;
  /** "SHA256:..." */
  fingerprint: string;
}

/**
 * The broker's ssh host key as its discovery document publishes it (over verified HTTPS),
 * written to a known_hosts file under `alias`.
 */
export async function pinBroker(stack: Stack, dir: string, alias = "gw-e2e"): Promise<BrokerPin> {
  const doc = await stack.client(stack.tokens.dba).discovery();
  const ssh = doc["ssh"] as { hostKey: string; fingerprint: string } | undefined;
  if (!ssh) throw new Error("the broker publishes no ssh host key");
  const knownHostsFile = join(dir, `known_hosts.${alias}`);
  writeFileSync(knownHostsFile, `${alias} ${ssh.hostKey}\n`);
  return { alias, knownHostsFile, hostKey: ssh.hostKey, fingerprint: ssh.fingerprint };
}

/** OpenSSH client options: no user config, the broker's key pinned and checked, no agent. */
export function clientOptions(pin: BrokerPin): string[] {
  return [
    "-F",
    "/dev/null",
    "-o",
    `HostKeyAlias=${pin.alias}`,
    "-o",
    `UserKnownHostsFile=${pin.knownHostsFile}`,
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    "BatchMode=yes",
    "-o",
    "IdentityAgent=none",
    "-o",
    "ConnectTimeout=20",
  ];
}

/** ssh through the tunnel at `port`; `args` go before the destination, `command` after. */
export function ssh(
  pin: BrokerPin,
  port: number,
  command: string[],
  opts: { args?: string[]; input?: string | Buffer; user?: string } = {},
): Promise<RunResult> {
  return run(
    "ssh",
    [
      ...clientOptions(pin),
      ...(opts.args ?? []),
      "-p",
      String(port),
      `${opts.user ?? "anyone"}@127.0.0.1`,
      ...command,
    ],
    opts.input !== undefined ? { input: opts.input } : {},
  );
}

/**
 * A tunnel with its streams' sessions: `sessions` lists the broker's session ids in the order
 * the streams opened them.
 */
export interface WatchedTunnel {
  tunnel: Tunnel;
  port: number;
  events: TunnelEvent[];
  sessions: string[];
}

export async function watchedTunnel(
  stack: Stack,
  connection: string,
  token = stack.tokens.dba,
): Promise<WatchedTunnel> {
  const events: TunnelEvent[] = [];
  const sessions: string[] = [];
  const tunnel = await stack.openTunnel(token, connection, (e) => {
    events.push(e);
    if (e.type === "session") sessions.push(e.session);
  });
  return { tunnel, port: tunnel.address.port, events, sessions };
}

/** Polls until `probe` returns a value; the deadline is a safety net, not an assertion. */
export async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  ms = 20_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The session once the broker has ended (and sealed) it. */
export function endedSession(store: SessionStore, id: string): Promise<SessionRecord> {
  return eventually(`session ${id} to end`, async () => {
    const s = await store.getSession(id);
    return s && s.endedAt !== null ? s : undefined;
  });
}

/** The newest session of `connection` that started after `since` (epoch ms). */
export function newestSession(
  store: SessionStore,
  connection: string,
  since: number,
): Promise<SessionRecord> {
  return eventually(`a session of ${connection}`, async () => {
    const [s] = await store.listSessions({ connection, since, limit: 1 });
    return s;
  });
}

/** A session's ssh events, as the chain records them. */
export async function sshEventsOf(store: SessionStore, sessionId: string): Promise<SshEvent[]> {
  const events: AuditEvent[] = await store.listEvents(sessionId);
  return events
    .map((e) => JSON.parse(e.body) as { type: string; event?: SshEvent })
    .filter((b) => b.type === "ssh" && b.event !== undefined)
    .map((b) => b.event!);
}

/**
 * The base64 lines of a PEM / OpenSSH private key but the first (which every unencrypted
 * OpenSSH key shares): what a leak of the key would show.
 */
export function keyBodies(key: string): string[] {
  return key
    .split("\n")
    .filter((l) => /^[A-Za-z0-9+/=]{40,}$/.test(l))
    .slice(1);
}
