import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { startPostgres, type PgServer } from "./postgres.js";
import { issueCert, makeCa } from "./tls.js";

async function query(
  server: PgServer,
  password: string,
  sql: string,
  ssl = false,
): Promise<unknown[]> {
  const client = new pg.Client({
    host: server.host,
    port: server.port,
    user: server.user,
    password,
    database: server.database,
    ssl: ssl ? { rejectUnauthorized: false } : false,
  });
  await client.connect();
  try {
    return (await client.query(sql)).rows;
  } finally {
    await client.end();
  }
}

async function sqlstateOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return (err as { code?: string }).code;
  }
}

describe("startPostgres", () => {
  const cleanups: (() => unknown)[] = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  it("scram-sha-256: the password works, a wrong one is 28P01, stop removes everything", async () => {
    const server = await startPostgres({ logStatements: true });
    cleanups.push(() => server.stop());
    expect(server.host).toBe("127.0.0.1");
    expect(await query(server, server.password, "select 1 as one")).toEqual([{ one: 1 }]);
    expect(await sqlstateOf(query(server, "wrong", "select 1"))).toBe("28P01");

    // The server really stores a SCRAM verifier, and log_statement reached the log.
    const rows = (await query(
      server,
      server.password,
      "select rolpassword from pg_authid where rolname = current_user",
    )) as {
      rolpassword: string;
    }[];
    expect(rows[0]?.rolpassword).toMatch(/^SCRAM-SHA-256\$/);
    expect(readFileSync(server.logFile, "utf8")).toContain("select 1 as one");

    // The url and psqlEnv point at the same server.
    const viaUrl = new pg.Client({ connectionString: server.url });
    await viaUrl.connect();
    expect((await viaUrl.query("select current_database() as db")).rows).toEqual([{ db: "app" }]);
    await viaUrl.end();
    const out = execFileSync(join(server.binDir, "psql"), ["-XAtc", "select 40 + 2"], {
      env: { ...process.env, ...server.psqlEnv() },
    }).toString();
    expect(out.trim()).toBe("42");

    const base = join(server.dataDir, "..");
    await server.stop();
    expect(existsSync(base)).toBe(false);
    await server.stop(); // idempotent
  });

  it("md5: the stored password is an md5 hash, so md5 auth (not SCRAM) is what runs", async () => {
    const server = await startPostgres({ authMethod: "md5" });
    cleanups.push(() => server.stop());
    const rows = (await query(
      server,
      server.password,
      "select rolpassword from pg_authid where rolname = current_user",
    )) as {
      rolpassword: string;
    }[];
    expect(rows[0]?.rolpassword).toMatch(/^md5[0-9a-f]{32}$/);
    expect(await sqlstateOf(query(server, "wrong", "select 1"))).toBe("28P01");
    await server.stop();
  });

  it("ssl with require: TLS connections work, plain ones are rejected", async () => {
    const ca = makeCa();
    cleanups.push(() => rmSync(ca.dir, { recursive: true, force: true }));
    const leaf = issueCert(ca, { cn: "localhost" });
    const server = await startPostgres({ ssl: { cert: leaf.cert, key: leaf.key, require: true } });
    cleanups.push(() => server.stop());
    expect(
      await query(
        server,
        server.password,
        "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
        true,
      ),
    ).toEqual([{ ssl: true }]);
    // pg_hba `hostnossl ... reject` answers 28000 (invalid_authorization_specification).
    expect(await sqlstateOf(query(server, server.password, "select 1", false))).toBe("28000");

    // And the certificate verifies against the test CA by name.
    const verified = new pg.Client({
      host: "localhost",
      port: server.port,
      user: server.user,
      password: server.password,
      database: server.database,
      ssl: { ca: ca.caPem, rejectUnauthorized: true },
    });
    await verified.connect();
    await verified.end();
    await server.stop();
  });
});
