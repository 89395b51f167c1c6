/**
 * The smallest PostgreSQL client that can set up the demo database: one connection (the
 * broker's own upstream code: SCRAM, no TLS on loopback) and the simple query protocol.
 * Product code has no other PostgreSQL client (`pg` is a test dependency), and the demo needs
 * only to run a seed script and, in tests, read a few rows.
 */
import { Backend } from "../protocols/postgres/codes.js";
import { MessageFramer } from "../protocols/postgres/framing.js";
import { openUpstream } from "../protocols/postgres/upstream.js";
import { cstr, readNoticeFields, typed } from "../protocols/postgres/wire.js";

export interface PgEndpoint {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
}

/** Runs `sql` (any number of statements) with the simple query protocol; returns the rows of all of them, as text. */
export async function simpleQuery(
  ep: PgEndpoint,
  sql: string,
): Promise<Array<Array<string | null>>> {
  const up = await openUpstream(
    {
      name: "demo",
      host: ep.host,
      port: ep.port,
      database: ep.database,
      user: ep.user,
      password: ep.password,
      tls: "disable",
      connectTimeoutMs: 10_000,
    },
    { user: ep.user, database: ep.database, client_encoding: "UTF8" },
  );
  const socket = up.socket;
  const rows: Array<Array<string | null>> = [];
  let error: string | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      const framer = new MessageFramer(1 << 30);
      const onData = (chunk: Buffer) => {
        try {
          framer.push(chunk, (type, buf, start, end) => {
            if (type === Backend.dataRow) {
              const n = buf.readInt16BE(start + 5);
              let pos = start + 7;
              const row: Array<string | null> = [];
              for (let i = 0; i < n; i++) {
                const l = buf.readInt32BE(pos);
                pos += 4;
                if (l < 0) row.push(null);
                else {
                  row.push(buf.toString("utf8", pos, pos + l));
                  pos += l;
                }
              }
              rows.push(row);
            } else if (type === Backend.errorResponse) {
              const f = readNoticeFields(buf, start, end);
              error ??= `${f.get("C") ?? "?"}: ${f.get("M") ?? "error"}`;
            } else if (type === Backend.readyForQuery) {
              resolve();
              return false;
            }
            return true;
          });
        } catch (err) {
          reject(err instanceof Error ? err : new Error(String(err)));
        }
      };
      socket.on("data", onData);
      socket.on("error", reject);
      socket.on("close", () => reject(new Error("the server closed the connection")));
      if (up.leftover) onData(up.leftover);
      socket.resume();
      socket.write(typed(0x51, cstr(sql)));
    });
  } finally {
    socket.removeAllListeners("close");
    socket.end(typed(0x58, Buffer.alloc(0)));
    socket.destroy();
  }
  if (error !== undefined) throw new Error(`query failed: ${error}`);
  return rows;
}
