import { describe, expect, test } from "vitest";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KnownHosts, parseKnownHosts } from "../../../src/protocols/ssh/known-hosts.js";
import { compileSshPolicy } from "../../../src/protocols/ssh/policy.js";
import { sshConnection } from "../../../src/protocols/ssh/config.js";
import { scpTransfer } from "../../../src/protocols/ssh/session.js";
import { toAsciicast, type SshEvent } from "../../../src/protocols/ssh/events.js";

function keypair(dir: string, name: string): { line: string; blob: Buffer } {
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(dir, name)]);
  const pub = readFileSync(join(dir, `${name}.pub`), "utf8")
    .trim()
    .split(/\s+/);
  return { line: `${pub[0]} ${pub[1]}`, blob: Buffer.from(pub[1]!, "base64") };
}

describe("known_hosts", () => {
  const dir = mkdtempSync(join(tmpdir(), "gw-kh-"));
  const a = keypair(dir, "a");
  const b = keypair(dir, "b");

  test("plain names, [host]:port, wildcards and negation", () => {
    const kh = new KnownHosts(
      [
        `# comment`,
        `db.internal,10.0.0.5 ${a.line}`,
        `[10.0.0.6]:2222 ${a.line}`,
        `*.prod.internal,!bastion.prod.internal ${b.line}`,
      ].join("\n"),
      "test",
    );
    expect(kh.check("db.internal", 22, a.blob)).toEqual({ ok: true });
    expect(kh.check("10.0.0.5", 22, a.blob)).toEqual({ ok: true });
    expect(kh.check("10.0.0.6", 2222, a.blob)).toEqual({ ok: true });
    expect(kh.check("10.0.0.6", 22, a.blob)).toMatchObject({ ok: false, problem: "unknown" });
    expect(kh.check("web.prod.internal", 22, b.blob)).toEqual({ ok: true });
    expect(kh.check("bastion.prod.internal", 22, b.blob)).toMatchObject({
      ok: false,
      problem: "unknown",
    });
    const changed = kh.check("db.internal", 22, b.blob);
    expect(changed).toMatchObject({ ok: false, problem: "changed" });
    if (!changed.ok) {
      expect(changed.message).toContain("line 2");
      expect(changed.summary).not.toContain("line");
    }
    expect(kh.algorithms("db.internal", 22)).toEqual(["ssh-ed25519"]);
    expect(kh.algorithms("nowhere", 22)).toEqual([]);
  });

  test("hashed names (ssh-keygen -H) and @revoked", () => {
    const file = join(dir, "hashed");
    writeFileSync(file, `[127.0.0.1]:2200 ${a.line}\nhost.example ${a.line}\n`);
    execFileSync("ssh-keygen", ["-H", "-f", file], { stdio: "ignore" });
    const text = readFileSync(file, "utf8");
    expect(text).toContain("|1|");
    const kh = new KnownHosts(text + `@revoked * ${b.line}\n`, file);
    expect(kh.check("127.0.0.1", 2200, a.blob)).toEqual({ ok: true });
    expect(kh.check("host.example", 22, a.blob)).toEqual({ ok: true });
    expect(kh.check("host.example", 22, b.blob)).toMatchObject({ ok: false, problem: "revoked" });
    expect(parseKnownHosts("garbage line\n@cert-authority *.x ssh-ed25519 AAAA\n")).toEqual([]);
    rmSync(dir, { recursive: true, force: true });
  });
});

describe("ssh policy", () => {
  test("commands by glob and regex, first match wins, the default last", () => {
    const conn = sshConnection.parse({
      type: "ssh",
      target: { host: "h", user: "u", privateKey: { file: "/k" }, knownHosts: "/kh" },
      allow: ["group:x"],
      policy: {
        approvers: ["group:leads"],
        rules: [
          {
            name: "no-rm",
            match: { command: "rm -rf *" },
            action: "block",
            reason: "no mass deletes",
          },
          { match: { regex: "^sudo\\b" }, action: "hold" },
          { match: { command: ["systemctl restart *", "reboot"] }, action: "hold", timeout: "5m" },
        ],
        sftp: "deny",
      },
    });
    const p = compileSshPolicy(conn.policy, "box");
    expect(p.decide("rm -rf /var/lib")).toMatchObject({
      action: "block",
      reason: "rule no-rm of the ssh policy of box: no mass deletes",
    });
    expect(p.decide("  sudo ls ")).toMatchObject({
      action: "hold",
      approvers: ["group:leads"],
      timeoutMs: 600_000,
    });
    expect(p.decide("reboot")).toMatchObject({ action: "hold", timeoutMs: 300_000 });
    expect(p.decide("ls -la")).toMatchObject({ action: "allow" });
    expect(p.access).toEqual({
      shell: true,
      sftp: false,
      portForwarding: false,
      agentForwarding: false,
    });
    const hooks = p.forSession({} as never);
    expect(hooks.decideCommand("rm -rf x")).toEqual({
      action: "block",
      reason: "gw: blocked by rule no-rm of the ssh policy of box: no mass deletes",
    });
  });

  test("schema errors people can act on", () => {
    const base = { type: "ssh", allow: ["group:x"] };
    const noCred = sshConnection.safeParse({
      ...base,
      target: { host: "h", user: "u", knownHosts: "/kh" },
    });
    expect(noCred.success).toBe(false);
    expect(JSON.stringify(noCred.error?.issues)).toContain("needs privateKey or password");
    const noApprovers = sshConnection.safeParse({
      ...base,
      target: { host: "h", user: "u", password: { env: "X" }, knownHosts: "/kh" },
      policy: { rules: [{ match: { command: "x" }, action: "hold" }] },
    });
    expect(JSON.stringify(noApprovers.error?.issues)).toContain("a hold rule needs approvers");
    const inline = sshConnection.safeParse({
      ...base,
      target: { host: "h", user: "u", password: "hunter2", knownHosts: "/kh" },
    });
    expect(JSON.stringify(inline.error?.issues)).toContain("secrets are never written inline");
  });

  test("legacy scp commands are recognised", () => {
    expect(scpTransfer("scp -t /tmp/x")).toBe("upload");
    expect(scpTransfer("scp -r -f /srv")).toBe("download");
    expect(scpTransfer("/usr/bin/scp -pt dir")).toBe("upload");
    expect(scpTransfer("scpx -t")).toBeNull();
    expect(scpTransfer("ls -t")).toBeNull();
  });

  test("asciicast of one channel", () => {
    const events: SshEvent[] = [
      {
        kind: "shell",
        t: 1,
        channel: 0,
        pty: { term: "xterm", cols: 100, rows: 30 },
        decision: "allowed",
      },
      { kind: "output", t: 1.5, channel: 0, stream: "stdout", data: "$ " },
      { kind: "output", t: 1.6, channel: 1, stream: "stdout", data: "other" },
      { kind: "resize", t: 2, channel: 0, cols: 120, rows: 40 },
    ];
    const lines = toAsciicast(events, { timestamp: 1_700_000_000_000 })!.trim().split("\n");
    expect(JSON.parse(lines[0]!)).toEqual({
      version: 2,
      width: 100,
      height: 30,
      timestamp: 1_700_000_000,
      env: { TERM: "xterm" },
    });
    expect(lines.slice(1).map((l) => JSON.parse(l))).toEqual([
      [0.5, "o", "$ "],
      [1, "r", "120x40"],
    ]);
  });
});

describe("broker check for ssh targets", () => {
  test("known_hosts without the target, unreadable secrets, a key that needs a passphrase", async () => {
    const { checkSshTarget } = await import("../../../src/protocols/ssh/check.js");
    const dir = mkdtempSync(join(tmpdir(), "gw-check-"));
    try {
      const a = keypair(dir, "a");
      execFileSync("ssh-keygen", [
        "-q",
        "-t",
        "ed25519",
        "-N",
        "secret-pp",
        "-f",
        join(dir, "enc"),
      ]);
      writeFileSync(join(dir, "kh"), `[db.internal]:2222 ${a.line}\n`);
      const target = {
        host: "db.internal",
        port: 2222,
        user: "u",
        knownHosts: join(dir, "kh"),
        connectTimeout: 10,
        privateKey: { file: join(dir, "enc") },
      };
      expect(checkSshTarget("box", target)).toEqual([
        "connections.box.target.privateKey: the key is encrypted and no passphrase is given",
      ]);
      process.env["GW_TEST_PP"] = "secret-pp";
      expect(checkSshTarget("box", { ...target, passphrase: { env: "GW_TEST_PP" } })).toEqual([]);
      process.env["GW_TEST_PP"] = "wrong";
      expect(checkSshTarget("box", { ...target, passphrase: { env: "GW_TEST_PP" } })).toEqual([
        "connections.box.target.privateKey: the key is encrypted and the passphrase does not open it",
      ]);
      const other = checkSshTarget("box", {
        ...target,
        port: 22,
        privateKey: { file: join(dir, "a") },
        password: { env: "GW_NOPE_UNSET" },
      });
      expect(other).toHaveLength(2);
      expect(other[0]).toMatch(/lists no key for db\.internal; add it \(ssh-keyscan db\.internal/);
      expect(other[1]).toMatch(/GW_NOPE_UNSET is not set/);
      const missing = checkSshTarget("box", {
        ...target,
        knownHosts: join(dir, "none"),
        privateKey: { file: join(dir, "a") },
      });
      expect(missing).toEqual([
        `connections.box.target.knownHosts: cannot read ${join(dir, "none")} (ENOENT)`,
      ]);
    } finally {
      delete process.env["GW_TEST_PP"];
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
