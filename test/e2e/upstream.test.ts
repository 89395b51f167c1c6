/**
 * Failures between the broker and the target reach the client as an ErrorResponse with a
 * SQLSTATE and a message that says what happened, never as a silent close; and every auth
 * method and TLS mode the broker speaks to targets works against a real PostgreSQL.
 */
import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPostgres, type PgServer } from "../helpers/postgres.js";
import { GROUP_DBA, startStack, tunnelUrl, type Stack } from "../helpers/stack.js";
import { issueCert, makeCa, type TestCa } from "../helpers/tls.js";

interface PgError extends Error {
  code?: string;
  severity?: string;
  hint?: string;
}

/** A local TCP server that accepts and does whatever `onSocket` says (here: nothing, or close). */
async function listen(
  onSocket: (s: Socket) => void,
): Promise<{ server: Server; port: number; sockets: Set<Socket> }> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => undefined);
    onSocket(s);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const addr = server.address();
  if (addr === null || typeof addr === "string") throw new Error("no port");
  return { server, port: addr.port, sockets };
}

async function closeServer(l: { server: Server; sockets: Set<Socket> }): Promise<void> {
  for (const s of l.sockets) s.destroy();
  await new Promise<void>((resolve) => l.server.close(() => resolve()));
}

/** A port nothing listens on: bound, then released. */
async function closedPort(): Promise<number> {
  const l = await listen(() => undefined);
  await closeServer(l);
  return l.port;
}

describe("upstream failures and target auth/TLS modes", () => {
  let stack: Stack;
  let tlsCa: TestCa;
  let otherCa: TestCa;
  let md5Pg: PgServer;
  let clearPg: PgServer;
  let silent: Awaited<ReturnType<typeof listen>>;
  let hangup: Awaited<ReturnType<typeof listen>>;
  const envs: string[] = [];
  const WRONG_PASSWORD = `wrong-${randomBytes(9).toString("base64url")}`;

  const setEnv = (value: string): string => {
    const name = `GW_TEST_UPSTREAM_${randomBytes(4).toString("hex")}`;
    process.env[name] = value;
    envs.push(name);
    return name;
  };

  beforeAll(async () => {
    tlsCa = makeCa();
    otherCa = makeCa(undefined, { cn: "some other CA" });
    const pgCert = issueCert(tlsCa, { cn: "localhost" });
    // Two more servers besides the stack's, started in parallel: md5 and cleartext, both without TLS.
    [md5Pg, clearPg] = await Promise.all([
      startPostgres({ authMethod: "md5" }),
      startPostgres({ authMethod: "password" }),
    ]);
    silent = await listen(() => undefined);
    hangup = await listen((s) => s.once("data", () => s.destroy()));
    const downPort = await closedPort();

    const allow = [`group:${GROUP_DBA}`];
    const md5Env = setEnv(md5Pg.password);
    const clearEnv = setEnv(clearPg.password);
    const wrongEnv = setEnv(WRONG_PASSWORD);
    stack = await startStack({
      // The stack's own server speaks TLS (not required): it serves the TLS modes and the
      // failure cases below.
      pg: { ssl: { cert: pgCert.cert, key: pgCert.key } },
      mutate: (raw) => {
        const base = (raw.connections as Record<string, { target: Record<string, unknown> }>)[
          "db-test"
        ]!.target;
        const conn = (target: Record<string, unknown>) => ({
          type: "postgres",
          target: { ...base, ...target },
          allow,
        });
        Object.assign(raw.connections as object, {
          "pg-down": conn({ port: downPort }),
          "bad-password": conn({ password: { env: wrongEnv } }),
          "no-database": conn({ database: "no_such_db" }),
          "silent-target": conn({ port: silent.port, connectTimeout: 0.5 }),
          "silent-target-tls": conn({ port: silent.port, connectTimeout: 0.5, tls: "prefer" }),
          "hangup-target": conn({ port: hangup.port }),
          "md5-target": conn({
            port: md5Pg.port,
            user: md5Pg.user,
            database: md5Pg.database,
            password: { env: md5Env },
          }),
          "cleartext-target": conn({
            port: clearPg.port,
            user: clearPg.user,
            database: clearPg.database,
            password: { env: clearEnv },
          }),
          "tls-require": conn({ tls: "require" }),
          "tls-prefer": conn({ tls: "prefer" }),
          "tls-disable": conn({ tls: "disable" }),
          "tls-verify-full": conn({ tls: "verify-full", host: "localhost", ca: tlsCa.caCert }),
          "tls-verify-full-ip": conn({ tls: "verify-full", host: "127.0.0.1", ca: tlsCa.caCert }),
          "tls-verify-full-other-ca": conn({
            tls: "verify-full",
            host: "localhost",
            ca: otherCa.caCert,
          }),
          "tls-require-other-ca": conn({ tls: "require", ca: otherCa.caCert }),
          "plain-prefer": conn({
            port: md5Pg.port,
            user: md5Pg.user,
            database: md5Pg.database,
            password: { env: md5Env },
            tls: "prefer",
          }),
          "plain-require": conn({
            port: md5Pg.port,
            user: md5Pg.user,
            database: md5Pg.database,
            password: { env: md5Env },
            tls: "require",
          }),
        });
      },
    });
  });

  afterAll(async () => {
    await stack?.stop();
    await Promise.all([md5Pg?.stop(), clearPg?.stop()]);
    if (silent) await closeServer(silent);
    if (hangup) await closeServer(hangup);
    for (const e of envs) delete process.env[e];
    for (const ca of [tlsCa, otherCa]) if (ca) rmSync(ca.dir, { recursive: true, force: true });
  });

  async function client(connection: string): Promise<pg.Client> {
    const t = await stack.openTunnel(stack.tokens.dba, connection);
    return new pg.Client({ connectionString: tunnelUrl(t) });
  }

  /** Connects through a tunnel to `connection` and expects the connect to fail; returns the error. */
  async function connectError(connection: string): Promise<PgError> {
    const c = await client(connection);
    c.on("error", () => undefined);
    try {
      await c.connect();
    } catch (err) {
      return err as PgError;
    } finally {
      await c.end().catch(() => undefined);
    }
    throw new Error(`connecting through ${connection} should have failed`);
  }

  /** Connects, runs `fn`, ends. */
  async function withClient<T>(connection: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
    const c = await client(connection);
    await c.connect();
    try {
      return await fn(c);
    } finally {
      await c.end();
    }
  }

  const sslInUse = (c: pg.Client) =>
    c
      .query<{ ssl: boolean }>("select ssl from pg_stat_ssl where pid = pg_backend_pid()")
      .then((r) => r.rows[0]!.ssl);

  describe("failures reach the client as an ErrorResponse", () => {
    it("target down: 08006, the message names the connection and says why", async () => {
      const err = await connectError("pg-down");
      expect(err.code).toBe("08006");
      expect(err.severity).toBe("FATAL");
      expect(err.message).toMatch(/^gw: /);
      expect(err.message).toContain("pg-down");
      expect(err.message).toContain("connection refused");
    });

    it("wrong stored password: 28P01, blames the broker's stored credentials, shows no password", async () => {
      const err = await connectError("bad-password");
      expect(err.code).toBe("28P01");
      expect(err.message).toMatch(/^gw: /);
      expect(err.message).toContain("bad-password");
      expect(err.message).toMatch(/rejected the broker's stored credentials/);
      expect(err.hint ?? "").toMatch(/operators/);
      for (const text of [err.message, err.hint ?? "", JSON.stringify(err)]) {
        expect(text).not.toContain(WRONG_PASSWORD);
        expect(text).not.toContain(stack.pg.password);
      }
      // Nor does the broker log either of them.
      const logs = stack.logs.join("\n");
      expect(logs).not.toContain(WRONG_PASSWORD);
      expect(logs).not.toContain(stack.pg.password);
    });

    it("missing database: 3D000 with the target's own words", async () => {
      const err = await connectError("no-database");
      expect(err.code).toBe("3D000");
      expect(err.message).toMatch(/^gw: /);
      expect(err.message).toContain("no-database");
      expect(err.message).toContain('database "no_such_db" does not exist');
    });

    it("a target that accepts and never answers: 08006, timed out (plain and while asking for TLS)", async () => {
      for (const name of ["silent-target", "silent-target-tls"]) {
        const err = await connectError(name);
        expect(err.code, name).toBe("08006");
        expect(err.message).toMatch(/^gw: /);
        expect(err.message).toContain(name);
        expect(err.message).toMatch(/timed out after 500 ms/);
      }
    });

    it("a target that hangs up during sign-in: 08006", async () => {
      const err = await connectError("hangup-target");
      expect(err.code).toBe("08006");
      expect(err.message).toContain("hangup-target");
      expect(err.message).toMatch(/closed the connection during sign-in/);
    });

    it("the broker is fine afterwards: the good connection still works", async () => {
      const one = await withClient("db-test", (c) => c.query("select 1 as one"));
      expect(one.rows).toEqual([{ one: 1 }]);
    });
  });

  describe("auth methods of the target", () => {
    it("md5", async () => {
      expect(md5Pg.authMethod).toBe("md5");
      const r = await withClient("md5-target", (c) =>
        c.query<{ u: string; m: string }>(
          "select current_user as u, (select auth_method from pg_hba_file_rules where type = 'host' limit 1) as m",
        ),
      );
      expect(r.rows[0]).toEqual({ u: md5Pg.user, m: "md5" });
    });

    it("password (cleartext)", async () => {
      const r = await withClient("cleartext-target", (c) =>
        c.query<{ u: string; m: string }>(
          "select current_user as u, (select auth_method from pg_hba_file_rules where type = 'host' limit 1) as m",
        ),
      );
      expect(r.rows[0]).toEqual({ u: clearPg.user, m: "password" });
    });

    it("scram-sha-256 (the stack's server)", async () => {
      const r = await withClient("db-test", (c) =>
        c.query<{ m: string }>(
          "select auth_method as m from pg_hba_file_rules where type = 'hostssl' limit 1",
        ),
      );
      expect(r.rows[0]!.m).toBe("scram-sha-256");
    });
  });

  describe("TLS to the target", () => {
    it("require: works, and the target session is encrypted", async () => {
      expect(await withClient("tls-require", sslInUse)).toBe(true);
    });

    it("verify-full with the right CA and host localhost: works, encrypted", async () => {
      expect(await withClient("tls-verify-full", sslInUse)).toBe(true);
    });

    it("verify-full with the right CA and host 127.0.0.1 (IP subjectAltName): works, encrypted", async () => {
      expect(await withClient("tls-verify-full-ip", sslInUse)).toBe(true);
    });

    it("verify-full with another CA: refused with a TLS verification message", async () => {
      const err = await connectError("tls-verify-full-other-ca");
      expect(err.code).toBe("08006");
      expect(err.message).toMatch(/^gw: /);
      expect(err.message).toContain("tls-verify-full-other-ca");
      expect(err.message).toMatch(/failed TLS verification/);
    });

    it("require with a CA checks the chain: another CA is refused", async () => {
      const err = await connectError("tls-require-other-ca");
      expect(err.code).toBe("08006");
      expect(err.message).toMatch(/failed TLS verification/);
    });

    it("prefer against a TLS server: encrypted", async () => {
      expect(await withClient("tls-prefer", sslInUse)).toBe(true);
    });

    it("disable: unencrypted, even though the server offers TLS", async () => {
      expect(await withClient("tls-disable", sslInUse)).toBe(false);
    });

    it("prefer against a server without TLS: works, unencrypted", async () => {
      expect(await withClient("plain-prefer", sslInUse)).toBe(false);
    });

    it("require against a server without TLS: refused with a clear message", async () => {
      const err = await connectError("plain-require");
      expect(err.code).toBe("08006");
      expect(err.message).toMatch(/^gw: /);
      expect(err.message).toContain("plain-require");
      expect(err.message).toMatch(
        /does not accept TLS, but the broker requires it \(tls: require\)/,
      );
    });
  });
});
