import { describe, expect, it } from "vitest";
import { MemoryStore } from "../../src/store/memory-store.js";
import { openStore } from "../../src/store/open-store.js";
import { runStoreSuite } from "./store-suite.js";

runStoreSuite("memory", async () => {
  const store = new MemoryStore();
  return { store, cleanup: () => store.close() };
});

describe("openStore({ memory: true })", () => {
  it("opens a MemoryStore", async () => {
    const store = await openStore({ memory: true });
    expect(store).toBeInstanceOf(MemoryStore);
    await store.close();
  });
});
