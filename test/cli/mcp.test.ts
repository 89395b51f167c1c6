/**
 * `gw mcp config`: the MCP server entry for each client, merged into the client's config file
 * without losing what is there, and an entry that really works when an MCP host runs it: the
 * tunnel starts in the background labelled as the agent's, and the PostgreSQL MCP server (a
 * stand-in `npx` here, which runs psql on the URL it is given) reaches the database through it.
 */
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runGw } from "../helpers/cli.js";
import { APP_AGENT, startStack, type Stack } from "../helpers/stack.js";
import { alive, PSQL, waitFor } from "../demo/helpers.js";

interface Entry {
  type?: string;
  command: string;
  args: string[];
  env: Record<string, string>;
}

let dir: string;
const pids: number[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "gw-mcp-test-"));
});

afterAll(() => {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

const offline = ["--database", "app", "--port", "15999"];

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

describe("gw mcp config (printing)", () => {
  it("prints a Claude Desktop entry that starts the tunnel as the agent, then the MCP server", async () => {
    const r = await runGw(["mcp", "config", "db-prod", ...offline], {
      env: { GW_CONFIG_DIR: join(dir, "cfg1") },
    });
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout) as { mcpServers: Record<string, Entry> };
    const e = doc.mcpServers["gw-db-prod"]!;
    expect(e.command).toBe("/bin/sh");
    expect(e.args[0]).toBe("-c");
    expect(e.args[1]).toMatch(
      / connect db-prod --agent claude --port 15999 --detach >&2 && exec npx -y @modelcontextprotocol\/server-postgres postgresql:\/\/127\.0\.0\.1:15999\/app$/,
    );
    expect(e.env["PATH"]).toContain(join(process.execPath, ".."));
    expect(e.env["GW_CONFIG_DIR"]).toBe(join(dir, "cfg1"));
    expect(r.stderr).toContain("claude_desktop_config.json");
    // The port is remembered, so a plain `gw connect db-prod` uses the same one.
    const ports = JSON.parse(readFileSync(join(dir, "cfg1", "ports.json"), "utf8")) as {
      ports: Record<string, number>;
    };
    expect(ports.ports["db-prod"]).toBe(15999);
  });

  it("speaks each client's format", async () => {
    const vscode = await runGw(["mcp", "config", "db-prod", "--client", "vscode", ...offline]);
    const v = JSON.parse(vscode.stdout) as { servers: Record<string, Entry> };
    expect(v.servers["gw-db-prod"]!.type).toBe("stdio");
    const cursor = await runGw([
      "mcp",
      "config",
      "db-prod",
      "--client",
      "cursor",
      "--json",
      ...offline,
    ]);
    const c = JSON.parse(cursor.stdout) as Entry;
    expect(c.args[1]).toContain("--agent cursor");
    const bad = await runGw(["mcp", "config", "db-prod", "--client", "emacs", ...offline]);
    expect(bad.code).toBe(2);
  });
});

describe("gw mcp config --write", () => {
  it("merges into an existing config, keeping other servers and settings, with a backup", async () => {
    const file = join(dir, "claude.json");
    const before = { theme: "dark", mcpServers: { other: { command: "other-server", args: [] } } };
    writeFileSync(file, JSON.stringify(before));
    const r = await runGw(["mcp", "config", "db-prod", "--write", "--file", file, ...offline]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`added MCP server gw-db-prod in ${file}`);
    const after = JSON.parse(readFileSync(file, "utf8")) as {
      theme: string;
      mcpServers: Record<string, Entry>;
    };
    expect(after.theme).toBe("dark");
    expect(Object.keys(after.mcpServers).sort()).toEqual(["gw-db-prod", "other"]);
    expect(JSON.parse(readFileSync(`${file}.gw-backup`, "utf8"))).toEqual(before);
    const again = await runGw(["mcp", "config", "db-prod", "--write", "--file", file, ...offline]);
    expect(again.stderr).toContain("updated MCP server gw-db-prod");
  });

  it("creates a missing file (and its directory) for VS Code's workspace format", async () => {
    const file = join(dir, "ws", ".vscode", "mcp.json");
    const r = await runGw([
      "mcp",
      "config",
      "db-prod",
      "--client",
      "vscode",
      "--write",
      "--file",
      file,
      ...offline,
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(
      Object.keys((JSON.parse(readFileSync(file, "utf8")) as { servers: object }).servers),
    ).toEqual(["gw-db-prod"]);
  });

  it("refuses to touch a file that is not JSON", async () => {
    const file = join(dir, "broken.json");
    writeFileSync(file, "{ // a comment\n}");
    const r = await runGw(["mcp", "config", "db-prod", "--write", "--file", file, ...offline]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain("is not valid JSON; not touching it");
    expect(readFileSync(file, "utf8")).toBe("{ // a comment\n}");
    expect(existsSync(`${file}.gw-backup`)).toBe(false);
  });
});

describe("the entry, run the way an MCP host runs it", () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => {
    // Whatever the test left running in the background, even when it failed half way.
    await runGw(["disconnect", "--all"], { env: { GW_CONFIG_DIR: join(dir, "host-cfg") } });
    await stack?.stop();
  });

  it("opens the tunnel as agent traffic and the MCP server reaches the database", async () => {
    const cfg = join(dir, "host-cfg");
    const env = {
      GW_BROKER: stack.broker.url,
      GW_CA_FILE: stack.ca.caCert,
      GW_CONFIG_DIR: cfg,
    };
    const port = await freePort();
    // The database name comes from the broker; the token goes into the entry's env only when
    // asked (--env): gw never copies a token into a config file by itself.
    const r = await runGw(
      [
        "mcp",
        "config",
        "db-test",
        "--json",
        "--port",
        String(port),
        "--env",
        `GW_TOKEN=${stack.tokens.app}`,
      ],
      { env: { ...env, GW_TOKEN: stack.tokens.dba } },
    );
    expect(r.code, r.stderr).toBe(0);
    const entry = JSON.parse(r.stdout) as Entry;
    expect(entry.env).toMatchObject({ ...env, GW_TOKEN: stack.tokens.app });
    const script = entry.args[1]!;
    expect(script).toContain(`127.0.0.1:${port}/app`);
    // A stand-in for `npx -y @modelcontextprotocol/server-postgres URL`: runs psql on the URL.
    const fake = join(dir, "fakebin");
    spawnSync("mkdir", ["-p", fake]);
    writeFileSync(
      join(fake, "npx"),
      `#!/bin/sh\n[ "$1 $2" = "-y @modelcontextprotocol/server-postgres" ] || exit 9\nexec ${PSQL} -X -A -t -c "select current_database()" "$3?sslmode=disable"\n`,
    );
    chmodSync(join(fake, "npx"), 0o755);
    // Asynchronously: the broker lives in this process and must keep answering meanwhile.
    const host = await new Promise<{ status: number | null; stdout: string; stderr: string }>(
      (resolve, reject) => {
        const child = spawn(entry.command, [entry.args[0]!, script], {
          env: { ...entry.env, PATH: `${fake}:${entry.env["PATH"]}`, HOME: dir },
          stdio: ["ignore", "pipe", "pipe"],
        });
        let stdout = "";
        let stderr = "";
        child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c));
        child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
        child.on("error", reject);
        child.on("close", (status) => resolve({ status, stdout, stderr }));
      },
    );
    expect(host.status, host.stderr).toBe(0);
    expect(host.stdout.trim()).toBe("app"); // stdout is the MCP server's alone
    const ps = await runGw(["ps", "--json"], { env });
    const rows = JSON.parse(ps.stdout) as Array<{ pid: number; agent: string; port: number }>;
    expect(rows).toHaveLength(1);
    pids.push(rows[0]!.pid);
    expect(rows[0]).toMatchObject({ agent: "claude", port });
    // Recorded as the agent's service principal (the tunnel's token) on the connection.
    const session = await waitFor("the recorded session", async () => {
      const list = await stack.store.listSessions({ limit: 10 });
      return list.find((s) => s.identity.oid === APP_AGENT);
    });
    expect(session.connection).toBe("db-test");
    const stop = await runGw(["disconnect", "db-test"], { env });
    expect(stop.code).toBe(0);
    expect(alive(rows[0]!.pid)).toBe(false);
  });
});
