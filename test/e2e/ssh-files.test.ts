/**
 * File transfer through the whole data path: the real OpenSSH scp (sftp protocol, and legacy
 * `scp -O`) and sftp, `gw connect`'s tunnel, the broker and a real sshd. Files land on the
 * target byte for byte and come back the same; the recording has each sftp operation with its
 * path and size (and legacy scp as a command with its direction). A connection whose policy
 * says `sftp: deny` refuses all three with a clear message, and nothing lands.
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SshEvent } from "../../src/protocols/ssh/events.js";
import {
  clientOptions,
  endedSession,
  eventually,
  pinBroker,
  secretFile,
  sshEventsOf,
  watchedTunnel,
  type BrokerPin,
  type WatchedTunnel,
} from "../helpers/ssh-e2e.js";
import { startSshd, type SshdServer } from "../helpers/sshd.js";
import { GROUP_DBA, startStack, type Stack } from "../helpers/stack.js";
import { run } from "../protocols/ssh/harness.js";

let sshd: SshdServer;
let stack: Stack;
let dir: string;
let pin: BrokerPin;
let box: WatchedTunnel;
let noFiles: WatchedTunnel;

beforeAll(async () => {
  sshd = await startSshd();
  dir = mkdtempSync(join(tmpdir(), "gw-e2e-ssh-files-"));
  const key = secretFile(dir, "target_key", sshd.privateKey);
  const target = {
    host: sshd.host,
    port: sshd.port,
    user: sshd.user,
    privateKey: { file: key },
    knownHosts: sshd.knownHostsFile,
  };
  stack = await startStack({
    connections: {
      box: { type: "ssh", target, allow: [`group:${GROUP_DBA}`] },
      "box-nofiles": {
        type: "ssh",
        target,
        allow: [`group:${GROUP_DBA}`],
        policy: { sftp: "deny" },
      },
    },
  });
  pin = await pinBroker(stack, dir);
  box = await watchedTunnel(stack, "box");
  noFiles = await watchedTunnel(stack, "box-nofiles");
});

afterAll(async () => {
  await stack?.stop();
  await sshd?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

type Sftp = Extract<SshEvent, { kind: "sftp" }>;

/** Runs `fn`, then returns the events of every session the tunnel opened meanwhile. */
async function recorded(t: WatchedTunnel, fn: () => Promise<void>): Promise<SshEvent[]> {
  const before = t.sessions.length;
  await fn();
  const ids = await eventually("the sessions", () =>
    t.sessions.length > before ? t.sessions.slice(before) : undefined,
  );
  const all: SshEvent[] = [];
  for (const id of ids) {
    await endedSession(stack.store, id);
    all.push(...(await sshEventsOf(stack.store, id)));
  }
  return all;
}

const scp = (port: number, ...args: string[]) =>
  run("scp", [...clientOptions(pin), "-P", String(port), ...args]);

const sftp = (port: number, batch: string[]) =>
  run("sftp", [...clientOptions(pin), "-P", String(port), "-b", "-", "anyone@127.0.0.1"], {
    input: batch.join("\n") + "\n",
  });

describe("scp and sftp through gw", () => {
  it("scp (sftp protocol) uploads and downloads byte for byte, recorded with paths and sizes", async () => {
    const data = randomBytes(300_000);
    const src = join(dir, "upload.bin");
    writeFileSync(src, data);
    const remote = `${sshd.filesDir}/uploaded.bin`;
    const back = join(dir, "downloaded.bin");
    const events = await recorded(box, async () => {
      const up = await scp(box.port, src, `anyone@127.0.0.1:${remote}`);
      expect(up.stderr).toBe("");
      expect(up.code).toBe(0);
      expect(readFileSync(remote).equals(data)).toBe(true);
      const down = await scp(box.port, `anyone@127.0.0.1:${remote}`, back);
      expect(down.code).toBe(0);
      expect(readFileSync(back).equals(data)).toBe(true);
    });
    const ops = events.filter((e): e is Sftp => e.kind === "sftp");
    expect(events).toContainEqual(
      expect.objectContaining({ kind: "subsystem", name: "sftp", decision: "allowed" }),
    );
    expect(ops).toContainEqual(
      expect.objectContaining({ op: "open", path: remote, mode: expect.stringContaining("write") }),
    );
    expect(ops).toContainEqual(
      expect.objectContaining({ op: "write", path: remote, bytes: 300_000, ok: true }),
    );
    expect(ops).toContainEqual(
      expect.objectContaining({ op: "read", path: remote, bytes: 300_000, ok: true }),
    );
  });

  it("legacy scp (-O) up and down: a command with its direction, the bytes intact", async () => {
    const data = randomBytes(70_000);
    const src = join(dir, "legacy.bin");
    writeFileSync(src, data);
    const remote = `${sshd.filesDir}/legacy.bin`;
    const back = join(dir, "legacy-back.bin");
    const events = await recorded(box, async () => {
      const up = await scp(box.port, "-O", src, `anyone@127.0.0.1:${remote}`);
      expect(up.code).toBe(0);
      expect(readFileSync(remote).equals(data)).toBe(true);
      const down = await scp(box.port, "-O", `anyone@127.0.0.1:${remote}`, back);
      expect(down.code).toBe(0);
      expect(readFileSync(back).equals(data)).toBe(true);
    });
    expect(events).toContainEqual(
      expect.objectContaining({
        kind: "exec",
        transfer: "upload",
        decision: "allowed",
        command: expect.stringMatching(new RegExp(`^scp .*-t .*${remote}$`)),
      }),
    );
    expect(events).toContainEqual(
      expect.objectContaining({
        kind: "exec",
        transfer: "download",
        command: expect.stringMatching(new RegExp(`^scp .*-f .*${remote}$`)),
      }),
    );
    // File bytes are not terminal output: never recorded as such.
    expect(events.some((e) => e.kind === "output")).toBe(false);
  });

  it("sftp put, ls, get, rename and rm, each recorded with its path", async () => {
    const src = join(dir, "notes.txt");
    const text = "notes for the target\n".repeat(100);
    writeFileSync(src, text);
    const d = sshd.filesDir;
    const got = join(dir, "notes-back.txt");
    let out = "";
    const events = await recorded(box, async () => {
      const r = await sftp(box.port, [
        `put ${src} ${d}/notes.txt`,
        `ls -l ${d}`,
        `get ${d}/notes.txt ${got}`,
        `rename ${d}/notes.txt ${d}/kept.txt`,
        `put ${src} ${d}/gone.txt`,
        `rm ${d}/gone.txt`,
      ]);
      out = r.stdout;
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
    });
    expect(readFileSync(join(d, "kept.txt"), "utf8")).toBe(text);
    expect(readFileSync(got, "utf8")).toBe(text);
    expect(existsSync(join(d, "gone.txt"))).toBe(false);
    expect(out).toMatch(/notes\.txt/);
    const ops = events.filter((e): e is Sftp => e.kind === "sftp");
    const size = Buffer.byteLength(text);
    expect(ops).toContainEqual(
      expect.objectContaining({ op: "write", path: `${d}/notes.txt`, bytes: size, ok: true }),
    );
    expect(ops).toContainEqual(
      expect.objectContaining({
        op: "list",
        path: expect.stringMatching(new RegExp(`^${d}/?$`)),
        ok: true,
      }),
    );
    expect(ops).toContainEqual(
      expect.objectContaining({ op: "read", path: `${d}/notes.txt`, bytes: size, ok: true }),
    );
    expect(ops).toContainEqual(
      expect.objectContaining({
        op: "rename",
        path: `${d}/notes.txt`,
        to: `${d}/kept.txt`,
        ok: true,
      }),
    );
    expect(ops).toContainEqual(
      expect.objectContaining({ op: "remove", path: `${d}/gone.txt`, ok: true }),
    );
  });

  it("a failed sftp operation is recorded with the target's error", async () => {
    const events = await recorded(box, async () => {
      const r = await sftp(box.port, [`rm ${sshd.filesDir}/no-such-file`]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/no such file/i);
    });
    const ops = events.filter((e): e is Sftp => e.kind === "sftp");
    expect(ops).toContainEqual(
      expect.objectContaining({
        op: "remove",
        path: `${sshd.filesDir}/no-such-file`,
        ok: false,
        error: expect.stringMatching(/no such file/i),
      }),
    );
  });
});

describe("a connection with sftp: deny", () => {
  it("refuses scp, legacy scp and sftp with a clear message; nothing lands", async () => {
    const src = join(dir, "refused.txt");
    writeFileSync(src, "must not arrive\n");
    const remote = `${sshd.filesDir}/refused.txt`;
    const events = await recorded(noFiles, async () => {
      const modern = await scp(noFiles.port, src, `anyone@127.0.0.1:${remote}`);
      expect(modern.code).not.toBe(0);
      expect(modern.stderr).toContain("gw: file transfer (sftp) is not allowed on this connection");
      const legacy = await scp(noFiles.port, "-O", src, `anyone@127.0.0.1:${remote}`);
      expect(legacy.code).not.toBe(0);
      expect(legacy.stderr).toContain("gw: file transfer (scp) is not allowed on this connection");
      const s = await sftp(noFiles.port, [`put ${src} ${remote}`]);
      expect(s.code).not.toBe(0);
      expect(s.stderr).toContain("gw: file transfer (sftp) is not allowed on this connection");
      const down = await scp(noFiles.port, `anyone@127.0.0.1:/etc/hostname`, join(dir, "h"));
      expect(down.code).not.toBe(0);
      expect(existsSync(join(dir, "h"))).toBe(false);
    });
    expect(existsSync(remote)).toBe(false);
    expect(events).toContainEqual(
      expect.objectContaining({ kind: "subsystem", name: "sftp", decision: "denied" }),
    );
    expect(events).toContainEqual(
      expect.objectContaining({ kind: "exec", transfer: "upload", decision: "blocked" }),
    );
    expect(events.some((e) => e.kind === "sftp")).toBe(false);
    // Commands still run there: only file transfer is refused.
    const r = await run("ssh", [
      ...clientOptions(pin),
      "-p",
      String(noFiles.port),
      "anyone@127.0.0.1",
      "echo still-a-shell",
    ]);
    expect(r.stdout).toBe("still-a-shell\n");
  });
});
