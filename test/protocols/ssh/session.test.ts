/**
 * The ssh session end to end without the broker: the real OpenSSH client (ssh, scp, sftp) and
 * ssh2's client talk to SshSession through a socket-backed channel, and SshSession talks to a
 * real sshd. Policy and approvals are scripted; masking uses the real detectors.
 */
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from "node:fs";
import { connect, createServer as createTcpServer, type Server } from "node:net";
import { spawn } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import ssh2 from "ssh2";
import { compileMaskingProfile } from "../../../src/policy/masking/index.js";
import { outputMask } from "../../../src/protocols/tcp/masking.js";
import type { SshEvent } from "../../../src/protocols/ssh/events.js";
import { toAsciicast } from "../../../src/protocols/ssh/events.js";
import {
  brokerKnownHostsLine,
  loadOrCreateHostKey,
  type BrokerHostKey,
} from "../../../src/protocols/ssh/host-key.js";
import { KnownHosts } from "../../../src/protocols/ssh/known-hosts.js";
import type { SshCommandPolicy } from "../../../src/protocols/ssh/policy.js";
import {
  SshSession,
  type SshSessionOptions,
  type SshTarget,
} from "../../../src/protocols/ssh/session.js";
import { startSshd, type SshdServer } from "../../helpers/sshd.js";
import { HoldQueue, run, startHarness, until, type Harness } from "./harness.js";

let sshd: SshdServer;
let work: string;
let hostKey: BrokerHostKey;
const events: SshEvent[] = [];
const holds = new HoldQueue();
const logs: string[] = [];
const harnesses: Harness[] = [];

const policy: SshCommandPolicy = {
  decideCommand(cmd) {
    if (/forbidden/.test(cmd)) return { action: "block", reason: "gw: blocked by the test policy" };
    if (/risky/.test(cmd)) return { action: "hold", reason: "gw: held: needs a human" };
    return { action: "allow" };
  },
  hold: holds.hold,
};

const masker = outputMask(compileMaskingProfile({ detectors: ["email"] }));

function target(over: Partial<SshTarget> = {}): SshTarget {
  return {
    name: "box",
    host: sshd.host,
    port: sshd.port,
    user: sshd.user,
    privateKey: sshd.privateKey,
    knownHosts: sshd.knownHostsFile,
    connectTimeoutMs: 10_000,
    ...over,
  };
}

async function harness(
  over: Partial<Omit<SshSessionOptions, "target">> & { target?: Partial<SshTarget> } = {},
): Promise<Harness> {
  const h = await startHarness(
    (ch, ends) =>
      new SshSession(ch, {
        hostKeyPath: hostKey.path,
        hooks: {
          onStart: async () => undefined,
          onEvent: (e) => void events.push(e),
          onEnd: (info) => void ends.push(info),
        },
        policy,
        maskOutput: masker,
        log: {
          log: (level, msg, fields) =>
            void logs.push(`${level} ${msg} ${JSON.stringify(fields ?? {})}`),
        },
        ...over,
        target: target(over.target),
      }),
  );
  harnesses.push(h);
  return h;
}

let main: Harness;
let brokerKnownHosts: string;

function sshOpts(port: number, knownHosts = brokerKnownHosts): string[] {
  return [
    "-F",
    "/dev/null",
    "-o",
    `UserKnownHostsFile=${knownHosts}`,
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    "BatchMode=yes",
    "-o",
    "IdentityAgent=none",
    "-o",
    "ConnectTimeout=10",
  ];
}

function ssh(port: number, args: string[], input?: string, knownHosts?: string) {
  return run(
    "ssh",
    [...sshOpts(port, knownHosts), "-p", String(port), "someone@127.0.0.1", ...args],
    {
      ...(input !== undefined ? { input } : {}),
    },
  );
}

/** ssh2's client against the harness (it pins nothing; the OpenSSH tests pin). */
function connectSsh2(
  port: number,
  extra: Record<string, unknown> = {},
): Promise<InstanceType<typeof ssh2.Client>> {
  return new Promise((resolve, reject) => {
    const c = new ssh2.Client();
    c.once("ready", () => resolve(c));
    c.once("error", reject);
    c.connect({ host: "127.0.0.1", port, username: "anyone", readyTimeout: 10_000, ...extra });
  });
}

function execSsh2(
  c: InstanceType<typeof ssh2.Client>,
  command: string,
  opts: Record<string, unknown> = {},
): Promise<{ stdout: string; stderr: string; code: number | null; signal: string | null }> {
  return new Promise((resolve, reject) => {
    c.exec(command, opts, (err, ch) => {
      if (err) return reject(err);
      let stdout = "";
      let stderr = "";
      let code: number | null = null;
      let signal: string | null = null;
      ch.on("data", (d: Buffer) => (stdout += d.toString()));
      ch.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      ch.on("exit", (c: number | null, s?: string) => {
        code = c;
        signal = s ?? null;
      });
      ch.on("close", () => resolve({ stdout, stderr, code, signal }));
    });
  });
}

beforeAll(async () => {
  sshd = await startSshd();
  work = mkdtempSync(join(tmpdir(), "gw-ssh-test-"));
  hostKey = loadOrCreateHostKey(join(work, "keys", "ssh_host_ed25519"));
  main = await harness();
  brokerKnownHosts = join(work, "known_hosts");
  writeFileSync(brokerKnownHosts, brokerKnownHostsLine(hostKey, "127.0.0.1", main.port) + "\n");
});

afterAll(async () => {
  for (const h of harnesses) await h.close();
  await sshd?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("the broker's host key", () => {
  test("is generated once, 0600, and reused", () => {
    expect(statSync(hostKey.path).mode & 0o777).toBe(0o600);
    expect(hostKey.publicKey).toMatch(/^ssh-ed25519 AAAA/);
    expect(hostKey.fingerprint).toMatch(/^SHA256:/);
    const again = loadOrCreateHostKey(hostKey.path);
    expect(again.publicKey).toBe(hostKey.publicKey);
  });

  test("a client that pinned another key refuses the broker", async () => {
    const other = loadOrCreateHostKey(join(work, "keys", "other"));
    const kh = join(work, "known_hosts.other");
    writeFileSync(kh, brokerKnownHostsLine(other, "127.0.0.1", main.port) + "\n");
    const r = await ssh(main.port, ["true"], undefined, kh);
    expect(r.code).toBe(255);
    expect(r.stderr).toMatch(/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);
  });
});

describe("exec", () => {
  test("runs commands with their output and exit codes; any client user name is accepted", async () => {
    const ok = await ssh(main.port, ["echo hello from $(whoami)"]);
    expect(ok.stderr).toBe("");
    expect(ok.stdout).toBe(`hello from ${sshd.user}\n`);
    expect(ok.code).toBe(0);
    const three = await ssh(main.port, ["exit 3"]);
    expect(three.code).toBe(3);
    const err = await ssh(main.port, ["echo oops >&2; exit 7"]);
    expect(err.stderr).toBe("oops\n");
    expect(err.code).toBe(7);
    expect(events).toContainEqual(
      expect.objectContaining({ kind: "exec", command: "exit 3", decision: "allowed" }),
    );
    expect(events).toContainEqual(expect.objectContaining({ kind: "exit", code: 3 }));
  });

  test("stdin goes to the command, and EOF ends it", async () => {
    const r = await ssh(main.port, ["wc -c"], "twelve bytes");
    expect(r.stdout.trim()).toBe("12");
    expect(r.code).toBe(0);
  });

  test("a signal ends the command with an exit signal", async () => {
    const c = await connectSsh2(main.port);
    const r = await execSsh2(c, "kill -TERM $$");
    expect(r.code).toBeNull();
    expect(r.signal).toBe("SIGTERM");
    c.end();
  });

  test("env is passed on (as the target's AcceptEnv allows)", async () => {
    const c = await connectSsh2(main.port);
    const r = await execSsh2(c, "echo $GW_COLOUR", { env: { GW_COLOUR: "teal" } });
    expect(r.stdout).toBe("teal\n");
    c.end();
    expect(events).toContainEqual(expect.objectContaining({ kind: "env", name: "GW_COLOUR" }));
  });

  test("output is masked before the client and the recording see it", async () => {
    const r = await ssh(main.port, ["echo contact: alice@example.com; echo bob@example.org >&2"]);
    expect(r.stdout).toBe("contact: [redacted:email]\n");
    expect(r.stderr).toBe("[redacted:email]\n");
    const recorded = events
      .filter((e): e is Extract<SshEvent, { kind: "output" }> => e.kind === "output")
      .map((e) => e.data)
      .join("");
    expect(recorded).toContain("contact: [redacted:email]");
    expect(recorded).not.toContain("alice@example.com");
    expect(recorded).not.toContain("bob@example.org");
  });

  test("large output arrives whole (backpressure)", async () => {
    const r = await ssh(main.port, ["head -c 3000000 /dev/zero | tr '\\0' 'x'"]);
    expect(r.stdout.length).toBe(3_000_000);
    expect(r.code).toBe(0);
  });
});

describe("policy", () => {
  test("a blocked command gets the reason on stderr and exit 1; the connection goes on", async () => {
    const c = await connectSsh2(main.port);
    const blocked = await execSsh2(c, "echo forbidden > /tmp/gw-forbidden-marker");
    expect(blocked.code).toBe(1);
    expect(blocked.stderr).toBe("gw: blocked by the test policy\n");
    expect(existsSync("/tmp/gw-forbidden-marker")).toBe(false);
    const next = await execSsh2(c, "echo still here");
    expect(next.stdout).toBe("still here\n");
    c.end();
    expect(events).toContainEqual(
      expect.objectContaining({
        kind: "exec",
        decision: "blocked",
        reason: "gw: blocked by the test policy",
      }),
    );
  });

  test("the real ssh client sees a blocked command the same way", async () => {
    const r = await ssh(main.port, ["forbidden-thing"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("gw: blocked by the test policy");
  });

  test("a held command waits for approval, the client is told, then it runs", async () => {
    const p = ssh(main.port, ["echo risky business ran"]);
    const h = await holds.next();
    expect(h.text).toBe("echo risky business ran");
    h.resolve({ action: "allow" });
    const r = await p;
    expect(r.stderr).toContain("gw: waiting for approval of request test-");
    expect(r.stdout).toBe("risky business ran\n");
    expect(r.code).toBe(0);
    expect(events).toContainEqual(
      expect.objectContaining({
        kind: "exec",
        command: "echo risky business ran",
        decision: "approved",
      }),
    );
  });

  test("a denied held command is refused with the reason", async () => {
    const p = ssh(main.port, ["echo risky denied"]);
    const h = await holds.next();
    h.resolve({ action: "deny", reason: "gw: request 1234 was denied by Dana: not today" });
    const r = await p;
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain("gw: request 1234 was denied by Dana: not today");
  });

  test("a client that leaves while held aborts the wait", async () => {
    const c = await connectSsh2(main.port);
    void execSsh2(c, "echo risky gone").catch(() => undefined);
    const h = await holds.next();
    c.end();
    await until(() => h.signal.aborted, "the hold to be aborted");
    h.resolve({ action: "allow" });
  });

  test("shells, sftp and scp can be denied", async () => {
    const h = await harness({ access: { shell: false, sftp: false } });
    const kh = join(work, "kh-deny");
    writeFileSync(kh, brokerKnownHostsLine(hostKey, "127.0.0.1", h.port) + "\n");
    const shell = await run(
      "ssh",
      [...sshOpts(h.port, kh), "-tt", "-p", String(h.port), "x@127.0.0.1"],
      {
        input: "echo hi; exit\n",
      },
    );
    expect(shell.stdout + shell.stderr).toContain("interactive shells are not allowed");
    expect(shell.code).toBe(1);
    const file = join(work, "deny.txt");
    writeFileSync(file, "nope");
    const scp = await run("scp", [
      ...sshOpts(h.port, kh),
      "-O",
      "-P",
      String(h.port),
      file,
      `x@127.0.0.1:${sshd.filesDir}/deny.txt`,
    ]);
    expect(scp.code).not.toBe(0);
    expect(scp.stderr).toContain("file transfer (scp) is not allowed");
    const sftp = await run(
      "sftp",
      [...sshOpts(h.port, kh), "-P", String(h.port), "-b", "-", "x@127.0.0.1"],
      {
        input: `put ${file} ${sshd.filesDir}/deny.txt\n`,
      },
    );
    expect(sftp.code).not.toBe(0);
    expect(sftp.stderr).toContain("file transfer (sftp) is not allowed");
    expect(existsSync(join(sshd.filesDir, "deny.txt"))).toBe(false);
  });
});

describe("interactive shell", () => {
  test("a pty shell with the real client (ssh -tt), recorded as asciicast", async () => {
    const before = events.length;
    const r = await run(
      "ssh",
      [...sshOpts(main.port), "-tt", "-p", String(main.port), "me@127.0.0.1"],
      {
        input: "echo hi-$((40+2)) mail@example.com; tty; exit 5\n",
      },
    );
    expect(r.stdout).toContain("hi-42 [redacted:email]");
    expect(r.stdout).toMatch(/\/dev\/pts\/\d+/);
    expect(r.stdout).not.toContain("mail@example.com");
    expect(r.code).toBe(5);
    const mine = events.slice(before);
    const shell = mine.find((e) => e.kind === "shell");
    expect(shell).toMatchObject({
      kind: "shell",
      decision: "allowed",
      pty: { term: expect.any(String) },
    });
    const cast = toAsciicast(mine)!;
    const lines = cast.trim().split("\n");
    expect(JSON.parse(lines[0]!)).toMatchObject({ version: 2 });
    expect(
      lines
        .slice(1)
        .map((l) => JSON.parse(l) as unknown[])
        .every((e) => e[1] === "o" || e[1] === "r"),
    ).toBe(true);
    expect(cast).toContain("hi-42");
  });

  test("window changes reach the target and are recorded as resizes", async () => {
    const c = await connectSsh2(main.port);
    const out = await new Promise<string>((resolve, reject) => {
      c.shell({ rows: 24, cols: 80, term: "xterm" }, (err, ch) => {
        if (err) return reject(err);
        let buf = "";
        ch.on("data", (d: Buffer) => {
          buf += d.toString();
          if (buf.includes("READY")) {
            ch.setWindow(40, 132, 0, 0);
            setTimeout(() => ch.write("stty size; exit\n"), 200);
          }
        });
        ch.on("close", () => resolve(buf));
        ch.write("echo READ''Y\n");
      });
    });
    expect(out).toContain("40 132");
    c.end();
    expect(events).toContainEqual(expect.objectContaining({ kind: "resize", cols: 132, rows: 40 }));
  });
});

describe("file transfer", () => {
  test("scp (sftp protocol and legacy -O) up and down, recorded with paths and sizes", async () => {
    const src = join(work, "up.bin");
    const data = Buffer.alloc(200_000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7) % 251;
    writeFileSync(src, data);
    for (const legacy of [false, true]) {
      const name = legacy ? "legacy.bin" : "modern.bin";
      const up = await run("scp", [
        ...sshOpts(main.port),
        ...(legacy ? ["-O"] : []),
        "-P",
        String(main.port),
        src,
        `x@127.0.0.1:${sshd.filesDir}/${name}`,
      ]);
      expect(up.stderr).toBe("");
      expect(up.code).toBe(0);
      expect(readFileSync(join(sshd.filesDir, name)).equals(data)).toBe(true);
      const back = join(work, `back-${name}`);
      const down = await run("scp", [
        ...sshOpts(main.port),
        ...(legacy ? ["-O"] : []),
        "-P",
        String(main.port),
        `x@127.0.0.1:${sshd.filesDir}/${name}`,
        back,
      ]);
      expect(down.code).toBe(0);
      expect(readFileSync(back).equals(data)).toBe(true);
    }
    expect(events).toContainEqual(
      expect.objectContaining({
        kind: "sftp",
        op: "write",
        path: `${sshd.filesDir}/modern.bin`,
        bytes: 200_000,
      }),
    );
    expect(events).toContainEqual(
      expect.objectContaining({
        kind: "sftp",
        op: "read",
        path: `${sshd.filesDir}/modern.bin`,
        bytes: 200_000,
      }),
    );
    expect(events).toContainEqual(
      expect.objectContaining({
        kind: "exec",
        transfer: "upload",
        command: expect.stringContaining(`${sshd.filesDir}/legacy.bin`),
      }),
    );
    expect(events).toContainEqual(expect.objectContaining({ kind: "exec", transfer: "download" }));
  });

  test("sftp batch mode: put, rename, ls, get, rm, mkdir, rmdir", async () => {
    const src = join(work, "notes.txt");
    writeFileSync(src, "some notes\n");
    const got = join(work, "notes-back.txt");
    const d = sshd.filesDir;
    const batch = [
      `put ${src} ${d}/notes.txt`,
      `rename ${d}/notes.txt ${d}/renamed.txt`,
      `ls ${d}`,
      `get ${d}/renamed.txt ${got}`,
      `rm ${d}/renamed.txt`,
      `mkdir ${d}/sub`,
      `rmdir ${d}/sub`,
    ].join("\n");
    const r = await run(
      "sftp",
      [...sshOpts(main.port), "-P", String(main.port), "-b", "-", "x@127.0.0.1"],
      { input: batch + "\n" },
    );
    expect(r.code).toBe(0);
    expect(readFileSync(got, "utf8")).toBe("some notes\n");
    expect(r.stdout).toContain("renamed.txt");
    const ops = events.filter((e): e is Extract<SshEvent, { kind: "sftp" }> => e.kind === "sftp");
    expect(ops).toContainEqual(
      expect.objectContaining({
        op: "open",
        path: `${d}/notes.txt`,
        mode: expect.stringContaining("write"),
      }),
    );
    expect(ops).toContainEqual(
      expect.objectContaining({ op: "write", path: `${d}/notes.txt`, bytes: 11 }),
    );
    expect(ops).toContainEqual(
      expect.objectContaining({
        op: "rename",
        path: `${d}/notes.txt`,
        to: `${d}/renamed.txt`,
        ok: true,
      }),
    );
    expect(ops).toContainEqual(
      expect.objectContaining({ op: "read", path: `${d}/renamed.txt`, bytes: 11 }),
    );
    expect(ops).toContainEqual(
      expect.objectContaining({ op: "remove", path: `${d}/renamed.txt`, ok: true }),
    );
    expect(ops).toContainEqual(
      expect.objectContaining({ op: "mkdir", path: `${d}/sub`, ok: true }),
    );
    expect(ops).toContainEqual(
      expect.objectContaining({ op: "rmdir", path: `${d}/sub`, ok: true }),
    );
  });
});

describe("forwarding", () => {
  let echo: Server;
  let echoPort: number;
  beforeAll(async () => {
    echo = createTcpServer((s) => s.pipe(s));
    await new Promise<void>((r) => echo.listen(0, "127.0.0.1", r));
    echoPort = (echo.address() as { port: number }).port;
  });
  afterAll(() => echo.close());

  const forwardOut = (c: InstanceType<typeof ssh2.Client>) =>
    new Promise<string>((resolve, reject) => {
      c.forwardOut("127.0.0.1", 1234, "127.0.0.1", echoPort, (err, ch) => {
        if (err) return reject(err);
        ch.once("data", (d: Buffer) => {
          resolve(d.toString());
          ch.close();
        });
        ch.write("ping");
      });
    });

  test("port forwarding is refused by default", async () => {
    const c = await connectSsh2(main.port);
    await expect(forwardOut(c)).rejects.toThrow();
    const remote = await new Promise<Error | undefined>((r) =>
      c.forwardIn("127.0.0.1", 0, (err) => r(err)),
    );
    expect(remote).toBeInstanceOf(Error);
    c.end();
    expect(events).toContainEqual(
      expect.objectContaining({ kind: "forward", direction: "local", decision: "denied" }),
    );
    expect(events).toContainEqual(
      expect.objectContaining({ kind: "forward", direction: "remote", decision: "denied" }),
    );
  });

  test("and relayed when the policy allows it", async () => {
    const h = await harness({ access: { portForwarding: true } });
    const c = await connectSsh2(h.port);
    expect(await forwardOut(c)).toBe("ping");
    c.end();
  });

  test("remote forwarding (-R) when the policy allows it", async () => {
    const h = await harness({ access: { portForwarding: true } });
    const c = await connectSsh2(h.port);
    c.on("tcp connection", (_info, accept) => {
      const ch = accept();
      ch.on("data", (d: Buffer) => ch.write(`back:${d.toString()}`));
    });
    const port = await new Promise<number>((resolve, reject) =>
      c.forwardIn("127.0.0.1", 0, (err, p) => (err ? reject(err) : resolve(p))),
    );
    // The target listens on its side (the same host here); a connection there comes back to us.
    const got = await new Promise<string>((resolve, reject) => {
      const s = connect(port, "127.0.0.1", () => s.write("hi"));
      s.once("data", (d: Buffer) => {
        resolve(d.toString());
        s.destroy();
      });
      s.on("error", reject);
    });
    expect(got).toBe("back:hi");
    c.end();
    expect(events).toContainEqual(
      expect.objectContaining({ kind: "forward", direction: "remote", decision: "allowed", port }),
    );
  });

  test("agent forwarding (-A) when the policy allows it", async () => {
    const h = await harness({ access: { agentForwarding: true } });
    const kh = join(work, "kh-agent");
    writeFileSync(kh, brokerKnownHostsLine(hostKey, "127.0.0.1", h.port) + "\n");
    const sock = join(work, "agent.sock");
    const agent = spawn("ssh-agent", ["-D", "-a", sock], { stdio: "ignore" });
    try {
      await until(() => existsSync(sock), "ssh-agent to listen");
      const keyFile = join(work, "agent_key");
      writeFileSync(keyFile, sshd.privateKey, { mode: 0o600 });
      const env = { ...process.env, SSH_AUTH_SOCK: sock };
      expect((await run("ssh-add", ["-q", keyFile], { env })).code).toBe(0);
      const opts = sshOpts(h.port, kh).map((o) =>
        o === "IdentityAgent=none" ? "ForwardAgent=yes" : o,
      );
      const r = await run("ssh", [...opts, "-p", String(h.port), "x@127.0.0.1", "ssh-add -l"], {
        env,
      });
      expect(r.stderr + r.stdout).toMatch(/SHA256:\S+ gw-test \(ED25519\)/);
      expect(events).toContainEqual(
        expect.objectContaining({ kind: "agent", decision: "allowed" }),
      );
    } finally {
      agent.kill();
    }
  });

  test("agent forwarding is refused by default", async () => {
    // An agent (that is never reached) so that ssh2 asks for forwarding.
    const c = await connectSsh2(main.port, { agent: join(work, "no-agent.sock") });
    const r = await new Promise<Error | undefined>((resolve) =>
      c.exec("true", { agentForward: true } as never, (err, ch) => {
        if (err) return resolve(err);
        ch.on("close", () => resolve(undefined));
        ch.resume();
      }),
    ).catch((e: unknown) => e as Error);
    expect(r).toBeInstanceOf(Error);
    c.end();
  });
});

describe("the target side", () => {
  test("a target reached through a dial (an outbound agent's stream) works like a direct one", async () => {
    const dialled: string[] = [];
    const viaDial = await harness({
      target: {
        host: "box.private",
        dial: async (host, port) => {
          dialled.push(`${host}:${port}`);
          // What the agent would do in the target's network; the name is the broker's.
          const sock = connect({ host: "127.0.0.1", port: sshd.port });
          await new Promise<void>((resolve, reject) => {
            sock.once("connect", resolve);
            sock.once("error", reject);
          });
          return sock;
        },
        knownHosts: new KnownHosts(`[box.private]:${sshd.port} ${sshd.hostPublicKey}\n`, "test"),
        port: sshd.port,
      },
    });
    const kh = join(work, "kh-dial");
    writeFileSync(kh, brokerKnownHostsLine(hostKey, "127.0.0.1", viaDial.port) + "\n");
    const r = await ssh(viaDial.port, ["echo through the dial; exit 4"], undefined, kh);
    expect(r.stdout).toBe("through the dial\n");
    expect(r.code).toBe(4);
    expect(dialled).toEqual([`box.private:${sshd.port}`]);

    const refused = await harness({
      target: {
        dial: () =>
          Promise.reject(
            new Error(
              "gw: connection box goes through agent edge, which is not connected to this broker",
            ),
          ),
      },
    });
    const kh2 = join(work, "kh-dial-refused");
    writeFileSync(kh2, brokerKnownHostsLine(hostKey, "127.0.0.1", refused.port) + "\n");
    const bad = await ssh(refused.port, ["echo never"], undefined, kh2);
    expect(bad.code).not.toBe(0);
    expect(bad.stdout).toBe("");
    expect(bad.stderr).toContain("which is not connected to this broker");
  });

  test("password and passphrase-protected keys sign in too", async () => {
    const pw = await harness({ target: { privateKey: undefined, password: sshd.password } });
    const khPw = join(work, "kh-pw");
    writeFileSync(khPw, brokerKnownHostsLine(hostKey, "127.0.0.1", pw.port) + "\n");
    const a = await ssh(pw.port, ["echo via password"], undefined, khPw);
    expect(a.stdout).toBe("via password\n");

    const enc = await harness({
      target: { privateKey: sshd.encryptedKey, passphrase: sshd.passphrase },
    });
    const khEnc = join(work, "kh-enc");
    writeFileSync(khEnc, brokerKnownHostsLine(hostKey, "127.0.0.1", enc.port) + "\n");
    const b = await ssh(enc.port, ["echo via key"], undefined, khEnc);
    expect(b.stdout).toBe("via key\n");

    // Nothing of the credential reaches the client, in any byte the session sent.
    const all = Buffer.concat([...pw.sent, ...enc.sent, ...main.sent]);
    const secrets = [
      sshd.password,
      sshd.passphrase,
      ...keyBodies(sshd.privateKey),
      ...keyBodies(sshd.encryptedKey),
    ];
    for (const s of secrets) expect(all.includes(Buffer.from(s))).toBe(false);
    const printed =
      a.stdout + a.stderr + b.stdout + b.stderr + JSON.stringify(events) + logs.join("\n");
    for (const s of secrets) expect(printed).not.toContain(s);
  });

  test("a changed target host key is refused with a clear message", async () => {
    const h = await harness({ target: { knownHosts: sshd.wrongKnownHostsFile } });
    const kh = join(work, "kh-wrong");
    writeFileSync(kh, brokerKnownHostsLine(hostKey, "127.0.0.1", h.port) + "\n");
    const r = await ssh(h.port, ["echo should not run"], undefined, kh);
    expect(r.code).toBe(255);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain("gw: cannot open box: the target's host key has CHANGED");
    expect(r.stderr).toMatch(/ssh-ed25519 key SHA256:/);
    expect(
      logs.some((l) => l.includes("has CHANGED") && l.includes(sshd.wrongKnownHostsFile)),
    ).toBe(true);
    await until(() => h.ends.length > 0, "the session to end");
    expect(h.ends[0]!.reason).not.toBe("client_closed");
  });

  test("an unknown target host key is refused too", async () => {
    const empty = join(work, "known_hosts.empty");
    writeFileSync(empty, "");
    const h = await harness({ target: { knownHosts: empty } });
    const kh = join(work, "kh-unknown");
    writeFileSync(kh, brokerKnownHostsLine(hostKey, "127.0.0.1", h.port) + "\n");
    const r = await ssh(h.port, ["true"], undefined, kh);
    expect(r.code).toBe(255);
    expect(r.stderr).toContain("host key is not known to the broker");
  });

  test("a wrong credential is reported without the secret", async () => {
    const h = await harness({ target: { privateKey: undefined, password: "wrong-password-123" } });
    const kh = join(work, "kh-badpw");
    writeFileSync(kh, brokerKnownHostsLine(hostKey, "127.0.0.1", h.port) + "\n");
    const r = await ssh(h.port, ["true"], undefined, kh);
    expect(r.code).toBe(255);
    expect(r.stderr).toContain("the target refused the broker's credential");
    expect(r.stderr).not.toContain("wrong-password-123");
  });
});

describe("session lifecycle", () => {
  test("terminate tells open channels and ends the session", async () => {
    const ends: number = main.ends.length;
    const c = await connectSsh2(main.port);
    const p = execSsh2(c, "sleep 30");
    await until(
      () => events.some((e) => e.kind === "exec" && e.command === "sleep 30"),
      "the command to start",
    );
    const s = main.sessions[main.sessions.length - 1]!;
    s.terminate("auth_expired", "gw: your sign-in expired; run `gw login`");
    const r = await p.catch(() => ({ stderr: "" }));
    expect(r.stderr).toContain("gw: your sign-in expired");
    await until(() => main.ends.length > ends, "the session to end");
    expect(main.ends.some((e) => e.reason === "auth_expired")).toBe(true);
    c.end();
  });
});

/** Long base64 runs of a key file: any of them in the output would be the key leaking. */
function keyBodies(key: string): string[] {
  return key
    .split("\n")
    .filter((l) => /^[A-Za-z0-9+/=]{40,}$/.test(l))
    .slice(0, 3);
}
