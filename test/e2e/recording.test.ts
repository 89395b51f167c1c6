/**
 * What the broker records about sessions through gw: the session record (who, where, which
 * application, how it ended, bytes, statement count) and every statement in order with its
 * text, command tag, rows and error; and who may read those records through the API.
 */
import { connect, type Socket } from "node:net";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SessionRecord, StatementEvent } from "../../src/store/types.js";
import type { Tunnel } from "../../src/tunnel/tunnel.js";
import { APP_AGENT, startStack, tunnelUrl, type Stack } from "../helpers/stack.js";

// --- a minimal raw protocol client, to send exactly the messages a test needs -------------

interface Msg {
  type: string;
  body: Buffer;
}

function typed(type: string, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  const head = Buffer.alloc(5);
  head.write(type, 0, "latin1");
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}
const cstr = (s: string) => Buffer.from(s + "\0", "utf8");
const int16 = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeInt16BE(n);
  return b;
};
const int32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};

const m = {
  startup(params: Record<string, string>): Buffer {
    const body = Buffer.concat([
      int32(196608),
      ...Object.entries(params).flatMap(([k, v]) => [cstr(k), cstr(v)]),
      Buffer.from([0]),
    ]);
    return Buffer.concat([int32(body.length + 4), body]);
  },
  query: (sql: string) => typed("Q", cstr(sql)),
  parse: (name: string, sql: string) => typed("P", cstr(name), cstr(sql), int16(0)),
  bind: (portal: string, stmt: string, params: string[] = []) =>
    typed(
      "B",
      cstr(portal),
      cstr(stmt),
      int16(0),
      int16(params.length),
      ...params.flatMap((p) => {
        const v = Buffer.from(p, "utf8");
        return [int32(v.length), v];
      }),
      int16(0),
    ),
  describePortal: (portal: string) => typed("D", Buffer.from("P"), cstr(portal)),
  execute: (portal: string, maxRows = 0) => typed("E", cstr(portal), int32(maxRows)),
  sync: () => typed("S"),
  terminate: () => typed("X"),
};

class RawPg {
  private buf = Buffer.alloc(0);
  private readonly msgs: Msg[] = [];
  private pos = 0;
  private wake: (() => void) | null = null;
  private closed = false;

  private constructor(private readonly socket: Socket) {
    socket.on("data", (c: Buffer) => {
      this.buf = Buffer.concat([this.buf, c]);
      while (this.buf.length >= 5) {
        const len = this.buf.readInt32BE(1);
        if (this.buf.length < 1 + len) break;
        this.msgs.push({
          type: String.fromCharCode(this.buf[0]!),
          body: this.buf.subarray(5, 1 + len),
        });
        this.buf = this.buf.subarray(1 + len);
      }
      this.wake?.();
    });
    socket.on("close", () => {
      this.closed = true;
      this.wake?.();
    });
    socket.on("error", () => undefined);
  }

  /** Connects and sends `first` (a startup packet, possibly with more behind it) in one write. */
  static open(port: number, first: Buffer): Promise<RawPg> {
    return new Promise((resolve, reject) => {
      const s = connect({ host: "127.0.0.1", port }, () => {
        s.setNoDelay(true);
        s.write(first);
        resolve(new RawPg(s));
      });
      s.once("error", reject);
    });
  }

  send(...bufs: Buffer[]): void {
    this.socket.write(Buffer.concat(bufs));
  }

  /** Messages up to and including the next ReadyForQuery. */
  async untilReady(): Promise<Msg[]> {
    for (;;) {
      const i = this.msgs.findIndex((x, k) => k >= this.pos && x.type === "Z");
      if (i >= 0) {
        const out = this.msgs.slice(this.pos, i + 1);
        this.pos = i + 1;
        return out;
      }
      if (this.closed) throw new Error("connection closed before ReadyForQuery");
      await new Promise<void>((r) => (this.wake = r));
      this.wake = null;
    }
  }

  /** Whatever arrived after the last ReadyForQuery returned, once the other end is quiet. */
  pending(): Msg[] {
    return this.msgs.slice(this.pos);
  }

  async end(): Promise<void> {
    this.socket.end(m.terminate());
    if (!this.closed) await new Promise<void>((r) => this.socket.once("close", () => r()));
  }
}

const kinds = (msgs: Msg[]) => msgs.map((x) => x.type).join("");
const tagsOf = (msgs: Msg[]) =>
  msgs.filter((x) => x.type === "C").map((x) => x.body.toString("utf8", 0, x.body.length - 1));
function errorCodeOf(msgs: Msg[]): string | undefined {
  const e = msgs.find((x) => x.type === "E");
  if (!e) return undefined;
  let p = 0;
  while (p < e.body.length && e.body[p] !== 0) {
    const field = String.fromCharCode(e.body[p]!);
    const end = e.body.indexOf(0, p + 1);
    if (field === "C") return e.body.toString("utf8", p + 1, end);
    p = end + 1;
  }
  return undefined;
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  for (let i = 0; i < 300; i++) {
    const v = await probe();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe("recording through gw", () => {
  let stack: Stack;
  let dbaTunnel: Tunnel;
  let appTunnel: Tunnel;
  let auditorTunnel: Tunnel;
  let oids: { dba: string; auditor: string; app: string };
  const sessionIds: string[] = [];

  beforeAll(async () => {
    stack = await startStack();
    dbaTunnel = await stack.openTunnel(stack.tokens.dba, "db-test", (e) => {
      if (e.type === "session") sessionIds.push(e.session);
    });
    appTunnel = await stack.openTunnel(stack.tokens.app);
    auditorTunnel = await stack.openTunnel(stack.tokens.auditor);
    const oidOf = async (t: string) =>
      ((await stack.client(t).whoami()) as { identity: { oid: string } }).identity.oid;
    oids = {
      dba: await oidOf(stack.tokens.dba),
      auditor: await oidOf(stack.tokens.auditor),
      app: await oidOf(stack.tokens.app),
    };
  });
  afterAll(async () => {
    await stack?.stop();
  });

  const sessionByApp = (app: string) =>
    waitFor(`a session of ${app}`, async () =>
      (await stack.store.listSessions({ limit: 1000 })).find((s) => s.applicationName === app),
    );
  const endedSession = (id: string) =>
    waitFor(`session ${id} to end`, async () => {
      const s = await stack.store.getSession(id);
      return s?.endedAt !== null ? (s ?? undefined) : undefined;
    });
  const pgClient = (t: Tunnel, app: string) =>
    new pg.Client({ connectionString: `${tunnelUrl(t)}&application_name=${app}` });

  let dbaSession: SessionRecord;
  let dbaStatements: StatementEvent[];

  it("records a pg session: identity, connection, application, end, bytes and statements", async () => {
    const c = pgClient(dbaTunnel, "gw-rec-pg");
    await c.connect();
    await c.query("select * from (values (1), (2), (3)) v(x)");
    await c.query("create table rec_t (id int primary key, v text)");
    await c.query("insert into rec_t values (1, 'a'), (2, 'b')");
    await expect(c.query("select * from missing_tbl")).rejects.toMatchObject({ code: "42P01" });
    await c.query("select $1::int + 1 as n", [1]);
    await c.query({ name: "upd", text: "update rec_t set v = $1 where id = $2", values: ["z", 1] });
    await c.query({ name: "upd", text: "update rec_t set v = $1 where id = $2", values: ["y", 9] });
    await expect(c.query("select $1::int", ["x"])).rejects.toMatchObject({ code: "22P02" });
    await c.query("begin; delete from rec_t where id = 2; rollback");
    const live = await sessionByApp("gw-rec-pg");
    expect(live.endedAt).toBeNull();
    await c.end();

    const s = await endedSession(live.id);
    expect(sessionIds).toContain(s.id);
    expect(s.identity).toMatchObject({ oid: oids.dba, name: "Dana DBA", type: "user" });
    expect(s.connection).toBe("db-test");
    expect(s.protocol).toBe("postgres");
    expect(s.applicationName).toBe("gw-rec-pg");
    expect(s.endReason).toBe("client_closed");
    expect(s.bytesIn).toBeGreaterThan(0);
    expect(s.bytesOut).toBeGreaterThan(s.bytesIn / 10);
    expect(s.endedAt!).toBeGreaterThanOrEqual(s.startedAt);
    expect(s.statementCount).toBe(9);

    const st = await stack.store.listStatements(s.id);
    expect(st.map((x) => x.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(st.map((x) => [x.protocol, x.sql, x.commandTag, x.rows, x.errorCode])).toEqual([
      ["simple", "select * from (values (1), (2), (3)) v(x)", "SELECT 3", 3, null],
      ["simple", "create table rec_t (id int primary key, v text)", "CREATE TABLE", null, null],
      ["simple", "insert into rec_t values (1, 'a'), (2, 'b')", "INSERT 0 2", 2, null],
      ["simple", "select * from missing_tbl", null, null, "42P01"],
      ["extended", "select $1::int + 1 as n", "SELECT 1", 1, null],
      ["extended", "update rec_t set v = $1 where id = $2", "UPDATE 1", 1, null],
      ["extended", "update rec_t set v = $1 where id = $2", "UPDATE 0", 0, null],
      ["extended", "select $1::int", null, null, "22P02"],
      [
        "simple",
        "begin; delete from rec_t where id = 2; rollback",
        "BEGIN, DELETE 1, ROLLBACK",
        1,
        null,
      ],
    ]);
    expect(st[3]!.errorMessage).toBe('relation "missing_tbl" does not exist');
    for (let i = 0; i < st.length; i++) {
      expect(st[i]!.sessionId).toBe(s.id);
      expect(st[i]!.durationMs).toBeGreaterThanOrEqual(0);
      expect(st[i]!.at).toBeGreaterThanOrEqual(s.startedAt);
      expect(st[i]!.at).toBeLessThanOrEqual(s.endedAt!);
      if (i > 0) expect(st[i]!.at).toBeGreaterThanOrEqual(st[i - 1]!.at);
    }
    dbaSession = s;
    dbaStatements = st;
  });

  it("records a failed Parse in an extended batch once, and no skipped Execute as run", async () => {
    const c = await RawPg.open(
      dbaTunnel.address.port,
      m.startup({ user: "ignored", database: "ignored", application_name: "gw-rec-raw" }),
    );
    const hello = await c.untilReady();
    expect(kinds(hello)).toMatch(/^RS*KZ$/);

    // One batch: Parse fails; its Bind and Execute are skipped up to the Sync.
    c.send(m.parse("", "selec 1"), m.bind("", ""), m.execute(""), m.sync());
    let r = await c.untilReady();
    expect(kinds(r)).toBe("EZ");
    expect(errorCodeOf(r)).toBe("42601");

    // One pipelined batch: a good statement, a bad one, and one after it that never runs.
    c.send(
      m.parse("", "select 'first' as a"),
      m.bind("", ""),
      m.describePortal(""),
      m.execute(""),
      m.parse("s2", "select 1/0"),
      m.bind("", "s2"),
      m.execute(""),
      m.parse("", "insert into rec_t values (100, 'never')"),
      m.bind("", ""),
      m.execute(""),
      m.sync(),
    );
    r = await c.untilReady();
    // 1/0 is folded when the statement is planned, at Bind: the error comes before BindComplete.
    expect(kinds(r)).toBe("12TDC1EZ");
    expect(errorCodeOf(r)).toBe("22012");

    // Two batches back to back: the second is unaffected by the first's error.
    c.send(
      m.parse("", "select no_such_column"),
      m.bind("", ""),
      m.execute(""),
      m.sync(),
      m.parse("", "select $1::text as b"),
      m.bind("", "", ["second batch"]),
      m.execute(""),
      m.sync(),
    );
    expect(errorCodeOf(await c.untilReady())).toBe("42703");
    expect(tagsOf(await c.untilReady())).toEqual(["SELECT 1"]);

    // A portal run in pieces: each Execute is one statement.
    c.send(
      m.query("begin"),
      m.parse("", "select g from generate_series(1, 5) g"),
      m.bind("p", ""),
      m.execute("p", 2),
      m.execute("p", 0),
      m.sync(),
      m.query("commit"),
    );
    await c.untilReady();
    r = await c.untilReady();
    expect(kinds(r)).toBe("12DDsDDDCZ");
    await c.untilReady();

    c.send(m.query("select 'after' as x"));
    expect(tagsOf(await c.untilReady())).toEqual(["SELECT 1"]);
    await c.end();

    const s = await endedSession((await sessionByApp("gw-rec-raw")).id);
    const st = await stack.store.listStatements(s.id);
    expect(st.map((x) => [x.protocol, x.sql, x.commandTag, x.rows, x.errorCode])).toEqual([
      ["extended", "selec 1", null, null, "42601"],
      ["extended", "select 'first' as a", "SELECT 1", 1, null],
      ["extended", "select 1/0", null, null, "22012"],
      ["extended", "select no_such_column", null, null, "42703"],
      ["extended", "select $1::text as b", "SELECT 1", 1, null],
      ["simple", "begin", "BEGIN", null, null],
      // The first Execute stopped at its row limit (PortalSuspended): a statement of its own.
      ["extended", "select g from generate_series(1, 5) g", expect.anything(), null, null],
      ["extended", "select g from generate_series(1, 5) g", "SELECT 3", 3, null],
      ["simple", "commit", "COMMIT", null, null],
      ["simple", "select 'after' as x", "SELECT 1", 1, null],
    ]);
    expect(s.statementCount).toBe(10);
    expect(s.endReason).toBe("client_closed");
    // The statement that never ran did not run on the target either.
    const check = new pg.Client({ connectionString: stack.pg.url });
    await check.connect();
    try {
      expect(
        (await check.query("select count(*)::int as n from rec_t where id = 100")).rows,
      ).toEqual([{ n: 0 }]);
    } finally {
      await check.end();
    }
  });

  it("runs and records a query pipelined right behind the startup packet exactly once", async () => {
    const c = await RawPg.open(
      dbaTunnel.address.port,
      Buffer.concat([
        m.startup({ user: "x", database: "x", application_name: "gw-rec-pipelined" }),
        m.query("insert into rec_t values (200, 'pipelined') returning id"),
      ]),
    );
    const hello = await c.untilReady();
    expect(kinds(hello)).toMatch(/^RS*KZ$/);
    const r = await c.untilReady();
    expect(tagsOf(r)).toEqual(["INSERT 0 1"]);
    c.send(m.query("select count(*) from rec_t where id = 200"));
    const count = await c.untilReady();
    expect(kinds(count)).toBe("TDCZ");
    const d = count[1]!.body;
    expect(d.toString("utf8", 6, 6 + d.readInt32BE(2))).toBe("1");
    await c.end();
    const s = await endedSession((await sessionByApp("gw-rec-pipelined")).id);
    const st = await stack.store.listStatements(s.id);
    expect(st.map((x) => [x.sql, x.commandTag, x.errorCode])).toEqual([
      ["insert into rec_t values (200, 'pipelined') returning id", "INSERT 0 1", null],
      ["select count(*) from rec_t where id = 200", "SELECT 1", null],
    ]);
  });

  it("records an app token's session with identity type app", async () => {
    const c = pgClient(appTunnel, "gw-rec-app");
    await c.connect();
    const r = await c.query("select current_user as u");
    expect(r.rows).toEqual([{ u: stack.pg.user }]);
    await c.end();
    const s = await endedSession((await sessionByApp("gw-rec-app")).id);
    expect(s.identity.type).toBe("app");
    expect(s.identity.oid).toBe(APP_AGENT);
    expect(s.identity.oid).toBe(oids.app);
    expect(s.endReason).toBe("client_closed");
    expect(s.statementCount).toBe(1);
    const st = await stack.store.listStatements(s.id);
    expect(st.map((x) => [x.sql, x.commandTag])).toEqual([
      ["select current_user as u", "SELECT 1"],
    ]);
  });

  it("records the end when the target ends the session", async () => {
    const c = pgClient(dbaTunnel, "gw-rec-killed");
    await c.connect();
    c.on("error", () => undefined);
    const pid = (await c.query<{ pid: number }>("select pg_backend_pid() as pid")).rows[0]!.pid;
    const admin = new pg.Client({ connectionString: stack.pg.url });
    await admin.connect();
    try {
      await admin.query("select pg_terminate_backend($1)", [pid]);
    } finally {
      await admin.end();
    }
    const s = await endedSession((await sessionByApp("gw-rec-killed")).id);
    expect(s.endReason).toBe("upstream_closed");
    expect(s.statementCount).toBe(1);
    await c.end().catch(() => undefined);
  });

  it("the API shows a user their own sessions and an auditor all of them", async () => {
    // The auditor has a session of their own too.
    const a = pgClient(auditorTunnel, "gw-rec-auditor");
    await a.connect();
    await a.query("select 1");
    await a.end();
    const auditorSession = await endedSession((await sessionByApp("gw-rec-auditor")).id);
    const appSession = await sessionByApp("gw-rec-app");
    expect(auditorSession.identity.oid).toBe(oids.auditor);

    type ApiSession = { id: string; identity: { oid: string; type: string } };
    const own = await stack.client(stack.tokens.dba).sessions({ limit: 1000 });
    expect(own.scope).toBe("own");
    const ownList = own.sessions as ApiSession[];
    expect(ownList.length).toBeGreaterThanOrEqual(4);
    expect(ownList.every((x) => x.identity.oid === oids.dba)).toBe(true);
    expect(ownList.map((x) => x.id)).toContain(dbaSession.id);
    expect(ownList.map((x) => x.id)).not.toContain(appSession.id);
    expect(ownList.map((x) => x.id)).not.toContain(auditorSession.id);

    const all = await stack.client(stack.tokens.auditor).sessions({ limit: 1000 });
    expect(all.scope).toBe("all");
    const allList = all.sessions as ApiSession[];
    const stored = await stack.store.listSessions({ limit: 1000 });
    expect(allList.map((x) => x.id).sort()).toEqual(stored.map((x) => x.id).sort());
    const owners = new Set(allList.map((x) => x.identity.oid));
    expect(owners).toEqual(new Set([oids.dba, oids.auditor, oids.app]));

    // One session in detail: its owner and an auditor may read it, others may not.
    const mine = await stack.client(stack.tokens.dba).session(dbaSession.id);
    expect((mine.statements as StatementEvent[]).map((x) => x.sql)).toEqual(
      dbaStatements.map((x) => x.sql),
    );
    const audited = await stack.client(stack.tokens.auditor).session(dbaSession.id);
    expect((audited.session as SessionRecord).id).toBe(dbaSession.id);
    await expect(stack.client(stack.tokens.app).session(dbaSession.id)).rejects.toThrow();
    await expect(stack.client(stack.tokens.dba).session(appSession.id)).rejects.toThrow();
    const appOwn = await stack.client(stack.tokens.app).sessions();
    expect(appOwn.scope).toBe("own");
    expect((appOwn.sessions as ApiSession[]).map((x) => x.id)).toEqual([appSession.id]);
  });
});
