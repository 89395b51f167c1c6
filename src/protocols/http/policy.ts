import { readSecret } from "../../config/secrets.js";
import {
  compileMaskingProfile,
  type DetectorName,
  type MaskingProfile,
} from "../../policy/masking/index.js";
import { maskString } from "../../policy/masking/strategies.js";
import { outputMask, type OutputMask } from "../tcp/masking.js";
import {
  RuleSet,
  holdForApproval,
  verdictOf,
  type HoldDeps,
  type HoldOutcome,
  type RuleDecision,
  type Verdict,
} from "../tcp/rules.js";
import type { HttpPolicyConfig, HttpRule } from "./config.js";
import { compileJsonPath, maskJsonText, type JsonPath } from "./json-mask.js";
import { normaliseTarget } from "./paths.js";

/** What a rule sees of a request. */
export interface HttpRequestInfo {
  method: string;
  /** The path the target receives (normalised, decoded), without the query. */
  path: string;
}

/** The session's side of request policy. */
export interface HttpRequestPolicy {
  decideRequest(req: HttpRequestInfo): Verdict;
  /**
   * Waits for people on a held request. `text` is what approvers see and approve: the first
   * line is "METHOD /path?query", then (after a blank line) the body when there is one.
   */
  hold(text: string, notify: (text: string) => void, signal: AbortSignal): Promise<HoldOutcome>;
}

/** Path globs: `*` within a segment, `**` across segments, `?` one character. */
export function pathGlob(pattern: string): RegExp {
  let src = "";
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]!;
    if (ch === "*" && pattern[i + 1] === "*") {
      // "/x/**" also matches "/x" itself.
      if (src.endsWith("\\/") && i + 2 === pattern.length) src = src.slice(0, -2) + "(?:/.*)?";
      else src += ".*";
      i++;
    } else if (ch === "*") src += "[^/]*";
    else if (ch === "?") src += "[^/]";
    else src += ch.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
  }
  return new RegExp(`^${src}$`, "u");
}

type HttpMatch = HttpRule["match"];

function compileHttpMatch(m: HttpMatch): (r: HttpRequestInfo) => boolean {
  const methods =
    m.method === undefined ? null : new Set(Array.isArray(m.method) ? m.method : [m.method]);
  const paths =
    m.path === undefined ? [] : (Array.isArray(m.path) ? m.path : [m.path]).map(pathGlob);
  return (r) =>
    (methods === null || methods.has(r.method.toUpperCase())) &&
    (paths.length === 0 || paths.some((p) => p.test(r.path)));
}

/**
 * Masking of response bodies: JSON by field paths and detectors, text by detectors.
 */
export class HttpMasking {
  readonly paths: JsonPath[];
  readonly profile: MaskingProfile;
  readonly maxBodyBytes: number;
  readonly text: OutputMask;

  constructor(opts: {
    json?: readonly string[];
    detectors?: readonly DetectorName[];
    strategy?: "redact" | "last4" | "hash";
    hashKey?: string;
    maxBodyBytes?: number;
  }) {
    this.paths = (opts.json ?? []).map(compileJsonPath);
    this.profile = compileMaskingProfile({
      detectors: opts.detectors ?? [],
      strategy: opts.strategy ?? "redact",
      ...(opts.hashKey !== undefined ? { hashKey: opts.hashKey } : {}),
    });
    this.maxBodyBytes = opts.maxBodyBytes ?? 10 * 1024 * 1024;
    this.text = outputMask(this.profile);
  }

  /** JSON bodies need masking (paths or detectors). */
  get json(): boolean {
    return this.paths.length > 0 || !this.profile.detectors.empty;
  }

  /** Text bodies need masking (detectors). */
  get detectors(): boolean {
    return !this.profile.detectors.empty;
  }

  /** The masked document, or null when nothing changed; throws on text that is not JSON. */
  maskJson(text: string): string | null {
    const strategy = this.profile.strategy === "null" ? "redact" : this.profile.strategy;
    const hasher = this.profile.hasher;
    return maskJsonText(text, {
      paths: this.paths,
      maskValue: (v) => {
        const bytes = Buffer.from(v, "utf8").toString("latin1");
        return Buffer.from(maskString(strategy, null, bytes, hasher), "latin1").toString("utf8");
      },
      detect: this.detectors
        ? (v) => {
            const m = this.profile.maskUnicodeText(v);
            return m === v ? null : m;
          }
        : null,
    });
  }
}

/** A connection's http policy, compiled once and shared by its sessions. */
export class CompiledHttpPolicy {
  readonly rules: RuleSet<HttpMatch, HttpRequestInfo>;
  readonly masking: HttpMasking | null;
  readonly websocket: boolean;
  readonly recordBodyBytes: number;

  constructor(
    cfg: HttpPolicyConfig | undefined,
    readonly name: string,
    secrets: (ref: { env: string } | { file: string }, what: string) => string = readSecret,
  ) {
    this.rules = new RuleSet(
      `the http policy of ${name}`,
      cfg ?? { default: "allow", rules: [] },
      compileHttpMatch,
    );
    const m = cfg?.mask;
    const masking = m
      ? new HttpMasking({
          json: m.json,
          detectors: m.detectors,
          strategy: m.strategy,
          maxBodyBytes: m.maxBodyBytes,
          ...(m.hashKey
            ? { hashKey: secrets(m.hashKey, `connections.${name}.policy.mask.hashKey`) }
            : {}),
        })
      : null;
    this.masking = masking && masking.json ? masking : null;
    this.websocket = cfg?.websocket ? cfg.websocket === "allow" : this.masking === null;
    this.recordBodyBytes = cfg?.recordBodyBytes ?? 64 * 1024;
  }

  decide(req: HttpRequestInfo): RuleDecision {
    return this.rules.decide(req, `${req.method} ${req.path}`);
  }

  /** The session hooks, with holds becoming approval requests. */
  forSession(deps: HoldDeps): HttpRequestPolicy {
    return {
      decideRequest: (req) => verdictOf(this.decide(req)),
      hold: (text, notify, signal) => {
        const req = requestOfHoldText(text);
        return holdForApproval(deps, this.decide(req), text, notify, signal);
      },
    };
  }
}

/** The request a hold text ("METHOD /path?query\n\nbody") is about. */
export function requestOfHoldText(text: string): HttpRequestInfo {
  const first = text.split("\n", 1)[0] ?? "";
  const sp = first.indexOf(" ");
  const method = first.slice(0, sp);
  const target = normaliseTarget(first.slice(sp + 1));
  return { method, path: target?.path ?? first.slice(sp + 1) };
}
