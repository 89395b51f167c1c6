/**
 * `gw approve` in a real terminal: tmux runs the built CLI full-screen (80x24) against a real
 * broker, issuer and PostgreSQL; psql sessions run DELETEs that a policy holds; keys are sent
 * with `tmux send-keys` and the screen is read with `tmux capture-pane`, as a person would see
 * it. `a` approves (psql gets DELETE 5), `d` + a reason + Enter denies (psql gets the reason),
 * the screen follows a resize to 60 columns, NO_COLOR leaves the screen without colour, and the
 * requester, an outsider and an app get clear answers when they try to decide.
 *
 * tmux runs on its own socket (-S, in the test's temp dir), so a developer's tmux is never
 * touched; the server is killed at the end.
 */
import { execFile, spawn, spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import pg from "pg";
import { GW_BIN, runGw } from "../helpers/cli.js";
import { GROUP_AUDIT, startStack, tunnelUrl, type Stack } from "../helpers/stack.js";
import type { Tunnel } from "../../src/tunnel/tunnel.js";

const execFileP = promisify(execFile);

function tmuxAvailable(): boolean {
  return spawnSync("tmux", ["-V"], { stdio: "ignore" }).status === 0;
}

async function tmux(...args: string[]): Promise<string> {
  const { stdout } = await execFileP("tmux", ["-u", "-S", socket(), "-f", "/dev/null", ...args], {
    env: tmuxEnv(),
  });
  return stdout;
}

/** The tmux server's environment: nothing of ours (no CI, no GW_*), a UTF-8 locale. */
function tmuxEnv(): NodeJS.ProcessEnv {
  return {
    PATH: process.env["PATH"] ?? "/usr/bin:/bin",
    HOME: process.env["HOME"] ?? "/tmp",
    LANG: "C.UTF-8",
    LC_ALL: "C.UTF-8",
    TERM: "xterm-256color",
  };
}

let dir: string;
/** The tmux server's socket, in the test's temp dir (removed with it). */
const socket = () => join(dir, "tmux.sock");

/** A terminal running one command; the command's exit code lands in `<name>.exit`. */
class Terminal {
  private constructor(readonly name: string) {}

  static async start(
    name: string,
    command: string[],
    env: Record<string, string>,
    size = { width: 80, height: 24 },
  ): Promise<Terminal> {
    const script = join(dir, `${name}.sh`);
    const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    const vars = Object.entries({ ...tmuxEnv(), TERM: "tmux-256color", ...env })
      .map(([k, v]) => `${k}=${quote(v)}`)
      .join(" ");
    writeFileSync(
      script,
      `#!/bin/sh\nenv -i ${vars} ${command.map(quote).join(" ")}\necho $? > ${quote(join(dir, `${name}.exit`))}\nexec sleep 600\n`,
    );
    chmodSync(script, 0o700);
    await tmux(
      "new-session",
      "-d",
      "-s",
      name,
      "-x",
      String(size.width),
      "-y",
      String(size.height),
      `sh ${quote(script)}`,
    );
    return new Terminal(name);
  }

  /** The screen as text (`escapes`: with colour and style sequences). */
  async screen(escapes = false): Promise<string> {
    return tmux("capture-pane", "-p", ...(escapes ? ["-e"] : []), "-t", this.name);
  }

  async waitFor(what: string, ok: (screen: string) => boolean, ms = 15_000): Promise<string> {
    const deadline = Date.now() + ms;
    let last = "";
    while (Date.now() < deadline) {
      last = await this.screen();
      if (ok(last)) return last;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`timed out waiting for ${what}; the screen:\n${last}`);
  }

  /** Named keys (Enter, Escape, Down) as tmux names them. */
  async keys(...keys: string[]): Promise<void> {
    await tmux("send-keys", "-t", this.name, ...keys);
  }

  /** Literal text, typed. */
  async type(text: string): Promise<void> {
    await tmux("send-keys", "-t", this.name, "-l", text);
  }

  async resize(width: number, height: number): Promise<void> {
    await tmux("resize-window", "-t", this.name, "-x", String(width), "-y", String(height));
  }

  exitCode(): number | null {
    const f = join(dir, `${this.name}.exit`);
    return existsSync(f) ? Number(readFileSync(f, "utf8").trim()) : null;
  }

  async waitForExit(ms = 10_000): Promise<number> {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      const c = this.exitCode();
      if (c !== null) return c;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`${this.name} did not exit; the screen:\n${await this.screen()}`);
  }
}

interface PsqlResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

let stack: Stack;
let brokerUrl: string;
let dba: Tunnel;
let direct: pg.Client;

/** psql on Dana's tunnel, running each statement with its own -c, in one session. */
function psql(...sqls: string[]): Promise<PsqlResult> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("PG")) env[k] = v;
    const child = spawn(
      join(stack.pg.binDir, "psql"),
      [
        tunnelUrl(dba, stack.pg.database),
        "-X",
        "-v",
        "ON_ERROR_STOP=1",
        ...sqls.flatMap((q) => ["-c", q]),
      ],
      {
        env: { ...env, LC_ALL: "C", PGPASSFILE: "/nonexistent", PGAPPNAME: "psql-e2e" },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c));
    child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

async function pending(): Promise<string> {
  for (let i = 0; i < 400; i++) {
    const a = (await stack.store.listApprovals({ status: "pending", limit: 10 }))[0];
    if (a) return a.id;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error("no request was held");
}

function approveEnv(token: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    GW_BROKER: brokerUrl,
    GW_CA_FILE: stack.ca.caCert,
    GW_TOKEN: token,
    GW_CONFIG_DIR: join(dir, "config"),
    ...extra,
  };
}

const gwApprove = [process.execPath, GW_BIN, "approve"];
let seq = 0;
const terminals: Terminal[] = [];
async function terminal(
  token: string,
  extra: Record<string, string> = {},
  size?: { width: number; height: number },
) {
  const t = await Terminal.start(`t${++seq}`, gwApprove, approveEnv(token, extra), size);
  terminals.push(t);
  return t;
}

const rows = async () =>
  (await direct.query("select count(*)::int as n from t")).rows[0].n as number;

describe("gw approve in a terminal (tmux)", () => {
  beforeAll(async () => {
    if (!tmuxAvailable()) throw new Error("tmux is not installed: apt-get install tmux");
    dir = mkdtempSync(join(tmpdir(), "gw-approve-tui-"));
    stack = await startStack({
      mutate: (raw) => {
        raw["policies"] = {
          holds: {
            rules: [
              {
                match: { kind: ["delete"], where: "absent" },
                action: "hold",
                approvers: [`group:${GROUP_AUDIT}`],
                timeout: "120s",
                reason: "a DELETE without WHERE needs an auditor",
              },
            ],
          },
        };
        const conns = raw["connections"] as Record<string, Record<string, unknown>>;
        conns["db-test"]!["policy"] = "holds";
      },
    });
    brokerUrl = stack.broker.url.replace("127.0.0.1", "localhost");
    direct = new pg.Client({ connectionString: stack.pg.url });
    await direct.connect();
    await direct.query("create table t (id int primary key, note text)");
    dba = await stack.openTunnel(stack.tokens.dba);
  });

  afterAll(async () => {
    if (dir) await execFileP("tmux", ["-S", socket(), "kill-server"]).catch(() => undefined);
    await direct?.end().catch(() => undefined);
    await stack?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  beforeEach(async () => {
    await direct.query(
      "truncate t; insert into t select g, 'row ' || g from generate_series(1, 5) g",
    );
  });

  it("a approves: the held DELETE runs and psql gets its result", async () => {
    const term = await terminal(stack.tokens.auditor);
    await term.waitFor("the empty state", (s) =>
      s.includes(`No requests waiting for you. Watching ${brokerUrl} for new ones…`),
    );
    const run = psql("SELECT count(*) AS before FROM t", "DELETE FROM t");
    const id = await pending();
    const screen = await term.waitFor(
      "the held DELETE on screen",
      (s) =>
        s.includes(`› ${id} Dana DBA (user)`) && s.includes("reason     a DELETE without WHERE"),
    );
    if (process.env["GW_TUI_CAPTURE"]) writeFileSync(process.env["GW_TUI_CAPTURE"], screen);
    const lines = screen.split("\n");
    expect(lines[0]).toMatch(/^gw approve · https:\/\/localhost:\d+ · ● live · 1 waiting/);
    expect(screen).toContain("  DELETE FROM t");
    expect(screen).toContain("session    1 earlier statement, oldest first:");
    expect(screen).toContain("  SELECT count(*) AS before FROM t");
    expect(screen).toContain("requester  Dana DBA · user · app psql-e2e · oid ");
    expect(screen).toMatch(/↑\/k ↓\/j move · a approve · d deny · ⏎ details · \/ filter · q quit/);
    expect(lines.every((l) => l.length <= 80)).toBe(true);
    await term.keys("a");
    const r = await run;
    expect(r.stderr).toContain(`gw: waiting for approval of request ${id}`);
    expect(r.stdout).toMatch(/DELETE 5\n$/);
    expect(r.code).toBe(0);
    expect(await rows()).toBe(0);
    await term.waitFor(
      "the confirmation",
      (s) =>
        s.includes(`Approved ${id}; the statement runs now.`) &&
        s.includes("No requests waiting for you."),
    );
    await term.keys("q");
    expect(await term.waitForExit()).toBe(0);
  });

  it("d, a reason and Enter deny: psql gets the reason; Esc cancels first", async () => {
    const term = await terminal(stack.tokens.auditor);
    await term.waitFor("the empty state", (s) => s.includes("No requests waiting for you."));
    const run = psql("DELETE FROM t");
    const id = await pending();
    await term.waitFor("the held DELETE", (s) => s.includes(`› ${id}`));
    await term.keys("d");
    await term.waitFor("the reason prompt", (s) => s.includes(`Deny ${id} — reason:`));
    await term.type("never mind");
    await term.keys("Escape");
    await term.waitFor("the prompt to close", (s) => !s.includes(`Deny ${id} — reason:`));
    await term.keys("d");
    await term.waitFor("the reason prompt", (s) => s.includes(`Deny ${id} — reason:`));
    await term.type("use a WHERE clause");
    const typing = await term.waitFor("the reason typed", (s) =>
      s.includes("reason: use a WHERE clause"),
    );
    if (process.env["GW_TUI_CAPTURE"])
      writeFileSync(`${process.env["GW_TUI_CAPTURE"]}.deny`, typing);
    await term.keys("Enter");
    const r = await run;
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `ERROR:  gw: request ${id} was denied by Avery Auditor: use a WHERE clause`,
    );
    expect(await rows()).toBe(5);
    await term.waitFor("the confirmation", (s) =>
      s.includes(`Denied ${id}; the client gets your reason.`),
    );
    await term.keys("C-c");
    expect(await term.waitForExit()).toBe(0);
  });

  it("follows a resize to 60 columns, and draws no colour under NO_COLOR", async () => {
    const plain = await terminal(stack.tokens.auditor, { NO_COLOR: "1" });
    const colour = await terminal(stack.tokens.auditor);
    const run = psql("DELETE FROM t");
    const id = await pending();
    await plain.waitFor("the request", (s) => s.includes(`› ${id}`));
    await colour.waitFor("the request", (s) => s.includes(`› ${id}`));
    // eslint-disable-next-line no-control-regex
    const sgrColour = /\x1b\[[0-9;]*(3[0-7]|9[0-7]|38;5;\d+)m/;
    expect(await plain.screen(true)).not.toMatch(sgrColour);
    expect(await colour.screen(true)).toMatch(sgrColour);

    await plain.resize(60, 20);
    const narrow = await plain.waitFor(
      "the 60-column layout",
      (s) =>
        s.split("\n").every((l) => l.length <= 60) &&
        s.includes(`› ${id}`) &&
        s.includes("a approve"),
    );
    if (process.env["GW_TUI_CAPTURE"])
      writeFileSync(`${process.env["GW_TUI_CAPTURE"]}.60x20`, narrow);
    expect(narrow).not.toContain("STATEMENT"); // no room for the preview column at 60
    expect(narrow).toContain("  DELETE FROM t"); // the detail pane still has it
    await plain.resize(100, 30);
    await plain.waitFor("the wide layout", (s) => s.includes("STATEMENT"));

    await plain.keys("d");
    await plain.type("cleanup");
    await plain.keys("Enter");
    expect((await run).code).toBe(1);
    // The other approver's screen is told who decided.
    await colour.waitFor("the news", (s) =>
      s.includes(`Request ${id} was denied by Avery Auditor: cleanup.`),
    );
    await plain.keys("q");
    await colour.keys("q");
    expect(await plain.waitForExit()).toBe(0);
    expect(await colour.waitForExit()).toBe(0);
  });

  it("the requester, an outsider and an app do not get to decide, and are told why", async () => {
    const mine = await terminal(stack.tokens.dba);
    const outsider = await terminal(stack.tokens.outsider);
    const run = psql("DELETE FROM t");
    const id = await pending();
    // Their queues stay empty: the request is not theirs to decide.
    await new Promise((r) => setTimeout(r, 500));
    for (const t of [mine, outsider]) {
      const s = await t.waitFor("the empty state", (x) =>
        x.includes("No requests waiting for you."),
      );
      expect(s).not.toContain(id);
    }
    const args = ["approvals", "approve", id, "--broker", brokerUrl, "--ca-file", stack.ca.caCert];
    const self = await runGw(args, { env: { GW_TOKEN: stack.tokens.dba } });
    expect(self.code).toBe(5);
    expect(self.stderr).toContain(`error: you cannot approve your own statement (request ${id})`);
    const out = await runGw(args, { env: { GW_TOKEN: stack.tokens.outsider } });
    expect(out.code).toBe(1);
    expect(out.stderr).toContain(`error: no approval request ${id} that you may see`);
    const app = await runGw(args, { env: { GW_TOKEN: stack.tokens.app } });
    expect(app.code).toBe(1); // the app is not an approver, so the request is not visible to it
    expect(app.stderr).toContain(`error: no approval request ${id} that you may see`);
    // The auditor decides; the requester's own screen never listed it.
    const ok = await runGw(args, { env: { GW_TOKEN: stack.tokens.auditor } });
    expect(ok.code).toBe(0);
    expect((await run).stdout).toBe("DELETE 5\n");
    await mine.keys("q");
    await outsider.keys("q");
    expect(await mine.waitForExit()).toBe(0);
    expect(await outsider.waitForExit()).toBe(0);
  });

  it("refuses to start without a terminal, and without a sign-in", async () => {
    const noTty = await runGw(["approve", "--broker", brokerUrl], {
      env: { GW_TOKEN: stack.tokens.auditor },
    });
    expect(noTty.code).toBe(2);
    expect(noTty.stderr).toContain("error: gw approve needs a terminal");
    const bad = await terminal("not-a-token");
    expect(await bad.waitForExit()).toBe(4);
    expect(await bad.screen()).toContain("error: the broker refused your sign-in");
  });
});
