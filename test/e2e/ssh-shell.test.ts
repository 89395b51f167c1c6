/**
 * ssh through the whole data path, as a person uses it: the real OpenSSH client in a real
 * terminal (tmux), `gw connect`'s tunnel, the broker (which terminates SSH with its own pinned
 * host key and signs in to the target with the stored key) and a real sshd.
 *
 * An interactive shell with a pty: typed commands run and their output comes back (masked),
 * Ctrl-C reaches the target, a window resize reaches the target's pty (`stty size`, `tput
 * cols`), and `exit 7` ends ssh with status 7; the recording has the shell, its output, the
 * resize and the exit. Commands (exec): exit codes, stdout/stderr apart, stdin, environment
 * variables (SetEnv / SendEnv, as the target's AcceptEnv allows) and an exit by signal, each
 * recorded as a statement row.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toAsciicast } from "../../src/protocols/ssh/events.js";
import { runGw } from "../helpers/cli.js";
import {
  clientOptions,
  endedSession,
  eventually,
  pinBroker,
  secretFile,
  ssh,
  sshEventsOf,
  watchedTunnel,
  type BrokerPin,
  type WatchedTunnel,
} from "../helpers/ssh-e2e.js";
import { startSshd, type SshdServer } from "../helpers/sshd.js";
import { GROUP_DBA, startStack, type Stack } from "../helpers/stack.js";
import { TmuxServer } from "../helpers/tmux.js";
import { run } from "../protocols/ssh/harness.js";

let sshd: SshdServer;
let stack: Stack;
let dir: string;
let pin: BrokerPin;
let box: WatchedTunnel;
let tmux: TmuxServer;

beforeAll(async () => {
  tmux = TmuxServer.start();
  sshd = await startSshd();
  dir = mkdtempSync(join(tmpdir(), "gw-e2e-ssh-shell-"));
  const key = secretFile(dir, "target_key", sshd.privateKey);
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
        policy: { mask: { detectors: ["email"] } },
      },
    },
  });
  pin = await pinBroker(stack, dir);
  box = await watchedTunnel(stack, "box");
});

afterAll(async () => {
  await tmux?.stop();
  await stack?.stop();
  await sshd?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The session the tunnel's latest stream opened, once it has ended. */
async function lastSession(before: number): Promise<string> {
  const id = await eventually("the stream's session", () =>
    box.sessions.length > before ? box.sessions[box.sessions.length - 1] : undefined,
  );
  await endedSession(stack.store, id);
  return id;
}

describe("an interactive shell in a terminal", () => {
  it("runs typed commands, follows Ctrl-C and a resize, exits with the status, and is recorded", async () => {
    const before = box.sessions.length;
    const term = await tmux.run(
      ["ssh", ...clientOptions(pin), "-p", String(box.port), "dana@127.0.0.1"],
      { TERM: "xterm-256color" },
      { width: 100, height: 30 },
    );
    // The target's shell prompt (bash, as the target's user).
    await term.waitFor("the target's prompt", (s) => /\$ $/m.test(s), { scrollback: true });
    await term.line("PS1='e2e> '");
    await term.line("echo hello-$((6*7)) from $(whoami)");
    await term.waitFor("the command's output", (s) => s.includes(`hello-42 from ${sshd.user}`), {
      scrollback: true,
    });

    // Output is masked before it reaches the terminal (the typed line has no address in it).
    await term.line("echo ops@exa''mple.com done-1");
    const masked = await term.waitFor(
      "the masked line",
      (s) => s.includes("[redacted:email] done-1"),
      { scrollback: true },
    );
    expect(masked).not.toContain("ops@example.com");

    // Ctrl-C is a byte in the pty: the target's shell interrupts the sleep, not the session.
    await term.line("sleep 300; echo not-interrupted");
    await term.waitFor("the sleep to start", (s) => s.includes("e2e> sleep 300"), {
      scrollback: true,
    });
    await term.keys("C-c");
    await term.line("echo after-interrupt-$((1+1))");
    const afterInterrupt = await term.waitFor(
      "the prompt after Ctrl-C",
      (s) => s.includes("after-interrupt-2"),
      { scrollback: true },
    );
    expect(afterInterrupt).not.toMatch(/^not-interrupted$/m);

    // The target's pty has the terminal's size, and follows a resize.
    expect(await term.size()).toEqual({ cols: 100, rows: 30 });
    await term.line('echo "size-a: $(stty size) cols-a: $(tput cols)"');
    await term.waitFor("the first size", (s) => s.includes("size-a: 30 100 cols-a: 100"), {
      scrollback: true,
    });
    await term.resize(120, 40);
    expect(await term.size()).toEqual({ cols: 120, rows: 40 });
    await term.line('echo "size-b: $(stty size) cols-b: $(tput cols)"');
    await term.waitFor("the new size", (s) => s.includes("size-b: 40 120 cols-b: 120"), {
      scrollback: true,
    });

    await term.line("exit 7");
    expect(await term.waitForExit()).toBe(7);

    const id = await lastSession(before);
    const events = await sshEventsOf(stack.store, id);
    expect(events).toContainEqual(
      expect.objectContaining({
        kind: "shell",
        decision: "allowed",
        pty: { term: "xterm-256color", cols: 100, rows: 30 },
      }),
    );
    expect(events).toContainEqual(expect.objectContaining({ kind: "resize", cols: 120, rows: 40 }));
    expect(events).toContainEqual(expect.objectContaining({ kind: "exit", code: 7 }));
    const output = events
      .filter((e) => e.kind === "output")
      .map((e) => (e.kind === "output" ? e.data : ""))
      .join("");
    expect(output).toContain(`hello-42 from ${sshd.user}`);
    expect(output).toContain("[redacted:email] done-1");
    expect(output).toContain("size-b: 40 120 cols-b: 120");
    expect(output).not.toContain("ops@example.com");
    // The order is the session's: shell, then the resize, then the exit.
    const order = events.map((e) => e.kind);
    expect(order.indexOf("shell")).toBeLessThan(order.indexOf("resize"));
    expect(order.indexOf("resize")).toBeLessThan(order.lastIndexOf("exit"));

    // Replayable: an asciicast with the size at the start and the resize.
    const cast = toAsciicast(events)!.trim().split("\n");
    expect(JSON.parse(cast[0]!)).toMatchObject({ version: 2, width: 100, height: 30 });
    expect(cast.slice(1).map((l) => JSON.parse(l) as unknown[])).toContainEqual([
      expect.any(Number),
      "r",
      "120x40",
    ]);

    const session = await stack.store.getSession(id);
    expect(session).toMatchObject({
      connection: "box",
      protocol: "ssh",
      identity: { name: "Dana DBA" },
      endReason: "client_closed",
    });

    // The auditor's way: gw replay exports it, and the real asciinema plays it.
    const castDir = mkdtempSync(join(tmpdir(), "gw-e2e-cast-"));
    try {
      const file = join(castDir, "shell.cast");
      const exported = await runGw(
        [
          "replay",
          id,
          "--export",
          "asciicast",
          file,
          "--broker",
          stack.broker.url,
          "--ca-file",
          stack.ca.caCert,
        ],
        { env: { GW_TOKEN: stack.tokens.auditor } },
      );
      expect(exported.code, exported.stderr).toBe(0);
      // asciinema wants a terminal: script(1) gives it one.
      const played = await run(
        "script",
        ["-q", "-e", "-c", `asciinema cat '${file}'`, "/dev/null"],
        {
          env: { ...process.env, LC_ALL: "C.UTF-8", LANG: "C.UTF-8" },
        },
      );
      expect(played.code, played.stderr).toBe(0);
      expect(played.stdout).toContain(`hello-42 from ${sshd.user}`);
      expect(played.stdout).toContain("size-b: 40 120 cols-b: 120");
      expect(played.stdout).not.toContain("ops@example.com");
      // And --no-tui prints the final screen and the event log.
      const transcript = await runGw(
        ["replay", id, "--no-tui", "--broker", stack.broker.url, "--ca-file", stack.ca.caCert],
        { env: { GW_TOKEN: stack.tokens.auditor } },
      );
      expect(transcript.code, transcript.stderr).toBe(0);
      expect(transcript.stdout).toContain("size-b: 40 120 cols-b: 120");
    } finally {
      rmSync(castDir, { recursive: true, force: true });
    }
  });
});

describe("commands (exec)", () => {
  it("relays stdout, stderr, stdin and the exit code; each command is a statement row", async () => {
    const before = box.sessions.length;
    const r = await ssh(pin, box.port, ["echo out; echo err >&2; exit 3"]);
    expect(r.stdout).toBe("out\n");
    expect(r.stderr).toBe("err\n");
    expect(r.code).toBe(3);
    const id = await lastSession(before);

    const wc = await ssh(pin, box.port, ["wc -l"], { input: "a\nb\nc\n" });
    expect(wc.stdout.trim()).toBe("3");
    expect(wc.code).toBe(0);

    const ok = await ssh(pin, box.port, ["true"]);
    expect(ok.code).toBe(0);
    const fail = await ssh(pin, box.port, ["false"]);
    expect(fail.code).toBe(1);

    const rows = await stack.store.listStatements(id);
    expect(rows).toEqual([
      expect.objectContaining({
        sql: "echo out; echo err >&2; exit 3",
        protocol: "exec",
        commandTag: "exit 3",
        decision: "allowed",
        errorMessage: null,
      }),
    ]);
    const events = await sshEventsOf(stack.store, id);
    expect(events).toContainEqual(
      expect.objectContaining({ kind: "exec", command: "echo out; echo err >&2; exit 3" }),
    );
    expect(events).toContainEqual(
      expect.objectContaining({ kind: "output", stream: "stderr", data: "err\n" }),
    );
  });

  it("passes environment variables the target accepts (SetEnv, SendEnv); records their names only", async () => {
    const before = box.sessions.length;
    const r = await run(
      "ssh",
      [
        ...clientOptions(pin),
        "-o",
        "SetEnv=GW_E2E_GREETING=hello-env-value NOT_ACCEPTED=should-not-pass",
        "-o",
        "SendEnv=LC_E2E_LOCAL",
        "-p",
        String(box.port),
        "anyone@127.0.0.1",
        'echo "[$GW_E2E_GREETING][$LC_E2E_LOCAL][$NOT_ACCEPTED]"',
      ],
      { env: { ...process.env, SSH_AUTH_SOCK: "", LC_E2E_LOCAL: "from-the-client" } },
    );
    expect(r.stderr).toBe("");
    // sshd's AcceptEnv is LANG LC_* GW_*: the third is dropped by the target, as without gw.
    expect(r.stdout).toBe("[hello-env-value][from-the-client][]\n");
    expect(r.code).toBe(0);
    const id = await lastSession(before);
    const events = await sshEventsOf(stack.store, id);
    const names = events.flatMap((e) => (e.kind === "env" ? [e.name] : []));
    expect(names).toEqual(
      expect.arrayContaining(["GW_E2E_GREETING", "LC_E2E_LOCAL", "NOT_ACCEPTED"]),
    );
    // An env event is the name: the value (which may be a secret) is not kept.
    for (const e of events.filter((x) => x.kind === "env"))
      expect(Object.keys(e).sort()).toEqual(["channel", "kind", "name", "t"]);
    const raw = JSON.stringify(events.filter((x) => x.kind !== "output"));
    expect(raw).not.toContain("hello-env-value");
    expect(raw).not.toContain("from-the-client");
    expect(raw).not.toContain("should-not-pass");
  });

  it("a command that ends by a signal: the client sees it, the row says which", async () => {
    const before = box.sessions.length;
    const r = await ssh(pin, box.port, ["echo about-to-die; kill -TERM $$"]);
    expect(r.stdout).toBe("about-to-die\n");
    // OpenSSH reports a remote signal as exit status 255 and says which signal.
    expect(r.code).toBe(255);
    const id = await lastSession(before);
    const events = await sshEventsOf(stack.store, id);
    expect(events).toContainEqual(
      expect.objectContaining({
        kind: "exit",
        code: null,
        signal: expect.stringMatching(/^(SIG)?TERM$/),
      }),
    );
    const rows = await stack.store.listStatements(id);
    expect(rows).toEqual([
      expect.objectContaining({
        sql: "echo about-to-die; kill -TERM $$",
        commandTag: expect.stringMatching(/^signal (SIG)?TERM$/),
        decision: "allowed",
      }),
    ]);
  });
});

describe("the recording", () => {
  it("gw audit verify finds every ssh session's chain intact", async () => {
    for (const id of box.sessions) await endedSession(stack.store, id);
    const v = await runGw(
      [
        "audit",
        "verify",
        "--connection",
        "box",
        "--json",
        "--broker",
        stack.broker.url,
        "--ca-file",
        stack.ca.caCert,
      ],
      { env: { GW_TOKEN: stack.tokens.auditor } },
    );
    expect(v.code).toBe(0);
    const out = JSON.parse(v.stdout) as { ok: boolean; results: { status: string }[] };
    expect(out.ok).toBe(true);
    expect(out.results).toHaveLength(box.sessions.length);
    expect(out.results.every((r) => r.status === "intact")).toBe(true);
  });
});
