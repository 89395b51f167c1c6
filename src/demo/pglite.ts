/**
 * The demo's database when no PostgreSQL server is installed: PGlite (PostgreSQL compiled to
 * WebAssembly, in this process) behind pglite-socket, which speaks the wire protocol on a
 * loopback port, so the broker reaches it exactly as it reaches a real server.
 *
 * Differences from the real server that the demo can live with: no password (the socket server
 * trusts every connection on loopback; the broker's upstream has no password to send), one
 * query at a time (connections are served from one queue), the data in memory only.
 */
import type { LocalPostgres } from "./postgres.js";

export async function startEmbeddedPostgres(seedSql: string): Promise<LocalPostgres> {
  const { PGlite } = await import("@electric-sql/pglite");
  const { PGLiteSocketServer } = await import("@electric-sql/pglite-socket");
  const db = await PGlite.create();
  await db.exec(seedSql);
  const version =
    /PostgreSQL (\d+)/.exec(
      ((await db.query<{ v: string }>("select version() as v")).rows[0]?.v ?? "") as string,
    )?.[1] ?? "?";
  const server = new PGLiteSocketServer({ db, port: 0, host: "127.0.0.1", maxConnections: 50 });
  await server.start();
  const conn = server.getServerConn();
  const port = Number(conn.slice(conn.lastIndexOf(":") + 1));
  let stopped = false;
  return {
    host: "127.0.0.1",
    port,
    user: "postgres",
    password: "",
    database: "postgres",
    binDir: "",
    dataDir: "",
    logFile: "",
    version,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await server.stop();
      await db.close();
    },
  };
}
