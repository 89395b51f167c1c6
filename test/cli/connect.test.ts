/**
 * `gw connect` as a user runs it: the built CLI in a subprocess, against a real broker, issuer
 * and PostgreSQL. The happy path (JSON description, psql through the port, Ctrl-C) and every
 * way it can fail, each with its message and exit code.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, connect as netConnect, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GROUP_DBA, startStack, type Stack } from "../helpers/stack.js";
import { runGw, startGw, type BackgroundGw } from "../helpers/cli.js";

const execFileP = promisify(execFile);

interface ConnectJson {
  connection: string;
  type: string;
  broker: string;
  listen: { host: string; port: number };
  url: string;
  command: string;
  pid: number;
}

let stack: Stack;
let brokerArgs: string[];
const running: BackgroundGw[] = [];
const dirs: string[] = [];

beforeAll(async () => {
  stack = await startStack({
    mutate: (raw) => {
      const conns = raw["connections"] as Record<string, Record<string, unknown>>;
      conns["db-other"] = { ...conns["db-test"], description: "Another database" };
    },
  });
  brokerArgs = ["--broker", stack.broker.url, "--ca-file", stack.ca.caCert];
});

afterAll(async () => {
  for (const p of running) await p.stop("SIGKILL").catch(() => undefined);
  await stack?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "gw-connect-test-"));
  dirs.push(d);
  return d;
}

async function connectBg(
  args: string[],
  env: Record<string, string | undefined>,
): Promise<BackgroundGw<ConnectJson>> {
  const p = await startGw<ConnectJson>(["connect", ...args], { env });
  running.push(p);
  return p;
}

async function psql(url: string, sql: string): Promise<string> {
  const { stdout } = await execFileP(join(stack.pg.binDir, "psql"), [url, "-XAtc", sql], {
    // The tunnel ignores who the client claims to be: the broker signs in as the target user.
    env: { ...process.env, PGUSER: "someone-else", PGPASSWORD: "", PGCONNECT_TIMEOUT: "20" },
  });
  return stdout.trim();
}

/** Resolves with the error code of a TCP connect to the port (null when it connected). */
function tcpProbe(port: number): Promise<string | null> {
  return new Promise((resolve) => {
    const s = netConnect({ host: "127.0.0.1", port });
    s.once("connect", () => {
      s.destroy();
      resolve(null);
    });
    s.once("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

/** Waits for a condition that must become true (a safety-net deadline, not a timing check). */
async function until(cond: () => boolean, what: string, deadlineMs = 20_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`never happened: ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function listen(port = 0): Promise<Server> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen({ host: "127.0.0.1", port, exclusive: true }, () => resolve(srv));
  });
}

const close = (srv: Server) => new Promise<void>((resolve) => srv.close(() => resolve()));

describe("gw connect", () => {
  it("--port 0 --json prints one JSON line; psql works through the port; SIGINT exits 0 and closes it", async () => {
    const before = (await stack.store.listSessions({ limit: 1000 })).length;
    const gw = await connectBg(["db-test", "--port", "0", "--json", ...brokerArgs], {
      GW_TOKEN: stack.tokens.dba,
    });
    const j = gw.json;
    expect(j.connection).toBe("db-test");
    expect(j.type).toBe("postgres");
    expect(j.listen.host).toBe("127.0.0.1");
    expect(j.listen.port).toBeGreaterThan(0);
    expect(j.url).toBe(`postgresql://127.0.0.1:${j.listen.port}/app`);
    expect(j.command).toBe(`psql "${j.url}"`);
    expect(j.pid).toBe(gw.pid);

    // The broker signed in as the target's user with its stored password, not as the client.
    expect(await psql(j.url, "select current_user || ' ' || current_database()")).toBe(
      `${stack.pg.user} ${stack.pg.database}`,
    );
    const sessions = await stack.store.listSessions({ limit: 1000 });
    expect(sessions.length).toBe(before + 1);
    expect(sessions[0]!.identity.name).toBe("Dana DBA");
    expect(sessions[0]!.connection).toBe("db-test");
    expect(sessions[0]!.applicationName).toBe("psql");

    // A client that connects and leaves at once (a port probe) leaves no stream open at the
    // broker: every stream, psql's and the probe's, ends.
    expect(await tcpProbe(j.listen.port)).toBeNull();
    await until(() => stack.broker.liveSessions === 0, "the broker has no live streams left");

    const res = await gw.stop("SIGINT");
    expect(res.code, res.stderr).toBe(0);
    expect(res.signal).toBeNull();
    // One JSON object, nothing else, on stdout.
    expect(res.stdout.trim().split("\n")).toHaveLength(1);
    expect(await tcpProbe(j.listen.port)).toBe("ECONNREFUSED");
  });

  it("without GW_TOKEN: exit 4, says to run gw login or set GW_TOKEN", async () => {
    const r = await runGw(["connect", "db-test", ...brokerArgs]);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/not signed in/);
    expect(r.stderr).toContain("gw login");
    expect(r.stderr).toContain("GW_TOKEN");
    // --json: the same error as one JSON object on stdout.
    const j = await runGw(["connect", "db-test", "--json", ...brokerArgs]);
    expect(j.code).toBe(4);
    expect(JSON.parse(j.stdout)).toMatchObject({ error: { code: "not_signed_in" } });
  });

  it("an expired token: exit 4, the message says it expired", async () => {
    const now = Math.floor(Date.now() / 1000);
    const token = await stack.entra.mintAccessToken(
      { groups: [GROUP_DBA] },
      { now: now - 7200, lifetimeSeconds: 3600 },
    );
    const r = await runGw(["connect", "db-test", ...brokerArgs], { env: { GW_TOKEN: token } });
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/expired/);
    expect(r.stderr).toContain("gw login");
    expect(r.stderr).not.toContain(token);
  });

  it("a token for another audience: exit 4, the message says so", async () => {
    const token = await stack.entra.mintAccessToken({
      aud: "api://some-other-application",
      groups: [GROUP_DBA],
    });
    const r = await runGw(["connect", "db-test", ...brokerArgs], { env: { GW_TOKEN: token } });
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/audience/);
  });

  it("a user not allowed on the connection: non-zero, names the connection, no port opened", async () => {
    const r = await runGw(["connect", "db-test", "--port", "0", "--json", ...brokerArgs], {
      env: { GW_TOKEN: stack.tokens.outsider },
    });
    expect(r.code).not.toBe(0);
    const err = (JSON.parse(r.stdout) as { error: { code: string; message: string } }).error;
    expect(err.code).toBe("connection_not_found");
    expect(err.message).toContain('"db-test"');
    const plain = await runGw(["connect", "db-test", ...brokerArgs], {
      env: { GW_TOKEN: stack.tokens.outsider },
    });
    expect(plain.code).not.toBe(0);
    expect(plain.stderr).toContain('no connection "db-test"');
    expect(plain.stderr).toMatch(/ask its operators for access/);
  });

  it("an unknown connection name lists the ones the user may use", async () => {
    const r = await runGw(["connect", "db-nope", ...brokerArgs], {
      env: { GW_TOKEN: stack.tokens.dba },
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('no connection "db-nope"');
    expect(r.stderr).toMatch(/Yours: .*db-test/);
    expect(r.stderr).toMatch(/Yours: .*db-other/);
  });

  it("an unreachable broker: exit 6, says it cannot reach it", async () => {
    const srv = await listen();
    const port = (srv.address() as { port: number }).port;
    await close(srv);
    const r = await runGw(
      ["connect", "db-test", "--broker", `https://127.0.0.1:${port}`, "--ca-file", stack.ca.caCert],
      { env: { GW_TOKEN: stack.tokens.dba } },
    );
    expect(r.code).toBe(6);
    expect(r.stderr).toContain(`cannot reach the broker at https://127.0.0.1:${port}`);
    expect(r.stderr).toMatch(/connection refused/);
  });

  it("a broker certificate from an untrusted CA: exit 6, hints at --ca-file", async () => {
    const r = await runGw(["connect", "db-test", "--broker", stack.broker.url], {
      env: { GW_TOKEN: stack.tokens.dba },
    });
    expect(r.code).toBe(6);
    expect(r.stderr).toMatch(/TLS certificate not trusted/);
    expect(r.stderr).toContain("--ca-file");
    // GW_CA_FILE is the same as --ca-file.
    const ok = await runGw(["connect", "db-nope", "--broker", stack.broker.url], {
      env: { GW_TOKEN: stack.tokens.dba, GW_CA_FILE: stack.ca.caCert },
    });
    expect(ok.stderr).toContain('no connection "db-nope"');
  });

  it("a port already in use: exit 7 and 'already in use', at once", async () => {
    const srv = await listen();
    const port = (srv.address() as { port: number }).port;
    try {
      const r = await runGw(["connect", "db-test", "--port", String(port), ...brokerArgs], {
        env: { GW_TOKEN: stack.tokens.dba },
      });
      expect(r.code).toBe(7);
      expect(r.stderr).toContain(`port ${port} on 127.0.0.1 is already in use`);
      expect(r.stderr).toContain("--port 0");
    } finally {
      await close(srv);
    }
  });

  it("remembers the port per connection (GW_CONFIG_DIR); --port 0 is not remembered", async () => {
    const env = { GW_TOKEN: stack.tokens.dba, GW_CONFIG_DIR: tempDir() };
    // Any free port for once: that is not a choice to remember.
    const any = await connectBg(["db-test", "--port", "0", "--json", ...brokerArgs], env);
    expect((await any.stop()).code).toBe(0);

    const first = await connectBg(["db-test", "--json", ...brokerArgs], env);
    const port = first.json.listen.port;
    expect(port).toBeGreaterThan(0);
    expect(port).not.toBe(any.json.listen.port);
    expect(await psql(first.json.url, "select 1")).toBe("1");
    expect((await first.stop()).code).toBe(0);
    expect(
      JSON.parse(readFileSync(join(env.GW_CONFIG_DIR, "ports.json"), "utf8")) as unknown,
    ).toEqual({ ports: { "db-test": port } });

    const second = await connectBg(["db-test", "--json", ...brokerArgs], env);
    expect(second.json.listen.port).toBe(port);
    expect(await psql(second.json.url, "select 2")).toBe("2");
    expect((await second.stop()).code).toBe(0);

    // Another connection gets its own port, and db-test keeps its own.
    const other = await connectBg(["db-other", "--json", ...brokerArgs], env);
    expect(other.json.listen.port).not.toBe(port);
    expect((await other.stop()).code).toBe(0);
  });
});
