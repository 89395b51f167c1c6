/**
 * The agent's allow list: exact host:port pairs (host names case-insensitively, IPv6 in
 * brackets), no partial matches; --allow or --allow-any is required, not both; bad entries are
 * usage errors that say what the flag takes.
 */
import { describe, expect, it } from "vitest";
import { AllowList } from "../../src/agent/allow-list.js";
import { GwError } from "../../src/errors.js";

function usageError(fn: () => unknown): GwError {
  try {
    fn();
  } catch (err) {
    if (err instanceof GwError) return err;
    throw err;
  }
  throw new Error("no error");
}

describe("AllowList", () => {
  it("permits exactly the listed targets", () => {
    const a = AllowList.parse(["DB.internal:5432", "10.0.0.7:22", "[fd00::5]:5432"], false);
    expect(a.permits("db.internal", 5432)).toBe(true);
    expect(a.permits("db.INTERNAL", 5432)).toBe(true);
    expect(a.permits("fd00::5", 5432)).toBe(true);
    expect(a.permits("10.0.0.7", 22)).toBe(true);
    expect(a.permits("db.internal", 5433)).toBe(false);
    expect(a.permits("internal", 5432)).toBe(false);
    expect(a.permits("db.internal.evil.example", 5432)).toBe(false);
    expect(a.permits("10.0.0.70", 22)).toBe(false);
    expect(a.describe()).toEqual(["db.internal:5432", "10.0.0.7:22", "[fd00::5]:5432"]);
  });

  it("--allow-any permits everything and says so", () => {
    const a = AllowList.parse([], true);
    expect(a.permits("anything", 1)).toBe(true);
    expect(a.describe()).toBeNull();
  });

  it("needs --allow or --allow-any, not both, and well-formed entries", () => {
    const none = usageError(() => AllowList.parse([], false));
    expect(none.exitCode).toBe(2);
    expect(none.hint).toContain("--allow HOST:PORT");
    expect(usageError(() => AllowList.parse(["a:1"], true)).message).toContain(
      "exclude each other",
    );
    for (const bad of ["db.internal", "db:0", "db:70000", ":5432", "fd00::5:5432", "db:54x"]) {
      expect(usageError(() => AllowList.parse([bad], false)).message).toContain(
        "--allow takes HOST:PORT",
      );
    }
  });
});
