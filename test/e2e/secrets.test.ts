/**
 * The target password never leaves the broker: not in any byte a client receives (recorded by
 * a TCP forwarder of our own between the client and the tunnel port), not in the broker's log,
 * not in the SQLite store, not in `gw sessions --json` or `gw connect --json` output, and not
 * in the error a failed sign-in produces. Tokens stay out of the log too.
 *
 * Every "not in" has a matching "in" (a marker that must be found in the same bytes), so the
 * checks cannot pass by looking at nothing.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { createServer, connect as netConnect, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Tunnel } from "../../src/tunnel/tunnel.js";
import { runGw, startGw, startGwUntil } from "../helpers/cli.js";
import { startStack, type Stack } from "../helpers/stack.js";

const execFileP = promisify(execFile);

/** A TCP forwarder that keeps every byte in both directions. */
interface Tap {
  port: number;
  /** Bytes from the tunnel to the client: what a client receives. */
  toClient(): Buffer;
  /** Bytes from the client to the tunnel. */
  toTunnel(): Buffer;
  close(): Promise<void>;
}

function tap(targetPort: number): Promise<Tap> {
  const down: Buffer[] = [];
  const up: Buffer[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const target = netConnect({ host: "127.0.0.1", port: targetPort });
    sockets.add(client).add(target);
    client.on("data", (c: Buffer) => {
      up.push(Buffer.from(c));
      target.write(c);
    });
    target.on("data", (c: Buffer) => {
      down.push(Buffer.from(c));
      client.write(c);
    });
    client.on("end", () => target.end());
    target.on("end", () => client.end());
    client.on("error", () => target.destroy());
    target.on("error", () => client.destroy());
    client.on("close", () => sockets.delete(client));
    target.on("close", () => sockets.delete(target));
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () =>
      resolve({
        port: (server.address() as { port: number }).port,
        toClient: () => Buffer.concat(down),
        toTunnel: () => Buffer.concat(up),
        close: () =>
          new Promise<void>((r) => {
            for (const s of sockets) s.destroy();
            server.close(() => r());
          }),
      }),
    ),
  );
}

let stack: Stack;
let password: string;
const wrongEnv = `GW_TEST_WRONG_PASSWORD_${randomBytes(4).toString("hex")}`;
const wrongPassword = randomBytes(24).toString("base64url");
const marker = `marker-${randomBytes(8).toString("hex")}`;
let good: Tunnel;
let wrong: Tunnel;
let goodTap: Tap;
let wrongTap: Tap;
/** Tokens the tests sent; none may be logged. */
const sentTokens: string[] = [];

beforeAll(async () => {
  process.env[wrongEnv] = wrongPassword;
  stack = await startStack({
    mutate: (raw) => {
      const conns = raw["connections"] as Record<string, { target: Record<string, unknown> }>;
      const base = conns["db-test"]!;
      conns["db-wrongpw"] = {
        ...base,
        target: { ...base.target, password: { env: wrongEnv } },
      };
    },
  });
  password = stack.pg.password;
  good = await stack.openTunnel(stack.tokens.dba);
  wrong = await stack.openTunnel(stack.tokens.dba, "db-wrongpw");
  goodTap = await tap(good.address.port);
  wrongTap = await tap(wrong.address.port);
  sentTokens.push(stack.tokens.dba, stack.tokens.auditor);
});

afterAll(async () => {
  await goodTap?.close();
  await wrongTap?.close();
  await stack?.stop();
  delete process.env[wrongEnv];
});

function client(port: number): pg.Client {
  const c = new pg.Client({
    host: "127.0.0.1",
    port,
    user: "anyone",
    database: "app",
    ssl: false,
    application_name: "secrets-test",
  });
  c.on("error", () => undefined);
  return c;
}

async function sqlstate(p: Promise<unknown>): Promise<{ code?: string; message: string }> {
  try {
    await p;
  } catch (err) {
    return err as { code?: string; message: string };
  }
  throw new Error("expected an error");
}

/** Asserts the text holds neither password (nor the wrong one). */
function expectNoPassword(what: string, text: string | Buffer): void {
  const s = typeof text === "string" ? text : text.toString("latin1");
  expect(s.includes(password), `${what} contains the target password`).toBe(false);
  expect(s.includes(wrongPassword), `${what} contains the (wrong) target password`).toBe(false);
}

async function until(cond: () => boolean, what: string, deadlineMs = 20_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`never happened: ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe("the target password stays in the broker", () => {
  it("sanity: the passwords are long, random, and differ", () => {
    expect(password.length).toBeGreaterThanOrEqual(20);
    expect(wrongPassword.length).toBeGreaterThanOrEqual(20);
    expect(password).not.toBe(wrongPassword);
  });

  it("queries, errors and notices through the tunnel work, and the client sees no password", async () => {
    const c = client(goodTap.port);
    await c.connect();
    try {
      expect((await c.query(`select '${marker}' as m`)).rows).toEqual([{ m: marker }]);
      expect((await c.query("select $1::text as v", [`${marker}-param`])).rows).toEqual([
        { v: `${marker}-param` },
      ]);
      expect((await c.query("select current_user as u")).rows).toEqual([{ u: stack.pg.user }]);
      // What the server stores is a SCRAM verifier, never the password itself.
      const verifier = (
        await c.query<{ p: string }>(
          "select rolpassword as p from pg_authid where rolname = current_user",
        )
      ).rows[0]!.p;
      expect(verifier).toMatch(/^SCRAM-SHA-256\$/);
      expect((await sqlstate(c.query("select 1/0"))).code).toBe("22012");
      expect((await sqlstate(c.query("selec 1"))).code).toBe("42601");
      expect(
        (await sqlstate(c.query("do $$ begin raise exception 'custom failure %', 42; end $$")))
          .message,
      ).toBe("custom failure 42");
      const notices: string[] = [];
      c.on("notice", (n) => notices.push(n.message ?? ""));
      await c.query("do $$ begin raise notice 'a notice'; end $$");
      expect(notices).toEqual(["a notice"]);
      await c.query("select * from pg_settings");
    } finally {
      await c.end();
    }
    // psql too, through the same recorder.
    const { stdout } = await execFileP(
      join(stack.pg.binDir, "psql"),
      [
        `postgresql://127.0.0.1:${goodTap.port}/app?sslmode=prefer`,
        "-XAtc",
        `select '${marker}-psql'`,
      ],
      { env: { ...process.env, PGUSER: "anyone", PGPASSWORD: "" } },
    );
    expect(stdout.trim()).toBe(`${marker}-psql`);

    await until(() => good.activeStreams === 0, "the tunnel's streams ended");
    const received = goodTap.toClient();
    expect(received.includes(marker)).toBe(true);
    expect(received.includes("custom failure 42")).toBe(true);
    expectNoPassword("bytes sent to the client", received);
    expectNoPassword("bytes sent by the client", goodTap.toTunnel());
  });

  it("a failed sign-in to the target says so, without either password", async () => {
    const c = client(wrongTap.port);
    const err = (await sqlstate(c.connect())) as { code?: string; message: string; hint?: string };
    expect(err.code).toBe("28P01");
    expect(err.message).toContain(
      "gw: the target of db-wrongpw rejected the broker's stored credentials",
    );
    expect(err.message).toContain("password authentication failed");
    expect(err.hint).toMatch(/not your sign-in/);
    expectNoPassword("the sign-in error", `${err.message} ${err.hint ?? ""}`);

    await until(() => wrong.activeStreams === 0, "the tunnel's streams ended");
    const received = wrongTap.toClient();
    expect(received.includes("rejected the broker's stored credentials")).toBe(true);
    expectNoPassword("bytes sent to the client", received);
  });

  it("the broker log holds neither password nor any token", async () => {
    await until(
      () => stack.logs.filter((l) => l.includes('"msg":"session ended"')).length >= 3,
      "three sessions ended",
    );
    const log = stack.logs.join("\n");
    expect(log).toContain('"msg":"session started"');
    expect(log).toContain("db-wrongpw");
    expectNoPassword("the broker log", log);
    for (const t of [...sentTokens, ...Object.values(stack.tokens)]) {
      expect(log.includes(t), "a token is in the broker log").toBe(false);
      // Not even the signature: a token cut in pieces is still a leak.
      expect(log.includes(t.split(".")[2]!), "a token's signature is in the broker log").toBe(
        false,
      );
    }
  });

  it("the SQLite store's files hold no password", async () => {
    const db = join(stack.dir, "gw.db");
    const read = () =>
      Buffer.concat(
        [db, `${db}-wal`, `${db}-journal`].filter((f) => existsSync(f)).map((f) => readFileSync(f)),
      );
    // The recorded statements reach the files: these are the bytes to search.
    await until(() => read().includes(marker), "the recorded statements reached the db files");
    expectNoPassword("the SQLite files", read());
  });

  it("gw sessions --json (as an auditor) shows every session, and no password", async () => {
    const env = { GW_TOKEN: stack.tokens.auditor };
    const args = ["--broker", stack.broker.url, "--ca-file", stack.ca.caCert, "--json"];
    const list = await runGw(["sessions", ...args], { env });
    expect(list.code, list.stderr).toBe(0);
    const body = JSON.parse(list.stdout) as {
      scope: string;
      sessions: { id: string; connection: string; endDetail: string | null }[];
    };
    expect(body.scope).toBe("all");
    const failed = body.sessions.find((s) => s.connection === "db-wrongpw");
    expect(failed?.endDetail).toContain("rejected the broker's stored credentials");
    expect(body.sessions.filter((s) => s.connection === "db-test").length).toBeGreaterThanOrEqual(
      2,
    );
    expectNoPassword("gw sessions --json", list.stdout + list.stderr);

    let statements = "";
    for (const s of body.sessions) {
      const one = await runGw(["sessions", s.id, ...args], { env });
      expect(one.code, one.stderr).toBe(0);
      statements += one.stdout;
      expectNoPassword(`gw sessions ${s.id} --json`, one.stdout + one.stderr);
    }
    expect(statements).toContain(marker);
    expect(statements).toContain("custom failure 42");
  });

  it("gw connect --json output, and gw connect's messages for a failed sign-in, show no password", async () => {
    const env = { GW_TOKEN: stack.tokens.dba };
    const flags = ["--broker", stack.broker.url, "--ca-file", stack.ca.caCert];
    const gw = await startGw<{ url: string; listen: { port: number } }>(
      ["connect", "db-test", "--port", "0", "--json", ...flags],
      { env },
    );
    const { stdout } = await execFileP(
      join(stack.pg.binDir, "psql"),
      [gw.json.url, "-XAtc", `select '${marker}-cli'`],
      { env: { ...process.env, PGUSER: "anyone", PGPASSWORD: "" } },
    );
    expect(stdout.trim()).toBe(`${marker}-cli`);
    const res = await gw.stop();
    expect(res.code).toBe(0);
    expect(res.stdout).toContain(gw.json.url);
    expectNoPassword("gw connect --json output", res.stdout + res.stderr);
    expect(res.stdout + res.stderr).not.toContain(stack.tokens.dba);

    // Without --json (connection events on stderr), with the connection whose stored
    // password is wrong.
    const plain = await startGwUntil(
      ["connect", "db-wrongpw", "--port", "0", ...flags],
      /listening on 127\.0\.0\.1:(\d+)/,
      { env },
    );
    const err = await sqlstate(client(Number(plain.json[1])).connect());
    expect(err.code).toBe("28P01");
    await until(() => /connection #1 closed/.test(plain.stderr()), "gw connect saw the stream end");
    const out = await plain.stop();
    expect(out.code).toBe(0);
    expect(out.stderr).toContain("tunnel closed");
    expectNoPassword("gw connect output for a failed sign-in", out.stdout + out.stderr);
  });
});
