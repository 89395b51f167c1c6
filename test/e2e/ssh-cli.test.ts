/**
 * The broker's ssh host key, pinned by the real CLI: `gw connect` (bin/gw, run `npm run build`
 * first) against a real broker, with the real ssh client and a real sshd behind it.
 *
 * `gw connect` pins the broker's key the first time (it came over verified HTTPS), says its
 * fingerprint (the one OpenSSH then sees) and prints an ssh command that checks it;
 * `gw ssh-config` prints a ~/.ssh/config stanza (HostKeyAlias, gw's own known_hosts,
 * StrictHostKeyChecking yes) that `ssh -F` connects with. When the broker's key is no longer
 * the pinned one, `gw connect` and `gw ssh-config` refuse (ssh_host_key_changed) with both
 * fingerprints, ssh itself refuses the stanza's host, and `--accept-new-host-key` re-pins.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runGw, startGw, startGwUntil, type BackgroundGw } from "../helpers/cli.js";
import { secretFile } from "../helpers/ssh-e2e.js";
import { startSshd, type SshdServer } from "../helpers/sshd.js";
import { GROUP_DBA, startStack, type Stack } from "../helpers/stack.js";
import { run } from "../protocols/ssh/harness.js";

interface ConnectJson {
  connection: string;
  type: string;
  broker: string;
  listen: { host: string; port: number };
  url: string;
  command: string;
  sshHostKey?: { fingerprint: string; alias: string };
}

let sshd: SshdServer;
let stack: Stack;
let dir: string;
let configDir: string;
let brokerArgs: string[];
let env: Record<string, string>;
const running: BackgroundGw<unknown>[] = [];

beforeAll(async () => {
  sshd = await startSshd();
  dir = mkdtempSync(join(tmpdir(), "gw-e2e-ssh-cli-"));
  configDir = join(dir, "config");
  const key = secretFile(dir, "target_key", sshd.privateKey);
  stack = await startStack({
    connections: {
      box: {
        type: "ssh",
        description: "the e2e box",
        target: {
          host: sshd.host,
          port: sshd.port,
          user: sshd.user,
          privateKey: { file: key },
          knownHosts: sshd.knownHostsFile,
        },
        allow: [`group:${GROUP_DBA}`],
      },
    },
  });
  brokerArgs = ["--broker", stack.broker.url, "--ca-file", stack.ca.caCert];
  env = { GW_TOKEN: stack.tokens.dba, GW_CONFIG_DIR: configDir };
});

afterAll(async () => {
  for (const p of running) await p.stop("SIGKILL").catch(() => undefined);
  await stack?.stop();
  await sshd?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function connectJson(...extra: string[]): Promise<BackgroundGw<ConnectJson>> {
  const p = await startGw<ConnectJson>(
    ["connect", "box", "--port", "0", "--json", ...brokerArgs, ...extra],
    { env },
  );
  running.push(p);
  return p;
}

/** The fingerprint OpenSSH computes for the host key it was shown. */
function serverKeySeen(verboseStderr: string): string | undefined {
  return /Server host key: ssh-ed25519 (SHA256:\S+)/.exec(verboseStderr)?.[1];
}

/** Another ed25519 key, as if the broker's had been replaced. */
function otherKey(): { hostKey: string; fingerprint: string } {
  const f = join(dir, `other-${Math.random().toString(16).slice(2)}`);
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", f], { stdio: "ignore" });
  const pub = readFileSync(`${f}.pub`, "utf8").trim().split(/\s+/).slice(0, 2).join(" ");
  const fp = execFileSync("ssh-keygen", ["-l", "-f", `${f}.pub`], { encoding: "utf8" }).split(
    /\s+/,
  )[1]!;
  return { hostKey: pub, fingerprint: fp };
}

const pinsFile = () => join(configDir, "ssh-pins.json");
const knownHostsFile = () => join(configDir, "ssh_known_hosts");
type Pins = { brokers: Record<string, { hostKey: string; fingerprint: string }> };

describe("the broker's ssh host key, pinned by gw connect and gw ssh-config", () => {
  let fingerprint: string;
  let alias: string;
  let stanzaFile: string;
  let port: number;

  it("gw connect pins the key on first use and says so; --json gives the fingerprint and a command that checks it", async () => {
    // First contact, as a person sees it.
    const first = await startGwUntil(
      ["connect", "box", "--port", "0", ...brokerArgs],
      /Press Ctrl-C to close the tunnel/,
      { env },
    );
    running.push(first);
    expect(first.stderr()).toMatch(/The broker's SSH host key is SHA256:\S+ \(pinned now\)/);
    expect(first.stderr()).toContain("`gw ssh-config box` prints a stanza for ~/.ssh/config");
    expect((await first.stop()).code).toBe(0);

    const gw = await connectJson();
    const j = gw.json;
    expect(j.type).toBe("ssh");
    expect(j.sshHostKey).toEqual({
      fingerprint: expect.stringMatching(/^SHA256:[A-Za-z0-9+/]{43}$/),
      alias: expect.stringMatching(/^gw-broker\.127\.0\.0\.1\.\d+$/),
    });
    fingerprint = j.sshHostKey!.fingerprint;
    alias = j.sshHostKey!.alias;
    port = j.listen.port;
    expect(j.command).toBe(
      `ssh -p ${port} -o HostKeyAlias=${alias} -o UserKnownHostsFile=${knownHostsFile()} ` +
        `-o StrictHostKeyChecking=yes ${sshd.user}@127.0.0.1`,
    );
    const pins = JSON.parse(readFileSync(pinsFile(), "utf8")) as Pins;
    expect(Object.values(pins.brokers)).toEqual([
      { hostKey: expect.stringMatching(/^ssh-ed25519 /), fingerprint },
    ]);
    expect(readFileSync(knownHostsFile(), "utf8")).toBe(
      `${alias} ${Object.values(pins.brokers)[0]!.hostKey}\n`,
    );

    // The printed command works as printed, and OpenSSH sees the very key gw pinned.
    const [cmd, ...args] = j.command.split(" ");
    const r = await run(cmd!, [
      "-F",
      "/dev/null",
      "-o",
      "BatchMode=yes",
      "-v",
      ...args,
      "echo through-the-printed-command",
    ]);
    expect(r.stdout).toBe("through-the-printed-command\n");
    expect(r.code).toBe(0);
    expect(serverKeySeen(r.stderr)).toBe(fingerprint);
  });

  it("gw ssh-config prints a stanza that ssh -F connects with, checking the pinned key strictly", async () => {
    const r = await runGw(["ssh-config", "box", "--port", String(port), ...brokerArgs], { env });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const stanza = r.stdout;
    expect(stanza).toContain("Host box\n");
    expect(stanza).toContain(`  HostName 127.0.0.1\n  Port ${port}\n  User ${sshd.user}\n`);
    expect(stanza).toContain(`  HostKeyAlias ${alias}\n`);
    expect(stanza).toContain(`  UserKnownHostsFile ${knownHostsFile()}\n`);
    expect(stanza).toContain("  StrictHostKeyChecking yes\n");
    expect(stanza).toContain("  PubkeyAuthentication no\n");
    stanzaFile = join(dir, "ssh_config");
    writeFileSync(stanzaFile, stanza + "  BatchMode yes\n");

    const ok = await run("ssh", ["-F", stanzaFile, "-v", "box", "echo via-the-stanza"]);
    expect(ok.stdout).toBe("via-the-stanza\n");
    expect(ok.code).toBe(0);
    expect(serverKeySeen(ok.stderr)).toBe(fingerprint);
    expect(ok.stderr).toContain(`Host '${alias}' is known and matches the ED25519 host key`);

    // StrictHostKeyChecking: with another key pinned for the alias, ssh stops before signing in.
    const good = readFileSync(knownHostsFile(), "utf8");
    writeFileSync(knownHostsFile(), `${alias} ${otherKey().hostKey}\n`);
    try {
      const bad = await run("ssh", ["-F", stanzaFile, "box", "echo must-not-run"]);
      expect(bad.code).toBe(255);
      expect(bad.stdout).toBe("");
      expect(bad.stderr).toContain("REMOTE HOST IDENTIFICATION HAS CHANGED");
      expect(bad.stderr).toContain("Host key verification failed");
    } finally {
      writeFileSync(knownHostsFile(), good);
    }
  });

  it("a broker key that is not the pinned one: gw connect and gw ssh-config refuse; --accept-new-host-key re-pins", async () => {
    // As if the broker's key had been replaced since it was pinned: the pin is another key.
    const other = otherKey();
    const pins = JSON.parse(readFileSync(pinsFile(), "utf8")) as Pins;
    const url = Object.keys(pins.brokers)[0]!;
    pins.brokers[url] = other;
    writeFileSync(pinsFile(), JSON.stringify(pins, null, 2) + "\n");

    const json = await runGw(["connect", "box", "--port", "0", "--json", ...brokerArgs], { env });
    expect(json.code).toBe(1);
    const err = (JSON.parse(json.stdout.trim()) as { error: { code: string; message: string } })
      .error;
    expect(err.code).toBe("ssh_host_key_changed");
    expect(err.message).toBe(
      `the SSH host key of the broker at ${url} changed: pinned ${other.fingerprint}, now ${fingerprint}`,
    );

    const plain = await runGw(["connect", "box", "--port", "0", ...brokerArgs], { env });
    expect(plain.code).toBe(1);
    expect(plain.stderr).toContain(`error: the SSH host key of the broker at ${url} changed`);
    expect(plain.stderr).toContain("Someone may be impersonating the broker");
    expect(plain.stderr).toContain("--accept-new-host-key");
    // It refused before listening: nothing was opened.
    expect(plain.stderr).not.toContain("listening on");

    const cfg = await runGw(["ssh-config", "box", "--port", String(port), ...brokerArgs], { env });
    expect(cfg.code).toBe(1);
    expect(cfg.stdout).toBe("");
    expect(cfg.stderr).toContain("changed: pinned");
    // The refusal changed nothing.
    expect((JSON.parse(readFileSync(pinsFile(), "utf8")) as Pins).brokers[url]).toEqual(other);

    // The operator rotated it, the person accepts: pinned again, and ssh connects again.
    const accepted = await connectJson("--accept-new-host-key");
    expect(accepted.json.sshHostKey?.fingerprint).toBe(fingerprint);
    const repinned = (JSON.parse(readFileSync(pinsFile(), "utf8")) as Pins).brokers[url]!;
    expect(repinned.fingerprint).toBe(fingerprint);
    expect(readFileSync(knownHostsFile(), "utf8")).toBe(`${alias} ${repinned.hostKey}\n`);
    writeFileSync(
      stanzaFile,
      readFileSync(stanzaFile, "utf8").replace(/Port \d+/, `Port ${accepted.json.listen.port}`),
    );
    const ok = await run("ssh", ["-F", stanzaFile, "box", "echo accepted"]);
    expect(ok.stdout).toBe("accepted\n");
    expect((await accepted.stop()).code).toBe(0);
  });
});
