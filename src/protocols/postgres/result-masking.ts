import {
  MaskingError,
  applyResultFormats,
  canMaskCopyFormat,
  clientEncodingMaskable,
  createCopyMasker,
  createRowMasker,
  maskNoticeFields,
  maskNotification,
  parseBindResultFormats,
  parseCopyOutResponse,
  parseCopyStatement,
  parseRowDescription,
  tableOidsOf,
  withQualifiedNames,
  type ColumnInfo,
  type CopyMasker,
  type MaskingProfile,
  type RowMasker,
} from "../../policy/masking/index.js";
import { Backend } from "./codes.js";
import type { CatalogCache } from "./catalog.js";
import { readCString } from "./wire.js";

/**
 * Masking of what the target answers, for one session.
 *
 * The hard part is knowing which columns a DataRow has: a simple Query's rows follow their
 * RowDescription, but a driver that reuses a prepared statement skips Describe, so its rows
 * come with no RowDescription at all. So the client side is watched too: Bind says which
 * result formats a portal has, a Describe(portal) answer which columns, and each Execute's rows
 * use that. An earlier Describe(statement) answer is not trusted for them: the target replaces
 * statements without telling (a re-Parse of the unnamed statement, DEALLOCATE and PREPARE,
 * DISCARD ALL, dynamic SQL), so a portal the client did not describe is described by the
 * broker right before its Execute (describeBeforeExecute) and the answer kept from the client.
 * Answers come strictly in order, so a FIFO of what was asked pairs them up (and an error
 * skips the rest of its batch, as in the target).
 *
 * Everything fails closed: a MaskingError means the message must not be forwarded.
 */
type Expect =
  | { k: "query"; sql: string }
  | { k: "describe-statement"; name: string }
  /** `injected`: the broker's own Describe; its answer does not go to the client. */
  | { k: "describe-portal"; name: string; injected?: boolean }
  | { k: "execute"; portal: string }
  | { k: "sync" };

interface Portal {
  statement: string;
  formats: number[];
  /** From a Describe(portal) answer, when there was one. */
  columns?: ColumnInfo[] | null;
  /** A Describe(portal) was sent for it, by the client or the broker. */
  described?: boolean;
}

export type MaskAction =
  | { kind: "forward" }
  | { kind: "replace"; bytes: Buffer }
  /** The catalog must be reloaded before this message can be masked: pause, then retry it. */
  | { kind: "wait"; until: Promise<void> };

const FORWARD: MaskAction = { kind: "forward" };
const DROP: MaskAction = { kind: "replace", bytes: Buffer.alloc(0) };

export class ResultMasking {
  private readonly expect: Expect[] = [];
  private readonly portals = new Map<string, Portal>();
  private current: RowMasker | null = null;
  private copy: CopyMasker | null = null;
  private encodingOk = true;

  constructor(
    private readonly profile: MaskingProfile,
    private readonly catalog: CatalogCache | null,
  ) {}

  // --- what the client asked ------------------------------------------------------------

  onQuery(sql: string): void {
    this.expect.push({ k: "query", sql });
  }

  onDescribe(kind: "S" | "P", name: string): void {
    this.expect.push({ k: kind === "S" ? "describe-statement" : "describe-portal", name });
    if (kind === "P") {
      const portal = this.portals.get(name);
      if (portal) portal.described = true;
    }
  }

  /**
   * Right before an Execute: true when the caller must send Describe(portal) upstream ahead of
   * it, because the client has not described this portal (its rows would come with no
   * RowDescription). The answer is consumed here, not forwarded.
   */
  describeBeforeExecute(portal: string): boolean {
    const p = this.portals.get(portal);
    if (!p || p.described) return false;
    p.described = true;
    this.expect.push({ k: "describe-portal", name: portal, injected: true });
    return true;
  }

  onBind(buf: Buffer, start: number, end: number): void {
    const [portal, p] = readCString(buf, start + 5, end);
    const statement = readCString(buf, p, end)[0];
    this.portals.set(portal, { statement, formats: parseBindResultFormats(buf, start, end) });
  }

  onExecute(portal: string): void {
    this.expect.push({ k: "execute", portal });
  }

  onSync(): void {
    this.expect.push({ k: "sync" });
  }

  onClose(kind: "S" | "P", name: string): void {
    if (kind === "P") this.portals.delete(name);
  }

  /** An error or notice text as the client gets it (detectors), for the recording. */
  maskMessage(text: string): string {
    return this.profile.maskUnicodeText(text);
  }

  // --- what the target answered -----------------------------------------------------------

  /** Decides what to do with one backend message. Throws MaskingError: do not forward it. */
  onBackend(type: number, buf: Buffer, start: number, end: number): MaskAction {
    switch (type) {
      case Backend.rowDescription: {
        const cols = parseRowDescription(buf, start, end);
        const wait = this.needCatalog(cols);
        if (wait) return wait;
        const head = this.expect[0];
        if (head?.k === "describe-statement") {
          this.expect.shift();
        } else if (head?.k === "describe-portal") {
          const portal = this.portals.get(head.name);
          if (portal) portal.columns = cols;
          this.expect.shift();
          if (head.injected) return DROP;
        } else {
          this.current = this.makeMasker(cols);
        }
        return FORWARD;
      }
      case Backend.noData: {
        const head = this.expect[0];
        if (head?.k === "describe-statement") this.expect.shift();
        else if (head?.k === "describe-portal") {
          const portal = this.portals.get(head.name);
          if (portal) portal.columns = null;
          this.expect.shift();
          if (head.injected) return DROP;
        }
        return FORWARD;
      }
      case Backend.bindComplete:
        return FORWARD;
      case Backend.dataRow: {
        let masker = this.current;
        if (masker === null) {
          const wait = this.startExecute();
          if (wait) return wait;
          masker = this.current;
        }
        if (masker === null) {
          // Rows whose columns are unknown cannot be masked: refuse them.
          throw new MaskingError(
            "gw: result rows arrived without a known row description, so they could not be masked",
          );
        }
        if (!this.encodingOk) throw encodingError();
        if (!masker.active) return FORWARD;
        const out = masker.maskDataRow(buf, start, end);
        return out ? { kind: "replace", bytes: out } : FORWARD;
      }
      case Backend.copyOutResponse: {
        const { format } = parseCopyOutResponse(buf, start, end);
        if (!canMaskCopyFormat(format))
          throw new MaskingError(
            "gw: binary COPY cannot be masked on this connection; use text or CSV",
          );
        if (!this.encodingOk) throw encodingError();
        const head = this.expect[0];
        const stmt = head?.k === "query" ? parseCopyStatement(head.sql) : null;
        if (!stmt)
          throw new MaskingError(
            "gw: this COPY could not be understood, so its data could not be masked",
          );
        let columns: { name: string; qualifiedName: string | null }[] | null = null;
        if (stmt.relation && this.profile.hasColumnRules) {
          if (!this.catalog)
            throw new MaskingError("gw: column masking needs the catalog, which is unavailable");
          const all = this.catalog.columnsOf(stmt.relation.schema, stmt.relation.table);
          if (!all) {
            if (!this.catalog.loaded) return { kind: "wait", until: this.catalog.refresh() };
            throw new MaskingError(
              `gw: cannot tell which table "${stmt.relation.table}" is, so its COPY could not be masked; qualify it with its schema`,
            );
          }
          columns = stmt.columns
            ? stmt.columns.map(
                (n) => all.find((c) => c.name === n) ?? { name: n, qualifiedName: null },
              )
            : all;
        }
        if (columns === null && this.profile.hasColumnRules)
          throw new MaskingError(
            "gw: COPY of a query cannot apply this connection's column masking rules, so it was refused and the session closed; COPY the table itself, or SELECT",
          );
        this.copy = createCopyMasker(this.profile, { dialect: stmt.dialect, columns });
        return FORWARD;
      }
      case Backend.copyData: {
        if (!this.copy || !this.copy.active) return FORWARD;
        const out = this.copy.maskCopyData(buf, start, end);
        return out ? { kind: "replace", bytes: out } : FORWARD;
      }
      case Backend.copyDone: {
        const rest = this.copy?.finish() ?? null;
        this.copy = null;
        return rest
          ? { kind: "replace", bytes: Buffer.concat([rest, buf.subarray(start, end)]) }
          : FORWARD;
      }
      case Backend.commandComplete:
      case Backend.emptyQueryResponse:
      case Backend.portalSuspended: {
        this.current = null;
        if (this.expect[0]?.k === "execute") this.expect.shift();
        if (type === Backend.commandComplete && this.catalog) {
          // DDL can rename or add columns: the next unknown table reloads the catalog anyway,
          // but a renamed column in a known table would not be noticed. Reload eagerly.
          const tag = readCString(buf, start + 5, end)[0];
          if (/^(CREATE|ALTER|DROP)\b/.test(tag))
            void this.catalog.refresh().catch(() => undefined);
        }
        return FORWARD;
      }
      case Backend.errorResponse: {
        this.current = null;
        this.copy = null;
        // In the extended protocol the target skips to Sync; forget what it will not answer.
        const i = this.expect.findIndex((e) => e.k === "sync" || e.k === "query");
        if (this.expect[0]?.k !== "query") this.expect.splice(0, i < 0 ? this.expect.length : i);
        const out = maskNoticeFields(this.profile, buf, start, end);
        return out ? { kind: "replace", bytes: out } : FORWARD;
      }
      case Backend.noticeResponse: {
        const out = maskNoticeFields(this.profile, buf, start, end);
        return out ? { kind: "replace", bytes: out } : FORWARD;
      }
      case Backend.notificationResponse: {
        const out = maskNotification(this.profile, buf, start, end);
        return out ? { kind: "replace", bytes: out } : FORWARD;
      }
      case Backend.parameterStatus: {
        const [name, p] = readCString(buf, start + 5, end);
        if (name === "client_encoding")
          this.encodingOk = clientEncodingMaskable(readCString(buf, p, end)[0]);
        return FORWARD;
      }
      case Backend.readyForQuery: {
        this.current = null;
        this.copy = null;
        const head = this.expect[0];
        if (head?.k === "query" || head?.k === "sync") this.expect.shift();
        return FORWARD;
      }
      default:
        return FORWARD;
    }
  }

  /** Rows with no RowDescription before them: an Execute of a portal described earlier. */
  private startExecute(): MaskAction | null {
    const head = this.expect[0];
    if (head?.k !== "execute") return null;
    const portal = this.portals.get(head.portal);
    if (!portal) return null;
    let cols = portal.columns ?? null;
    if (!cols) return null;
    cols = applyResultFormats(cols, portal.formats);
    const wait = this.needCatalog(cols);
    if (wait) return wait;
    this.current = this.makeMasker(cols);
    return null;
  }

  private needCatalog(cols: ColumnInfo[]): MaskAction | null {
    if (!this.profile.hasColumnRules) return null;
    if (!this.catalog)
      throw new MaskingError("gw: column masking needs the catalog, which is unavailable");
    const unknown = tableOidsOf(cols).filter((o) => !this.catalog!.knows(o));
    if (unknown.length === 0) return null;
    return { kind: "wait", until: this.catalog.refresh().then(() => this.checkKnown(unknown)) };
  }

  private checkKnown(oids: number[]): void {
    // A table still unknown after a reload (dropped meanwhile, or a catalog we may not read):
    // its columns could be masked ones, so the rows do not go out.
    if (oids.some((o) => !this.catalog!.knows(o))) {
      throw new MaskingError(
        "gw: a result column's table is not in the catalog, so the result could not be masked",
      );
    }
  }

  private makeMasker(cols: ColumnInfo[]): RowMasker {
    const named =
      this.profile.hasColumnRules && this.catalog
        ? withQualifiedNames(cols, (o, a) => this.catalog!.resolve(o, a))
        : cols;
    return createRowMasker(this.profile, named);
  }
}

function encodingError(): MaskingError {
  return new MaskingError("gw: results cannot be masked in this client_encoding; use UTF8");
}
