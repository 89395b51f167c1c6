import { describe, expect, it } from "vitest";
import { formatAge, formatCountdown, cell } from "../../src/tui/approve/format.js";
import { computeLayout } from "../../src/tui/approve/layout.js";
import { sqlLines, tokenizeSql } from "../../src/tui/approve/sql.js";
import { colorWanted } from "../../src/tui/theme.js";

describe("SQL highlighting", () => {
  it("finds keywords, strings, identifiers, numbers and comments, and loses nothing", () => {
    const sql = `DELETE FROM "Orders" -- all of them\nWHERE note = 'it''s' AND id > 42 /* c */ RETURNING $x$a$x$`;
    const tokens = tokenizeSql(sql);
    expect(tokens.map((t) => t.text).join("")).toBe(sql);
    const kinds = (k: string) => tokens.filter((t) => t.kind === k).map((t) => t.text);
    expect(kinds("keyword")).toEqual(["DELETE", "FROM", "WHERE", "AND", "RETURNING"]);
    expect(kinds("identifier")).toEqual(['"Orders"']);
    expect(kinds("string")).toEqual(["'it''s'", "$x$a$x$"]);
    expect(kinds("number")).toEqual(["42"]);
    expect(kinds("comment")).toEqual(["-- all of them", "/* c */"]);
    expect(tokens.find((t) => t.text.includes("note"))?.kind).toBe("text");
  });

  it("splits into display lines at newlines and at the width", () => {
    const lines = sqlLines("select 1;\nselect 'abcdefghij'", 10);
    expect(lines.map((l) => l.map((t) => t.text).join(""))).toEqual([
      "select 1;",
      "select 'ab",
      "cdefghij'",
    ]);
  });
});

describe("layout", () => {
  it("fits 80x24 with the details under the queue, one line spare", () => {
    const l = computeLayout(80, 24, 3, true);
    expect(l.listRows).toBe(3);
    expect(4 + 1 + l.listRows + l.detailRows).toBe(23);
    const c = l.columns;
    expect(
      c.marker + c.id + c.requester + c.statement + c.connection + c.age + c.expires + 5,
    ).toBeLessThanOrEqual(80);
    expect(c.statement).toBeGreaterThan(0);
  });

  it("drops the statement column at 60 columns and keeps the rest", () => {
    const c = computeLayout(60, 24, 1, true).columns;
    expect(c.statement).toBe(0);
    expect(
      c.marker + c.id + c.requester + c.connection + c.age + c.expires + 4,
    ).toBeLessThanOrEqual(60);
  });

  it("caps the queue at 40% when details are shown, and hides them with no room", () => {
    expect(computeLayout(80, 24, 50, true).listRows).toBe(7);
    expect(computeLayout(80, 24, 50, false)).toMatchObject({ listRows: 19, detailRows: 0 });
    expect(computeLayout(80, 8, 5, true).detailRows).toBe(0);
  });
});

describe("formatting", () => {
  it("ages and countdowns", () => {
    expect(formatAge(12_000)).toBe("12s");
    expect(formatAge(3 * 60_000)).toBe("3m");
    expect(formatCountdown(288_000)).toBe("4:48");
    expect(formatCountdown(3_720_000)).toBe("1h02m");
    expect(formatCountdown(0)).toBe("expired");
    expect(cell("abcdef", 4)).toBe("abc…");
    expect(cell("ab", 4, "right")).toBe("  ab");
  });

  it("honours NO_COLOR and TERM=dumb", () => {
    expect(colorWanted({ NO_COLOR: "1" })).toBe(false);
    expect(colorWanted({ NO_COLOR: "" })).toBe(true);
    expect(colorWanted({ TERM: "dumb" })).toBe(false);
    expect(colorWanted({ TERM: "xterm-256color" })).toBe(true);
  });
});
