import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { storeClosed, storeUnavailable } from "./errors.js";
import type { SqliteStoreOptions } from "./sqlite-store.js";
import { fromWire, type HostMessage, type StoreCall, type WorkerMessage } from "./store-rpc.js";
import type { SessionStore } from "./types.js";

/**
 * The SQLite store, run on a worker thread: what SQLite costs per recorded statement (about
 * two thirds of recording, measured with bench/audit.ts) leaves the thread that relays
 * sessions. The store object here forwards each call, in order, to the real SqliteStore there,
 * so its guarantees are the worker's store's own.
 */
export class ThreadedStore {
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: unknown) => void }
  >();
  private outbox: StoreCall[] = [];
  private scheduled = false;
  private closed = false;
  private dead: Error | null = null;

  private constructor(
    private readonly worker: Worker,
    readonly methods: ReadonlySet<string>,
  ) {
    worker.on("message", (m: WorkerMessage) => {
      if (m.type !== "replies") return;
      for (const r of m.replies) {
        const p = this.pending.get(r.id);
        if (!p) continue;
        this.pending.delete(r.id);
        if (r.ok) p.resolve(r.value);
        else p.reject(fromWire(r.error));
      }
    });
    const fail = (err: Error) => {
      // Fail closed: every waiting write is refused, and so is every later one.
      this.dead = storeUnavailable(`the store's thread stopped: ${err.message}`, {
        hint: "The broker must be restarted; its log has the cause.",
      });
      for (const p of this.pending.values()) p.reject(this.dead);
      this.pending.clear();
    };
    worker.on("error", fail);
    worker.on("exit", (code) => {
      if (!this.closed) fail(new Error(`exit code ${code}`));
    });
  }

  /**
   * Starts the worker and opens the store there. Resolves to a SessionStore (with whatever
   * other methods SqliteStore has, except those taking callbacks); rejects with the store's
   * own GwError (store_unavailable) when it cannot open.
   */
  static async open(
    path: string,
    opts: SqliteStoreOptions = {},
    workerFile: string = defaultWorkerFile(),
  ): Promise<SessionStore> {
    const worker = new Worker(workerFile, { workerData: { path, opts } });
    const methods = await new Promise<string[]>((resolve, reject) => {
      const onMessage = (m: WorkerMessage) => {
        if (m.type === "ready") resolve(m.methods);
        else if (m.type === "failed") reject(fromWire(m.error));
        else return;
        worker.off("message", onMessage);
        worker.off("error", reject);
      };
      worker.on("message", onMessage);
      worker.once("error", reject);
    }).catch(async (err: unknown) => {
      await worker.terminate();
      throw err;
    });
    const t = new ThreadedStore(worker, new Set(methods));
    return new Proxy(t, {
      get(target, name, receiver) {
        if (name === "close") return () => target.close();
        if (typeof name === "string" && target.methods.has(name))
          return (...args: unknown[]) => target.call(name, args);
        return Reflect.get(target, name, receiver) as unknown;
      },
    }) as unknown as SessionStore;
  }

  call(method: string, args: unknown[]): Promise<unknown> {
    if (this.dead) return Promise.reject(this.dead);
    if (this.closed) return Promise.reject(storeClosed());
    let copy: unknown[];
    try {
      // Copied now: the caller may change its objects before the batch goes.
      copy = structuredClone(args);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    const id = this.nextId++;
    const p = new Promise((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.outbox.push({ id, method, args: copy });
    if (!this.scheduled) {
      this.scheduled = true;
      // Calls made in this turn of the event loop go together.
      queueMicrotask(() => this.send());
    }
    return p;
  }

  private send(): void {
    this.scheduled = false;
    const calls = this.outbox;
    this.outbox = [];
    if (calls.length > 0) this.worker.postMessage({ type: "calls", calls } satisfies HostMessage);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (!this.dead) {
      // The worker's close() commits pending writes first; then the thread goes.
      await this.call("close", []).catch(() => undefined);
    }
    this.closed = true;
    await this.worker.terminate();
  }
}

/**
 * The compiled worker beside this module. Under a TypeScript runner (tests on src/) there is
 * no .js file here: null, and callers use the store on their own thread.
 */
export function defaultWorkerFile(): string {
  return fileURLToPath(new URL("./sqlite-worker.js", import.meta.url));
}

export function threadedStoreAvailable(workerFile: string = defaultWorkerFile()): boolean {
  return existsSync(workerFile);
}
