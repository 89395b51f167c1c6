/**
 * The generated configuration reference: the JSON Schema editors validate broker.yaml with
 * (schema/broker-config.schema.json) and the reference section of docs/configuration.md, both
 * made from the one zod schema (./schema.ts), so neither can drift from what the broker accepts.
 *
 * `npm run docs:config` writes them (scripts/gen-config-docs.mjs); test/config/reference.test.ts
 * fails when the committed files differ from what this module makes of the current schema.
 * Nothing here runs in the broker.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { z } from "zod";
import { brokerConfig } from "./schema.js";

/** The committed artefacts, relative to the repository root. */
export const DOC_FILE = "docs/configuration.md";
export const SCHEMA_FILE = "schema/broker-config.schema.json";

/** The generated section of DOC_FILE lies between these (the start marker's text may vary). */
export const GENERATED_START =
  "<!-- generated:start: npm run docs:config writes this section from src/config/schema.ts; edit the schema, not this text -->";
export const GENERATED_END = "<!-- generated:end -->";

/** The subset of JSON Schema (draft-07) that zod emits for the broker config. */
export interface JsonSchema {
  $schema?: string;
  $comment?: string;
  title?: string;
  type?: string | string[];
  description?: string;
  default?: unknown;
  enum?: unknown[];
  const?: unknown;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  propertyNames?: JsonSchema;
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  pattern?: string;
  format?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minItems?: number;
  minLength?: number;
  [keyword: string]: unknown;
}

/**
 * Descriptions for fields whose schema lives outside src/config/schema.ts and carries none yet
 * (`.describe()` there makes the entry here unnecessary: the schema's own text wins). Keyed by
 * reference path.
 */
const FALLBACK_DESCRIPTIONS: Record<string, string> = {
  "notifications.webhooks": "Webhooks posted to, in order, for each approval event.",
  "notifications.webhooks[].name":
    "A name for logs (the URL is never logged: it often holds the secret).",
  "notifications.webhooks[].url":
    "Where to post: an http(s) URL, or a secret holding one (Teams and Slack put their secret in the URL).",
  "notifications.webhooks[].format":
    "The message shape: `generic` (JSON), `teams` (an Adaptive Card) or `slack` (Block Kit).",
  "notifications.webhooks[].events":
    "Which approval events are posted: `created`, `decided`, `expired`, `cancelled`.",
  "notifications.webhooks[].headers":
    "Extra request headers (an Authorization for a relay, say); the values are secrets only.",
  "notifications.webhooks[].includeSql":
    "Put the statement text in the message; `false` for rooms that should not see literals.",
  "notifications.webhooks[].ca": "PEM file of a private CA for a receiver behind one.",
  "notifications.webhooks[].timeoutMs": "Timeout of one delivery attempt, in milliseconds.",
};

// ---------------------------------------------------------------------------------------------
// JSON Schema

/** The pattern of a case-insensitive regex, spelt out for JSON Schema (which has no flags). */
export function caseInsensitivePattern(source: string): string {
  let out = "";
  let inClass = false;
  for (let i = 0; i < source.length; i++) {
    const c = source[i]!;
    if (c === "\\") {
      out += c + (source[i + 1] ?? "");
      i++;
    } else if (inClass) {
      if (c === "]") inClass = false;
      const lower = /[a-z]/.test(c);
      const upper = /[A-Z]/.test(c);
      if ((lower || upper) && source[i + 1] === "-" && /[a-zA-Z]/.test(source[i + 2] ?? "")) {
        const to = source[i + 2]!;
        out += `${c.toLowerCase()}-${to.toLowerCase()}${c.toUpperCase()}-${to.toUpperCase()}`;
        i += 2;
      } else if (lower || upper) {
        out += c.toLowerCase() + c.toUpperCase();
      } else {
        out += c;
      }
    } else if (c === "[") {
      inClass = true;
      out += c;
    } else if (/[a-zA-Z]/.test(c)) {
      out += `[${c.toLowerCase()}${c.toUpperCase()}]`;
    } else {
      out += c;
    }
  }
  return out;
}

interface ZodInternals {
  _zod: {
    def: {
      type: string;
      in?: z.ZodType;
      defaultValue?: unknown;
      checks?: { _zod: { def: { pattern?: unknown } } }[];
    };
  };
}

/** Where zod's JSON Schema would say less than the broker accepts, it is widened to match. */
function override(ctx: { zodSchema: unknown; jsonSchema: object }): void {
  const zs = ctx.zodSchema as z.ZodType & ZodInternals;
  const js = ctx.jsonSchema as JsonSchema;
  const def = zs._zod.def;
  // JSON Schema patterns have no flags: /[a-z]/i becomes [a-zA-Z].
  for (const check of def.checks ?? []) {
    const re = check._zod.def.pattern;
    if (re instanceof RegExp && re.flags.includes("i") && js.pattern === re.source) {
      js.pattern = caseInsensitivePattern(re.source);
    }
  }
  // Input defaults are dropped where a transform sits below them (zod cannot know the input
  // form); a default that is itself valid input and parses to itself is the input default.
  if (def.type === "default" && js.default === undefined) {
    const value = def.defaultValue;
    const parsed = zs.safeParse(undefined);
    if (parsed.success && JSON.stringify(parsed.data) === JSON.stringify(value)) {
      const again = zs.safeParse(value);
      if (again.success && JSON.stringify(again.data) === JSON.stringify(value)) {
        js.default = JSON.parse(JSON.stringify(value)) as unknown;
      }
    }
  }
  // A preprocess that maps null to a value (mask.strategy: YAML null means "null"): say so.
  if (def.type === "pipe" && def.in?._zod.def.type === "transform" && zs.safeParse(null).success) {
    if (js.enum && !js.enum.includes(null)) js.enum = [...js.enum, null];
    if (typeof js.type === "string") js.type = [js.type, "null"];
  }
}

/**
 * Walks `schema` with reference paths (`a.b`, `a[]`, `a.<name>`), parents first; the options of
 * a union share its path. `visit` returning false skips what is below.
 */
function walk(
  schema: JsonSchema,
  path: string,
  visit: (s: JsonSchema, path: string) => boolean | void,
): void {
  if (visit(schema, path) === false) return;
  const at = (key: string) => (path === "" ? key : `${path}.${key}`);
  for (const [key, child] of Object.entries(schema.properties ?? {})) walk(child, at(key), visit);
  if (schema.items) walk(schema.items, `${path}[]`, visit);
  if (typeof schema.additionalProperties === "object") {
    walk(schema.additionalProperties, at("<name>"), visit);
  }
  for (const option of [...(schema.anyOf ?? []), ...(schema.oneOf ?? [])]) {
    walk(option, path, visit);
  }
}

/** The JSON Schema of broker.yaml: what an editor may accept as input (defaults optional). */
export function configJsonSchema(): JsonSchema {
  const generated = z.toJSONSchema(brokerConfig, {
    target: "draft-07",
    io: "input",
    unrepresentable: "throw",
    override,
  }) as JsonSchema;
  const { $schema, ...rest } = generated;
  const schema: JsonSchema = {
    $schema,
    $comment: `Generated from src/config/schema.ts by npm run docs:config: do not edit. Reference: ${DOC_FILE}.`,
    title: "gw broker configuration",
    description:
      "The broker config file (broker.yaml) of gw, the tunnel and session broker: gw broker check --config FILE validates it fully.",
    ...rest,
  };
  const seen = new Set<string>();
  walk(schema, "", (s, path) => {
    const text = FALLBACK_DESCRIPTIONS[path];
    if (text === undefined || seen.has(path)) return;
    seen.add(path);
    s.description ??= text;
  });
  const unknown = Object.keys(FALLBACK_DESCRIPTIONS).filter((p) => !seen.has(p));
  if (unknown.length > 0) {
    throw new Error(
      `config reference: no such fields (FALLBACK_DESCRIPTIONS): ${unknown.join(", ")}`,
    );
  }
  return schema;
}

// ---------------------------------------------------------------------------------------------
// The reference section of docs/configuration.md

/** Friendlier names for the string patterns of the schema; others are shown as they are. */
const PATTERN_NAMES: Record<string, string> = {
  "^(group|role|user|app):.+$": "[principal](#principals)",
  "^(\\[[0-9a-fA-F:]+\\]|[^:\\s]+):\\d{1,5}$": "`host:port`",
  [caseInsensitivePattern("^[a-z0-9][a-z0-9._-]*$")]: "name",
  "^[^.\\s]+\\.[^.\\s]+$": "`schema.table` glob",
  "^[^.\\s]+\\.[^.\\s]+\\.[^.\\s]+$": "`schema.table.column` glob",
  "^[^.\\s()]+$": "function-name glob",
  "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$": "header name",
  "^\\/": "path glob",
};

/** Enumerations longer than this are listed under their table rather than in it. */
const INLINE_ENUM_MAX = 5;

interface Row {
  path: string;
  type: string;
  default: string;
  required: string;
  description: string;
}

interface Section {
  level: number;
  title: string;
  anchor: string;
  text: string[];
  rows: Row[];
  /** Enumerations too long for the type column, listed after the table. */
  notes: string[];
  children: Section[];
  /** The connection type the section belongs to: its heading says so (paths repeat per type). */
  scope?: string;
}

/** GitHub's anchor for an ASCII heading (backticks are not part of the text). */
export function slug(heading: string): string {
  return heading
    .toLowerCase()
    .replace(/[^a-z0-9 _-]/g, "")
    .replace(/ /g, "-");
}

const code = (s: string) => (s.includes("`") ? `\`\` ${s} \`\`` : `\`${s}\``);

function section(level: number, title: string, text: string[] = []): Section {
  return { level, title, anchor: slug(title), text, rows: [], notes: [], children: [] };
}

/** A value as it is written in YAML (flow style). */
const yamlFlow = (v: unknown): string =>
  stringify(v, { collectionStyle: "flow" })
    .trim()
    .replace(/^\[ (.*) \]$/, "[$1]");

const isObject = (s: JsonSchema) => s.type === "object" && s.properties !== undefined;

/** `{ env: VAR } | { file: PATH }`: explained once, in the hand-written part. */
function isSecretRef(s: JsonSchema): boolean {
  const keys = (s.anyOf ?? []).map((o) => Object.keys(o.properties ?? {}).join(","));
  return keys.length === 2 && keys[0] === "env" && keys[1] === "file";
}

/** "string" → "strings", "[principal](#principals)" → "[principals](#principals)". */
function plural(type: string): string {
  const link = /^(.*)\[([^\]]+)\](\(#[^)]+\))$/.exec(type);
  if (link) return `${link[1]}[${link[2]}s]${link[3]}`;
  return /[A-Za-z]$/.test(type) ? `${type}s` : type;
}

/** Prose wrapped at the repository's width, never starting a line with list or heading syntax. */
function wrap(text: string, width = 100): string {
  const lines: string[] = [];
  let line = "";
  // Words, each code span whole: a line break inside one would show as a space.
  for (const word of text.match(/(?:`[^`]*`|[^ `])+/g) ?? []) {
    const blockStart = /^([-+*>#]|\d+[.)])/.test(word);
    if (line !== "" && line.length + 1 + word.length > width && !blockStart) {
      lines.push(line);
      line = word;
    } else {
      line = line === "" ? word : `${line} ${word}`;
    }
  }
  if (line !== "") lines.push(line);
  return lines.join("\n");
}

/** "a", "a or b", "a, b or c". */
function orList(words: string[]): string {
  return words.length <= 1
    ? (words[0] ?? "")
    : `${words.slice(0, -1).join(", ")} or ${words[words.length - 1]}`;
}

function range(s: JsonSchema): string {
  const max =
    s.maximum !== undefined && s.maximum < Number.MAX_SAFE_INTEGER ? s.maximum : undefined;
  if (s.minimum !== undefined && max !== undefined) return ` ${s.minimum}–${max}`;
  const bounds = [
    s.exclusiveMinimum !== undefined ? `> ${s.exclusiveMinimum}` : undefined,
    s.minimum !== undefined ? `≥ ${s.minimum}` : undefined,
    max !== undefined ? `≤ ${max}` : undefined,
  ].filter((b) => b !== undefined);
  return bounds.length > 0 ? ` ${bounds.join(", ")}` : "";
}

/** The fields of the config without a description (the reference would leave them blank). */
export function undescribedFields(schema: JsonSchema = configJsonSchema()): string[] {
  const missing = new Set<string>();
  walk(schema, "", (s, path) => {
    if (isSecretRef(s)) return false;
    for (const [key, child] of Object.entries(s.properties ?? {})) {
      const tag = key === "type" && child.const !== undefined;
      if (!child.description && !tag) missing.add(path === "" ? key : `${path}.${key}`);
    }
    return true;
  });
  return [...missing];
}

class ReferenceWriter {
  /** The type column for `s` at `path`; objects below get sections of their own in `parent`. */
  type(s: JsonSchema, path: string, parent: Section): string {
    if (isSecretRef(s)) return "[secret](#secrets)";
    const options = s.anyOf ?? s.oneOf;
    if (options) {
      if (options.every(isObject)) {
        const forms = this.objectSection(path, options, parent);
        return `object, [one of ${options.length} forms](#${forms.anchor})`;
      }
      return orList(options.map((o) => this.type(o, path, parent)));
    }
    if (s.const !== undefined) return code(yamlFlow(s.const));
    if (s.enum) {
      const values = s.enum.map((v) => code(yamlFlow(v)));
      if (values.length <= INLINE_ENUM_MAX) return orList(values);
      const field = path.replace(/\[\]$/, "");
      parent.notes.push(`The values of ${code(field)}: ${values.join(", ")}.`);
      return `one of the ${values.length} values below`;
    }
    const type = Array.isArray(s.type) ? s.type.join(" or ") : s.type;
    switch (type) {
      case "string":
        if (s.format === "uri") return "URL";
        if (s.pattern) return PATTERN_NAMES[s.pattern] ?? `string matching ${code(s.pattern)}`;
        return "string";
      case "integer":
      case "number":
        return `${type}${range(s)}`;
      case "array": {
        const items = s.items ?? {};
        const item = this.type(items, `${path}[]`, parent);
        const list = `${s.minItems ? "non-empty " : ""}list`;
        if (items.enum && items.enum.length > INLINE_ENUM_MAX) return `${list} of the values below`;
        return `${list} of ${items.enum || items.anyOf ? item : plural(item)}`;
      }
      case "object": {
        if (s.properties) {
          return `[object](#${this.objectSection(path, [s], parent).anchor})`;
        }
        if (typeof s.additionalProperties === "object") {
          const key = PATTERN_NAMES[s.propertyNames?.pattern ?? ""] ?? "key";
          return `map of ${key} to ${this.type(s.additionalProperties, `${path}.<name>`, parent)}`;
        }
        return "object";
      }
      default:
        return type ?? "any";
    }
  }

  row(s: JsonSchema, path: string, required: string, parent: Section): Row {
    return {
      path: code(path),
      type: this.type(s, path, parent),
      default: s.default === undefined ? "" : this.defaultText(s),
      required,
      description:
        s.description ?? (path.endsWith(".type") && s.const !== undefined ? "The type." : ""),
    };
  }

  defaultText(s: JsonSchema): string {
    const v = s.default;
    // `limits` defaults to its fields' defaults: say so rather than print them twice.
    if (v !== null && typeof v === "object" && !Array.isArray(v) && s.properties) {
      const fromFields = Object.fromEntries(
        Object.entries(s.properties)
          .filter(([, p]) => p.default !== undefined)
          .map(([k, p]) => [k, p.default]),
      );
      if (Object.keys(v).length > 0 && JSON.stringify(fromFields) === JSON.stringify(v)) {
        return "its fields' defaults";
      }
    }
    return code(yamlFlow(v));
  }

  /**
   * The section of an object (or of one of several object forms) at `path`, under `parent`;
   * `scope` starts the sections of a connection type.
   */
  objectSection(path: string, forms: JsonSchema[], parent: Section, scope?: string): Section {
    // The top level's children are its peers (### each); anything deeper nests.
    const level = parent.title === TOP_LEVEL ? parent.level : Math.min(parent.level + 1, 6);
    const s = scope
      ? section(level, code(`type: ${scope}`))
      : section(level, parent.scope ? `${code(path)} (${parent.scope})` : code(path));
    s.scope = scope ?? parent.scope;
    parent.children.push(s);
    if (forms.length > 1) {
      const shapes = forms.map((f) => code(`{ ${Object.keys(f.properties ?? {}).join(", ")} }`));
      s.text.push(`Exactly one of these forms: ${orList(shapes)}.`);
    }
    for (const form of forms) {
      for (const [key, child] of Object.entries(form.properties ?? {})) {
        const required =
          forms.length > 1 ? "one of" : (form.required ?? []).includes(key) ? "yes" : "no";
        s.rows.push(this.row(child, `${path}.${key}`, required, s));
      }
    }
    return s;
  }
}

const TOP_LEVEL = "Top level";

function render(s: Section, out: string[]): void {
  out.push(`${"#".repeat(s.level)} ${s.title}`, "");
  for (const t of s.text) out.push(wrap(t), "");
  if (s.rows.length > 0) {
    const cell = (c: string) => c.replace(/\s*\n\s*/g, " ").replace(/\|/g, "\\|");
    out.push("| field | type | default | required | description |", "| - | - | - | - | - |");
    for (const r of s.rows) {
      out.push(
        `| ${[r.path, r.type, r.default, r.required, r.description].map(cell).join(" | ")} |`,
      );
    }
    out.push("");
  }
  for (const n of s.notes) out.push(wrap(n), "");
  for (const c of s.children) render(c, out);
}

/** The options of a map of objects tagged by `type` (`connections`), else undefined. */
function taggedUnion(s: JsonSchema): { tag: string; schema: JsonSchema }[] | undefined {
  if (typeof s.additionalProperties !== "object") return undefined;
  const options = s.additionalProperties.oneOf ?? s.additionalProperties.anyOf;
  const tags = options?.map((o) => (isObject(o) ? o.properties?.["type"]?.const : undefined));
  if (!options || !tags || tags.some((t) => typeof t !== "string")) return undefined;
  return options.map((schema, i) => ({ tag: tags[i] as string, schema }));
}

/** The reference section of docs/configuration.md (markdown, before formatting). */
export function configReference(schema: JsonSchema = configJsonSchema()): string {
  const w = new ReferenceWriter();
  const top = section(3, TOP_LEVEL);
  for (const [key, field] of Object.entries(schema.properties ?? {})) {
    const required = (schema.required ?? []).includes(key) ? "yes" : "no";
    const types = taggedUnion(field);
    if (!types) {
      top.rows.push(w.row(field, key, required, top));
      continue;
    }
    // A map of connections: one section per connection type.
    const links = types.map(({ tag }) => `[${code(tag)}](#${slug(`type: ${tag}`)})`);
    const conns = section(3, code(key), [
      `${field.description ?? ""} A connection's ${code("type")} is one of: ${orList(links)}; each type has the fields below.`.trim(),
    ]);
    top.children.push(conns);
    top.rows.push({
      ...w.row({ ...field, additionalProperties: false }, key, required, top),
      type: `map of name to [connection](#${conns.anchor})`,
    });
    for (const { tag, schema: t } of types) w.objectSection(`${key}.<name>`, [t], conns, tag);
  }
  const out = [
    "## Reference",
    "",
    wrap(
      `Every field, generated from the schema by ${code("npm run docs:config")} (as is ${code(SCHEMA_FILE)}). A field's path is the one ${code("gw broker check")} reports its problems at: ${code("<name>")} stands for a key you choose, ${code("[]")} for each item of a list. A field that is neither required nor defaulted is off, or empty, when left out.`,
    ),
    "",
  ];
  render(top, out);
  const anchors = new Set<string>();
  const check = (s: Section) => {
    if (anchors.has(s.anchor)) throw new Error(`config reference: two sections at #${s.anchor}`);
    anchors.add(s.anchor);
    s.children.forEach(check);
  };
  check(top);
  return out.join("\n");
}

/** `doc` with its generated section replaced by `section`. */
export function spliceGenerated(doc: string, section: string): string {
  const starts = [...doc.matchAll(/<!-- generated:start\b.*?-->/g)];
  const ends = [...doc.matchAll(new RegExp(GENERATED_END, "g"))];
  const start = starts[0];
  const end = ends[0];
  if (starts.length !== 1 || ends.length !== 1 || !start || !end || end.index < start.index) {
    throw new Error(`${DOC_FILE} needs one <!-- generated:start --> ... ${GENERATED_END} pair`);
  }
  return `${doc.slice(0, start.index)}${GENERATED_START}\n\n${section.trim()}\n\n${doc.slice(end.index)}`;
}

/** Formats a file's text as the repository does (prettier, in the script and the test). */
export type Formatter = (text: string, file: string) => Promise<string>;

/** What `npm run docs:config` writes: each file's path (relative to `root`) and content. */
export async function configDocsFiles(
  root: string,
  format: Formatter,
): Promise<{ file: string; content: string }[]> {
  const schema = configJsonSchema();
  const doc = readFileSync(join(root, DOC_FILE), "utf8");
  return [
    {
      file: DOC_FILE,
      content: await format(spliceGenerated(doc, configReference(schema)), join(root, DOC_FILE)),
    },
    {
      file: SCHEMA_FILE,
      content: await format(`${JSON.stringify(schema, null, 2)}\n`, join(root, SCHEMA_FILE)),
    },
  ];
}
