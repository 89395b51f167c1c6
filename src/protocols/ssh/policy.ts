import { readSecret } from "../../config/secrets.js";
import { compileMaskingProfile } from "../../policy/masking/index.js";
import { outputMask, type OutputMask } from "../tcp/masking.js";
import {
  RuleSet,
  holdForApproval,
  verdictOf,
  wholeGlob,
  type HoldDeps,
  type HoldOutcome,
  type RuleDecision,
  type Verdict,
} from "../tcp/rules.js";
import type { SshPolicyConfig, SshRule } from "./config.js";

/** What the session may do beyond running commands. */
export interface SshAccess {
  shell: boolean;
  sftp: boolean;
  portForwarding: boolean;
  agentForwarding: boolean;
}

export const DEFAULT_SSH_ACCESS: SshAccess = {
  shell: true,
  sftp: true,
  portForwarding: false,
  agentForwarding: false,
};

/** The session's side of command policy (same contract as the postgres session's). */
export interface SshCommandPolicy {
  /** Synchronous: is this exec request (the whole command line) allowed, blocked or held? */
  decideCommand(command: string): Verdict;
  /**
   * Waits for people on a held command. `notify` shows the client text (on stderr) while it
   * waits; the signal aborts when the client goes away.
   */
  hold(command: string, notify: (text: string) => void, signal: AbortSignal): Promise<HoldOutcome>;
}

type CommandMatch = SshRule["match"];

function compileCommandMatch(m: CommandMatch): (command: string) => boolean {
  const globs = m.command === undefined ? [] : Array.isArray(m.command) ? m.command : [m.command];
  const regexes = m.regex === undefined ? [] : Array.isArray(m.regex) ? m.regex : [m.regex];
  const g = globs.map(wholeGlob);
  const r = regexes.map((x) => new RegExp(x, "u"));
  return (command) => {
    const c = command.trim();
    if (g.length > 0 && !g.some((re) => re.test(c))) return false;
    if (r.length > 0 && !r.some((re) => re.test(c))) return false;
    return true;
  };
}

/** A connection's ssh policy, compiled once and shared by its sessions. */
export class CompiledSshPolicy {
  readonly access: SshAccess;
  readonly rules: RuleSet<CommandMatch, string>;
  /** Null when the policy masks nothing. */
  readonly maskOutput: OutputMask | null;

  constructor(
    cfg: SshPolicyConfig | undefined,
    readonly name: string,
    secrets: (ref: { env: string } | { file: string }, what: string) => string = readSecret,
  ) {
    this.rules = new RuleSet(
      `the ssh policy of ${name}`,
      cfg ?? { default: "allow", rules: [] },
      compileCommandMatch,
    );
    this.access = cfg
      ? {
          shell: cfg.shell === "allow",
          sftp: cfg.sftp === "allow",
          portForwarding: cfg.portForwarding === "allow",
          agentForwarding: cfg.agentForwarding === "allow",
        }
      : DEFAULT_SSH_ACCESS;
    const m = cfg?.mask;
    this.maskOutput = m
      ? outputMask(
          compileMaskingProfile({
            detectors: m.detectors,
            strategy: m.strategy,
            ...(m.hashKey
              ? { hashKey: secrets(m.hashKey, `connections.${name}.policy.mask.hashKey`) }
              : {}),
          }),
        )
      : null;
  }

  decide(command: string): RuleDecision {
    return this.rules.decide(command.trim(), `the command "${command.trim()}"`);
  }

  /** The session hooks, with holds becoming approval requests. */
  forSession(deps: HoldDeps): SshCommandPolicy {
    return {
      decideCommand: (command) => verdictOf(this.decide(command)),
      hold: (command, notify, signal) =>
        holdForApproval(deps, this.decide(command), command, notify, signal),
    };
  }
}

export function compileSshPolicy(
  cfg: SshPolicyConfig | undefined,
  connectionName: string,
): CompiledSshPolicy {
  return new CompiledSshPolicy(cfg, connectionName);
}
