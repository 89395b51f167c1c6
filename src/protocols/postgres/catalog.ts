import { Backend } from "./codes.js";
import { MessageFramer } from "./framing.js";
import { openUpstream, type UpstreamTarget } from "./upstream.js";
import { cstr, readNoticeFields, typed } from "./wire.js";

/**
 * What masking needs from the target's catalog: which schema.table.column a RowDescription's
 * (table oid, attnum) is, and a table's columns in order (for COPY). Loaded with the broker's
 * own credentials on a short-lived connection of its own, shared by every session of one
 * connection, and reloaded when a session meets a table it does not know (new tables, DDL).
 */
interface Relation {
  schema: string;
  table: string;
  columns: Map<number, string>;
}

const CATALOG_SQL = `select c.oid, n.nspname, c.relname, a.attnum, a.attname
  from pg_catalog.pg_class c
  join pg_catalog.pg_namespace n on n.oid = c.relnamespace
  join pg_catalog.pg_attribute a on a.attrelid = c.oid
 where c.relkind in ('r', 'p', 'v', 'm', 'f')
   and a.attnum > 0 and not a.attisdropped
   and n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast')
 order by c.oid, a.attnum`;

/** Reloads happen at most this often, however many unknown tables sessions meet. */
const MIN_RELOAD_MS = 1000;

export class CatalogCache {
  private byOid = new Map<number, Relation>();
  private loading: Promise<void> | null = null;
  private loadedAt = 0;

  constructor(private readonly target: () => UpstreamTarget) {}

  get loaded(): boolean {
    return this.loadedAt > 0;
  }

  knows(oid: number): boolean {
    return this.byOid.has(oid);
  }

  /** "schema.table.column", or null when the column is not a table's (an expression). */
  resolve(oid: number, attnum: number): string | null | undefined {
    if (oid === 0) return null;
    const r = this.byOid.get(oid);
    if (!r) return undefined;
    const col = r.columns.get(attnum);
    return col === undefined ? null : `${r.schema}.${r.table}.${col}`;
  }

  /** A table's columns in attnum order, looked up by name (schema null: the one table of that name). */
  columnsOf(
    schema: string | null,
    table: string,
  ): { qualifiedName: string; name: string }[] | null {
    const matches = [...this.byOid.values()].filter(
      (r) => r.table === table && (schema === null || r.schema === schema),
    );
    if (matches.length !== 1) return null;
    const r = matches[0]!;
    return [...r.columns.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([, name]) => ({ name, qualifiedName: `${r.schema}.${r.table}.${name}` }));
  }

  /** Loads (or reloads) the catalog; concurrent callers share one load. */
  refresh(): Promise<void> {
    if (this.loading) return this.loading;
    const wait = Math.max(0, this.loadedAt + MIN_RELOAD_MS - Date.now());
    this.loading = new Promise<void>((r) => setTimeout(r, wait))
      .then(() => runQuery(this.target(), CATALOG_SQL))
      .then((rows) => {
        const next = new Map<number, Relation>();
        for (const [oid, schema, table, attnum, name] of rows) {
          const o = Number(oid);
          let rel = next.get(o);
          if (!rel) {
            rel = { schema: schema!, table: table!, columns: new Map() };
            next.set(o, rel);
          }
          rel.columns.set(Number(attnum), name!);
        }
        this.byOid = next;
        this.loadedAt = Date.now();
      })
      .finally(() => {
        this.loading = null;
      });
    return this.loading;
  }
}

/** One simple query on a connection of its own; rows as text. */
async function runQuery(target: UpstreamTarget, sql: string): Promise<(string | null)[][]> {
  const up = await openUpstream(target, { application_name: "gw-catalog" });
  const socket = up.socket;
  return new Promise((resolve, reject) => {
    const rows: (string | null)[][] = [];
    let error: Error | null = null;
    const framer = new MessageFramer(1 << 30);
    const done = (err: Error | null) => {
      socket.removeAllListeners("data");
      socket.end(typed(0x58, Buffer.alloc(0)));
      if (err) reject(err);
      else resolve(rows);
    };
    const onMessage = (type: number, buf: Buffer, start: number, end: number): boolean => {
      if (type === Backend.dataRow) {
        const n = buf.readInt16BE(start + 5);
        let pos = start + 7;
        const row: (string | null)[] = [];
        for (let i = 0; i < n; i++) {
          const len = buf.readInt32BE(pos);
          pos += 4;
          if (len < 0) row.push(null);
          else {
            row.push(buf.toString("utf8", pos, pos + len));
            pos += len;
          }
        }
        rows.push(row);
      } else if (type === Backend.errorResponse) {
        const f = readNoticeFields(buf, start, end);
        error = new Error(`catalog query failed: ${f.get("M") ?? "unknown error"}`);
      } else if (type === Backend.readyForQuery) {
        done(error);
        return false;
      }
      return true;
    };
    socket.on("data", (c: Buffer) => {
      try {
        framer.push(c, onMessage);
      } catch (err) {
        done(err as Error);
      }
    });
    socket.once("error", (err) => reject(err));
    socket.resume();
    if (up.leftover) framer.push(up.leftover, onMessage);
    socket.write(typed(0x51, cstr(sql)));
  });
}
