/**
 * ssh through the whole data path: the real ssh client, `gw connect`'s tunnel, the broker and
 * a real sshd.
 * A smoke test; test/e2e/ssh-*.test.ts go through each part in depth.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GROUP_DBA, startStack, type Stack } from "../helpers/stack.js";
import { startSshd, type SshdServer } from "../helpers/sshd.js";
import { run } from "../protocols/ssh/harness.js";

describe("ssh through the broker", () => {
  let sshd: SshdServer;
  let stack: Stack;
  let dir: string;
  let port: number;

  beforeAll(async () => {
    sshd = await startSshd();
    dir = mkdtempSync(join(tmpdir(), "gw-e2e-ssh-"));
    const key = join(dir, "target_key");
    writeFileSync(key, sshd.privateKey);
    chmodSync(key, 0o600);
    stack = await startStack({
      connections: {
        box: {
          type: "ssh",
          target: {
            host: sshd.host,
            port: sshd.port,
            user: sshd.user,
            privateKey: { file: key },
            knownHosts: sshd.knownHostsFile,
          },
          allow: [`group:${GROUP_DBA}`],
          policy: {
            rules: [
              {
                name: "no-rm",
                match: { command: "rm *" },
                action: "block",
                reason: "no deleting here",
              },
            ],
            mask: { detectors: ["email"] },
          },
        },
      },
    });
    const t = await stack.openTunnel(stack.tokens.dba, "box");
    port = t.address.port;
  });

  afterAll(async () => {
    await stack?.stop();
    await sshd?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const ssh = (...args: string[]) =>
    run("ssh", [
      "-F",
      "/dev/null",
      "-o",
      "StrictHostKeyChecking=no",
      "-o",
      "UserKnownHostsFile=/dev/null",
      "-o",
      "BatchMode=yes",
      "-o",
      "LogLevel=ERROR",
      "-p",
      String(port),
      "anyone@127.0.0.1",
      ...args,
    ]);

  it("runs commands with exit codes, masked output", async () => {
    const r = await ssh("echo hi from $(whoami) to ops@example.com; exit 3");
    expect(r.stdout).toBe(`hi from ${sshd.user} to [redacted:email]\n`);
    expect(r.code).toBe(3);
  });

  it("blocks what the policy blocks, and the session is recorded", async () => {
    const r = await ssh("rm -rf /tmp/nothing");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("no deleting here");
    const sessions = await stack.store.listSessions({ connection: "box" });
    expect(sessions.length).toBeGreaterThanOrEqual(2);
  });
});
