import { z } from "zod";
import { MASK_DETECTORS, MASK_STRATEGIES } from "../../policy/kinds.js";
import {
  allowDeny,
  checkHoldRules,
  duration,
  listOf,
  policyAction,
  principal,
  secretRef,
} from "../tcp/config.js";

/**
 * `type: ssh` connections (docs/ssh-http.md). The broker terminates SSH from the client
 * (accepting whatever authentication it offers: the tunnel already carries the identity) and
 * opens its own SSH connection to the target with the stored credential, verifying the
 * target's host key against known_hosts.
 */
export const sshTarget = z
  .object({
    host: z.string().min(1),
    port: z.number().int().min(1).max(65535).default(22),
    user: z.string().min(1),
    /** An OpenSSH/PEM private key (the secret is the key file's text). */
    privateKey: secretRef.optional(),
    passphrase: secretRef.optional(),
    password: secretRef.optional(),
    /** OpenSSH known_hosts file listing the target's host key; unknown or changed keys are refused. */
    knownHosts: z.string().min(1),
    /** Seconds to wait for the target's SSH handshake and sign-in. */
    connectTimeout: z.number().positive().default(10),
  })
  .strict()
  .refine((t) => t.privateKey !== undefined || t.password !== undefined, {
    message: "an ssh target needs privateKey or password",
    path: ["privateKey"],
  })
  .refine((t) => t.passphrase === undefined || t.privateKey !== undefined, {
    message: "passphrase is for privateKey; give privateKey too",
    path: ["passphrase"],
  });
export type SshTargetConfig = z.infer<typeof sshTarget>;

const commandRuleMatch = z
  .object({
    /**
     * Globs over the whole command line (`*` any run of characters, `?` one), trimmed:
     * "rm -rf *", "sudo *", "*shutdown*". A command matches when any glob does.
     */
    command: z.union([z.string().min(1), listOf(z.string().min(1))]).optional(),
    /** JavaScript regular expressions, for what globs cannot say; any match matches. */
    regex: z
      .union([z.string().min(1), listOf(z.string().min(1))])
      .optional()
      .refine(
        (r) =>
          r === undefined ||
          (Array.isArray(r) ? r : [r]).every((x) => {
            try {
              new RegExp(x);
              return true;
            } catch {
              return false;
            }
          }),
        { message: "not a valid regular expression" },
      ),
  })
  .strict();

export const sshRule = z
  .object({
    name: z.string().min(1).optional(),
    /** All given matchers must match; no matchers match every command. */
    match: commandRuleMatch.default({}),
    action: policyAction,
    reason: z.string().min(1).optional(),
    approvers: listOf(principal).optional(),
    minApprovals: z.number().int().min(1).optional(),
    timeout: duration.optional(),
  })
  .strict();
export type SshRule = z.infer<typeof sshRule>;

export const sshMask = z
  .object({
    /** Detectors run over terminal and command output before it reaches the client. */
    detectors: z
      .array(z.enum(MASK_DETECTORS, { error: `expected one of: ${MASK_DETECTORS.join(", ")}` }))
      .min(1, "name at least one detector"),
    strategy: z
      .enum(MASK_STRATEGIES.filter((s) => s !== "null") as ["redact", "last4", "hash"], {
        error: "expected redact, last4 or hash (output has no NULL)",
      })
      .default("redact"),
    hashKey: secretRef.optional(),
  })
  .strict()
  .refine((m) => m.strategy !== "hash" || m.hashKey !== undefined, {
    message: "strategy hash needs a hashKey ({ env: VAR } or { file: PATH })",
    path: ["hashKey"],
  });

/**
 * What an ssh connection allows. Commands (exec requests, including `scp -t/-f`) go through
 * the rules; an interactive shell is one decision (`shell`), since what is typed into it is
 * not a command the broker can know.
 */
export const sshPolicyConfig = z
  .object({
    description: z.string().optional(),
    /** The action for commands no rule matches. */
    default: policyAction.default("allow"),
    approvers: listOf(principal).optional(),
    minApprovals: z.number().int().min(1).optional(),
    timeout: duration.optional(),
    rules: z.array(sshRule).default([]),
    /** Interactive shells (with or without a pty). */
    shell: allowDeny.default("allow"),
    /** File transfer: the sftp subsystem and legacy scp (exec "scp -t" / "scp -f"). */
    sftp: allowDeny.default("allow"),
    /** Local (-L, direct-tcpip) and remote (-R, tcpip-forward) port forwarding. */
    portForwarding: allowDeny.default("deny"),
    /** Forwarding the client's ssh-agent to the target (-A). */
    agentForwarding: allowDeny.default("deny"),
    mask: sshMask.optional(),
  })
  .strict()
  .superRefine(checkHoldRules);
export type SshPolicyConfig = z.infer<typeof sshPolicyConfig>;

export const sshConnection = z
  .object({
    type: z.literal("ssh"),
    description: z.string().optional(),
    target: sshTarget,
    allow: z.array(principal).min(1, "a connection must allow someone"),
    /** Inline: ssh policies speak of commands, not statements. */
    policy: sshPolicyConfig.optional(),
  })
  .strict();
export type SshConnectionConfig = z.infer<typeof sshConnection>;
