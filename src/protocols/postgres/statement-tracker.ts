import { rowsFromTag } from "./command-tag.js";

/**
 * Pairs what the client asked for (Query, Execute, FunctionCall, Sync) with what the target
 * answered (CommandComplete, ErrorResponse, ReadyForQuery...), so each statement can be recorded
 * with its duration, tag, rows and error.
 *
 * The protocol answers strictly in order, which makes a FIFO enough. Two rules matter:
 * - a simple Query (possibly several statements) ends at ReadyForQuery;
 * - in the extended protocol, after an error the target skips everything up to the next Sync,
 *   so the queued Executes of that batch never ran and are dropped, not recorded.
 */
export interface CompletedStatement {
  at: number;
  durationMs: number;
  sql: string;
  protocol: "simple" | "extended";
  commandTag: string | null;
  rows: number | null;
  errorCode: string | null;
  errorMessage: string | null;
  /** What policy decided: allowed (the default), blocked, or a held statement's outcome. */
  decision: "allowed" | "blocked" | "approved" | "denied";
  /** The approval request behind an approved or denied statement. */
  approvalId?: string;
  /** The first rows of the result as the client got them (masked), filled in by the session. */
  preview?: { columns: string[]; rows: (string | null)[][]; truncated: boolean };
}

interface Pending {
  kind: "simple" | "extended" | "sync";
  sql: string;
  at: number;
  t0: number;
  tags: string[];
  rows: number | null;
  errorCode: string | null;
  errorMessage: string | null;
  decision: CompletedStatement["decision"];
  /** On a substituted Sync: the ErrorResponse to put before its ReadyForQuery. */
  inject: Buffer | null;
  approvalId: string | undefined;
}

export class StatementTracker {
  /** An error since the last ReadyForQuery: a blocked statement's error is not added twice. */
  private errorSinceReady = false;
  private queue: Pending[] = [];
  private head = 0;
  private readonly prepared = new Map<string, string>();
  private readonly portals = new Map<string, string>();

  constructor(private readonly onComplete: (s: CompletedStatement) => void) {}

  // --- frontend side -------------------------------------------------------------------

  query(
    sql: string,
    decision: CompletedStatement["decision"] = "allowed",
    approvalId?: string,
  ): void {
    this.push("simple", sql, decision, null, approvalId);
  }

  functionCall(oid: number): void {
    this.push("simple", `-- function call (oid ${oid})`);
  }

  parse(name: string, sql: string): void {
    this.prepared.set(name, sql);
  }

  bind(portal: string, statement: string): void {
    this.portals.set(
      portal,
      this.prepared.get(statement) ?? `-- unknown prepared statement "${statement}"`,
    );
  }

  execute(
    portal: string,
    decision: CompletedStatement["decision"] = "allowed",
    approvalId?: string,
  ): void {
    this.push("extended", this.portalText(portal), decision, null, approvalId);
  }

  portalText(portal: string): string {
    return this.portals.get(portal) ?? `-- unknown portal "${portal}"`;
  }

  close(kind: "S" | "P", name: string): void {
    if (kind === "S") this.prepared.delete(name);
    else this.portals.delete(name);
  }

  /** `inject`: this Sync stands in for a refused statement; its answer gets that error first. */
  sync(inject: Buffer | null = null): void {
    this.push("sync", "", "allowed", inject);
  }

  /** A statement policy refused: it never reached the target, so it is complete now. */
  refused(
    sql: string,
    protocol: "simple" | "extended",
    decision: "blocked" | "denied",
    code: string,
    message: string,
    approvalId?: string,
  ): void {
    this.onComplete({
      ...(approvalId ? { approvalId } : {}),
      at: Date.now(),
      durationMs: 0,
      sql,
      protocol,
      commandTag: null,
      rows: null,
      errorCode: code,
      errorMessage: message,
      decision,
    });
  }

  /** Text of a named prepared statement, for policy decisions that follow it to Execute. */
  preparedText(name: string): string | undefined {
    return this.prepared.get(name);
  }

  get pendingCount(): number {
    return this.queue.length - this.head;
  }

  // --- backend side --------------------------------------------------------------------

  commandComplete(tag: string): void {
    const p = this.firstStatement();
    if (!p) return;
    if (p.kind === "extended") {
      p.tags.push(tag);
      this.addRows(p, tag);
      this.finish(p);
      this.removeFirstStatement();
    } else {
      p.tags.push(tag);
      this.addRows(p, tag);
    }
  }

  emptyQuery(): void {
    this.commandComplete("EMPTY");
  }

  portalSuspended(): void {
    this.commandComplete("SUSPENDED");
  }

  error(code: string, message: string): void {
    this.errorSinceReady = true;
    const p = this.firstStatement();
    if (!p) return;
    if (p.errorCode === null) {
      p.errorCode = code;
      p.errorMessage = message;
    }
    if (p.kind === "extended") {
      this.finish(p);
      // Everything queued up to the next Sync is skipped by the target.
      let i = this.head;
      while (i < this.queue.length && this.queue[i]!.kind !== "sync") i++;
      this.queue.splice(this.head, i - this.head);
    }
  }

  /** Returns an ErrorResponse to send before this ReadyForQuery, when a refused statement's Sync ends here. */
  readyForQuery(): Buffer | null {
    let inject: Buffer | null = null;
    while (this.head < this.queue.length) {
      const p = this.queue[this.head++]!;
      if (p.kind === "simple") {
        this.finish(p);
        break;
      }
      if (p.kind === "sync") {
        // The target already reported an error in this batch: one error per batch, as PostgreSQL does.
        if (!this.errorSinceReady) inject = p.inject;
        break;
      }
      // An Execute that got no answer before the Sync completed: it did not run.
    }
    this.errorSinceReady = false;
    this.compact();
    return inject;
  }

  // --- internals -----------------------------------------------------------------------

  private push(
    kind: Pending["kind"],
    sql: string,
    decision: CompletedStatement["decision"] = "allowed",
    inject: Buffer | null = null,
    approvalId?: string,
  ): void {
    this.queue.push({
      approvalId,
      kind,
      sql,
      decision,
      inject,
      at: Date.now(),
      t0: performance.now(),
      tags: [],
      rows: null,
      errorCode: null,
      errorMessage: null,
    });
  }

  private firstStatement(): Pending | undefined {
    for (let i = this.head; i < this.queue.length; i++) {
      const p = this.queue[i]!;
      if (p.kind !== "sync") return p;
      // A Sync still queued ahead means an earlier batch is unfinished; answers belong to it.
      return undefined;
    }
    return undefined;
  }

  private removeFirstStatement(): void {
    this.head++;
    this.compact();
  }

  private compact(): void {
    if (this.head > 64 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    } else if (this.head === this.queue.length) {
      this.queue.length = 0;
      this.head = 0;
    }
  }

  private addRows(p: Pending, tag: string): void {
    const n = rowsFromTag(tag);
    if (n !== null) p.rows = (p.rows ?? 0) + n;
  }

  private finish(p: Pending): void {
    this.onComplete({
      at: p.at,
      durationMs: Math.round((performance.now() - p.t0) * 1000) / 1000,
      sql: p.sql,
      protocol: p.kind === "extended" ? "extended" : "simple",
      commandTag: p.tags.length > 0 ? p.tags.join(", ") : null,
      rows: p.rows,
      errorCode: p.errorCode,
      errorMessage: p.errorMessage,
      decision: p.decision,
      ...(p.approvalId ? { approvalId: p.approvalId } : {}),
    });
  }
}
