import { describe, expect, test } from "vitest";
import {
  compileJsonPath,
  maskJsonText,
  parseJson,
  JsonSyntaxError,
} from "../../../src/protocols/http/json-mask.js";
import { httpConnection } from "../../../src/protocols/http/config.js";
import { HttpMasking, pathGlob, requestOfHoldText } from "../../../src/protocols/http/policy.js";
import { normaliseTarget } from "../../../src/protocols/http/paths.js";
import { SecretScrubber } from "../../../src/protocols/http/scrub.js";

const mask = (text: string, paths: string[]) =>
  maskJsonText(text, { paths: paths.map(compileJsonPath), maskValue: () => "X", detect: null });

describe("json paths", () => {
  test("members, elements, wildcards, descent", () => {
    const doc = `{"a":{"b":"1","c":[{"d":"2"},{"d":"3","e":{"d":"4"}}]},"d":"5","s":"x"}`;
    expect(mask(doc, ["$.a.b"])).toBe(
      `{"a":{"b":"X","c":[{"d":"2"},{"d":"3","e":{"d":"4"}}]},"d":"5","s":"x"}`,
    );
    expect(mask(doc, ["$.a.c[1].d"])).toBe(
      `{"a":{"b":"1","c":[{"d":"2"},{"d":"X","e":{"d":"4"}}]},"d":"5","s":"x"}`,
    );
    expect(mask(doc, ["$.a.c[*].d"])).toBe(
      `{"a":{"b":"1","c":[{"d":"X"},{"d":"X","e":{"d":"4"}}]},"d":"5","s":"x"}`,
    );
    expect(mask(doc, ["$..d"])).toBe(
      `{"a":{"b":"1","c":[{"d":"X"},{"d":"X","e":{"d":"X"}}]},"d":"X","s":"x"}`,
    );
    expect(mask(doc, ["$['s']", "$.a.*"])).toBe(`{"a":{"b":"X","c":"X"},"d":"5","s":"X"}`);
    expect(mask(doc, ["$.nope"])).toBeNull();
  });

  test("non-string values are replaced by a string; null stays null; numbers keep their text elsewhere", () => {
    expect(
      mask(`{"n": 1e400, "z": null, "big": 123456789012345678901234567890}`, ["$.n", "$.z"]),
    ).toBe(`{"n": "X", "z": null, "big": 123456789012345678901234567890}`);
  });

  test("detectors see decoded strings; escapes and unicode survive", () => {
    const out = maskJsonText(`{"a":"mail \\u0061@example.com","b":"caf\\u00e9 \\"q\\""}`, {
      paths: [],
      maskValue: () => "X",
      detect: (v) => (v.includes("@") ? v.replace(/\S+@\S+/, "[m]") : null),
    });
    expect(out).toBe(`{"a":"mail [m]","b":"caf\\u00e9 \\"q\\""}`);
  });

  test("strict JSON only", () => {
    for (const bad of [
      `{"a":1,}`,
      `{a:1}`,
      `[1 2]`,
      `"x`,
      `01`,
      `{"a":1} x`,
      `NaN`,
      "[".repeat(600) + "]".repeat(600),
    ])
      expect(() => parseJson(bad)).toThrow(JsonSyntaxError);
    expect(() => compileJsonPath("owner.email")).toThrow(/starts with \$/);
    expect(() => compileJsonPath("$")).toThrow(/whole document/);
    expect(() => compileJsonPath("$.a[?(@.x)]")).toThrow(/unsupported/);
  });

  test("HttpMasking: strategies", () => {
    const m = new HttpMasking({ json: ["$.card"], detectors: ["email"], strategy: "last4" });
    const out = JSON.parse(m.maskJson(`{"card":"4111 1111 1111 1111","e":"ann@example.com"}`)!);
    expect(out.card).toBe("**** **** **** 1111");
    expect(out.e).not.toContain("ann@example.com");
  });
});

describe("paths and rules", () => {
  test("path globs", () => {
    expect(pathGlob("/users/*").test("/users/3")).toBe(true);
    expect(pathGlob("/users/*").test("/users/3/keys")).toBe(false);
    expect(pathGlob("/admin/**").test("/admin")).toBe(true);
    expect(pathGlob("/admin/**").test("/admin/a/b")).toBe(true);
    expect(pathGlob("/admin/**").test("/administrator")).toBe(false);
    expect(pathGlob("/v?/x").test("/v2/x")).toBe(true);
  });

  test("request targets are normalised once for rules and target", () => {
    expect(normaliseTarget("/a/../b/%63?x=%41")).toEqual({
      forward: "/b/%63?x=%41",
      path: "/b/c",
      query: "?x=%41",
    });
    expect(normaliseTarget("/a%2Fb/c")!.path).toBe("/a%2Fb/c");
    expect(normaliseTarget("http://evil.example/x?y")).toEqual({
      forward: "/x?y",
      path: "/x",
      query: "?y",
    });
    expect(normaliseTarget("*")).toBeNull();
    expect(requestOfHoldText("DELETE /items/%37?force=1\n\nbody")).toEqual({
      method: "DELETE",
      path: "/items/7",
    });
  });

  test("config errors", () => {
    const base = { type: "http", allow: ["group:x"] };
    const both = httpConnection.safeParse({
      ...base,
      target: {
        url: "https://api",
        bearer: { env: "A" },
        basic: { user: "u", password: { env: "B" } },
      },
    });
    expect(JSON.stringify(both.error?.issues)).toContain("bearer or basic, not both");
    const badPath = httpConnection.safeParse({
      ...base,
      target: { url: "https://api" },
      policy: { mask: { json: ["owner.email"] } },
    });
    expect(JSON.stringify(badPath.error?.issues)).toContain("starts with $");
    const ok = httpConnection.parse({
      ...base,
      target: { url: "https://api.example.com/v1" },
      policy: { rules: [{ match: { method: ["delete"], path: "/x/*" }, action: "block" }] },
    });
    expect(ok.policy!.rules[0]!.match.method).toEqual(["DELETE"]);
    expect(httpConnection.safeParse({ ...base, target: { url: "ftp://x" } }).success).toBe(false);
  });

  test("secret scrubbing across chunk boundaries, without holding back unrelated bytes", async () => {
    const s = new SecretScrubber(["topsecret-123", "Bearer topsecret-123"]);
    const t = s.stream();
    const out: Buffer[] = [];
    t.on("data", (d: Buffer) => out.push(d));
    t.write(Buffer.from("a: Bearer tops"));
    t.write(Buffer.from("ecret-123\n\n"));
    await new Promise((r) => setImmediate(r));
    expect(Buffer.concat(out).toString()).toBe(`a: Bearer ${"*".repeat(13)}\n\n`);
    t.end(Buffer.from("tail"));
    await new Promise((r) => t.on("end", r));
    expect(Buffer.concat(out).toString()).toBe(`a: Bearer ${"*".repeat(13)}\n\ntail`);
  });
});

describe("broker check for http targets", () => {
  test("unreadable secrets and TLS files are named", async () => {
    const { checkHttpTarget } = await import("../../../src/protocols/http/check.js");
    const t = httpConnection.parse({
      type: "http",
      target: {
        url: "https://api",
        bearer: { env: "GW_TEST_UNSET_TOKEN" },
        ca: "/nonexistent/ca.pem",
      },
      allow: ["group:x"],
    }).target;
    expect(checkHttpTarget("api", t)).toEqual([
      "connections.api.target.bearer: environment variable GW_TEST_UNSET_TOKEN is not set",
      "connections.api.target.ca: cannot read /nonexistent/ca.pem (ENOENT)",
    ]);
  });
});
