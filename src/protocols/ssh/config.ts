import { z } from "zod";
import { MASK_DETECTORS, MASK_STRATEGIES } from "../../policy/kinds.js";
import {
  allowDeny,
  checkHoldRules,
  holdDefaultFields,
  holdRuleFields,
  listOf,
  policyAction,
  principal,
  secretRef,
} from "../tcp/config.js";
import { viaAgent } from "../../config/refs.js";

/**
 * `type: ssh` connections (docs/ssh-http.md). The broker terminates SSH from the client
 * (accepting whatever authentication it offers: the tunnel already carries the identity) and
 * opens its own SSH connection to the target with the stored credential, verifying the
 * target's host key against known_hosts.
 */
export const sshTarget = z
  .object({
    host: z.string().min(1).describe("Host name or IP address of the SSH server."),
    port: z.number().int().min(1).max(65535).default(22).describe("TCP port of the SSH server."),
    user: z
      .string()
      .min(1)
      .describe(
        "The user the broker signs in to the target as (the user name the client gives is ignored).",
      ),
    privateKey: secretRef
      .optional()
      .describe(
        "The private key the broker signs in with: a secret holding an OpenSSH or PEM key file's text. `privateKey`, `password` or both.",
      ),
    passphrase: secretRef.optional().describe("The passphrase of an encrypted `privateKey`."),
    password: secretRef
      .optional()
      .describe("The password the broker signs in with, instead of or besides `privateKey`."),
    knownHosts: z
      .string()
      .min(1)
      .describe(
        "OpenSSH known_hosts file listing the target's host key (read at each session); an unknown or changed key refuses the connection.",
      ),
    connectTimeout: z
      .number()
      .positive()
      .default(10)
      .describe("Seconds to wait for the target's SSH handshake and sign-in."),
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
    command: z
      .union([z.string().min(1), listOf(z.string().min(1))])
      .optional()
      .describe(
        "Globs over the whole command line, trimmed (`*` any run of characters, `?` one), such as `rm -rf *` or `sudo *`; matches when any does.",
      ),
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
      )
      .describe(
        "JavaScript regular expressions over the command line, for what globs cannot say; matches when any does.",
      ),
  })
  .strict();

export const sshRule = z
  .object({
    name: z.string().min(1).optional().describe("A label shown in decisions and logs."),
    match: commandRuleMatch
      .default({})
      .describe("All given matchers must match; no matchers match every command."),
    action: policyAction.describe(
      "What a matching command gets: `allow`, `block`, or `hold` for approval.",
    ),
    ...holdRuleFields,
  })
  .strict();
export type SshRule = z.infer<typeof sshRule>;

export const sshMask = z
  .object({
    detectors: z
      .array(z.enum(MASK_DETECTORS, { error: `expected one of: ${MASK_DETECTORS.join(", ")}` }))
      .min(1, "name at least one detector")
      .describe(
        "Value detectors run over terminal and command output before it reaches the client and the recording.",
      ),
    strategy: z
      .enum(MASK_STRATEGIES.filter((s) => s !== "null") as ["redact", "last4", "hash"], {
        error: "expected redact, last4 or hash (output has no NULL)",
      })
      .default("redact")
      .describe("How a detected value is replaced (output has no NULL)."),
    hashKey: secretRef.optional().describe("The HMAC key of strategy `hash` (which needs one)."),
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
    description: z.string().optional().describe("Free text for the people reading the config."),
    default: policyAction.default("allow").describe("The action for commands no rule matches."),
    ...holdDefaultFields,
    rules: z
      .array(sshRule)
      .default([])
      .describe(
        "The rules over exec requests (commands, legacy scp), in order: the first that matches decides.",
      ),
    shell: allowDeny
      .default("allow")
      .describe(
        "Interactive shells (with or without a pty): one decision per shell, since what is typed into one is not checked against the rules.",
      ),
    sftp: allowDeny
      .default("allow")
      .describe("File transfer: the sftp subsystem and legacy scp (`scp -t` / `scp -f`)."),
    portForwarding: allowDeny
      .default("deny")
      .describe("Local (`-L`, direct-tcpip) and remote (`-R`, tcpip-forward) port forwarding."),
    agentForwarding: allowDeny
      .default("deny")
      .describe("Forwarding the client's ssh-agent to the target (`-A`)."),
    mask: sshMask
      .optional()
      .describe("Masking of terminal and command output (file transfers are never masked)."),
  })
  .strict()
  .superRefine(checkHoldRules);
export type SshPolicyConfig = z.infer<typeof sshPolicyConfig>;

export const sshConnection = z
  .object({
    type: z.literal("ssh"),
    description: z
      .string()
      .optional()
      .describe("Shown with the name where users list the connections they may use."),
    target: sshTarget.describe("The SSH server, and how the broker signs in to it."),
    allow: z
      .array(principal)
      .min(1, "a connection must allow someone")
      .describe("Who may connect: a caller matching any of these principals."),
    policy: sshPolicyConfig
      .optional()
      .describe(
        "The connection's policy, written inline (it speaks of commands, not statements); without one, commands, shells and file transfers are allowed, forwarding is not.",
      ),
    via: viaAgent,
    audit: z
      .enum(["strict", "async"], { error: "expected strict or async" })
      .optional()
      .describe(
        "`strict`: a command runs only once its start is on disk (synced); `async` (the default): the start is written first but not waited for on disk. See docs/recording.md.",
      ),
  })
  .strict();
export type SshConnectionConfig = z.infer<typeof sshConnection>;
