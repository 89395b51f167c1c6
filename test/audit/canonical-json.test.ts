/**
 * The fast canonical JSON (the engine's serialiser with members sorted) must produce exactly
 * what the member-by-member reference does: every chain hash depends on it.
 */
import { describe, expect, it } from "vitest";
import { canonicalJson, slowCanonicalJson } from "../../src/audit/chain.js";

function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

const STRINGS = [
  "",
  "a",
  "é",
  "😀",
  "\u2028",
  "\ud800",
  '"\\/\n\t\u0001',
  "z",
  "A",
  "aa",
  "10",
  "2",
];

function randomValue(r: () => number, depth: number): unknown {
  const pick = r();
  if (depth > 3 || pick < 0.35) {
    const leaf = r();
    if (leaf < 0.2) return null;
    if (leaf < 0.3) return r() < 0.5;
    if (leaf < 0.6)
      return [0, -0, 1, -1.5, 1e21, 1e-7, 123456789.125, Number.MAX_SAFE_INTEGER][
        Math.floor(r() * 8)
      ];
    return STRINGS[Math.floor(r() * STRINGS.length)];
  }
  if (pick < 0.55)
    return Array.from({ length: Math.floor(r() * 4) }, () =>
      r() < 0.1 ? undefined : randomValue(r, depth + 1),
    );
  const obj: Record<string, unknown> = {};
  const n = Math.floor(r() * 5);
  for (let i = 0; i < n; i++) {
    const key = STRINGS[Math.floor(r() * STRINGS.length)]! + (r() < 0.5 ? "" : "k");
    obj[key] = r() < 0.1 ? undefined : randomValue(r, depth + 1);
  }
  return obj;
}

describe("canonicalJson", () => {
  it("matches the reference on 5,000 random documents (unicode, -0, integer-like keys, undefined)", () => {
    const r = rng(42);
    for (let i = 0; i < 5000; i++) {
      const v = randomValue(r, 0);
      expect(canonicalJson(v)).toBe(slowCanonicalJson(v));
    }
  });

  it("sorts members by UTF-16 code units, integer-like keys included", () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { y: 1, x: 2 }], c: null } })).toBe(
      '{"a":{"c":null,"d":[1,{"x":2,"y":1}]},"b":1}',
    );
    expect(canonicalJson({ "10": 1, "2": 2, a: 3 })).toBe('{"10":1,"2":2,"a":3}');
    expect(canonicalJson({ "\u20ac": 1, "\r": 2, "\ufb33": 3, "1": 4, "\u00e9": 5 })).toBe(
      slowCanonicalJson({ "\u20ac": 1, "\r": 2, "\ufb33": 3, "1": 4, "\u00e9": 5 }),
    );
  });

  it("refuses what JSON cannot say", () => {
    expect(() => canonicalJson({ a: NaN })).toThrow(/NaN/);
    expect(() => canonicalJson([Infinity])).toThrow(/NaN or Infinity/);
    expect(() => canonicalJson({ f: () => 1 })).toThrow(/function/);
    expect(() => canonicalJson(undefined)).toThrow(/undefined/);
  });
});
