import { ExitCode, GwError } from "../errors.js";

/**
 * What the agent is willing to dial: exact `host:port` pairs, matched literally against what the
 * broker asks for (host names case-insensitively, no wildcards, no name resolution), or anything
 * when started with --allow-any. The broker's config already says which targets go through the
 * agent; this list is the agent's own say, so a broker that is compromised or misconfigured
 * cannot use the agent to reach anything else in its network.
 */
export class AllowList {
  private constructor(private readonly entries: ReadonlySet<string> | null) {}

  /** `--allow` values, or `any` for --allow-any; one of the two is required. */
  static parse(values: readonly string[], any: boolean): AllowList {
    if (any && values.length > 0)
      throw usage("--allow and --allow-any exclude each other: pick one");
    if (any) return new AllowList(null);
    if (values.length === 0)
      throw usage("the agent needs to know what it may dial", {
        hint: "Pass --allow HOST:PORT for each target (repeatable), or --allow-any to dial whatever the broker asks for.",
      });
    const entries = new Set<string>();
    for (const v of values) {
      const at = parseHostPort(v);
      if (!at)
        throw usage(
          `--allow takes HOST:PORT (e.g. db.internal:5432 or [fd00::5]:5432), not "${v}"`,
        );
      entries.add(key(at.host, at.port));
    }
    return new AllowList(entries);
  }

  static any(): AllowList {
    return new AllowList(null);
  }

  permits(host: string, port: number): boolean {
    return this.entries === null || this.entries.has(key(host, port));
  }

  /** The entries as `host:port`, for the broker's status page; null when anything goes. */
  describe(): string[] | null {
    return this.entries === null ? null : [...this.entries];
  }
}

function key(host: string, port: number): string {
  const h = host.toLowerCase();
  return h.includes(":") ? `[${h}]:${port}` : `${h}:${port}`;
}

function parseHostPort(v: string): { host: string; port: number } | null {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(v.trim());
  if (!m) return null;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return null;
  return { host: (m[1] ?? m[2])!, port };
}

function usage(message: string, opts: { hint?: string } = {}): GwError {
  return new GwError("agent_allow_invalid", message, { exitCode: ExitCode.usage, ...opts });
}
