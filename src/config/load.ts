import { readFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { isIP } from "node:net";
import { parseDocument } from "yaml";
import type { z } from "zod";
import { ExitCode, GwError } from "../errors.js";
import { brokerConfig, type BrokerConfig } from "./schema.js";
import type { SecretRef } from "./refs.js";
import { validateTcpPolicy } from "../protocols/tcp/config.js";

export interface ConfigProblem {
  /** Dotted path into the YAML, e.g. `connections.db-prod.target.port`. */
  path: string;
  message: string;
}

export class ConfigError extends GwError {
  readonly problems: ConfigProblem[];
  readonly file: string;
  constructor(file: string, problems: ConfigProblem[]) {
    const lines = problems.map((p) => `  ${p.path || "(top level)"}: ${p.message}`).join("\n");
    super(
      "config_invalid",
      `${file} has ${problems.length} problem${problems.length === 1 ? "" : "s"}:\n${lines}`,
      {
        exitCode: ExitCode.config,
        hint: "Fix them and run `gw broker check --config FILE` again.",
      },
    );
    this.problems = problems;
    this.file = file;
  }
}

export interface LoadedConfig {
  file: string;
  config: BrokerConfig;
}

function formatPath(path: readonly PropertyKey[]): string {
  return path.map((p) => String(p)).join(".");
}

/** The value at `path` in the parsed YAML; undefined when any step of it is absent. */
function valueAt(raw: unknown, path: readonly PropertyKey[]): unknown {
  let v = raw;
  for (const k of path) {
    if (v === null || typeof v !== "object" || !Object.hasOwn(v, k)) return undefined;
    v = (v as Record<PropertyKey, unknown>)[k];
  }
  return v;
}

function zodProblems(error: z.ZodError, raw: unknown): ConfigProblem[] {
  return error.issues.map((issue) => {
    // For a missing field zod says "Invalid input" (unions) or "expected string, received
    // undefined"; say plainly that the field is required.
    const missing =
      (issue.code === "invalid_type" || issue.code === "invalid_union") &&
      issue.path.length > 0 &&
      valueAt(raw, issue.path) === undefined;
    return {
      path: formatPath(issue.path),
      message: missing ? "required, but missing" : issue.message,
    };
  });
}

/** Checks the schema cannot express: they need to look at several fields together. */
function crossChecks(cfg: BrokerConfig): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const host = cfg.listen.replace(/:\d+$/, "").replace(/^\[|\]$/g, "");
  const loopback =
    host === "localhost" || host === "::1" || (isIP(host) === 4 && host.startsWith("127."));
  if (!cfg.tls && !loopback) {
    problems.push({
      path: "tls",
      message: `plain HTTP is only allowed on loopback, but listen is ${cfg.listen}; add tls: { cert, key }`,
    });
  }
  // Replicas share a store; each would make its own key, and clients pinning one would
  // refuse the others (ssh) or seals would not verify after a restart (audit).
  if ("postgres" in cfg.store) {
    if (!cfg.signingKey)
      problems.push({
        path: "signingKey",
        message:
          "store.postgres needs signingKey.file: every broker replica must sign with the same audit key",
      });
    if (!cfg.sshHostKey && Object.values(cfg.connections).some((c) => c.type === "ssh"))
      problems.push({
        path: "sshHostKey",
        message:
          "store.postgres with ssh connections needs sshHostKey.file: every broker replica must present the same ssh host key",
      });
  }
  const policyNames = Object.keys(cfg.policies);
  for (const [name, conn] of Object.entries(cfg.connections)) {
    // ssh and http policies are written inline; postgres and tcp name one.
    if (conn.type !== "postgres" && conn.type !== "tcp") continue;
    if (
      conn.type === "tcp" &&
      conn.policy !== undefined &&
      Object.hasOwn(cfg.policies, conn.policy)
    ) {
      // Fail closed: a rule or mask the broker cannot apply to opaque bytes is an error.
      const why = validateTcpPolicy(cfg.policies[conn.policy]);
      if (why) problems.push({ path: `connections.${name}.policy`, message: why });
    }
    if (conn.policy !== undefined && !Object.hasOwn(cfg.policies, conn.policy)) {
      problems.push({
        path: `connections.${name}.policy`,
        message:
          policyNames.length === 0
            ? `no policy named "${conn.policy}": the config has no policies section`
            : `no policy named "${conn.policy}"; the policies are: ${policyNames.join(", ")}`,
      });
    }
  }
  return problems;
}

function resolvePaths(cfg: BrokerConfig, baseDir: string): BrokerConfig {
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(baseDir, p));
  if (cfg.tls) cfg.tls = { cert: abs(cfg.tls.cert), key: abs(cfg.tls.key) };
  if (cfg.identity.ca) cfg.identity.ca = abs(cfg.identity.ca);
  if ("sqlite" in cfg.store && cfg.store.sqlite !== ":memory:")
    cfg.store = { sqlite: abs(cfg.store.sqlite) };
  const ref = <T extends SecretRef | undefined>(r: T): T =>
    (r && "file" in r ? { file: abs(r.file) } : r) as T;
  if ("postgres" in cfg.store && typeof cfg.store.postgres !== "string")
    cfg.store = { ...cfg.store, postgres: ref(cfg.store.postgres) };
  if (cfg.signingKey) cfg.signingKey = { file: abs(cfg.signingKey.file) };
  if (cfg.sshHostKey) cfg.sshHostKey = { file: abs(cfg.sshHostKey.file) };
  for (const conn of Object.values(cfg.connections)) {
    switch (conn.type) {
      case "postgres":
        if (conn.target.ca) conn.target.ca = abs(conn.target.ca);
        conn.target.password = ref(conn.target.password);
        break;
      case "ssh":
        conn.target.knownHosts = abs(conn.target.knownHosts);
        conn.target.privateKey = ref(conn.target.privateKey);
        conn.target.passphrase = ref(conn.target.passphrase);
        conn.target.password = ref(conn.target.password);
        break;
      case "http": {
        const t = conn.target;
        if (t.ca) t.ca = abs(t.ca);
        if (t.clientCert)
          t.clientCert = { cert: abs(t.clientCert.cert), key: abs(t.clientCert.key) };
        t.bearer = ref(t.bearer);
        if (t.basic) t.basic = { ...t.basic, password: ref(t.basic.password) };
        if (t.headers)
          t.headers = Object.fromEntries(Object.entries(t.headers).map(([h, r]) => [h, ref(r)]));
        break;
      }
      case "tcp":
        break;
    }
  }
  for (const policy of Object.values(cfg.policies)) {
    if (policy.mask?.hashKey && "file" in policy.mask.hashKey) {
      policy.mask.hashKey = { file: abs(policy.mask.hashKey.file) };
    }
  }
  return cfg;
}

/** Parses and validates YAML text; every problem is reported at once, with its path. */
export function parseConfig(text: string, file = "broker.yaml"): BrokerConfig {
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      file,
      doc.errors.map((e) => ({
        path: e.linePos?.[0] ? `line ${e.linePos[0].line}` : "",
        message: e.message.split("\n")[0] ?? e.message,
      })),
    );
  }
  const raw: unknown = doc.toJS() ?? {};
  const parsed = brokerConfig.safeParse(raw);
  if (!parsed.success) throw new ConfigError(file, zodProblems(parsed.error, raw));
  const cross = crossChecks(parsed.data);
  if (cross.length > 0) throw new ConfigError(file, cross);
  return resolvePaths(parsed.data, dirname(resolve(file)));
}

export function loadConfig(file: string): LoadedConfig {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new GwError(
      "config_unreadable",
      `Cannot read the broker config ${file}: ${(err as Error).message}`,
      {
        exitCode: ExitCode.config,
        hint: "Pass an existing file with --config.",
      },
    );
  }
  return { file, config: parseConfig(text, file) };
}
