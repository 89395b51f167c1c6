/**
 * The SQLite store on its worker thread (src/store/threaded-store.ts) passes the same suite as
 * the store itself, and fails closed when its thread dies. The worker is the compiled one in
 * dist/ (`npm test` builds first): Node 20 cannot run a TypeScript worker file.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { storeThreadFor } from "../../src/store/open-store.js";
import { ThreadedStore } from "../../src/store/threaded-store.js";
import type { SessionStore } from "../../src/store/types.js";
import { rejectionCode, runStoreSuite, sessionRecord } from "./store-suite.js";

const WORKER = resolve(import.meta.dirname, "../../dist/src/store/sqlite-worker.js");
const built = existsSync(WORKER);

describe.skipIf(!built)(
  "threaded sqlite store (needs `npm run build`: dist/ has the worker)",
  () => {
    runStoreSuite("sqlite on a worker thread", async () => {
      const dir = mkdtempSync(join(tmpdir(), "gw-tstore-"));
      const store = await ThreadedStore.open(join(dir, "gw.db"), {}, WORKER);
      return {
        store,
        async cleanup() {
          await store.close();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    });

    let dir: string | undefined;
    let store: SessionStore | undefined;
    afterEach(async () => {
      await store?.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
      dir = undefined;
      store = undefined;
    });

    it("reports a file it cannot open as the store's own error, with the path", async () => {
      dir = mkdtempSync(join(tmpdir(), "gw-tstore-"));
      const bad = join(dir, "not-a-db");
      writeFileSync(bad, "this is not sqlite, and long enough to have a header ".repeat(200));
      const err = await ThreadedStore.open(bad, {}, WORKER).then(
        () => null,
        (e: unknown) => e as { code?: string; message: string },
      );
      expect(err?.code).toBe("store_unavailable");
      expect(err?.message).toContain(bad);
    });

    it("keeps GwError codes across the thread (a duplicate session is store_write_failed)", async () => {
      dir = mkdtempSync(join(tmpdir(), "gw-tstore-"));
      store = await ThreadedStore.open(join(dir, "gw.db"), {}, WORKER);
      const rec = sessionRecord();
      await store.createSession(rec);
      expect(await rejectionCode(store.createSession(rec))).toBe("store_write_failed");
    });

    it("refuses every write once its thread is gone (fail closed)", async () => {
      dir = mkdtempSync(join(tmpdir(), "gw-tstore-"));
      store = await ThreadedStore.open(join(dir, "gw.db"), {}, WORKER);
      const worker = (store as unknown as { worker: { terminate(): Promise<number> } }).worker;
      await worker.terminate();
      expect(await rejectionCode(store.createSession(sessionRecord()))).toBe("store_unavailable");
    });
  },
);

describe("where a broker's SQLite store runs", () => {
  it("on a worker when a connection records with audit: strict (fsyncs), else on the same thread", () => {
    expect(storeThreadFor({ connections: { a: { audit: "async" }, b: {} } })).toBe("same");
    expect(storeThreadFor({ connections: { a: { audit: "async" }, b: { audit: "strict" } } })).toBe(
      "worker",
    );
  });
});
