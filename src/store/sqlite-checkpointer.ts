import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";

/*
 * SQLite in WAL mode copies the log back into the database file (a checkpoint) from inside
 * the COMMIT that crosses 1,000 pages: on the thread that relays sessions, that was about a
 * quarter of what recording a statement costs it (bench/audit.ts: 57 µs a statement with
 * checkpoints in the commit, 43 µs without). A PASSIVE checkpoint never blocks the writer, so
 * a second connection on a small worker thread does it instead, every half second. The log
 * stays the durable record until then; a checkpoint that does not happen only lets it grow.
 */

// Plain JavaScript run by the worker (eval), so it needs no compiled file of its own and works
// the same from src/ (tests) and dist/.
const CODE = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.driver);
const db = new Database(workerData.path, { fileMustExist: true });
db.pragma("busy_timeout = 0");
const checkpoint = () => {
  try { db.pragma("wal_checkpoint(PASSIVE)"); } catch {}
};
const timer = setInterval(checkpoint, workerData.everyMs);
parentPort.on("message", (m) => {
  if (m !== "stop") return;
  clearInterval(timer);
  checkpoint();
  db.close();
  parentPort.postMessage("stopped");
});
parentPort.postMessage("ready");
`;

export class SqliteCheckpointer {
  private constructor(private readonly worker: Worker) {}

  /**
   * Starts checkpointing `path` from a worker thread. `onFailure` is told if the thread fails
   * or stops unasked (the caller then turns SQLite's own checkpoints back on).
   */
  static start(path: string, onFailure: (err: Error) => void, everyMs = 500): SqliteCheckpointer {
    const driver = createRequire(import.meta.url).resolve("better-sqlite3");
    const worker = new Worker(CODE, { eval: true, workerData: { path, driver, everyMs } });
    worker.unref();
    const c = new SqliteCheckpointer(worker);
    worker.on("error", (err) => {
      if (!c.stopping) onFailure(err);
    });
    worker.on("exit", (code) => {
      if (!c.stopping) onFailure(new Error(`the checkpoint thread exited (${code})`));
    });
    return c;
  }

  private stopping = false;

  /** One last checkpoint, then the thread goes. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    const stopped = new Promise<void>((resolve) => {
      this.worker.on("message", (m) => m === "stopped" && resolve());
      this.worker.once("exit", () => resolve());
    });
    this.worker.postMessage("stop");
    await Promise.race([stopped, new Promise((r) => setTimeout(r, 2000).unref())]);
    await this.worker.terminate();
  }
}
