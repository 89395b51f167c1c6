/**
 * Masking JSON documents by field path and by detectors, by editing the original text: only
 * the masked values change, so number precision, key order and formatting survive (a parse
 * and re-serialise would round big integers). The parser is strict RFC 8259; anything else
 * throws (and the caller fails closed).
 *
 * Paths are JSONPath-ish: `$` the root, `.name` or `['name']` a member, `[3]` an element,
 * `[*]` or `.*` every element or member, `..name` (or `..*`) at any depth below.
 */

export type JsonNode =
  | { kind: "object"; start: number; end: number; entries: { key: string; value: JsonNode }[] }
  | { kind: "array"; start: number; end: number; items: JsonNode[] }
  | { kind: "string"; start: number; end: number; value: string }
  | { kind: "scalar"; start: number; end: number; text: string };

export class JsonSyntaxError extends Error {}

const MAX_DEPTH = 512;

export function parseJson(text: string): JsonNode {
  let i = 0;
  const n = text.length;
  const ws = () => {
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) i++;
      else break;
    }
  };
  const fail = (what: string): never => {
    throw new JsonSyntaxError(`invalid JSON at offset ${i}: ${what}`);
  };
  const str = (): { value: string; start: number; end: number } => {
    const start = i;
    if (text[i] !== '"') fail("expected a string");
    i++;
    let out = "";
    let run = i;
    for (;;) {
      if (i >= n) fail("unterminated string");
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        out += text.slice(run, i);
        i++;
        return { value: out, start, end: i };
      }
      if (c < 0x20) fail("control character in a string");
      if (c === 0x5c) {
        out += text.slice(run, i);
        const e = text[i + 1];
        i += 2;
        switch (e) {
          case '"':
            out += '"';
            break;
          case "\\":
            out += "\\";
            break;
          case "/":
            out += "/";
            break;
          case "b":
            out += "\b";
            break;
          case "f":
            out += "\f";
            break;
          case "n":
            out += "\n";
            break;
          case "r":
            out += "\r";
            break;
          case "t":
            out += "\t";
            break;
          case "u": {
            const hex = text.slice(i, i + 4);
            if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail("bad \\u escape");
            out += String.fromCharCode(parseInt(hex, 16));
            i += 4;
            break;
          }
          default:
            fail("bad escape");
        }
        run = i;
        continue;
      }
      i++;
    }
  };
  const value = (depth: number): JsonNode => {
    if (depth > MAX_DEPTH) fail("nested too deeply");
    ws();
    const start = i;
    const c = text[i];
    if (c === "{") {
      i++;
      const entries: { key: string; value: JsonNode }[] = [];
      ws();
      if (text[i] === "}") {
        i++;
        return { kind: "object", start, end: i, entries };
      }
      for (;;) {
        ws();
        const k = str();
        ws();
        if (text[i] !== ":") fail("expected ':'");
        i++;
        entries.push({ key: k.value, value: value(depth + 1) });
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "}") {
          i++;
          return { kind: "object", start, end: i, entries };
        }
        fail("expected ',' or '}'");
      }
    }
    if (c === "[") {
      i++;
      const items: JsonNode[] = [];
      ws();
      if (text[i] === "]") {
        i++;
        return { kind: "array", start, end: i, items };
      }
      for (;;) {
        items.push(value(depth + 1));
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "]") {
          i++;
          return { kind: "array", start, end: i, items };
        }
        fail("expected ',' or ']'");
      }
    }
    if (c === '"') {
      const s = str();
      return { kind: "string", start: s.start, end: s.end, value: s.value };
    }
    for (const lit of ["true", "false", "null"]) {
      if (text.startsWith(lit, i)) {
        i += lit.length;
        return { kind: "scalar", start, end: i, text: lit };
      }
    }
    const m = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/.exec(text.slice(i, i + 400));
    if (!m) fail("unexpected character");
    i += m![0].length;
    return { kind: "scalar", start, end: i, text: m![0] };
  };
  const root = value(0);
  ws();
  if (i !== n) fail("trailing characters");
  return root;
}

// --- paths -------------------------------------------------------------------------------

type Step =
  | { t: "member"; name: string; deep: boolean }
  | { t: "any"; deep: boolean }
  | { t: "index"; n: number };

export interface JsonPath {
  source: string;
  steps: Step[];
}

export function compileJsonPath(source: string): JsonPath {
  const s = source.trim();
  if (!s.startsWith("$")) throw new Error(`a JSON path starts with $ (got "${source}")`);
  const steps: Step[] = [];
  let i = 1;
  const bad = (why: string): never => {
    throw new Error(`invalid JSON path "${source}": ${why}`);
  };
  while (i < s.length) {
    if (s.startsWith("..", i)) {
      i += 2;
      if (s[i] === "*") {
        steps.push({ t: "any", deep: true });
        i++;
      } else if (s[i] === "[") {
        const b = bracket();
        if (b.t === "index") bad("..[n] is not supported");
        steps.push({ ...b, deep: true } as Step);
      } else {
        const name = ident();
        steps.push({ t: "member", name, deep: true });
      }
    } else if (s[i] === ".") {
      i++;
      if (s[i] === "*") {
        steps.push({ t: "any", deep: false });
        i++;
      } else steps.push({ t: "member", name: ident(), deep: false });
    } else if (s[i] === "[") {
      steps.push(bracket());
    } else bad(`unexpected "${s[i]}" at ${i}`);
  }
  if (steps.length === 0) bad("it names the whole document; name fields");
  return { source, steps };

  function ident(): string {
    const m = /^[^.[\]\s]+/.exec(s.slice(i));
    if (!m) bad(`expected a field name at ${i}`);
    i += m![0].length;
    return m![0];
  }
  function bracket(): Step {
    const close = s.indexOf("]", i);
    if (close < 0) bad("unclosed [");
    const inner = s.slice(i + 1, close).trim();
    i = close + 1;
    if (inner === "*") return { t: "any", deep: false };
    if (/^\d+$/.test(inner)) return { t: "index", n: Number(inner) };
    const q = /^(['"])(.*)\1$/.exec(inner);
    if (q) return { t: "member", name: q[2]!, deep: false };
    return bad(`unsupported selector [${inner}]`);
  }
}

function children(node: JsonNode): JsonNode[] {
  if (node.kind === "object") return node.entries.map((e) => e.value);
  if (node.kind === "array") return node.items;
  return [];
}

function descendantsOrSelf(node: JsonNode, out: JsonNode[]): void {
  out.push(node);
  for (const c of children(node)) descendantsOrSelf(c, out);
}

export function selectPath(root: JsonNode, path: JsonPath): JsonNode[] {
  let current: JsonNode[] = [root];
  for (const step of path.steps) {
    const next: JsonNode[] = [];
    let bases = current;
    if ("deep" in step && step.deep) {
      bases = [];
      for (const c of current) descendantsOrSelf(c, bases);
    }
    for (const node of bases) {
      if (step.t === "member") {
        if (node.kind === "object")
          for (const e of node.entries) if (e.key === step.name) next.push(e.value);
      } else if (step.t === "any") next.push(...children(node));
      else if (node.kind === "array" && step.n < node.items.length) next.push(node.items[step.n]!);
    }
    current = next;
  }
  return current;
}

// --- masking -----------------------------------------------------------------------------

export interface JsonMaskOptions {
  paths: readonly JsonPath[];
  /** Replaces a whole value matched by a path: its text (a string's value, else its JSON). */
  maskValue: (text: string) => string;
  /** Detectors over a string value; null when nothing was found. */
  detect: ((value: string) => string | null) | null;
}

/**
 * The masked document text, or null when nothing changed. Throws JsonSyntaxError on text that
 * is not JSON.
 */
export function maskJsonText(text: string, o: JsonMaskOptions): string | null {
  const root = parseJson(text);
  const edits: { start: number; end: number; text: string }[] = [];
  const covered: { start: number; end: number }[] = [];
  for (const p of o.paths) {
    for (const node of selectPath(root, p)) {
      covered.push({ start: node.start, end: node.end });
      const raw = node.kind === "string" ? node.value : text.slice(node.start, node.end);
      if (node.kind === "scalar" && node.text === "null") continue; // nothing to hide
      edits.push({ start: node.start, end: node.end, text: JSON.stringify(o.maskValue(raw)) });
    }
  }
  if (o.detect) {
    const isCovered = (n: JsonNode) => covered.some((c) => n.start >= c.start && n.end <= c.end);
    const walk = (node: JsonNode) => {
      if (isCovered(node)) return;
      if (node.kind === "string") {
        const m = o.detect!(node.value);
        if (m !== null) edits.push({ start: node.start, end: node.end, text: JSON.stringify(m) });
        return;
      }
      for (const c of children(node)) walk(c);
    };
    walk(root);
  }
  if (edits.length === 0) return null;
  // Outermost edits win; nested ones (a path inside a path) are dropped.
  edits.sort((a, b) => a.start - b.start || b.end - a.end);
  let out = "";
  let pos = 0;
  for (const e of edits) {
    if (e.start < pos) continue;
    out += text.slice(pos, e.start) + e.text;
    pos = e.end;
  }
  return out + text.slice(pos);
}
