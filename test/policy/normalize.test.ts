/**
 * The literal normaliser behind the classification cache, and the cache itself. The property
 * that matters: two texts the cache treats as one must classify the same. It is checked over a
 * corpus of templates whose literal slots are filled with hostile values (quotes, semicolons,
 * comment and dollar-quote openers, backslashes, on/off, int4 overflow), and over random token
 * soups, against the uncached classifier.
 */
import { beforeAll, describe, expect, it } from "vitest";
import {
  classifyUncached,
  initPolicyParser,
  StatementClassifier,
} from "../../src/policy/classify.js";
import { normalizeLiterals } from "../../src/policy/normalize.js";

beforeAll(async () => {
  await initPolicyParser();
});

const n = normalizeLiterals;
/** GW_POLICY_FUZZ_ROUNDS=50 runs the randomised properties 50 times longer (other seeds). */
const ROUNDS = Math.max(1, Number(process.env["GW_POLICY_FUZZ_ROUNDS"] ?? 1));

describe("normalizeLiterals", () => {
  it("numbers in expressions and strings share a key; the rest is kept verbatim", () => {
    expect(n("select * from t where id = 1")).toBe(n("select * from t where id = 2"));
    expect(n("select * from t where name = 'a' limit 10")).toBe(
      n("select * from t where name = 'it''s; DELETE' limit 99"),
    );
    expect(n("insert into t values (1, 'a'), (2, 'b')")).toBe(
      n("insert into t values (7, 'x'), (8, '')"),
    );
    expect(n("select * from t where id in (1, 2, 3)")).toBe(
      n("select * from t where id in (4, 5, 6)"),
    );
    expect(n("select 'a'")).not.toBe(n("select  'a'")); // whitespace is part of the key
    expect(n("select * from t where id = 1")).not.toBe(n("select * from u where id = 1"));
  });

  it("keeps the token category of numbers: int4, and everything else", () => {
    const i = n("select * from t where a = 1");
    expect(n("select * from t where a = 2147483647")).toBe(i);
    expect(n("select * from t where a = 2147483648")).not.toBe(i);
    expect(n("select * from t where a = 1.5")).toBe(n("select * from t where a = 2147483648"));
    expect(n("select * from t where a = 1e5")).toBe(n("select * from t where a = .5"));
  });

  it("leaves numbers alone where the grammar itself checks them (float(p), ALTER COLUMN n)", () => {
    expect(n("select 1::float(10) where a = 'x'")).not.toBe(n("select 1::float(0) where a = 'x'"));
    expect(n("select cast(x as float(24)) from t where a = 1")).toContain("float(24)");
    expect(n("alter index i alter column 1 set statistics 100")).toBeNull();
    expect(n("select f(1)")).toBeNull(); // function arguments: kept
  });

  it("knows what is not a literal: comments, dollar quotes, quoted identifiers, parameters", () => {
    expect(n("select 1 -- it's\n, 'a'")).toBe("select 1 -- it's\n, \0S");
    expect(n("/* it's /* nested ' */ */ select 'x'")).toBe("/* it's /* nested ' */ */ select \0S");
    expect(n("select $$it's$$, 'a'")).toBe("select $$it's$$, \0S");
    expect(n("select $q$ ' $$ ' $q$, 'a'")).toBe("select $q$ ' $$ ' $q$, \0S");
    expect(n("select \"it's\", 'a'")).toBe('select "it\'s", \0S');
    expect(n("select * from t where a = $1 and b = 'x'")).toBe(
      "select * from t where a = $1 and b = \0S",
    );
    expect(n("select a$1 from t where b = 'x'")).toBe("select a$1 from t where b = \0S");
  });

  it("E-strings: backslash escapes end nothing; with a backslash they are kept verbatim", () => {
    expect(n("select E'a\\'b', 'c'")).toBe("select E'a\\'b', \0S");
    expect(n("select * from t where a = E'plain'")).toBe("select * from t where a = \0E");
    expect(n("select 'a\\', 'b'")).toBe("select \0S, \0S"); // standard strings: \ is ordinary
    expect(n("select N'x'")).toBe("select \0N");
    expect(n("select B'101', X'1f', 'a'")).toBe("select B'101', X'1f', \0S");
    expect(n("select ne'x'")).toBe("select ne\0S"); // "ne" is an identifier, then a string
  });

  it("returns null for what it will not touch: junk, odd numerals, U&, unterminated, no literal", () => {
    for (const sql of [
      "select 1abc where a = 'x'",
      "select * from t where a = 0x1F",
      "select * from t where a = 1_000",
      "select * from t where a = 1..2",
      "select * from t where a = $1abc",
      "select U&'d\\0061t' where a = 'x'",
      "select U&\"d\\0061t\" where a = 'x'",
      "select 'unterminated",
      "select /* unterminated 'x'",
      "select $$unterminated 'x'",
      'select "unterminated',
      "select * from t",
      // 'a' <newline> 'b' is one literal, lexed by the first part's rules.
      "select E'a'\n'\\'''",
      "select 'a' -- comment\n'b'",
      "select * from t where a = 'a'\n  'b'",
    ]) {
      expect(n(sql), sql).toBeNull();
    }
  });

  it("never produces a key that could be confused with verbatim text", () => {
    // Placeholders start with NUL, which the classifier refuses in texts.
    expect(n("select 'x'")).toContain("\0");
    expect(classifyUncached("select '\0S'").parseError).toMatch(/NUL/);
  });
});

// ---------------------------------------------------------------------------------------------
// Property: texts the cache may merge classify the same.

/** A small deterministic PRNG (mulberry32), so failures reproduce. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const STRING_VALUES = [
  "",
  "a",
  "off",
  "on",
  "false",
  "true",
  "0",
  "1",
  "it's",
  "'; DELETE FROM orders; --",
  "$$; DROP TABLE t; $$",
  "/* not a comment",
  "*/",
  "-- not a comment",
  "\\",
  "\\'",
  "transaction_read_only",
  "default_transaction_read_only",
  "standard_conforming_strings",
  "role",
  "BEGIN DELETE FROM orders; END",
  "BEGIN NULL; END",
  "SELECT 1",
  "ü€𝄞",
  "line\nbreak",
  "utf8",
  "SJIS",
];
const NUMBER_VALUES = ["0", "1", "2", "42", "2147483647", "2147483648", "1.5", "1e5", ".5", "007"];

function stringLiteral(r: () => number): string {
  const v = STRING_VALUES[Math.floor(r() * STRING_VALUES.length)]!;
  const body = v.replace(/'/g, "''");
  const form = r();
  if (form < 0.15) return `E'${body.replace(/\\/g, "\\\\")}'`;
  if (form < 0.25) return `N'${body}'`;
  return `'${body}'`;
}
function numberLiteral(r: () => number): string {
  return NUMBER_VALUES[Math.floor(r() * NUMBER_VALUES.length)]!;
}
function fill(template: string, r: () => number): string {
  return template.replace(/\{s\}|\{n\}/g, (slot) =>
    slot === "{s}" ? stringLiteral(r) : numberLiteral(r),
  );
}

const TEMPLATES = [
  "select * from orders where id = {n}",
  "select * from orders where id = {n} and note = {s} limit {n} offset {n}",
  "select * from orders where id in ({n}, {n}, {n}) or name between {s} and {s}",
  "insert into orders (id, note) values ({n}, {s}), ({n}, {s})",
  "update orders set note = {s} where id = {n}",
  "update orders set note = {s}",
  "delete from orders where note = {s} -- {s}\n",
  "/* {s} */ delete from orders where id = -{n}",
  "select case when a = {n} then {s} else {s} end from t",
  "select {s} || {s}; delete from orders where id = {n}",
  "select $$ {s} $$, {s}, x = {n} from t",
  "select set_config({s}, {s}, false)",
  "select set_config('transaction_read_only', {s}, false)",
  "select set_config({s}, 'off', {s}::boolean)",
  "set transaction_read_only = {s}",
  "set default_transaction_read_only = {n}",
  "set standard_conforming_strings = {s}",
  "set client_encoding = {s}",
  "set search_path = {s}",
  "do {s}",
  "do language plpgsql {s}",
  "explain (analyze {s}) delete from orders",
  "explain (analyze {n}) delete from orders",
  "create function f() returns int language sql as {s}",
  "copy orders to {s}",
  "copy orders to program {s}",
  "select * from orders where note = E{s}",
  "select 1::float({n}) where a = {s}",
  "select x::numeric(10, {n}) from t where a = {n}",
  "fetch {n} from c",
  "alter index i alter column {n} set statistics {n}",
  "select * from t where a = {n}{s}",
  "select {s}\n{s} from t where x = {n}",
  "select {s} {s} from t",
  "select * from t where a = {n}.{n}",
  "prepare p as delete from orders where id = {n}",
  "with d as (delete from orders where id = {n} returning *) select * from d where x = {s}",
  "select pg_read_file({s}) where {n} = {n}",
  "begin isolation level serializable; update t set a = {n} where b = {s}; commit",
];

function checkGroup(texts: string[]): void {
  // Group by key; within a group, any member the cache would store under the key (non-sensitive,
  // no parse error) must classify exactly like every other member.
  const groups = new Map<string, string[]>();
  for (const t of texts) {
    const key = n(t);
    if (key === null) continue;
    const g = groups.get(key) ?? [];
    if (!g.includes(t)) g.push(t);
    groups.set(key, g);
  }
  for (const members of groups.values()) {
    if (members.length < 2) continue;
    const results = members.map((t) => classifyUncached(t));
    results.forEach((a, i) => {
      if (a.literalSensitive || a.parseError !== undefined) return;
      results.forEach((b, j) => {
        expect(b, `${JSON.stringify(members[i])} vs ${JSON.stringify(members[j])}`).toEqual(a);
      });
    });
  }
}

describe("the normaliser never merges texts that classify differently", () => {
  it("over a corpus of templates with hostile literal values", () => {
    const r = rng(20240611);
    let merged = 0;
    for (const template of Array.from({ length: ROUNDS }, () => TEMPLATES).flat()) {
      const texts = Array.from({ length: 40 }, () => fill(template, r));
      const keys = new Set(texts.map(n).filter((k) => k !== null));
      if (keys.size < texts.length) merged++;
      checkGroup(texts);
    }
    expect(merged).toBeGreaterThan(20 * ROUNDS); // the property is not vacuous
  });

  it("over random token soups with the same structure and different literals", () => {
    const r = rng(7);
    const TOKENS = [
      "select",
      "delete from orders",
      "update orders set a =",
      "where",
      "id",
      "=",
      "<",
      "+",
      "-",
      "(",
      ")",
      ",",
      ";",
      "--c\n",
      "/* c */",
      "$$x;y$$",
      "float",
      "in",
      "values",
      "limit",
      "and",
      "or",
      "::",
      "int",
      "set_config",
      "set",
      "transaction_read_only",
      "role",
      "to",
      "do",
      "explain",
      "analyze",
      "E",
      "N",
      "x",
      ".",
      "{s}",
      "{s}",
      "{n}",
      "{n}",
      "{n}",
    ];
    for (let k = 0; k < 400 * ROUNDS; k++) {
      const len = 3 + Math.floor(r() * 10);
      const parts: string[] = [];
      for (let i = 0; i < len; i++) {
        parts.push(TOKENS[Math.floor(r() * TOKENS.length)]!);
        parts.push(r() < 0.1 ? "" : r() < 0.1 ? "\n" : " ");
      }
      const template = parts.join("");
      checkGroup(Array.from({ length: 8 }, () => fill(template, r)));
    }
  });

  it("through the cache: every classify() equals classifyUncached(), and hits happen", () => {
    const r = rng(99);
    const c = new StatementClassifier({ cacheEntries: 500 });
    const texts: string[] = [];
    for (let i = 0; i < 1500; i++) texts.push(fill(TEMPLATES[i % TEMPLATES.length]!, r));
    for (const t of texts) expect(c.classify(t), t).toEqual(classifyUncached(t));
    const stats = c.stats();
    expect(stats.normalizedHits).toBeGreaterThan(100);
    expect(stats.hits + stats.misses).toBe(texts.length);
    expect(stats.entries).toBeLessThanOrEqual(500);
  });

  it("set_config('transaction_read_only', 'on') and 'off' are never merged", () => {
    const c = new StatementClassifier();
    const on = c.classify("select set_config('transaction_read_only', 'on', false)");
    const off = c.classify("select set_config('transaction_read_only', 'off', false)");
    expect(on.statements[0]!.readOnlyEscape).toBe(false);
    expect(off.statements[0]!.readOnlyEscape).toBe(true);
    const a = c.classify("explain (analyze false) delete from t");
    const b = c.classify("explain (analyze true) delete from t");
    expect(a.statements[0]!.kinds).toEqual(["explain"]);
    expect(b.statements[0]!.kinds).toEqual(["explain", "delete"]);
  });

  it("the cache is bounded, by entries and by key characters", () => {
    const c = new StatementClassifier({ cacheEntries: 10, cacheChars: 200 });
    for (let i = 0; i < 50; i++) c.classify(`select * from t${i}`);
    expect(c.stats().entries).toBeLessThanOrEqual(10);
    c.classify(`select '${"x".repeat(500)}' from t`);
    expect(c.stats().entries).toBeLessThanOrEqual(10);
    const off = new StatementClassifier({ cacheEntries: 0 });
    off.classify("select 1");
    off.classify("select 1");
    expect(off.stats()).toMatchObject({ hits: 0, misses: 2, entries: 0 });
  });
});
