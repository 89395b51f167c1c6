/**
 * A real, throwaway OpenSSH server for tests: `/usr/sbin/sshd -D -e -f <temp config>` on a free
 * port on 127.0.0.1, with its own host key, an authorized key and a password for a test user.
 *
 * Sessions run as a real user: as root we use `gwssh` (created with useradd when missing);
 * sshd needs root to switch users, so without root this throws. When sshd is not installed
 * and we are root with apt, openssh-server is installed; otherwise the package is named.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { connect, createServer } from "node:net";
import { join } from "node:path";

const SSHD = "/usr/sbin/sshd";
export const SSH_TEST_USER = "gwssh";

export interface SshdServer {
  host: "127.0.0.1";
  port: number;
  user: string;
  uid: number;
  gid: number;
  /** The user's password (password authentication is on). */
  password: string;
  /** An unencrypted ed25519 private key sshd accepts for the user (OpenSSH format). */
  privateKey: string;
  /** An rsa private key encrypted with `passphrase`, also authorized. */
  encryptedKey: string;
  passphrase: string;
  /** "ssh-ed25519 AAAA..." of sshd's host key. */
  hostPublicKey: string;
  /** A known_hosts file listing the server ([127.0.0.1]:port). */
  knownHostsFile: string;
  /** A known_hosts file listing the server with a different key (as if it changed). */
  wrongKnownHostsFile: string;
  /** A directory the test user owns, for file transfers. */
  filesDir: string;
  dir: string;
  logFile: string;
  stop(): Promise<void>;
}

function isRoot(): boolean {
  return typeof process.getuid === "function" && process.getuid() === 0;
}

function ensureSshd(): void {
  if (existsSync(SSHD)) return;
  if (!isRoot())
    throw new Error(
      "the ssh tests need the OpenSSH server (Debian package openssh-server): sudo apt-get install -y openssh-server",
    );
  execFileSync("apt-get", ["update"], {
    stdio: "ignore",
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
  });
  execFileSync("apt-get", ["install", "-y", "--no-install-recommends", "openssh-server"], {
    stdio: "ignore",
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
  });
  if (!existsSync(SSHD))
    throw new Error("openssh-server was installed but /usr/sbin/sshd is missing");
}

function ensureUser(): { uid: number; gid: number } {
  const lookup = () => {
    try {
      const uid = Number(execFileSync("id", ["-u", SSH_TEST_USER], { encoding: "utf8" }).trim());
      const gid = Number(execFileSync("id", ["-g", SSH_TEST_USER], { encoding: "utf8" }).trim());
      return { uid, gid };
    } catch {
      return undefined;
    }
  };
  const found = lookup();
  if (found) return found;
  try {
    execFileSync("useradd", ["-m", "-s", "/bin/bash", SSH_TEST_USER], { stdio: "ignore" });
  } catch {
    // another test file made it at the same time
  }
  const made = lookup();
  if (!made) throw new Error(`could not create the test user ${SSH_TEST_USER}`);
  return made;
}

/**
 * The test user's password: random, made once per machine and kept root-only, so that test
 * files running at the same time (each with its own sshd) agree on it.
 */
function testUserPassword(): string {
  const dir = "/var/lib/gw-test";
  const file = join(dir, `${SSH_TEST_USER}-password`);
  const set = (pw: string) =>
    execFileSync("chpasswd", {
      input: `${SSH_TEST_USER}:${pw}\n`,
      stdio: ["pipe", "ignore", "ignore"],
    });
  if (existsSync(file)) {
    const known = readFileSync(file, "utf8").trim();
    set(known); // the same value every process sets: harmless, and right after a useradd
    return known;
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const mine = "pw-" + randomBytes(12).toString("hex");
  set(mine);
  try {
    writeFileSync(file, mine, { mode: 0o600, flag: "wx" });
    return mine;
  } catch {
    // Another test process made one first: use (and set) theirs.
    const theirs = readFileSync(file, "utf8").trim();
    set(theirs);
    return theirs;
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function keygen(path: string, type: "ed25519" | "rsa", passphrase = ""): void {
  execFileSync(
    "ssh-keygen",
    [
      "-q",
      "-t",
      type,
      ...(type === "rsa" ? ["-b", "2048"] : []),
      "-N",
      passphrase,
      "-C",
      "gw-test",
      "-f",
      path,
    ],
    { stdio: "ignore" },
  );
}

/** sshd dies with the test process, even when that is killed by a signal. */
function startWatchdog(pid: number, dir: string): ChildProcess {
  const script =
    'while kill -0 "$0" 2>/dev/null; do sleep 1; done; kill "$1" 2>/dev/null; rm -rf "$2"';
  const child = spawn("/bin/sh", ["-c", script, String(process.pid), String(pid), dir], {
    detached: true,
    stdio: "ignore",
  });
  child.unref();
  return child;
}

async function waitForPort(port: number, child: ChildProcess, logFile: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null)
      throw new Error(`sshd exited (${child.exitCode}): ${readFileSync(logFile, "utf8")}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, "127.0.0.1");
      s.once("connect", () => {
        s.destroy();
        resolve(true);
      });
      s.once("error", () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error("sshd did not start listening");
}

export async function startSshd(): Promise<SshdServer> {
  if (!isRoot())
    throw new Error(
      "the ssh tests run a real sshd, which needs root to start sessions as the test user",
    );
  ensureSshd();
  const { uid, gid } = ensureUser();
  const dir = mkdtempSync("/tmp/gw-sshd-");
  chmodSync(dir, 0o755);
  mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
  const filesDir = join(dir, "files");
  mkdirSync(filesDir, { mode: 0o755 });
  chownSync(filesDir, uid, gid);

  const password = testUserPassword();

  keygen(join(dir, "host_ed25519"), "ed25519");
  keygen(join(dir, "other_host_ed25519"), "ed25519");
  keygen(join(dir, "user_ed25519"), "ed25519");
  const passphrase = "pp-" + randomBytes(8).toString("hex");
  keygen(join(dir, "user_rsa"), "rsa", passphrase);
  const authorized = [
    readFileSync(join(dir, "user_ed25519.pub"), "utf8").trim(),
    readFileSync(join(dir, "user_rsa.pub"), "utf8").trim(),
  ].join("\n");
  writeFileSync(join(dir, "authorized_keys"), authorized + "\n", { mode: 0o644 });

  const port = await freePort();
  const hostPublicKey = readFileSync(join(dir, "host_ed25519.pub"), "utf8")
    .trim()
    .split(/\s+/)
    .slice(0, 2)
    .join(" ");
  const otherPublicKey = readFileSync(join(dir, "other_host_ed25519.pub"), "utf8")
    .trim()
    .split(/\s+/)
    .slice(0, 2)
    .join(" ");
  const knownHostsFile = join(dir, "known_hosts");
  writeFileSync(knownHostsFile, `[127.0.0.1]:${port} ${hostPublicKey}\n`);
  const wrongKnownHostsFile = join(dir, "known_hosts.wrong");
  writeFileSync(wrongKnownHostsFile, `[127.0.0.1]:${port} ${otherPublicKey}\n`);

  const config = [
    `Port ${port}`,
    "ListenAddress 127.0.0.1",
    `HostKey ${join(dir, "host_ed25519")}`,
    `PidFile ${join(dir, "sshd.pid")}`,
    `AuthorizedKeysFile ${join(dir, "authorized_keys")}`,
    "StrictModes no",
    "UsePAM no",
    "PasswordAuthentication yes",
    "KbdInteractiveAuthentication no",
    "PermitRootLogin no",
    `AllowUsers ${SSH_TEST_USER}`,
    "AllowTcpForwarding yes",
    "AllowAgentForwarding yes",
    "X11Forwarding no",
    "AcceptEnv LANG LC_* GW_*",
    "Subsystem sftp internal-sftp",
    "LogLevel VERBOSE",
    "MaxStartups 100",
    "MaxSessions 50",
  ].join("\n");
  const configFile = join(dir, "sshd_config");
  writeFileSync(configFile, config + "\n");
  const logFile = join(dir, "sshd.log");
  const child = spawn(SSHD, ["-D", "-f", configFile, "-E", logFile], { stdio: "ignore" });
  const watchdog = startWatchdog(child.pid!, dir);
  try {
    await waitForPort(port, child, logFile);
  } catch (err) {
    child.kill();
    throw err;
  }

  let stopped = false;
  return {
    host: "127.0.0.1",
    port,
    user: SSH_TEST_USER,
    uid,
    gid,
    password,
    privateKey: readFileSync(join(dir, "user_ed25519"), "utf8"),
    encryptedKey: readFileSync(join(dir, "user_rsa"), "utf8"),
    passphrase,
    hostPublicKey,
    knownHostsFile,
    wrongKnownHostsFile,
    filesDir,
    dir,
    logFile,
    async stop() {
      if (stopped) return;
      stopped = true;
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill();
        await exited;
      }
      if (watchdog.exitCode === null) watchdog.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
