import { describe, expect, it } from "vitest";
import { actionFor, helpItems, LIST_BINDINGS } from "../../src/tui/keys.js";

describe("key bindings", () => {
  it("draws the help line from the bindings", () => {
    expect(helpItems("list")).toEqual([
      { keys: "↑/k ↓/j", help: "move" },
      { keys: "a", help: "approve" },
      { keys: "d", help: "deny" },
      { keys: "⏎", help: "details" },
      { keys: "/", help: "filter" },
      { keys: "q", help: "quit" },
    ]);
    expect(helpItems("deny")).toEqual([
      { keys: "⏎", help: "submit" },
      { keys: "Esc", help: "cancel" },
    ]);
  });

  it("binds no key twice in the list", () => {
    const all = LIST_BINDINGS.flatMap((b) => b.keys);
    expect(new Set(all).size).toBe(all.length);
  });

  it("ignores modified keys and tab", () => {
    expect(actionFor("list", "a", { meta: true })).toBeNull();
    expect(actionFor("deny", "", { tab: true })).toBeNull();
    expect(actionFor("deny", "x", {})).toEqual({ type: "input", text: "x" });
  });
});

describe("the help line on a narrow terminal", () => {
  it("shortens the move keys, then drops items before quit", async () => {
    const { fitHelp } = await import("../../src/tui/approve/HelpBar.js");
    const items = helpItems("list");
    expect(fitHelp(items, 80)).toBe(items);
    const at59 = fitHelp(items, 60);
    expect(at59[0]).toEqual({ keys: "↑↓", help: "move" });
    expect(at59.map((i) => i.help)).toEqual([
      "move",
      "approve",
      "deny",
      "details",
      "filter",
      "quit",
    ]);
    const at40 = fitHelp(items, 40);
    expect(at40.map((i) => i.help)).toEqual(["move", "approve", "deny", "quit"]);
  });
});
