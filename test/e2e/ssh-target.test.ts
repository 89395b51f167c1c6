/**
 * The target side of ssh connections through the whole data path: the real ssh client (with
 * -vvv, so every message it gets is printed), `gw connect`'s tunnel, the broker and a real
 * sshd.
 *
 * Secrets: the broker signs in with a private key, an encrypted key and its passphrase, or a
 * password; none of them appears in anything the client prints, in the broker's log, or in
 * the store's files. Host keys: a target whose key is not the one in the connection's
 * known_hosts (changed, or unknown) is refused before anything runs, and the client is told
 * why, naming the connection.
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  endedSession,
  eventually,
  keyBodies,
  pinBroker,
  secretFile,
  ssh,
  sshEventsOf,
  watchedTunnel,
  type BrokerPin,
} from "../helpers/ssh-e2e.js";
import { startSshd, type SshdServer } from "../helpers/sshd.js";
import { GROUP_DBA, startStack, type Stack } from "../helpers/stack.js";

let sshd: SshdServer;
let stack: Stack;
let dir: string;
let pin: BrokerPin;
const suffix = randomBytes(4).toString("hex");
const PASSPHRASE_ENV = `GW_E2E_SSH_PASSPHRASE_${suffix}`;
const PASSWORD_ENV = `GW_E2E_SSH_PASSWORD_${suffix}`;
const WRONG_ENV = `GW_E2E_SSH_WRONG_${suffix}`;
const WRONG_PASSWORD = "wrong-" + randomBytes(8).toString("hex");

beforeAll(async () => {
  sshd = await startSshd();
  dir = mkdtempSync(join(tmpdir(), "gw-e2e-ssh-target-"));
  const key = secretFile(dir, "target_key", sshd.privateKey);
  const encrypted = secretFile(dir, "target_key_rsa", sshd.encryptedKey);
  process.env[PASSPHRASE_ENV] = sshd.passphrase;
  process.env[PASSWORD_ENV] = sshd.password;
  process.env[WRONG_ENV] = WRONG_PASSWORD;
  const emptyKnownHosts = join(dir, "known_hosts.empty");
  writeFileSync(emptyKnownHosts, "");
  const base = { host: sshd.host, port: sshd.port, user: sshd.user };
  const allow = [`group:${GROUP_DBA}`];
  stack = await startStack({
    connections: {
      "box-key": {
        type: "ssh",
        target: { ...base, privateKey: { file: key }, knownHosts: sshd.knownHostsFile },
        allow,
      },
      "box-encrypted": {
        type: "ssh",
        target: {
          ...base,
          privateKey: { file: encrypted },
          passphrase: { env: PASSPHRASE_ENV },
          knownHosts: sshd.knownHostsFile,
        },
        allow,
      },
      "box-password": {
        type: "ssh",
        target: { ...base, password: { env: PASSWORD_ENV }, knownHosts: sshd.knownHostsFile },
        allow,
      },
      "box-wrong-password": {
        type: "ssh",
        target: { ...base, password: { env: WRONG_ENV }, knownHosts: sshd.knownHostsFile },
        allow,
      },
      "box-changed": {
        type: "ssh",
        target: { ...base, privateKey: { file: key }, knownHosts: sshd.wrongKnownHostsFile },
        allow,
      },
      "box-unknown": {
        type: "ssh",
        target: { ...base, privateKey: { file: key }, knownHosts: emptyKnownHosts },
        allow,
      },
    },
  });
  pin = await pinBroker(stack, dir);
});

afterAll(async () => {
  await stack?.stop();
  await sshd?.stop();
  delete process.env[PASSPHRASE_ENV];
  delete process.env[PASSWORD_ENV];
  delete process.env[WRONG_ENV];
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** ssh -vvv through a fresh tunnel to `connection`: everything the client printed. */
async function verbose(connection: string, command: string) {
  const t = await watchedTunnel(stack, connection);
  const r = await ssh(pin, t.port, [command], { args: ["-vvv"] });
  return { ...r, tunnel: t };
}

function secrets(): string[] {
  return [
    sshd.password,
    sshd.passphrase,
    WRONG_PASSWORD,
    ...keyBodies(sshd.privateKey),
    ...keyBodies(sshd.encryptedKey),
  ];
}

describe("the target's credential never leaves the broker", () => {
  it("key, encrypted key + passphrase, password: each signs in; no secret in what the client gets, the log or the store", async () => {
    const printed: string[] = [];
    for (const [connection, how] of [
      ["box-key", "key"],
      ["box-encrypted", "encrypted"],
      ["box-password", "password"],
    ] as const) {
      const r = await verbose(connection, `echo via-${how} as $(whoami)`);
      expect(r.stdout).toBe(`via-${how} as ${sshd.user}\n`);
      expect(r.code).toBe(0);
      // The client authenticated to the broker with nothing (the tunnel is the identity).
      expect(r.stderr).toContain('using "none"');
      printed.push(r.stdout, r.stderr);
      const id = await eventually("the session", () => r.tunnel.sessions[0]);
      await endedSession(stack.store, id);
    }
    // A refused credential is reported without it.
    const bad = await verbose("box-wrong-password", "echo never");
    expect(bad.code).toBe(255);
    expect(bad.stderr).toContain("gw: cannot open box-wrong-password:");
    expect(bad.stderr).toContain("the target refused the broker's credential");
    printed.push(bad.stdout, bad.stderr);

    const all = printed.join("\n");
    const logs = stack.logs.join("\n");
    const files = readdirSync(stack.dir)
      .filter((f) => f.startsWith("gw.db"))
      .map((f) => readFileSync(join(stack.dir, f)));
    // The files hold the recording (a positive control for the search below).
    expect(files.some((f) => f.includes(Buffer.from(`via-password as ${sshd.user}`)))).toBe(true);
    for (const s of secrets()) {
      expect(s.length).toBeGreaterThan(8);
      expect(all).not.toContain(s);
      expect(logs).not.toContain(s);
      for (const f of files) expect(f.includes(Buffer.from(s))).toBe(false);
    }
    // Nor in the recording as the store gives it back.
    for (const sess of await stack.store.listSessions({ limit: 100 })) {
      const text = (await stack.store.listEvents(sess.id)).map((e) => e.body).join("\n");
      for (const s of secrets()) expect(text).not.toContain(s);
    }
  });
});

describe("the target's host key is pinned", () => {
  it("a CHANGED host key: refused with a message naming the connection; nothing runs", async () => {
    const marker = join(sshd.filesDir, "changed-marker");
    const r = await verbose("box-changed", `touch ${marker}`);
    expect(r.code).toBe(255);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain("gw: cannot open box-changed: the target's host key has CHANGED");
    expect(r.stderr).toMatch(
      /it presented ssh-ed25519 key SHA256:\S+, not the key the broker knows/,
    );
    expect(r.stderr).toContain("Permission denied");
    expect(existsSync(marker)).toBe(false);
    // The broker's log says which known_hosts file disagrees.
    expect(
      stack.logs.some(
        (l) => l.includes("cannot open the ssh target") && l.includes(sshd.wrongKnownHostsFile),
      ),
    ).toBe(true);
    // The refused attempt is on record (who tried, and why it failed), and nothing ran.
    let refused: Awaited<ReturnType<typeof stack.store.listSessions>> = [];
    for (let i = 0; i < 100 && refused.every((x) => x.endedAt === null); i++) {
      refused = await stack.store.listSessions({ connection: "box-changed" });
      if (refused.every((x) => x.endedAt === null)) await new Promise((res) => setTimeout(res, 50));
    }
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatchObject({
      protocol: "ssh",
      identity: { name: "Dana DBA" },
      endReason: "upstream_error",
      statementCount: 0,
    });
    expect(refused[0]!.endDetail).toContain("host key has CHANGED");
    expect(refused[0]!.seal).toBeDefined();
    expect(await sshEventsOf(stack.store, refused[0]!.id)).toEqual([]);
  });

  it("an UNKNOWN host key is refused too", async () => {
    const marker = join(sshd.filesDir, "unknown-marker");
    const r = await verbose("box-unknown", `touch ${marker}`);
    expect(r.code).toBe(255);
    expect(r.stderr).toContain("gw: cannot open box-unknown:");
    expect(r.stderr).toContain("host key is not known to the broker");
    expect(existsSync(marker)).toBe(false);
  });
});
