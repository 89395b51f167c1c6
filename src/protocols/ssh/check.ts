import ssh2 from "ssh2";
import { readSecret } from "../../config/secrets.js";
import type { SecretRef } from "../../config/schema.js";
import type { SshTargetConfig } from "./config.js";
import { KnownHosts, knownHostsName } from "./known-hosts.js";

/**
 * What `gw broker check` can find wrong with an ssh target before anyone connects: an
 * unreadable known_hosts or one without the target, secrets that cannot be read, a private key
 * that does not parse (or needs a passphrase it was not given). Messages never hold secrets.
 */
export function checkSshTarget(
  name: string,
  t: SshTargetConfig,
  secrets: (ref: SecretRef, what: string) => string = readSecret,
): string[] {
  const problems: string[] = [];
  const at = `connections.${name}.target`;
  try {
    const kh = KnownHosts.fromFile(t.knownHosts);
    if (kh.algorithms(t.host, t.port).length === 0)
      problems.push(
        `${at}.knownHosts: ${t.knownHosts} lists no key for ${knownHostsName(t.host, t.port)}; add it (ssh-keyscan${t.port === 22 ? "" : ` -p ${t.port}`} ${t.host}, after checking it)`,
      );
  } catch (err) {
    problems.push(
      `${at}.knownHosts: cannot read ${t.knownHosts} (${(err as NodeJS.ErrnoException).code ?? "error"})`,
    );
  }
  const read = (ref: SecretRef | undefined, field: string): string | undefined => {
    if (!ref) return undefined;
    try {
      return secrets(ref, `${at}.${field}`);
    } catch (err) {
      problems.push((err as Error).message);
      return undefined;
    }
  };
  const key = read(t.privateKey, "privateKey");
  const passphrase = read(t.passphrase, "passphrase");
  read(t.password, "password");
  if (key !== undefined) {
    const parsed = ssh2.utils.parseKey(key, passphrase);
    if (parsed instanceof Error)
      problems.push(
        /passphrase/i.test(parsed.message)
          ? `${at}.privateKey: the key is encrypted and ${passphrase === undefined ? "no passphrase is given" : "the passphrase does not open it"}`
          : `${at}.privateKey: not a private key ssh can use (${parsed.message})`,
      );
  }
  return problems;
}
