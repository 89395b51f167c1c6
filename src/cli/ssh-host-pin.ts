import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { configDir } from "../config/paths.js";
import { ExitCode, GwError } from "../errors.js";
import type { BrokerClient } from "../tunnel/broker-client.js";

/*
 * The broker terminates the client's SSH, so the client must know the broker's host key, not
 * the target's. gw pins it per broker the first time it sees it (as ssh itself would on first
 * contact, but without asking: the key came over the broker's verified HTTPS) and refuses a
 * different one later. The pinned keys go to a known_hosts file of gw's own, under a
 * HostKeyAlias per broker, so the ssh client checks them whatever local port the tunnel uses.
 */

export interface BrokerSshKey {
  hostKey: string;
  fingerprint: string;
}

export interface PinnedKey extends BrokerSshKey {
  /** The name ssh checks the key under (HostKeyAlias). */
  alias: string;
  /** gw's known_hosts file, for UserKnownHostsFile. */
  knownHostsFile: string;
  /** First time this broker's key was seen. */
  firstSeen: boolean;
}

interface PinFile {
  brokers: Record<string, BrokerSshKey>;
}

const pinsPath = () => join(configDir(), "ssh-pins.json");
export const knownHostsPath = () => join(configDir(), "ssh_known_hosts");

/** `gw-broker.<host>` (the broker URL's host and port), what ssh checks the key under. */
export function aliasFor(brokerUrl: string): string {
  const u = new URL(brokerUrl);
  return `gw-broker.${u.hostname.replace(/[[\]]/g, "")}${u.port ? `.${u.port}` : ""}`;
}

function readPins(): PinFile {
  try {
    const p = JSON.parse(readFileSync(pinsPath(), "utf8")) as PinFile;
    return p && typeof p.brokers === "object" ? p : { brokers: {} };
  } catch {
    return { brokers: {} };
  }
}

function writePins(p: PinFile): void {
  mkdirSync(configDir(), { recursive: true, mode: 0o700 });
  writeFileSync(pinsPath(), JSON.stringify(p, null, 2) + "\n", { mode: 0o600 });
  const lines = Object.entries(p.brokers).map(([url, k]) => `${aliasFor(url)} ${k.hostKey}`);
  writeFileSync(knownHostsPath(), lines.join("\n") + "\n", { mode: 0o600 });
  chmodSync(knownHostsPath(), 0o600);
}

/**
 * The broker's ssh host key, pinned: the first one seen is kept; a different one later is
 * refused (GwError ssh_host_key_changed) unless `accept` says the operator rotated it.
 */
export async function pinBrokerSshKey(
  client: BrokerClient,
  opts: { accept?: boolean } = {},
): Promise<PinnedKey> {
  const doc = await client.discovery();
  const ssh = doc["ssh"] as BrokerSshKey | null | undefined;
  if (!ssh || typeof ssh.hostKey !== "string") {
    throw new GwError(
      "ssh_host_key_unavailable",
      `the broker at ${client.url} did not say which SSH host key it uses`,
      {
        exitCode: ExitCode.failure,
        hint: "It may have no ssh connections, or its host key file is unusable (see the broker log).",
      },
    );
  }
  const pins = readPins();
  const pinned = pins.brokers[client.url];
  const firstSeen = pinned === undefined;
  if (pinned && pinned.hostKey !== ssh.hostKey && !opts.accept) {
    throw new GwError(
      "ssh_host_key_changed",
      `the SSH host key of the broker at ${client.url} changed: pinned ${pinned.fingerprint}, now ${ssh.fingerprint}`,
      {
        exitCode: ExitCode.failure,
        hint:
          "Someone may be impersonating the broker. If its operators rotated the key (ask them " +
          "for the new fingerprint), accept it with --accept-new-host-key.",
      },
    );
  }
  if (firstSeen || pinned.hostKey !== ssh.hostKey) {
    pins.brokers[client.url] = { hostKey: ssh.hostKey, fingerprint: ssh.fingerprint };
    writePins(pins);
  }
  return {
    ...ssh,
    alias: aliasFor(client.url),
    knownHostsFile: knownHostsPath(),
    firstSeen,
  };
}

/** The `ssh` options that make the client check the pinned key (for a one-line command). */
export function sshPinOptions(pin: PinnedKey): string[] {
  return [
    "-o",
    `HostKeyAlias=${pin.alias}`,
    "-o",
    `UserKnownHostsFile=${pin.knownHostsFile}`,
    "-o",
    "StrictHostKeyChecking=yes",
  ];
}

/** A `~/.ssh/config` stanza for `ssh NAME` through the tunnel. */
export function sshConfigStanza(opts: {
  name: string;
  host: string;
  port: number;
  user: string | null;
  pin: PinnedKey;
  hostAlias?: string;
}): string {
  const lines = [
    `# gw connection ${opts.name}: start the tunnel first (gw connect ${opts.name} --detach)`,
    `Host ${opts.hostAlias ?? opts.name}`,
    `  HostName ${opts.host}`,
    `  Port ${opts.port}`,
    ...(opts.user ? [`  User ${opts.user}`] : []),
    `  HostKeyAlias ${opts.pin.alias}`,
    `  UserKnownHostsFile ${opts.pin.knownHostsFile}`,
    "  StrictHostKeyChecking yes",
    // The broker signs in to the target itself; nothing of the user's may be offered.
    "  PubkeyAuthentication no",
    "  PasswordAuthentication no",
    "  KbdInteractiveAuthentication no",
    "  ForwardAgent no",
  ];
  return lines.join("\n") + "\n";
}
