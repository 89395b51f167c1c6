/**
 * What a SQL text does, from PostgreSQL's own parser (libpg-query: the server's grammar,
 * compiled to WebAssembly). Pure: no I/O once `initPolicyParser()` has loaded the parser.
 *
 * One StatementInfo per statement of a (possibly multi-statement) text. The walk is generic:
 * it visits every node of the parse tree, so a function call or a table is found wherever it
 * sits (subqueries, CTEs, DEFAULT expressions, JOINs, LATERAL, ...), and nested statements
 * (data-modifying CTEs, EXPLAIN ANALYZE, PREPARE, CREATE TABLE AS, COPY (query), DO bodies)
 * add their kinds. See docs/policy.md for the vocabulary and for what parsing cannot know.
 */
import { loadModule, parsePlPgSQLSync, parseSync } from "libpg-query";
import { ExitCode, GwError } from "../errors.js";
import { LruCache } from "./lru.js";
import { normalizeLiterals } from "./normalize.js";
import type { StatementKind } from "./kinds.js";

/** A table a statement names. `schema` is null when it was written unqualified. */
export interface TableRef {
  readonly schema: string | null;
  readonly name: string;
}

export interface StatementInfo {
  /** What the statement is, at its top level. */
  readonly kind: StatementKind;
  /**
   * Every kind the statement executes: `kind` first, then the kinds of statements nested in it
   * that run too (a DELETE in a CTE, the statement under EXPLAIN ANALYZE or PREPARE, the query
   * of CREATE TABLE AS / SELECT INTO / COPY (query) / DECLARE CURSOR, the statements of a DO
   * block or of a function body being created). Not the statement under a plain EXPLAIN.
   */
  readonly kinds: readonly StatementKind[];
  /**
   * Every table named anywhere in the statement, as `schema.table`, or `*.table` when it was
   * written unqualified (search_path decides at run time). Names are as PostgreSQL folds them:
   * unquoted names lower-case, quoted ones exactly as written. Sorted, without duplicates.
   */
  readonly tables: readonly string[];
  /** The same tables, structured (for matching). */
  readonly tableRefs: readonly TableRef[];
  /** Functions called anywhere in the statement: lower-case, schema stripped. Sorted. */
  readonly functions: readonly string[];
  /** An UPDATE or DELETE (top level or nested) has no WHERE, or a WHERE naming no column. */
  readonly whereAbsent: boolean;
  readonly whereAbsentKinds: readonly ("update" | "delete")[];
  /** The statement could leave read-only mode, or act outside it (see readOnlyEscapeReasons). */
  readonly readOnlyEscape: boolean;
  readonly readOnlyEscapeReasons: readonly string[];
  /**
   * The statement would change how the server reads later statements (standard_conforming_strings
   * or client_encoding), so the broker's parser would no longer agree with the server's.
   */
  readonly lexerChange: readonly string[];
  /** COPY ... TO/FROM PROGRAM: a shell command on the database server. */
  readonly program: boolean;
  /** COPY ... TO/FROM a file on the database server. */
  readonly serverFile: boolean;
  /**
   * The statement runs SQL that parsing cannot see: EXECUTE in PL/pgSQL, a DO block or function
   * body in another language, a body that would not parse, or a built-in that runs SQL given
   * as text (query_to_xml, table_to_xml and friends, ts_stat, dblink).
   */
  readonly dynamicSql: boolean;
  /** PREPARE name AS ...: the name. */
  readonly prepareName?: string;
  /** EXECUTE name: the name (use `resolveExecute` to see what it runs). */
  readonly executeName?: string;
}

export interface Classification {
  readonly statements: readonly StatementInfo[];
  /** Set when the text does not parse; `statements` then holds one statement of kind unknown. */
  readonly parseError?: string;
  /**
   * The classification read a literal's value (a SET, set_config, a DO or function body, an
   * EXPLAIN option), so texts differing only in literals may classify differently: such texts
   * are cached by their exact text only.
   */
  readonly literalSensitive: boolean;
}

let ready = false;
let loading: Promise<void> | undefined;

/** Loads the parser (WebAssembly). Call once at startup; later calls return at once. */
export async function initPolicyParser(): Promise<void> {
  if (ready) return;
  loading ??= loadModule().then(() => {
    ready = true;
  });
  await loading;
}

export function policyParserReady(): boolean {
  return ready;
}

function requireReady(): void {
  if (!ready) {
    throw new GwError(
      "policy_parser_not_ready",
      "the SQL parser is not loaded: await initPolicyParser() at startup",
      { exitCode: ExitCode.internal },
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Settings that matter

/** Setting names are case-insensitive in PostgreSQL. */
const READ_ONLY_SETTINGS = new Set(["default_transaction_read_only", "transaction_read_only"]);
const IDENTITY_SETTINGS: Record<string, string> = {
  role: "ROLE",
  session_authorization: "SESSION AUTHORIZATION",
};

/**
 * Functions that act outside the session's read-only transaction: another session (dblink,
 * pg_background), or the server's file system (adminpack, large-object import/export).
 */
const OUTSIDE_READ_ONLY: readonly [RegExp, string][] = [
  [/^dblink/, "runs SQL in another session, which is not read-only"],
  [/^pg_background/, "runs SQL in a background worker, which is not read-only"],
  [/^pg_file_(write|rename|unlink|sync)$/, "writes to the database server's file system"],
  [/^lo_(import|export)$/, "reads or writes files on the database server"],
];

/** Built-in functions that run SQL given to them as text, which parsing cannot see. */
const RUNS_SQL_TEXT =
  /^(query_to_xml|query_to_xml_and_xmlschema|query_to_xmlschema|table_to_xml|table_to_xml_and_xmlschema|table_to_xmlschema|schema_to_xml|schema_to_xml_and_xmlschema|schema_to_xmlschema|database_to_xml|database_to_xml_and_xmlschema|database_to_xmlschema|cursor_to_xml|ts_stat|dblink.*)$/;

const TRUE_WORDS = new Set(["t", "tr", "tru", "true", "y", "ye", "yes", "on", "1"]);
const FALSE_WORDS = new Set(["f", "fa", "fal", "fals", "false", "n", "no", "of", "off", "0"]);

// ---------------------------------------------------------------------------------------------
// Small helpers over the JSON parse tree

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
function arr(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}
/** `{Type: body}` → [Type, body]; anything else → undefined. */
function unwrap(node: unknown): [string, Obj] | undefined {
  if (!isObj(node)) return undefined;
  const keys = Object.keys(node);
  if (keys.length !== 1) return undefined;
  const k = keys[0]!;
  const body = node[k];
  if (!/^[A-Z]/.test(k) || !isObj(body)) return undefined;
  return [k, body];
}
function str(node: unknown): string | undefined {
  const u = unwrap(node);
  return u?.[0] === "String" && typeof u[1]["sval"] === "string" ? u[1]["sval"] : undefined;
}

/** A constant's value as text, for settings and options; undefined when it is not a constant. */
function constText(node: unknown): string | undefined {
  let u = unwrap(node);
  while (u?.[0] === "TypeCast") u = unwrap(u[1]["arg"]);
  if (!u) return undefined;
  const [type, body] = u;
  if (type === "String") return typeof body["sval"] === "string" ? body["sval"] : "";
  if (type === "Integer") return String((body["ival"] as number | undefined) ?? 0);
  if (type === "Float") return String(body["fval"] ?? "");
  if (type === "Boolean") return body["boolval"] === true ? "true" : "false";
  if (type !== "A_Const") return undefined;
  if (body["isnull"] === true) return undefined;
  // Zero values are omitted by the JSON output: {"ival":{}} is 0, {"boolval":{}} is false.
  if (isObj(body["sval"])) return String((body["sval"] as Obj)["sval"] ?? "");
  if (isObj(body["ival"])) return String((body["ival"] as Obj)["ival"] ?? 0);
  if (isObj(body["fval"])) return String((body["fval"] as Obj)["fval"] ?? "0");
  if (isObj(body["boolval"]))
    return (body["boolval"] as Obj)["boolval"] === true ? "true" : "false";
  return undefined;
}

function isClearlyTrue(v: string | undefined): boolean {
  return v !== undefined && TRUE_WORDS.has(v.toLowerCase());
}
function isClearlyFalse(v: string | undefined): boolean {
  return v !== undefined && FALSE_WORDS.has(v.toLowerCase());
}
function isUtf8(v: string | undefined): boolean {
  if (v === undefined) return false;
  const n = v.toLowerCase().replace(/[^a-z0-9]/g, "");
  return n === "utf8" || n === "unicode";
}

function tableText(t: TableRef): string {
  const part = (s: string) => (/[."*]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
  return `${t.schema === null ? "*" : part(t.schema)}.${part(t.name)}`;
}

/** "pg_read_file" from funcname [String "pg_catalog", String "pg_read_file"]. */
function funcName(body: Obj, key = "funcname"): string | undefined {
  const parts = arr(body[key]);
  const last = str(parts[parts.length - 1]);
  return last?.toLowerCase();
}

// ---------------------------------------------------------------------------------------------
// Statement kinds

const RELATION_OBJECTS = new Set([
  "OBJECT_TABLE",
  "OBJECT_VIEW",
  "OBJECT_MATVIEW",
  "OBJECT_FOREIGN_TABLE",
  "OBJECT_SEQUENCE",
  "OBJECT_INDEX",
]);

function kindOf(type: string, body: Obj): StatementKind {
  switch (type) {
    case "SelectStmt":
      return body["intoClause"] ? "create" : "select";
    case "InsertStmt":
      return "insert";
    case "UpdateStmt":
      return "update";
    case "DeleteStmt":
      return "delete";
    case "MergeStmt":
      return "merge";
    case "CopyStmt":
      return body["is_from"] === true ? "copy-from" : "copy-to";
    case "TruncateStmt":
      return "truncate";
    case "GrantStmt":
    case "GrantRoleStmt":
      return body["is_grant"] === true ? "grant" : "revoke";
    case "VariableSetStmt":
      return "set";
    case "TransactionStmt":
      return "transaction";
    case "CallStmt":
      return "call";
    case "DoStmt":
      return "do";
    case "ExplainStmt":
      return "explain";
    case "PrepareStmt":
      return "prepare";
    case "ExecuteStmt":
      return "execute";
    case "CreateTableAsStmt":
    case "ViewStmt":
    case "IndexStmt":
    case "RuleStmt":
    case "DefineStmt":
    case "CompositeTypeStmt":
    case "CreatedbStmt":
    case "ImportForeignSchemaStmt":
      return "create";
    case "RenameStmt":
    case "CommentStmt":
    case "SecLabelStmt":
    case "ReassignOwnedStmt":
    case "AlterSystemStmt":
      return "alter";
  }
  if (type.startsWith("Create")) return "create";
  if (type.startsWith("Alter")) return "alter";
  if (type.startsWith("Drop")) return "drop";
  // SHOW, VACUUM, ANALYZE, CLUSTER, REINDEX, LOCK, REFRESH MATERIALIZED VIEW, DISCARD, LISTEN,
  // NOTIFY, LOAD, DECLARE/FETCH/CLOSE, DEALLOCATE, CHECKPOINT, SET CONSTRAINTS, ...
  return "other";
}

/** The kind of a wrapped statement node ({SelectStmt: ...}), or undefined. */
function kindOfNode(node: unknown): StatementKind | undefined {
  const u = unwrap(node);
  return u ? kindOf(u[0], u[1]) : undefined;
}

// ---------------------------------------------------------------------------------------------
// The walk

class Acc {
  kinds = new Set<StatementKind>();
  tables = new Map<string, TableRef>();
  functions = new Set<string>();
  whereAbsent = new Set<"update" | "delete">();
  escapes = new Set<string>();
  lexer = new Set<string>();
  program = false;
  serverFile = false;
  dynamic = false;
  sensitive = false;
  prepareName: string | undefined;
  executeName: string | undefined;

  addTable(t: TableRef): void {
    this.tables.set(tableText(t), t);
  }

  merge(s: StatementInfo): void {
    for (const k of s.kinds) this.kinds.add(k);
    for (const t of s.tableRefs) this.addTable(t);
    for (const f of s.functions) this.functions.add(f);
    for (const w of s.whereAbsentKinds) this.whereAbsent.add(w);
    for (const e of s.readOnlyEscapeReasons) this.escapes.add(e);
    for (const l of s.lexerChange) this.lexer.add(l);
    this.program ||= s.program;
    this.serverFile ||= s.serverFile;
    this.dynamic ||= s.dynamicSql;
  }
}

interface Ctx {
  /** CTE names visible here: an unqualified reference to one is not a table. */
  scope: ReadonlySet<string>;
  /** Whether statements found here run now (false only under a plain EXPLAIN). */
  executing: boolean;
  /** Nesting of DO/function bodies being classified (bounded). */
  bodyDepth: number;
  /** The text of the top-level statement being walked (PL/pgSQL function bodies need it). */
  text: () => string;
}

const MAX_TREE_DEPTH = 1500;
const MAX_BODY_DEPTH = 3;

class TooDeep extends Error {}

function walk(node: unknown, ctx: Ctx, acc: Acc, depth: number, key = ""): void {
  if (depth > MAX_TREE_DEPTH) throw new TooDeep("the statement is nested too deeply");
  if (Array.isArray(node)) {
    for (const n of node) walk(n, ctx, acc, depth + 1, key);
    return;
  }
  if (!isObj(node)) return;
  const u = unwrap(node);
  if (u) {
    visit(u[0], u[1], ctx, acc, depth + 1);
    return;
  }
  // Fields typed as a specific node are written without the {Type: ...} wrapper.
  if (typeof node["relname"] === "string" && !("polname" in node)) {
    visit("RangeVar", node, ctx, acc, depth + 1);
    return;
  }
  if (key === "funccall") {
    visit("FuncCall", node, ctx, acc, depth + 1);
    return;
  }
  walkFields(node, ctx, acc, depth);
}

function walkFields(body: Obj, ctx: Ctx, acc: Acc, depth: number, skip?: string): void {
  for (const k in body) {
    if (k === skip) continue;
    const v = body[k];
    if (typeof v === "object" && v !== null) walk(v, ctx, acc, depth + 1, k);
  }
}

function visit(type: string, body: Obj, ctx: Ctx, acc: Acc, depth: number): void {
  switch (type) {
    case "RangeVar": {
      const name = body["relname"] as string;
      const schema = typeof body["schemaname"] === "string" ? body["schemaname"] : null;
      if (schema !== null || !ctx.scope.has(name)) acc.addTable({ schema, name });
      return;
    }
    case "FuncCall":
      visitFuncCall(body, acc);
      walkFields(body, ctx, acc, depth);
      return;
    case "SelectStmt":
    case "InsertStmt":
    case "UpdateStmt":
    case "DeleteStmt":
    case "MergeStmt":
      visitQuery(type, body, ctx, acc, depth);
      return;
    case "VariableSetStmt":
      acc.sensitive = true;
      checkSet(body, acc);
      walkFields(body, ctx, acc, depth);
      return;
    case "TransactionStmt":
      acc.sensitive = true;
      for (const opt of arr(body["options"])) {
        const d = unwrap(opt);
        if (d?.[0] !== "DefElem" || d[1]["defname"] !== "transaction_read_only") continue;
        if (!isClearlyTrue(constText(d[1]["arg"]))) {
          const verb = body["kind"] === "TRANS_STMT_START" ? "START TRANSACTION" : "BEGIN";
          acc.escapes.add(`${verb} READ WRITE`);
        }
      }
      return;
    case "ExplainStmt": {
      let analyze = false;
      for (const opt of arr(body["options"])) {
        const d = unwrap(opt);
        if (d?.[0] !== "DefElem") continue;
        if (d[1]["arg"] !== undefined) acc.sensitive = true;
        if (d[1]["defname"] !== "analyze") continue;
        // EXPLAIN ANALYZE runs the statement; only an explicit false/off/0 says it does not.
        if (d[1]["arg"] === undefined || !isClearlyFalse(constText(d[1]["arg"]))) analyze = true;
      }
      const inner = { ...ctx, executing: ctx.executing && analyze };
      addNestedKind(body["query"], inner, acc);
      walkFields(body, inner, acc, depth);
      return;
    }
    case "PrepareStmt":
      if (typeof body["name"] === "string") acc.prepareName ??= body["name"];
      addNestedKind(body["query"], ctx, acc);
      walkFields(body, ctx, acc, depth);
      return;
    case "ExecuteStmt":
      if (typeof body["name"] === "string") acc.executeName ??= body["name"];
      walkFields(body, ctx, acc, depth);
      return;
    case "CreateTableAsStmt":
    case "DeclareCursorStmt":
      addNestedKind(body["query"], ctx, acc);
      walkFields(body, ctx, acc, depth);
      return;
    case "CopyStmt":
      // The JSON omits an empty filename, so COPY t TO '' reads like COPY t TO STDOUT: the
      // literal matters, and COPY texts are cached by their exact text.
      acc.sensitive = true;
      if (body["is_program"] === true) {
        acc.program = true;
        acc.escapes.add("COPY ... PROGRAM runs a shell command on the database server");
      } else if (typeof body["filename"] === "string") acc.serverFile = true;
      addNestedKind(body["query"], ctx, acc);
      walkFields(body, ctx, acc, depth);
      return;
    case "DoStmt":
      acc.sensitive = true;
      visitDo(body, ctx, acc);
      return;
    case "CreateFunctionStmt":
      acc.sensitive = true;
      visitFunctionBody(body, ctx, acc);
      walkFields(body, ctx, acc, depth);
      return;
    case "DiscardStmt":
      if (body["target"] === "DISCARD_ALL") acc.escapes.add("DISCARD ALL resets every setting");
      return;
    case "AlterSystemStmt":
      acc.escapes.add("ALTER SYSTEM changes the server's configuration");
      walkFields(body, ctx, acc, depth);
      return;
    case "DropStmt":
      if (RELATION_OBJECTS.has(body["removeType"] as string)) {
        for (const o of arr(body["objects"])) addNamedTable(o, 0, acc);
      }
      walkFields(body, ctx, acc, depth);
      return;
    case "CommentStmt":
    case "SecLabelStmt":
      if (RELATION_OBJECTS.has(body["objtype"] as string)) addNamedTable(body["object"], 0, acc);
      else if (body["objtype"] === "OBJECT_COLUMN") addNamedTable(body["object"], 1, acc);
      walkFields(body, ctx, acc, depth);
      return;
    default:
      walkFields(body, ctx, acc, depth);
  }
}

/** A table named by a List of Strings ([schema,] name [, column...]); `drop` trailing parts. */
function addNamedTable(node: unknown, drop: number, acc: Acc): void {
  const u = unwrap(node);
  if (u?.[0] !== "List") return;
  const parts = arr(u[1]["items"]).map(str);
  if (parts.some((p) => p === undefined)) return;
  const names = (parts as string[]).slice(0, parts.length - drop);
  const name = names[names.length - 1];
  if (name === undefined) return;
  acc.addTable({ schema: names.length >= 2 ? names[names.length - 2]! : null, name });
}

function addNestedKind(query: unknown, ctx: Ctx, acc: Acc): void {
  if (!ctx.executing) return;
  const k = kindOfNode(query);
  if (k !== undefined) acc.kinds.add(k);
}

function visitQuery(type: string, body: Obj, ctx: Ctx, acc: Acc, depth: number): void {
  if (ctx.executing) {
    if (type === "SelectStmt") {
      if (body["intoClause"]) acc.kinds.add("create").add("select");
    } else {
      const k = kindOf(type, body);
      acc.kinds.add(k);
      if ((k === "update" || k === "delete") && !mentionsColumn(body["whereClause"])) {
        acc.whereAbsent.add(k);
      }
      // INSERT ... ON CONFLICT DO UPDATE updates rows; MERGE does what its WHEN clauses say.
      const conflict = body["onConflictClause"];
      if (isObj(conflict) && conflict["action"] === "ONCONFLICT_UPDATE") acc.kinds.add("update");
      for (const w of arr(body["mergeWhenClauses"])) {
        const command = unwrap(w)?.[1]["commandType"];
        if (command === "CMD_UPDATE") acc.kinds.add("update");
        if (command === "CMD_DELETE") acc.kinds.add("delete");
        if (command === "CMD_INSERT") acc.kinds.add("insert");
      }
    }
  }
  if (type !== "SelectStmt" && isObj(body["relation"])) {
    const rel = body["relation"];
    const schema = rel["schemaname"];
    if (rel["relname"] === "pg_settings" && (schema === undefined || schema === "pg_catalog")) {
      acc.escapes.add("writing to pg_settings changes settings");
    }
  }
  // WITH: a CTE sees the ones before it (all of them under RECURSIVE); the body sees all.
  const w = isObj(body["withClause"]) ? body["withClause"] : undefined;
  let scope = ctx.scope;
  if (w) {
    const ctes = arr(w["ctes"]);
    const names = ctes.map((c) => {
      const u = unwrap(c);
      return u?.[0] === "CommonTableExpr" && typeof u[1]["ctename"] === "string"
        ? u[1]["ctename"]
        : undefined;
    });
    const all = names.filter((n): n is string => n !== undefined);
    ctes.forEach((c, i) => {
      const visible = w["recursive"] === true ? all : names.slice(0, i);
      walk(c, { ...ctx, scope: extendScope(ctx.scope, visible) }, acc, depth + 1);
    });
    scope = extendScope(ctx.scope, all);
  }
  walkFields(body, scope === ctx.scope ? ctx : { ...ctx, scope }, acc, depth, "withClause");
}

function extendScope(scope: ReadonlySet<string>, names: readonly (string | undefined)[]) {
  const out = new Set(scope);
  for (const n of names) if (n !== undefined) out.add(n);
  return out;
}

/** Whether an expression mentions any column (WHERE true and WHERE 1 = 1 do not). */
function mentionsColumn(node: unknown): boolean {
  if (node === undefined || node === null) return false;
  if (Array.isArray(node)) return node.some(mentionsColumn);
  if (!isObj(node)) return false;
  if ("ColumnRef" in node || "CurrentOfExpr" in node) return true;
  for (const k in node) {
    const v = node[k];
    if (typeof v === "object" && v !== null && mentionsColumn(v)) return true;
  }
  return false;
}

function visitFuncCall(body: Obj, acc: Acc): void {
  const name = funcName(body);
  if (name === undefined) return;
  acc.functions.add(name);
  if (RUNS_SQL_TEXT.test(name)) acc.dynamic = true;
  for (const [re, why] of OUTSIDE_READ_ONLY) {
    if (re.test(name)) acc.escapes.add(`${name}() ${why}`);
  }
  if (name !== "set_config") return;
  acc.sensitive = true;
  let setting: unknown;
  let value: unknown;
  arr(body["args"]).forEach((a, i) => {
    const u = unwrap(a);
    if (u?.[0] === "NamedArgExpr") {
      if (u[1]["name"] === "setting_name") setting = u[1]["arg"];
      if (u[1]["name"] === "new_value") value = u[1]["arg"];
    } else if (i === 0) setting = a;
    else if (i === 1) value = a;
  });
  const s = constText(setting)?.toLowerCase();
  const v = constText(value);
  if (s === undefined) {
    acc.escapes.add("set_config() with a setting name computed at run time");
    acc.lexer.add("set_config() with a setting name computed at run time");
    return;
  }
  if (READ_ONLY_SETTINGS.has(s) && !isClearlyTrue(v)) acc.escapes.add(`set_config('${s}', ...)`);
  if (s in IDENTITY_SETTINGS) acc.escapes.add(`set_config('${s}', ...)`);
  if (s === "standard_conforming_strings" && !isClearlyTrue(v)) {
    acc.lexer.add(`set_config('${s}', ...)`);
  }
  if (s === "client_encoding" && !isUtf8(v)) acc.lexer.add(`set_config('${s}', ...)`);
}

function checkSet(body: Obj, acc: Acc): void {
  const kind = body["kind"] as string | undefined;
  if (kind === "VAR_RESET_ALL") {
    acc.escapes.add("RESET ALL");
    return;
  }
  const name = typeof body["name"] === "string" ? body["name"].toLowerCase() : "";
  const args = arr(body["args"]);
  const value = kind === "VAR_SET_VALUE" && args.length === 1 ? constText(args[0]) : undefined;
  const verb = kind === "VAR_RESET" ? "RESET" : "SET";
  const identity = IDENTITY_SETTINGS[name];
  if (identity !== undefined) acc.escapes.add(`${verb} ${identity}`);
  if (READ_ONLY_SETTINGS.has(name) && !isClearlyTrue(value)) acc.escapes.add(`${verb} ${name}`);
  if (name === "transaction" || name === "session characteristics") {
    for (const a of args) {
      const d = unwrap(a);
      if (d?.[0] === "DefElem" && d[1]["defname"] === "transaction_read_only") {
        if (!isClearlyTrue(constText(d[1]["arg"]))) {
          acc.escapes.add(
            name === "transaction"
              ? "SET TRANSACTION READ WRITE"
              : "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
          );
        }
      }
    }
  }
  if (name === "standard_conforming_strings" && !isClearlyTrue(value)) {
    acc.lexer.add(`${verb} standard_conforming_strings`);
  }
  if (name === "client_encoding" && !isUtf8(value)) acc.lexer.add(`${verb} client_encoding`);
}

// ---------------------------------------------------------------------------------------------
// Code bodies: DO blocks and functions being created

function defElems(list: unknown): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const item of arr(list)) {
    const d = unwrap(item);
    if (d?.[0] === "DefElem" && typeof d[1]["defname"] === "string") {
      out.set(d[1]["defname"], d[1]["arg"]);
    }
  }
  return out;
}

function dollarQuote(body: string): string {
  let tag = "$gw$";
  for (let i = 0; body.includes(tag); i++) tag = `$gw${i}$`;
  return `${tag}${body}${tag}`;
}

function visitDo(body: Obj, ctx: Ctx, acc: Acc): void {
  const opts = defElems(body["args"]);
  const language = (str(opts.get("language")) ?? "plpgsql").toLowerCase();
  const code = str(opts.get("as"));
  if (language !== "plpgsql" || code === undefined) {
    acc.dynamic = true;
    return;
  }
  walkPlpgsql(`DO ${dollarQuote(code)}`, ctx, acc);
}

function visitFunctionBody(body: Obj, ctx: Ctx, acc: Acc): void {
  // BEGIN ATOMIC bodies (sql_body) are part of the tree and walked like everything else.
  if (body["sql_body"] !== undefined) return;
  const opts = defElems(body["options"]);
  const language = str(opts.get("language"))?.toLowerCase();
  const as = opts.get("as");
  const asList = unwrap(as)?.[0] === "List" ? arr(unwrap(as)![1]["items"]).map(str) : [];
  if (language === "c" || language === "internal" || asList.length !== 1) return;
  const code = asList[0];
  if (code === undefined) return;
  if (language === "sql") {
    mergeSql(code, ctx, acc);
    return;
  }
  if (language === "plpgsql") {
    walkPlpgsql(ctx.text(), ctx, acc);
    return;
  }
  acc.dynamic = true;
}

/** Classifies SQL found in a body and merges it into `acc`; opaque when it does not parse. */
function mergeSql(sql: string, ctx: Ctx, acc: Acc): Classification | undefined {
  if (ctx.bodyDepth >= MAX_BODY_DEPTH) {
    acc.dynamic = true;
    return undefined;
  }
  const c = classifyText(sql, ctx.bodyDepth + 1);
  if (c.parseError !== undefined) {
    acc.dynamic = true;
    return c;
  }
  for (const s of c.statements) acc.merge(s);
  return c;
}

/** The SQL a PL/pgSQL expression stands for, by its parse mode (see RawParseMode). */
function plpgsqlExprSql(query: string, mode: number): string | undefined {
  if (mode === 0) return query;
  if (mode === 2) return `SELECT ${query}`;
  if (mode >= 3 && mode <= 5) {
    // "target := expr" / "target = expr"
    const m = /^[^:=]*?(?::=|=)([\s\S]*)$/.exec(query);
    return m ? `SELECT ${m[1]}` : undefined;
  }
  return undefined;
}

function walkPlpgsql(source: string, ctx: Ctx, acc: Acc): void {
  let tree: unknown;
  try {
    tree = parsePlPgSQLSync(source);
  } catch {
    acc.dynamic = true;
    return;
  }
  const exprs: { query: string; mode: number; dynamic: boolean }[] = [];
  const collect = (node: unknown, dynamic: boolean, depth: number): void => {
    if (depth > MAX_TREE_DEPTH) throw new TooDeep("the statement is nested too deeply");
    if (Array.isArray(node)) {
      for (const n of node) collect(n, dynamic, depth + 1);
      return;
    }
    if (!isObj(node)) return;
    for (const k in node) {
      const v = node[k];
      if (k === "PLpgSQL_expr" && isObj(v)) {
        exprs.push({
          query: typeof v["query"] === "string" ? v["query"] : "",
          mode: typeof v["parseMode"] === "number" ? v["parseMode"] : 0,
          dynamic,
        });
        continue;
      }
      // EXECUTE, FOR ... IN EXECUTE, OPEN ... FOR EXECUTE, RETURN QUERY EXECUTE.
      const dyn =
        k === "PLpgSQL_stmt_dynexecute" || k === "PLpgSQL_stmt_dynfors" || k === "dynquery";
      if (dyn) acc.dynamic = true;
      if (typeof v === "object" && v !== null) collect(v, dynamic || dyn, depth + 1);
    }
  };
  collect(tree, false, 0);
  for (const e of exprs) {
    const sql = plpgsqlExprSql(e.query, e.mode);
    if (sql === undefined) {
      acc.dynamic = true;
      continue;
    }
    mergeSql(sql, ctx, acc);
    if (e.dynamic) {
      // EXECUTE 'constant text': the text is SQL too.
      const constant = constantSelect(sql);
      if (constant !== undefined) mergeSql(constant, ctx, acc);
    }
  }
}

/** The string of `SELECT 'text'`, if that is all `sql` is. */
function constantSelect(sql: string): string | undefined {
  let tree: { stmts?: unknown[] };
  try {
    tree = parseSync(sql) as { stmts?: unknown[] };
  } catch {
    return undefined;
  }
  const stmts = arr(tree.stmts);
  if (stmts.length !== 1 || !isObj(stmts[0])) return undefined;
  const sel = unwrap(stmts[0]["stmt"]);
  if (sel?.[0] !== "SelectStmt") return undefined;
  const targets = arr(sel[1]["targetList"]);
  if (targets.length !== 1 || Object.keys(sel[1]).some((k) => k.endsWith("Clause"))) {
    return undefined;
  }
  const rt = unwrap(targets[0]);
  if (rt?.[0] !== "ResTarget") return undefined;
  const u = unwrap(rt[1]["val"]);
  if (u?.[0] !== "A_Const" || !isObj(u[1]["sval"])) return undefined;
  const v = (u[1]["sval"] as Obj)["sval"];
  return typeof v === "string" ? v : "";
}

// ---------------------------------------------------------------------------------------------
// Whole texts

function deepFreeze<T>(v: T): T {
  if (typeof v === "object" && v !== null && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const k of Object.keys(v)) deepFreeze((v as Record<string, unknown>)[k]);
  }
  return v;
}

function unparseable(message: string): Classification {
  const info: StatementInfo = {
    kind: "unknown",
    kinds: ["unknown"],
    tables: [],
    tableRefs: [],
    functions: [],
    whereAbsent: false,
    whereAbsentKinds: [],
    readOnlyEscape: false,
    readOnlyEscapeReasons: [],
    lexerChange: [],
    program: false,
    serverFile: false,
    dynamicSql: false,
  };
  return { statements: [info], parseError: message, literalSensitive: true };
}

function buildInfo(kind: StatementKind, acc: Acc): StatementInfo {
  const kinds: StatementKind[] = [kind];
  for (const k of acc.kinds) if (k !== kind) kinds.push(k);
  if (acc.dynamic) {
    acc.escapes.add(
      "it runs SQL the broker cannot see (EXECUTE in PL/pgSQL, code in another language, or a function that runs SQL text)",
    );
  }
  const tables = [...acc.tables.keys()].sort();
  const escapes = [...acc.escapes];
  const info: StatementInfo = {
    kind,
    kinds,
    tables,
    tableRefs: tables.map((t) => acc.tables.get(t)!),
    functions: [...acc.functions].sort(),
    whereAbsent: acc.whereAbsent.size > 0,
    whereAbsentKinds: (["update", "delete"] as const).filter((k) => acc.whereAbsent.has(k)),
    readOnlyEscape: escapes.length > 0,
    readOnlyEscapeReasons: escapes,
    lexerChange: [...acc.lexer],
    program: acc.program,
    serverFile: acc.serverFile,
    dynamicSql: acc.dynamic,
  };
  return {
    ...info,
    ...(acc.prepareName !== undefined ? { prepareName: acc.prepareName } : {}),
    ...(acc.executeName !== undefined ? { executeName: acc.executeName } : {}),
  };
}

/** The statement text of one RawStmt; locations are byte offsets into the UTF-8 text. */
function sliceStatement(sql: string, raw: Obj): string {
  const start = typeof raw["stmt_location"] === "number" ? raw["stmt_location"] : 0;
  const len = typeof raw["stmt_len"] === "number" ? raw["stmt_len"] : 0;
  // eslint-disable-next-line no-control-regex
  if (!/[^\x00-\x7f]/.test(sql)) return len > 0 ? sql.slice(start, start + len) : sql.slice(start);
  const bytes = Buffer.from(sql, "utf8");
  return bytes.subarray(start, len > 0 ? start + len : bytes.length).toString("utf8");
}

function classifyText(sql: string, bodyDepth: number): Classification {
  requireReady();
  if (sql.includes("\0")) return unparseable("the text contains a NUL character");
  let tree: { stmts?: unknown[] };
  try {
    tree = parseSync(sql) as { stmts?: unknown[] };
  } catch (err) {
    const e = err as { message?: string; sqlDetails?: { cursorPosition?: number } };
    const pos = e.sqlDetails?.cursorPosition;
    return unparseable(
      `${e.message ?? String(err)}${typeof pos === "number" && pos >= 0 ? ` (at character ${pos + 1})` : ""}`,
    );
  }
  const statements: StatementInfo[] = [];
  let sensitive = false;
  try {
    for (const raw of arr(tree.stmts)) {
      if (!isObj(raw)) continue;
      const u = unwrap(raw["stmt"]);
      if (!u) continue;
      const acc = new Acc();
      let text: string | undefined;
      const ctx: Ctx = {
        scope: new Set(),
        executing: true,
        bodyDepth,
        text: () => (text ??= sliceStatement(sql, raw)),
      };
      walk(raw["stmt"], ctx, acc, 0);
      statements.push(buildInfo(kindOf(u[0], u[1]), acc));
      sensitive ||= acc.sensitive;
    }
  } catch (err) {
    if (err instanceof TooDeep || err instanceof RangeError) return unparseable(err.message);
    throw err;
  }
  return { statements, literalSensitive: sensitive };
}

/** Classifies `sql` without the cache. */
export function classifyUncached(sql: string): Classification {
  return deepFreeze(classifyText(sql, 0));
}

// ---------------------------------------------------------------------------------------------
// The cache

export interface ClassifierOptions {
  /** Most cached classifications (default 10 000; 0 disables the cache). */
  cacheEntries?: number;
  /** Most characters of cache keys in total (default 8 000 000). */
  cacheChars?: number;
  /** Texts longer than this are classified every time (default 32 768 characters). */
  maxCachedLength?: number;
}

export interface ClassifierStats {
  hits: number;
  /** Hits found through the literal-normalised key (a subset of hits). */
  normalizedHits: number;
  misses: number;
  entries: number;
}

/**
 * A classifier with its own bounded LRU caches. A text is looked up by its exact text, then by
 * its literal-normalised form (see normalize.ts); a miss is classified and stored under the
 * normalised form when its classification did not read any literal, else under the exact text.
 * Results are deeply frozen and shared between callers.
 */
export class StatementClassifier {
  /** Texts whose classification read a literal, and parse errors: by exact text. */
  private readonly exact: LruCache<Classification>;
  /** Everything else: by literal-normalised text. */
  private readonly normalized: LruCache<Classification>;
  private readonly maxCachedLength: number;
  private counters = { hits: 0, normalizedHits: 0, misses: 0 };

  constructor(opts: ClassifierOptions = {}) {
    const entries = Math.max(0, opts.cacheEntries ?? 10_000);
    const chars = Math.max(0, opts.cacheChars ?? 8_000_000);
    // Two maps (so a text's own string hash is reused), sharing the budget: a quarter for
    // exact texts (SET, set_config, DO, COPY, EXPLAIN options, parse errors), the rest for
    // normalised ones.
    const exactEntries = Math.ceil(entries / 4);
    const exactChars = Math.ceil(chars / 4);
    this.exact = new LruCache(exactEntries, exactChars);
    this.normalized = new LruCache(entries - exactEntries, chars - exactChars);
    this.maxCachedLength = opts.maxCachedLength ?? 32_768;
  }

  classify(sql: string): Classification {
    if (sql.length > this.maxCachedLength) {
      this.counters.misses++;
      return classifyUncached(sql);
    }
    const exact = this.exact.get(sql);
    if (exact) {
      this.counters.hits++;
      return exact;
    }
    const norm = normalizeLiterals(sql);
    if (norm !== null) {
      const hit = this.normalized.get(norm);
      if (hit) {
        this.counters.hits++;
        this.counters.normalizedHits++;
        return hit;
      }
    }
    this.counters.misses++;
    const c = classifyUncached(sql);
    if (norm !== null && !c.literalSensitive && c.parseError === undefined) {
      this.normalized.set(norm, c);
    } else this.exact.set(sql, c);
    return c;
  }

  stats(): ClassifierStats {
    return { ...this.counters, entries: this.exact.size + this.normalized.size };
  }

  clear(): void {
    this.exact.clear();
    this.normalized.clear();
    this.counters = { hits: 0, normalizedHits: 0, misses: 0 };
  }
}

const shared = new StatementClassifier();

/** Classifies `sql` through the process-wide cache. Needs `await initPolicyParser()` first. */
export function classify(sql: string): Classification {
  return shared.classify(sql);
}

/** The process-wide classifier (for its stats, or to clear it). */
export function sharedClassifier(): StatementClassifier {
  return shared;
}

/**
 * Replaces each EXECUTE statement with what it runs, looked up by prepared-statement name
 * (the session records the Classification of every PREPARE it let through). The result keeps
 * kind `execute` and adds the prepared statement's kinds, tables, functions and flags; an
 * EXECUTE whose name `lookup` does not know is left as it is.
 */
export function resolveExecute(
  c: Classification,
  lookup: (name: string) => Classification | undefined,
): Classification {
  if (!c.statements.some((s) => s.executeName !== undefined)) return c;
  const statements = c.statements.map((s) => {
    if (s.executeName === undefined) return s;
    const prepared = lookup(s.executeName);
    if (!prepared) return s;
    const acc = new Acc();
    acc.merge(s);
    for (const p of prepared.statements) {
      acc.merge({ ...p, kinds: p.kinds.filter((k) => k !== "prepare") });
    }
    acc.executeName = s.executeName;
    return buildInfo("execute", acc);
  });
  return deepFreeze({ ...c, statements });
}
