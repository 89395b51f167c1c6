import { Option, type Command } from "commander";
import { loadConfig } from "../../config/load.js";
import { ExitCode, GwError } from "../../errors.js";
import type { Identity } from "../../identity/principal.js";
import { classify, initPolicyParser, type StatementInfo } from "../../policy/classify.js";
import { formatDuration } from "../../policy/duration.js";
import { compileConnectionPolicy, evaluate, type Decision } from "../../policy/policy.js";
import { bold, dim, green, printJson, red, yellow } from "../output.js";

/** Exit codes of `gw policy test --exit-code` (0 is allow; errors keep their usual codes). */
export const PolicyExitCode = { block: 10, hold: 11 } as const;

interface PolicyTestOptions {
  config: string;
  connection: string;
  sql: string;
  as: string[];
  type?: string;
  application?: string;
  agent?: string;
  json?: boolean;
  exitCode?: boolean;
}

const collect = (value: string, previous: string[]) => [...previous, value];

function usage(message: string, hint?: string): GwError {
  return new GwError("usage", message, {
    exitCode: ExitCode.usage,
    ...(hint ? { hint } : {}),
  });
}

/** The identity the statement is tested as, from --as and --type. */
function testIdentity(principals: string[], type: string | undefined): Identity {
  for (const p of principals) {
    if (!/^(group|role|user|app):.+$/.test(p)) {
      throw usage(
        `--as ${p}: expected group:<id>, role:<app role>, user:<oid> or app:<oid>`,
        "Repeat --as for several principals: --as group:<id> --as role:dba",
      );
    }
  }
  if (type !== undefined && type !== "user" && type !== "app") {
    throw usage(`--type ${type}: expected user or app`);
  }
  const subjects = principals.filter((p) => p.startsWith("user:") || p.startsWith("app:"));
  if (subjects.length > 1) {
    throw usage(`one identity has one oid, but --as names ${subjects.join(" and ")}`);
  }
  const subject = subjects[0];
  const subjectType = subject?.startsWith("app:") ? "app" : subject ? "user" : undefined;
  if (type && subjectType && type !== subjectType) {
    throw usage(`--type ${type} contradicts --as ${subject}`);
  }
  const resolvedType = (type ?? subjectType ?? "user") as "user" | "app";
  return {
    oid: subject ? subject.slice(subject.indexOf(":") + 1) : "gw-policy-test",
    tid: undefined,
    name: "gw policy test",
    upn: undefined,
    type: resolvedType,
    groups: principals.filter((p) => p.startsWith("group:")).map((p) => p.slice(6)),
    roles: principals.filter((p) => p.startsWith("role:")).map((p) => p.slice(5)),
    expiresAt: 0,
  };
}

function statementJson(s: StatementInfo) {
  return {
    kind: s.kind,
    kinds: s.kinds,
    tables: s.tables,
    functions: s.functions,
    whereAbsent: s.whereAbsent,
    readOnlyEscape: s.readOnlyEscape,
    readOnlyEscapeReasons: s.readOnlyEscapeReasons,
    lexerChange: s.lexerChange,
    program: s.program,
    serverFile: s.serverFile,
    dynamicSql: s.dynamicSql,
    ...(s.prepareName !== undefined ? { prepareName: s.prepareName } : {}),
    ...(s.executeName !== undefined ? { executeName: s.executeName } : {}),
  };
}

function paintAction(d: Decision): string {
  const text = d.action.toUpperCase();
  return d.action === "allow" ? green(text) : d.action === "hold" ? yellow(text) : red(text);
}

const list = (xs: readonly string[]) => (xs.length > 0 ? xs.join(", ") : "-");

export function registerPolicy(program: Command): void {
  const policy = program
    .command("policy")
    .description("Check statements against the broker's policies, offline");
  policy
    .command("test")
    .description(
      "Show what a connection's policy decides for a SQL text, why, and how the SQL was read",
    )
    .requiredOption("-c, --config <file>", "broker config (YAML)")
    .requiredOption("--connection <name>", "the connection whose policy applies")
    .requiredOption("--sql <text>", "the SQL text (several statements allowed)")
    .addOption(
      new Option(
        "--as <principal>",
        "a principal of the tester: group:, role:, user:, app: (repeatable)",
      )
        .argParser(collect)
        .default([], "none"),
    )
    .option("--type <type>", "user or app (default: from --as user:/app:, else user)")
    .option("--application <name>", "the client's application_name")
    .option("--agent <label>", "the agent label of the session")
    .option("--json", "print the result as JSON")
    .option(
      "--exit-code",
      `exit ${PolicyExitCode.block} when the decision is block, ${PolicyExitCode.hold} when it is hold`,
    )
    .addHelpText(
      "after",
      `
Exit status: 0 whatever the decision (with --exit-code: 0 allow, ${PolicyExitCode.block} block, ${PolicyExitCode.hold} hold);
2 usage, 3 config problems.

Examples:
  gw policy test -c broker.yaml --connection db-prod --sql "DELETE FROM orders"
  gw policy test -c broker.yaml --connection db-prod --as group:<id> --application psql \\
    --sql "UPDATE customers SET email = NULL" --json
  gw policy test -c broker.yaml --connection db-prod --sql "$(cat script.sql)" --exit-code`,
    )
    .action(async (opts: PolicyTestOptions) => {
      const identity = testIdentity(opts.as, opts.type);
      const { config } = loadConfig(opts.config);
      const compiled = compileConnectionPolicy(config, opts.connection);
      await initPolicyParser();
      const classification = classify(opts.sql);
      const ctx = { identity, applicationName: opts.application, agentLabel: opts.agent };
      const decision = evaluate(compiled, classification, ctx);

      if (opts.json) {
        printJson({
          connection: opts.connection,
          policy: compiled.name,
          decision,
          classification: {
            statements: classification.statements.map(statementJson),
            ...(classification.parseError !== undefined
              ? { parseError: classification.parseError }
              : {}),
          },
          mask: compiled.mask ?? null,
        });
      } else {
        const out: string[] = [];
        out.push(`${bold("decision:")}   ${paintAction(decision)}`);
        out.push(`${bold("reason:")}     ${decision.reason}`);
        if (decision.rule) {
          const r = decision.rule;
          out.push(
            `${bold("rule:")}       rules[${r.index}]${r.name ? ` (${r.name})` : ""}: ${r.matchText}`,
          );
        } else out.push(`${bold("rule:")}       ${dim(`none (${decision.source})`)}`);
        if (decision.action === "hold") {
          out.push(
            `${bold("approval:")}   ${decision.minApprovals} approval${decision.minApprovals === 1 ? "" : "s"} from ${decision.approvers.join(", ")}, within ${formatDuration(decision.timeoutMs)}`,
          );
        }
        out.push(
          `${bold("policy:")}     ${compiled.name} on connection ${opts.connection}${decision.readOnly ? " (read-only session)" : ""}`,
        );
        if (classification.parseError !== undefined) {
          out.push(`${bold("parse error:")} ${classification.parseError}`);
        }
        classification.statements.forEach((s, i) => {
          const d = decision.statements[i];
          const flags = [
            s.whereAbsent ? "no WHERE" : "",
            s.program ? "PROGRAM" : "",
            s.serverFile ? "server file" : "",
            s.dynamicSql ? "dynamic SQL" : "",
            s.prepareName !== undefined ? `prepares ${s.prepareName}` : "",
            s.executeName !== undefined ? `executes ${s.executeName}` : "",
          ].filter(Boolean);
          out.push(`${bold(`statement ${i + 1}:`)} ${s.kind}${d ? ` -> ${d.action}` : ""}`);
          out.push(`  kinds:      ${list(s.kinds)}`);
          out.push(`  tables:     ${list(s.tables)}`);
          out.push(`  functions:  ${list(s.functions)}`);
          if (flags.length > 0) out.push(`  flags:      ${flags.join(", ")}`);
          if (s.readOnlyEscape) {
            out.push(`  read-only escape: ${s.readOnlyEscapeReasons.join("; ")}`);
          }
          if (s.lexerChange.length > 0) out.push(`  syntax change: ${s.lexerChange.join("; ")}`);
          if (d && d.rule && classification.statements.length > 1) {
            out.push(
              `  rule:       rules[${d.rule.index}]${d.rule.name ? ` (${d.rule.name})` : ""}`,
            );
          }
        });
        const m = compiled.mask;
        out.push(
          m
            ? `${bold("masking:")}    strategy ${m.strategy}; columns ${list(m.columns)}; detectors ${list(m.detectors)}${m.hashKey ? `; hashKey from ${"env" in m.hashKey ? `env ${m.hashKey.env}` : `file ${m.hashKey.file}`}` : ""}`
            : `${bold("masking:")}    ${dim("none")}`,
        );
        process.stdout.write(out.join("\n") + "\n");
      }
      if (opts.exitCode && decision.action !== "allow") {
        process.exitCode = PolicyExitCode[decision.action];
      }
    });
}
