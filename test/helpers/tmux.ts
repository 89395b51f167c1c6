/**
 * Real terminals for tests: a tmux server on its own socket (in a temp dir, so a developer's
 * tmux is never touched) runs one command per session; keys go in with `send-keys`, the screen
 * comes out with `capture-pane`, as a person would type and see it. Each command's exit code
 * lands in a file, so a test can wait for it and check it.
 *
 * The same idea as test/e2e/approve-tui.test.ts, as a helper for the ssh and approval tests.
 */
import { execFile, spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const execFileP = promisify(execFile);

export function tmuxAvailable(): boolean {
  return spawnSync("tmux", ["-V"], { stdio: "ignore" }).status === 0;
}

/** The tmux server's environment: nothing of the test's (no CI, no GW_*), a UTF-8 locale. */
function baseEnv(): Record<string, string> {
  return {
    PATH: process.env["PATH"] ?? "/usr/bin:/bin",
    HOME: process.env["HOME"] ?? "/tmp",
    LANG: "C.UTF-8",
    LC_ALL: "C.UTF-8",
    TERM: "xterm-256color",
  };
}

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

export class TmuxServer {
  private seq = 0;
  private constructor(readonly dir: string) {}

  static start(): TmuxServer {
    if (!tmuxAvailable()) throw new Error("tmux is not installed: apt-get install tmux");
    return new TmuxServer(mkdtempSync(join(tmpdir(), "gw-tmux-")));
  }

  get socket(): string {
    return join(this.dir, "tmux.sock");
  }

  async tmux(...args: string[]): Promise<string> {
    const { stdout } = await execFileP(
      "tmux",
      ["-u", "-S", this.socket, "-f", "/dev/null", ...args],
      {
        env: baseEnv(),
      },
    );
    return stdout;
  }

  /**
   * Runs `command` (argv) in a new detached session of `size` (no status line, so the pane is
   * the whole window), with exactly `env` on top of a minimal environment.
   */
  async run(
    command: string[],
    env: Record<string, string> = {},
    size = { width: 80, height: 24 },
  ): Promise<Terminal> {
    const name = `t${++this.seq}`;
    const script = join(this.dir, `${name}.sh`);
    const exitFile = join(this.dir, `${name}.exit`);
    const vars = Object.entries({ ...baseEnv(), TERM: "tmux-256color", ...env })
      .map(([k, v]) => `${k}=${quote(v)}`)
      .join(" ");
    writeFileSync(
      script,
      `#!/bin/sh\nenv -i ${vars} ${command.map(quote).join(" ")}\necho $? > ${quote(exitFile)}\nexec sleep 600\n`,
    );
    chmodSync(script, 0o700);
    await this.tmux(
      "new-session",
      "-d",
      "-s",
      name,
      "-x",
      String(size.width),
      "-y",
      String(size.height),
      `sh ${quote(script)}`,
      ";",
      "set-option",
      "-t",
      name,
      "status",
      "off",
    );
    return new Terminal(this, name, exitFile);
  }

  async stop(): Promise<void> {
    await this.tmux("kill-server").catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export class Terminal {
  constructor(
    private readonly server: TmuxServer,
    readonly name: string,
    private readonly exitFile: string,
  ) {}

  /** The screen as text (`escapes`: with colour and style sequences). */
  async screen(escapes = false): Promise<string> {
    return this.server.tmux("capture-pane", "-p", ...(escapes ? ["-e"] : []), "-t", this.name);
  }

  /** The screen and its scrollback (up to 2000 lines), joined as text. */
  async history(): Promise<string> {
    return this.server.tmux("capture-pane", "-p", "-J", "-S", "-2000", "-t", this.name);
  }

  /**
   * Polls the screen (with `scrollback`, its history too) until `ok` holds; the deadline is a
   * safety net, not an assertion.
   */
  async waitFor(
    what: string,
    ok: (screen: string) => boolean,
    opts: { scrollback?: boolean; ms?: number } = {},
  ): Promise<string> {
    const deadline = Date.now() + (opts.ms ?? 20_000);
    let last = "";
    while (Date.now() < deadline) {
      last = opts.scrollback ? await this.history() : await this.screen();
      if (ok(last)) return last;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`timed out waiting for ${what}; the screen:\n${last}`);
  }

  /** Named keys (Enter, Escape, C-c) as tmux names them. */
  async keys(...keys: string[]): Promise<void> {
    await this.server.tmux("send-keys", "-t", this.name, ...keys);
  }

  /** Literal text, typed. */
  async type(text: string): Promise<void> {
    await this.server.tmux("send-keys", "-t", this.name, "-l", text);
  }

  /** Types a line and presses Enter. */
  async line(text: string): Promise<void> {
    await this.type(text);
    await this.keys("Enter");
  }

  async resize(width: number, height: number): Promise<void> {
    await this.server.tmux(
      "resize-window",
      "-t",
      this.name,
      "-x",
      String(width),
      "-y",
      String(height),
    );
  }

  /** The pane's size as tmux has it: what the program in it sees. */
  async size(): Promise<{ cols: number; rows: number }> {
    const out = await this.server.tmux(
      "display-message",
      "-p",
      "-t",
      this.name,
      "#{pane_width} #{pane_height}",
    );
    const [cols, rows] = out.trim().split(" ").map(Number);
    return { cols: cols!, rows: rows! };
  }

  exitCode(): number | null {
    return existsSync(this.exitFile) ? Number(readFileSync(this.exitFile, "utf8").trim()) : null;
  }

  async waitForExit(ms = 20_000): Promise<number> {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      const c = this.exitCode();
      if (c !== null) return c;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`${this.name} did not exit; the screen:\n${await this.history()}`);
  }
}
