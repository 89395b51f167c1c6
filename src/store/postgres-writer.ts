import pg from "pg";
import { isGwError, type GwError } from "../errors.js";
import { storeClosed, storeWriteFailed } from "./errors.js";
import { errMessage, pgCode } from "./postgres-target.js";

/**
 * One write: runs its statements on the batch's connection, inside the batch's transaction.
 * It may throw a GwError to refuse itself (a duplicate id, an unknown session), but only
 * before it has changed anything: the rest of the batch goes on and commits.
 */
export type WriteRun<T> = (c: pg.ClientBase) => Promise<T>;

export interface WriteOptions {
  /** Commit on the next tick rather than waiting for the commit window. */
  urgent: boolean;
  /** Commit with synchronous_commit on (the default of the server), not off. */
  sync: boolean;
}

interface Pending {
  run: WriteRun<unknown>;
  resolve(value: unknown): void;
  reject(err: unknown): void;
  sync: boolean;
  result?: unknown;
  refused?: GwError;
}

export interface GroupCommitStats {
  writes: number;
  /** Transactions committed or attempted, retries included. */
  batches: number;
  failedBatches: number;
  /** Batches rerun one savepoint per write because one write broke the fast path. */
  savepointBatches: number;
}

const MAX_BATCH = 512;
const MAX_RETRIES = 3;

/**
 * Group commit for the PostgreSQL store: writes queue up and commit together, one transaction
 * per batch on one pooled connection, in the order they were made (batches never overlap, so
 * a session's statements commit after the session).
 *
 * The fast path runs each write as is. A write that fails with a data or constraint error
 * (a duplicate another replica inserted a moment earlier, text PostgreSQL refuses) aborts the
 * transaction; the batch is then rerun with a savepoint around each write, so that only the
 * offending write is refused. Deadlocks and serialization failures (replicas locking the same
 * approval requests in another order) rerun the batch. Anything else fails every write of it.
 */
export class GroupCommitter {
  private queue: Pending[] = [];
  private draining: Promise<void> | null = null;
  private immediate: NodeJS.Immediate | undefined;
  private windowTimer: NodeJS.Timeout | undefined;
  private tail: Promise<unknown> = Promise.resolve();
  private closed = false;
  readonly stats: GroupCommitStats = {
    writes: 0,
    batches: 0,
    failedBatches: 0,
    savepointBatches: 0,
  };

  constructor(
    private readonly pool: pg.Pool,
    private readonly commitWindowMs: number,
    /** The error every write of a failed batch is rejected with. */
    private readonly batchFailed: (err: unknown, writes: number) => GwError,
  ) {}

  enqueue<T>(run: WriteRun<T>, opts: WriteOptions): Promise<T> {
    if (this.closed) return Promise.reject(storeClosed());
    this.stats.writes++;
    const p = new Promise<T>((resolve, reject) => {
      this.queue.push({
        run: run as WriteRun<unknown>,
        resolve: resolve as (v: unknown) => void,
        reject,
        sync: opts.sync,
      });
    });
    this.tail = p.catch(() => undefined);
    if (opts.urgent || this.commitWindowMs <= 0 || this.queue.length >= MAX_BATCH) this.kickNow();
    else this.windowTimer ??= setTimeout(() => this.kickNow(), this.commitWindowMs);
    return p;
  }

  /** Resolves once every write enqueued before the call has committed or failed. */
  async settled(): Promise<void> {
    if (this.queue.length === 0 && this.draining === null) return;
    this.kickNow();
    await this.tail;
  }

  /** Commits what is queued, then refuses new writes. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.settled();
    this.closed = true;
  }

  private kickNow(): void {
    if (this.windowTimer !== undefined) {
      clearTimeout(this.windowTimer);
      this.windowTimer = undefined;
    }
    if (this.draining !== null) return; // the running drain takes everything queued
    this.immediate ??= setImmediate(() => {
      this.immediate = undefined;
      this.draining ??= this.drain().finally(() => {
        this.draining = null;
        // Writes queued behind a window timer that was cleared meanwhile.
        if (this.queue.length > 0) this.kickNow();
      });
    });
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, MAX_BATCH);
      await this.commit(batch);
    }
  }

  private async commit(batch: Pending[]): Promise<void> {
    let failure: GwError | undefined;
    let client: pg.PoolClient | undefined;
    try {
      client = await this.pool.connect();
    } catch (err) {
      failure = this.batchFailed(err, batch.length);
    }
    if (client !== undefined) {
      let broken: unknown;
      let savepoints = false;
      for (let attempt = 0; ; attempt++) {
        this.stats.batches++;
        try {
          await this.runBatch(client, batch, savepoints);
          break;
        } catch (err) {
          await client.query("ROLLBACK").catch((e: unknown) => (broken = e));
          const code = pgCode(err);
          if (broken === undefined && isRetryable(code) && attempt < MAX_RETRIES) continue;
          if (broken === undefined && isPerWrite(code) && !savepoints) {
            savepoints = true;
            this.stats.savepointBatches++;
            continue;
          }
          // A server error leaves the connection usable; anything else (socket) may not.
          if (!(err instanceof pg.DatabaseError)) broken ??= err;
          failure = this.batchFailed(err, batch.length);
          break;
        }
      }
      // A connection that failed outside SQL (socket, protocol) is not given back to the pool.
      client.release(broken instanceof Error ? broken : broken === undefined ? undefined : true);
    }
    if (failure !== undefined) this.stats.failedBatches++;
    for (const w of batch) {
      if (failure !== undefined) w.reject(failure);
      else if (w.refused !== undefined) w.reject(w.refused);
      else w.resolve(w.result);
    }
  }

  private async runBatch(c: pg.PoolClient, batch: Pending[], savepoints: boolean): Promise<void> {
    await c.query("BEGIN");
    // Like SQLite's synchronous=NORMAL: a batch of lazy writes (async audit) does not wait for
    // the WAL flush; a server crash may lose its last few ms, never corrupt the store.
    if (!batch.some((w) => w.sync)) await c.query("SET LOCAL synchronous_commit = off");
    for (const w of batch) {
      w.refused = undefined;
      w.result = undefined;
      if (savepoints) await c.query("SAVEPOINT gw_write");
      try {
        w.result = await w.run(c);
        if (savepoints) await c.query("RELEASE SAVEPOINT gw_write");
      } catch (err) {
        if (isGwError(err)) {
          if (savepoints) await c.query("ROLLBACK TO SAVEPOINT gw_write");
          w.refused = err;
          continue;
        }
        if (savepoints && isPerWrite(pgCode(err))) {
          await c.query("ROLLBACK TO SAVEPOINT gw_write");
          w.refused = storeWriteFailed(`write refused by the session store: ${errMessage(err)}`, {
            cause: err,
          });
          continue;
        }
        throw err;
      }
    }
    await c.query("COMMIT");
  }
}

/** Deadlock, serialization failure: the same batch may well succeed when run again. */
function isRetryable(code: string | undefined): boolean {
  return code === "40001" || code === "40P01";
}

/** Data exceptions, integrity constraints, limits: the fault of one write, not of the batch. */
function isPerWrite(code: string | undefined): boolean {
  return code !== undefined && /^(22|23|54)/.test(code);
}
