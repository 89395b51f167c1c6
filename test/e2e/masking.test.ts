/**
 * Masking through the whole data path: a real broker, real tunnels, psql and pg, a real
 * PostgreSQL. Column rules (public.customers.card_number, *.*.ssn) and value detectors mask
 * what the target answers: rows in text and binary format, simple and extended protocol, COPY
 * text/CSV, errors; with the redact, hash and last4 strategies. What cannot be masked (COPY of
 * a query under column rules, binary COPY) ends the session with a clear error and nothing
 * unmasked. Every byte the clients of the redact connection received is captured by a small
 * TCP forwarder and searched for the raw values, and so is the recording.
 */
import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { connect, createServer, type Server, type Socket } from "node:net";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { last4 } from "../../src/policy/masking/index.js";
import { startStack, type Stack } from "../helpers/stack.js";

const PSQL = "/usr/bin/psql";
const HASH_KEY = "e2e-masking-key-0123456789";

const DETECTORS = [
  "email",
  "credit_card",
  "iban",
  "us_ssn",
  "phone",
  "jwt",
  "aws_access_key",
  "private_key",
];
const mask = (strategy: string, extra: Record<string, unknown> = {}) => ({
  columns: ["public.customers.card_number", "*.*.ssn"],
  detectors: DETECTORS,
  strategy,
  ...extra,
});

const JWT =
  "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

/** The seeded customers. */
const CUSTOMERS = [
  {
    id: 1,
    name: "Alice",
    email: "alice@example.com",
    card_number: "4111 1111 1111 1111",
    phone: "+1 415 555 0132",
    ssn: "123-45-6789",
    notes: "call me at alice.alt@example.net",
  },
  {
    id: 2,
    name: "Bob",
    email: "bob@example.org",
    card_number: "5555555555554444",
    phone: "(415) 555-0199",
    ssn: "219-09-9999",
    notes: "iban DE89370400440532013000 on file",
  },
  {
    id: 3,
    name: "Carol",
    email: "carol@example.com",
    card_number: "4111 1111 1111 1111",
    phone: "+44 20 7946 0958",
    ssn: "078-05-1120",
    notes: `token ${JWT} key AKIAIOSFODNN7EXAMPLE`,
  },
];

/** Everything that must never reach a client of the masking connections unmasked. */
const SECRETS = [
  ...CUSTOMERS.flatMap((c) => [c.email, c.card_number, c.phone, c.ssn]),
  "alice.alt@example.net",
  "4111111111111111",
  "5555555555554444",
  "DE89370400440532013000",
  JWT,
  "AKIAIOSFODNN7EXAMPLE",
  "later-secret-1",
  "later-secret-2",
  "ssn-in-a-view",
  "vault-secret-ssn",
];

function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env))
    if (v !== undefined && !k.startsWith("PG")) env[k] = v;
  return { ...env, LC_ALL: "C", LANG: "C", PGPASSFILE: "/nonexistent/pgpass", ...extra };
}

function psql(
  url: string,
  args: string[],
  stdin?: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(PSQL, [url, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", ...args], {
      env: cleanEnv(),
      stdio: [stdin === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on("data", (c: Buffer) => out.push(c));
    child.stderr!.on("data", (c: Buffer) => err.push(c));
    child.on("error", reject);
    child.on("close", (code) =>
      resolve({
        code,
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
      }),
    );
    if (stdin !== undefined) child.stdin!.end(stdin);
  });
}

/** A TCP forwarder in front of a tunnel port that keeps every byte sent back to clients. */
class Capture {
  readonly received: Buffer[] = [];
  private readonly sockets = new Set<Socket>();
  private constructor(private readonly server: Server) {}

  static async start(targetPort: number): Promise<Capture> {
    const server = createServer();
    const cap = new Capture(server);
    server.on("connection", (client) => {
      const up = connect({ host: "127.0.0.1", port: targetPort });
      cap.sockets.add(client).add(up);
      client.on("data", (c: Buffer) => up.write(c));
      up.on("data", (c: Buffer) => {
        cap.received.push(Buffer.from(c));
        client.write(c);
      });
      const close = () => {
        client.destroy();
        up.destroy();
      };
      client.on("close", close);
      up.on("close", close);
      client.on("error", close);
      up.on("error", close);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    return cap;
  }

  get port(): number {
    return (this.server.address() as { port: number }).port;
  }

  url(database: string): string {
    return `postgresql://127.0.0.1:${this.port}/${database}?sslmode=disable`;
  }

  bytes(): Buffer {
    return Buffer.concat(this.received);
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

// --- a minimal raw protocol client, for message sequences pg does not send ------------------

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
  parse: (name: string, sql: string) => typed("P", cstr(name), cstr(sql), int16(0)),
  /** No parameters; `formats` the result format codes. */
  bind: (portal: string, stmt: string, formats: number[] = []) =>
    typed(
      "B",
      cstr(portal),
      cstr(stmt),
      int16(0),
      int16(0),
      int16(formats.length),
      ...formats.map(int16),
    ),
  describeStatement: (name: string) => typed("D", Buffer.from("S"), cstr(name)),
  execute: (portal: string) => typed("E", cstr(portal), int32(0)),
  sync: () => typed("S"),
  terminate: () => typed("X"),
};

class RawPg {
  private buf = Buffer.alloc(0);
  private readonly msgs: Msg[] = [];
  private pos = 0;
  private wake: (() => void) | null = null;
  closed = false;

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

  static async open(port: number): Promise<RawPg> {
    const raw = await new Promise<RawPg>((resolve, reject) => {
      const s = connect({ host: "127.0.0.1", port }, () => {
        s.write(m.startup({ user: "x", database: "app" }));
        resolve(new RawPg(s));
      });
      s.once("error", reject);
    });
    await raw.untilReady();
    return raw;
  }

  send(...bufs: Buffer[]): void {
    this.socket.write(Buffer.concat(bufs));
  }

  /** Messages up to and including the next ReadyForQuery, or all until the connection closed. */
  async untilReady(): Promise<Msg[]> {
    for (;;) {
      const i = this.msgs.findIndex((x, k) => k >= this.pos && x.type === "Z");
      if (i >= 0 || this.closed) {
        const end = i >= 0 ? i + 1 : this.msgs.length;
        const out = this.msgs.slice(this.pos, end);
        this.pos = end;
        return out;
      }
      await new Promise<void>((r) => (this.wake = r));
      this.wake = null;
    }
  }

  end(): void {
    this.socket.end(m.terminate());
  }
}

/** The values of the DataRows among msgs, as UTF-8 text. */
function dataRows(msgs: Msg[]): (string | null)[][] {
  return msgs
    .filter((x) => x.type === "D")
    .map((x) => {
      const n = x.body.readInt16BE(0);
      let p = 2;
      const row: (string | null)[] = [];
      for (let i = 0; i < n; i++) {
        const len = x.body.readInt32BE(p);
        p += 4;
        row.push(len < 0 ? null : x.body.toString("utf8", p, p + len));
        if (len > 0) p += len;
      }
      return row;
    });
}

function errorText(msgs: Msg[]): string | undefined {
  const e = msgs.find((x) => x.type === "E");
  if (!e) return undefined;
  const fields: string[] = [];
  let p = 0;
  while (p < e.body.length && e.body[p] !== 0) {
    const end = e.body.indexOf(0, p + 1);
    fields.push(e.body.toString("utf8", p, end));
    p = end + 1;
  }
  return fields.find((f) => f.startsWith("M"))?.slice(1);
}

const hashToken = (v: string) =>
  "h:" + createHmac("sha256", HASH_KEY).update(v, "utf8").digest("hex").slice(0, 16);

describe("masking through gw", () => {
  let stack: Stack;
  let direct: pg.Client;
  let cap: Capture;
  let hashCap: Capture;
  let last4Cap: Capture;
  const hashEnv = `GW_TEST_MASK_KEY_${process.pid}`;

  beforeAll(async () => {
    process.env[hashEnv] = HASH_KEY;
    stack = await startStack({
      mutate: (raw) => {
        raw.policies = {
          masked: { mask: mask("redact") },
          "masked-hash": { mask: mask("hash", { hashKey: { env: hashEnv } }) },
          "masked-last4": { mask: mask("last4") },
        };
        const conns = raw.connections as Record<string, Record<string, unknown>>;
        const base = conns["db-test"]!;
        base.policy = "masked";
        conns["db-hash"] = { ...structuredClone(base), policy: "masked-hash" };
        conns["db-last4"] = { ...structuredClone(base), policy: "masked-last4" };
      },
    });
    direct = new pg.Client({ connectionString: stack.pg.url });
    await direct.connect();
    await direct.query(`
      create table customers (
        id int primary key, name text, email text unique, card_number text, phone text,
        ssn text, notes text
      );
      create table orders (id int primary key, customer_id int references customers, total numeric);
      create view customer_contacts as select id, name, email, card_number, notes from customers;
      create table private_keys (id int, pem text);
      create table vault (id int, ssn text);
      insert into vault values (1, 'vault-secret-ssn');
    `);
    for (const c of CUSTOMERS) {
      await direct.query("insert into customers values ($1, $2, $3, $4, $5, $6, $7)", [
        c.id,
        c.name,
        c.email,
        c.card_number,
        c.phone,
        c.ssn,
        c.notes,
      ]);
    }
    await direct.query("insert into orders values (10, 1, 9.99), (11, 2, 20.00), (12, 3, 1.50)");
    await direct.query("insert into private_keys values (1, $1)", [
      "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7bq\n-----END RSA PRIVATE KEY-----",
    ]);
    cap = await Capture.start((await stack.openTunnel(stack.tokens.dba)).address.port);
    hashCap = await Capture.start(
      (await stack.openTunnel(stack.tokens.dba, "db-hash")).address.port,
    );
    last4Cap = await Capture.start(
      (await stack.openTunnel(stack.tokens.dba, "db-last4")).address.port,
    );
  });
  afterAll(async () => {
    await direct?.end().catch(() => undefined);
    await cap?.close();
    await hashCap?.close();
    await last4Cap?.close();
    await stack?.stop();
    delete process.env[hashEnv];
  });

  async function client(c: Capture = cap): Promise<pg.Client> {
    const cl = new pg.Client({ connectionString: c.url(stack.pg.database) });
    cl.on("error", () => undefined);
    await cl.connect();
    return cl;
  }

  const REDACTED = [
    {
      id: 1,
      name: "Alice",
      email: "[redacted:email]",
      card_number: "[redacted]",
      phone: "[redacted:phone]",
      ssn: "[redacted]",
      notes: "call me at [redacted:email]",
    },
    {
      id: 2,
      name: "Bob",
      email: "[redacted:email]",
      card_number: "[redacted]",
      phone: "[redacted:phone]",
      ssn: "[redacted]",
      notes: "iban [redacted:iban] on file",
    },
    {
      id: 3,
      name: "Carol",
      email: "[redacted:email]",
      card_number: "[redacted]",
      phone: "[redacted:phone]",
      ssn: "[redacted]",
      notes: "token [redacted:jwt] key [redacted:aws_access_key]",
    },
  ];

  describe("redact", () => {
    it("select *: column rules and detectors, simple and extended protocol", async () => {
      const c = await client();
      expect((await c.query("select * from customers order by id")).rows).toEqual(REDACTED);
      expect(
        (await c.query({ text: "select * from customers where id > $1 order by id", values: [0] }))
          .rows,
      ).toEqual(REDACTED);
      // A named statement, executed again without a Describe of its statement.
      const named = { name: "all_customers", text: "select * from customers order by id" };
      expect((await c.query(named)).rows).toEqual(REDACTED);
      expect((await c.query(named)).rows).toEqual(REDACTED);
      // Rows fetched in pages (portal suspended and resumed).
      const paged = await c.query({
        text: "select * from customers order by id",
        rows: 2,
      } as never);
      expect((paged as unknown as pg.QueryResult).rows).toEqual(REDACTED);
      await c.end();
    });

    it("psql: select * is masked", async () => {
      const r = await psql(cap.url(stack.pg.database), [
        "-c",
        "select id, email, card_number, phone, ssn, notes from customers order by id",
      ]);
      expect(r.code).toBe(0);
      expect(r.stdout.split("\n").filter(Boolean)).toEqual([
        "1|[redacted:email]|[redacted]|[redacted:phone]|[redacted]|call me at [redacted:email]",
        "2|[redacted:email]|[redacted]|[redacted:phone]|[redacted]|iban [redacted:iban] on file",
        "3|[redacted:email]|[redacted]|[redacted:phone]|[redacted]|token [redacted:jwt] key [redacted:aws_access_key]",
      ]);
    });

    it("an alias does not escape a column rule (it follows the table column)", async () => {
      const c = await client();
      const r = await c.query(
        "select card_number as c, ssn as s, name as n from customers where id = 1",
      );
      expect(r.rows).toEqual([{ c: "[redacted]", s: "[redacted]", n: "Alice" }]);
      await c.end();
    });

    it("a join: the columns of customers are masked, the others not", async () => {
      const c = await client();
      const r = await c.query(`
        select o.id as order_id, o.total, c.name, c.card_number, c.email, c.ssn
          from orders o join customers c on c.id = o.customer_id
         order by o.id`);
      expect(r.rows).toEqual([
        {
          order_id: 10,
          total: "9.99",
          name: "Alice",
          card_number: "[redacted]",
          email: "[redacted:email]",
          ssn: "[redacted]",
        },
        {
          order_id: 11,
          total: "20.00",
          name: "Bob",
          card_number: "[redacted]",
          email: "[redacted:email]",
          ssn: "[redacted]",
        },
        {
          order_id: 12,
          total: "1.50",
          name: "Carol",
          card_number: "[redacted]",
          email: "[redacted:email]",
          ssn: "[redacted]",
        },
      ]);
      await c.end();
    });

    it("a view: column rules name tables, not views, so only detectors (and name-only rules) apply", async () => {
      // PostgreSQL describes a view's columns as the view's own (its oid and attnums), so
      // public.customers.card_number does not match customer_contacts.card_number: the card
      // numbers are caught by the credit_card detector instead (they pass Luhn), and so is the
      // email. A value no detector recognises would go out as it is. Rules written as
      // *.*.column match by column name and so still apply to a view's column of that name.
      await direct.query(
        "create view ssn_view as select id, 'ssn-in-a-view'::text as ssn from customers",
      );
      const c = await client();
      const r = await c.query("select * from customer_contacts order by id");
      expect(r.rows).toEqual([
        {
          id: 1,
          name: "Alice",
          email: "[redacted:email]",
          card_number: "[redacted:credit_card]",
          notes: "call me at [redacted:email]",
        },
        {
          id: 2,
          name: "Bob",
          email: "[redacted:email]",
          card_number: "[redacted:credit_card]",
          notes: "iban [redacted:iban] on file",
        },
        {
          id: 3,
          name: "Carol",
          email: "[redacted:email]",
          card_number: "[redacted:credit_card]",
          notes: "token [redacted:jwt] key [redacted:aws_access_key]",
        },
      ]);
      expect((await c.query("select ssn from ssn_view where id = 1")).rows).toEqual([
        { ssn: "[redacted]" },
      ]);
      await c.end();
    });

    it("computed expressions: detectors catch what column rules cannot see", async () => {
      const c = await client();
      const r = await c.query(`
        select email || '' as e, upper(notes) as n, card_number || '' as cc,
               lower(ssn) as ssn, ssn || '' as s2, row_to_json(c)::text as j,
               array_agg(card_number) over ()::text as cards
          from customers c where id = 1`);
      expect(r.rows).toEqual([
        {
          e: "[redacted:email]",
          n: "CALL ME AT [redacted:email]",
          cc: "[redacted:credit_card]",
          ssn: "[redacted]", // an expression named like a *.*.ssn column
          s2: "[redacted:us_ssn]",
          j: '{"id":1,"name":"Alice","email":"[redacted:email]","card_number":"[redacted:credit_card]","phone":"[redacted:phone]","ssn":"[redacted:us_ssn]","notes":"call me at [redacted:email]"}',
          cards: '{"[redacted:credit_card]"}', // the element was quoted: it had spaces
        },
      ]);
      const pk = await c.query("select pem from private_keys");
      expect(pk.rows).toEqual([{ pem: "[redacted:private_key]" }]);
      await c.end();
    });

    it("binary results are masked (pg binary: true, and a named statement)", async () => {
      const c = await client();
      const q = {
        text: "select id, email, card_number, ssn, notes from customers where id = $1",
        values: [1],
        binary: true,
      } as pg.QueryConfig;
      const expected = [
        {
          id: 1,
          email: "[redacted:email]",
          card_number: "[redacted]",
          ssn: "[redacted]",
          notes: "call me at [redacted:email]",
        },
      ];
      expect((await c.query(q)).rows).toEqual(expected);
      const named = { ...q, name: "bin_customer" };
      expect((await c.query(named)).rows).toEqual(expected);
      expect((await c.query(named)).rows).toEqual(expected);
      // A card number kept in a bigint, in binary.
      const n = await c.query({
        text: "select replace(card_number, ' ', '')::bigint as n from customers where id = $1",
        values: [1],
        binary: true,
      } as pg.QueryConfig);
      expect(String(n.rows[0].n)).not.toBe("4111111111111111");
      await c.end();
    });

    it("rows without a RowDescription (a statement described once, executed without Describe)", async () => {
      const raw = await RawPg.open(cap.port);
      raw.send(m.parse("s1", "select id, ssn from vault"), m.describeStatement("s1"), m.sync());
      expect((await raw.untilReady()).map((x) => x.type).join("")).toBe("1tTZ");
      // Executed twice with no Describe: text, then binary results.
      raw.send(m.bind("", "s1"), m.execute(""), m.sync());
      const text = await raw.untilReady();
      expect(text.map((x) => x.type).join("")).toBe("2DCZ");
      expect(dataRows(text)).toEqual([["1", "[redacted]"]]);
      raw.send(m.bind("", "s1", [0, 1]), m.execute(""), m.sync());
      expect(dataRows(await raw.untilReady())).toEqual([["1", "[redacted]"]]);
      raw.end();
    });

    it("a re-Parse of the unnamed statement does not reuse the old statement's columns", async () => {
      const raw = await RawPg.open(cap.port);
      // Described: one text column of no table.
      raw.send(m.parse("", "select 'x'::text as v"), m.describeStatement(""), m.sync());
      expect((await raw.untilReady()).map((x) => x.type).join("")).toBe("1tTZ");
      // Replaced (an unnamed statement is, by the next Parse) by one reading a masked column,
      // then executed with no Describe: its rows must not be masked as the old statement's.
      raw.send(m.parse("", "select ssn from vault"), m.bind("", ""), m.execute(""), m.sync());
      const msgs = await raw.untilReady();
      // The broker asks the target to describe the portal itself (the client does not see
      // that answer), so the rows are masked as what they are.
      expect(msgs.map((x) => x.type).join("")).toBe("12DCZ");
      expect(dataRows(msgs)).toEqual([["[redacted]"]]);
      // Same with SQL: DEALLOCATE and PREPARE replace a described statement behind its name.
      raw.send(m.parse("s2", "select 'x'::text as v"), m.describeStatement("s2"), m.sync());
      await raw.untilReady();
      raw.send(
        m.parse("", "DEALLOCATE s2"),
        m.bind("", ""),
        m.execute(""),
        m.parse("", "PREPARE s2 AS select ssn from vault"),
        m.bind("", ""),
        m.execute(""),
        m.sync(),
      );
      expect(errorText(await raw.untilReady())).toBeUndefined();
      raw.send(m.bind("", "s2"), m.execute(""), m.sync());
      expect(dataRows(await raw.untilReady())).toEqual([["[redacted]"]]);
      raw.end();
    });

    it("pipelined: Parse, Describe, Bind, Execute of one unnamed statement, then a re-Parse", async () => {
      const raw = await RawPg.open(cap.port);
      raw.send(
        m.parse("", "select ssn from vault"),
        m.describeStatement(""),
        m.bind("", ""),
        m.execute(""),
        m.parse("", "select 'plain'::text as v"),
        m.bind("", ""),
        m.execute(""),
        m.sync(),
      );
      const msgs = await raw.untilReady();
      expect(msgs.map((x) => x.type).join("")).toBe("1tT2DC12DCZ");
      // The second statement was never described: its rows come with no description at all,
      // and are still told apart from the first's.
      expect(dataRows(msgs)).toEqual([["[redacted]"], ["plain"]]);
      raw.end();
    });

    it("COPY customers TO STDOUT (text and CSV, COPY and \\copy) is masked", async () => {
      const url = cap.url(stack.pg.database);
      const text = await psql(url, ["-c", "COPY customers TO STDOUT"]);
      expect(text.code, text.stderr).toBe(0);
      expect(text.stdout.split("\n").filter(Boolean)).toEqual([
        "1\tAlice\t[redacted:email]\t[redacted]\t[redacted:phone]\t[redacted]\tcall me at [redacted:email]",
        "2\tBob\t[redacted:email]\t[redacted]\t[redacted:phone]\t[redacted]\tiban [redacted:iban] on file",
        "3\tCarol\t[redacted:email]\t[redacted]\t[redacted:phone]\t[redacted]\ttoken [redacted:jwt] key [redacted:aws_access_key]",
      ]);
      const csv = await psql(url, [
        "-c",
        "\\copy public.customers (email, card_number, ssn) to stdout with (format csv, header)",
      ]);
      expect(csv.code, csv.stderr).toBe(0);
      expect(csv.stdout.split("\n").filter(Boolean)).toEqual([
        "email,card_number,ssn",
        // Masked CSV fields come out quoted.
        '"[redacted:email]","[redacted]","[redacted]"',
        '"[redacted:email]","[redacted]","[redacted]"',
        '"[redacted:email]","[redacted]","[redacted]"',
      ]);
    });

    it("COPY (query) TO STDOUT under column rules is refused: a clear error, the session closed", async () => {
      const r = await psql(
        cap.url(stack.pg.database),
        ["-f", "-"],
        "select 'before';\nCOPY (select card_number from customers) TO STDOUT;\nselect 'after';\n",
      );
      expect(r.code).not.toBe(0);
      expect(r.stdout.split("\n").filter(Boolean)).toEqual(["before"]);
      expect(r.stderr).toContain(
        "gw: COPY of a query cannot apply this connection's column masking rules, so it was refused and the session closed; COPY the table itself, or SELECT",
      );
      expect(r.stderr).not.toContain("after");
    });

    it("binary COPY cannot be masked: the session is closed with a clear error", async () => {
      const r = await psql(cap.url(stack.pg.database), [
        "-c",
        "COPY customers TO STDOUT (FORMAT binary)",
      ]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(
        "gw: binary COPY cannot be masked on this connection; use text or CSV",
      );
      expect(r.stdout).toBe("");
    });

    it("notices, notifications, cursors and several statements in one Query", async () => {
      const c = await client();
      const notices: string[] = [];
      const notifications: string[] = [];
      c.on("notice", (n) => notices.push(n.message ?? ""));
      c.on("notification", (n) => notifications.push(n.payload ?? ""));
      await c.query("LISTEN ch");
      await c.query("select pg_notify('ch', 'for ' || email) from customers where id = 1");
      await c.query(
        "DO $$ begin raise notice 'found %', (select email from customers where id = 2); end $$",
      );
      for (let i = 0; i < 50 && notifications.length === 0; i++)
        await new Promise((r) => setTimeout(r, 20));
      expect(notifications).toEqual(["for [redacted:email]"]);
      expect(notices).toEqual(["found [redacted:email]"]);
      await c.query("begin");
      await c.query(
        "declare cur cursor for select id, card_number, email from customers order by id",
      );
      expect((await c.query("fetch 2 from cur")).rows).toEqual([
        { id: 1, card_number: "[redacted]", email: "[redacted:email]" },
        { id: 2, card_number: "[redacted]", email: "[redacted:email]" },
      ]);
      expect((await c.query("fetch all from cur")).rows).toEqual([
        { id: 3, card_number: "[redacted]", email: "[redacted:email]" },
      ]);
      await c.query("commit");
      const multi = (await c.query(
        "select email from customers where id = 1; select ssn, name from customers where id = 1",
      )) as unknown as pg.QueryResult[];
      expect(multi.map((r) => r.rows)).toEqual([
        [{ email: "[redacted:email]" }],
        [{ ssn: "[redacted]", name: "Alice" }],
      ]);
      await c.end();
    });

    it("an error that quotes data is masked (unique violation detail, a failed cast)", async () => {
      const c = await client();
      const e = (await c
        .query(
          "insert into customers (id, name, email) select 100, 'dup', email from customers where id = 1",
        )
        .catch((x: unknown) => x)) as pg.DatabaseError;
      expect(e.code).toBe("23505");
      expect(e.detail).toBeDefined();
      expect(e.detail).not.toContain("alice@example.com");
      const cast = (await c
        .query("select email::int from customers where id = 1")
        .catch((x: unknown) => x)) as pg.DatabaseError;
      expect(cast.code).toBe("22P02");
      expect(cast.message).toBe('invalid input syntax for type integer: "[redacted:email]"');
      const ext = (await c
        .query({ text: "select card_number::int from customers where id = $1", values: [1] })
        .catch((x: unknown) => x)) as pg.DatabaseError;
      expect(ext.code).toBe("22P02");
      expect(ext.message).toBe('invalid input syntax for type integer: "[redacted:credit_card]"');
      expect((await c.query("select 1 as one")).rows).toEqual([{ one: 1 }]);
      await c.end();
    });

    it("a table created later is masked by its column names (the catalog is reloaded)", async () => {
      const c = await client();
      await c.query("create table later (id int, ssn text)");
      // A parameter, so the value is not in the recorded SQL text (which is kept as typed).
      await c.query({ text: "insert into later values ($1, $2)", values: [1, "later-secret-1"] });
      // `as x`: only the catalog can tell this is later.ssn.
      expect((await c.query("select ssn as x, id from later")).rows).toEqual([
        { x: "[redacted]", id: 1 },
      ]);
      expect(
        (await c.query({ text: "select * from later where id = $1", values: [1] })).rows,
      ).toEqual([{ id: 1, ssn: "[redacted]" }]);
      // Made behind the broker's back, on the target directly.
      await direct.query(
        "create table later2 (ssn text); insert into later2 values ('later-secret-2')",
      );
      expect((await c.query("select ssn as y from later2")).rows).toEqual([{ y: "[redacted]" }]);
      // A column renamed to a masked name.
      await c.query("alter table later2 rename column ssn to ssn_old");
      await c.query("alter table later2 add column ssn text");
      await c.query("update later2 set ssn = 'x-' || ssn_old");
      await new Promise((r) => setTimeout(r, 1100)); // catalog reloads at most once a second
      const renamed = await c.query("select ssn as z from later2");
      expect(renamed.rows).toEqual([{ z: "[redacted]" }]);
      await c.end();
    });
  });

  describe("hash", () => {
    it("the same value gives the same token in every session; grouping works", async () => {
      const a = await client(hashCap);
      const b = await client(hashCap);
      const ra = await a.query("select id, card_number, ssn, email from customers order by id");
      const rb = await b.query({
        text: "select id, card_number, ssn, email from customers where id > $1 order by id",
        values: [0],
      });
      expect(ra.rows).toEqual(rb.rows);
      expect(ra.rows).toEqual(
        CUSTOMERS.map((c) => ({
          id: c.id,
          card_number: hashToken(c.card_number),
          ssn: hashToken(c.ssn),
          email: hashToken(c.email),
        })),
      );
      const g = await a.query(
        "select card_number, count(*)::int as n from customers group by 1 order by 2 desc, 1",
      );
      expect(g.rows).toEqual([
        { card_number: hashToken("4111 1111 1111 1111"), n: 2 },
        { card_number: hashToken("5555555555554444"), n: 1 },
      ]);
      // Detected spans are hashed in place.
      const notes = await b.query("select notes from customers where id = 1");
      expect(notes.rows).toEqual([{ notes: `call me at ${hashToken("alice.alt@example.net")}` }]);
      await a.end();
      await b.end();
    });
  });

  describe("last4", () => {
    it("keeps the last four characters", async () => {
      const c = await client(last4Cap);
      const r = await c.query("select card_number, ssn, email from customers where id = 1");
      expect(r.rows).toEqual([
        {
          card_number: "**** **** **** 1111",
          ssn: "***-**-6789",
          email: last4("alice@example.com"),
        },
      ]);
      expect(r.rows[0].email).not.toBe("alice@example.com");
      await c.end();
    });
  });

  it("no raw value ever reached a client, nor the recording", async () => {
    for (const [name, c] of [
      ["redact", cap],
      ["hash", hashCap],
    ] as const) {
      const bytes = c.bytes();
      expect(bytes.length, name).toBeGreaterThan(1000);
      for (const s of SECRETS) {
        expect(bytes.includes(Buffer.from(s, "utf8")), `${name}: ${s}`).toBe(false);
      }
    }
    // last4 shows the last four by design: the whole values never.
    const l4 = last4Cap.bytes();
    for (const c of CUSTOMERS) {
      for (const v of [c.email, c.card_number, c.ssn])
        expect(l4.includes(Buffer.from(v))).toBe(false);
    }
    const sessions = await stack.store.listSessions({ limit: 1000 });
    expect(sessions.length).toBeGreaterThan(5);
    const recorded = JSON.stringify(
      await Promise.all(sessions.map((s) => stack.store.listStatements(s.id))),
    );
    for (const s of SECRETS) expect(recorded.includes(s), `recording: ${s}`).toBe(false);
    // The requester reads their own recording through the API: masked there too.
    const mine = await stack.client(stack.tokens.dba).sessions();
    const viaApi = JSON.stringify(
      await Promise.all(
        (mine as { sessions: { id: string }[] }).sessions.map((s) =>
          stack.client(stack.tokens.dba).session(s.id),
        ),
      ),
    );
    expect(viaApi).toContain('invalid input syntax for type integer: \\"[redacted:email]\\"');
    for (const s of SECRETS) expect(viaApi.includes(s), `API: ${s}`).toBe(false);
  });
});
