import { parentPort, workerData } from "node:worker_threads";
import { SqliteStore, type SqliteStoreOptions } from "./sqlite-store.js";
import { toWire, type HostMessage, type StoreReply, type WorkerMessage } from "./store-rpc.js";

/*
 * The SQLite store on its own thread (src/store/threaded-store.ts starts it). Calls are run
 * in the order they arrive, so the store's own guarantees (reads see earlier writes, batches
 * commit together) hold exactly as on the broker's thread.
 */

const port = parentPort!;
const { path, opts } = workerData as { path: string; opts: SqliteStoreOptions };
const post = (m: WorkerMessage) => port.postMessage(m);

let store: SqliteStore;
try {
  store = SqliteStore.open(path, opts);
} catch (err) {
  post({ type: "failed", error: toWire(err) });
  process.exit(0);
}

let outbox: StoreReply[] = [];
let scheduled = false;
const reply = (r: StoreReply) => {
  outbox.push(r);
  if (scheduled) return;
  scheduled = true;
  // Everything that settles in this turn goes back in one message.
  setImmediate(() => {
    scheduled = false;
    const replies = outbox;
    outbox = [];
    post({ type: "replies", replies });
  });
};

const methods = new Set<string>();
for (let p: object | null = Object.getPrototypeOf(store); p && p !== Object.prototype;) {
  for (const name of Object.getOwnPropertyNames(p)) {
    const d = Object.getOwnPropertyDescriptor(p, name);
    if (name !== "constructor" && typeof d?.value === "function") methods.add(name);
  }
  p = Object.getPrototypeOf(p) as object | null;
}

port.on("message", (m: HostMessage) => {
  for (const c of m.calls) {
    const fn = (store as unknown as Record<string, unknown>)[c.method];
    if (!methods.has(c.method) || typeof fn !== "function") {
      reply({ id: c.id, ok: false, error: toWire(new Error(`no store method ${c.method}`)) });
      continue;
    }
    let result: unknown;
    try {
      result = (fn as (...a: unknown[]) => unknown).apply(store, c.args);
    } catch (err) {
      reply({ id: c.id, ok: false, error: toWire(err) });
      continue;
    }
    Promise.resolve(result).then(
      (value) => reply({ id: c.id, ok: true, value }),
      (err: unknown) => reply({ id: c.id, ok: false, error: toWire(err) }),
    );
  }
});

post({ type: "ready", methods: [...methods].filter((n) => !n.startsWith("_")) });
