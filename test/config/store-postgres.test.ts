/**
 * store.postgres in the broker config: a URL, or a secret reference holding one; a URL with a
 * password written into the config itself is refused, with the path and a message that does
 * not repeat the password.
 */
import { describe, expect, it } from "vitest";
import { ConfigError, parseConfig } from "../../src/config/load.js";

const config = (store: string) => `
identity: { issuer: "https://login.example.com/t/v2.0", audience: "api://gw" }
signingKey: { file: /etc/gw/audit-signing-key.pem }
store: ${store}
connections: {}
`;

function problems(text: string): { path: string; message: string }[] {
  try {
    parseConfig(text);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error("expected a ConfigError");
}

describe("store.postgres", () => {
  it("takes a URL without a password, or { env } / { file } holding one", () => {
    expect(parseConfig(config("{ postgres: 'postgres://gw@db.internal/gw' }")).store).toEqual({
      postgres: "postgres://gw@db.internal/gw",
    });
    expect(parseConfig(config("{ postgres: { env: GW_STORE_URL } }")).store).toEqual({
      postgres: { env: "GW_STORE_URL" },
    });
    expect(parseConfig(config("{ postgres: { file: /run/secrets/gw-store } }")).store).toEqual({
      postgres: { file: "/run/secrets/gw-store" },
    });
  });

  it("refuses a password written into the config", () => {
    for (const url of [
      "postgres://gw:hunter2-secret@db.internal/gw",
      "postgresql://db.internal/gw?user=gw&password=hunter2-secret",
    ]) {
      const found = problems(config(`{ postgres: '${url}' }`));
      expect(found.some((p) => p.path.startsWith("store") && /password/.test(p.message))).toBe(
        true,
      );
      expect(JSON.stringify(found)).not.toContain("hunter2-secret");
    }
  });
});

describe("what replicas must share", () => {
  it("the audit signing key, and with ssh connections the ssh host key", () => {
    const shared = `
identity: { issuer: "https://login.example.com/t/v2.0", audience: "api://gw" }
store: { postgres: { env: GW_STORE_URL } }
connections:
  box:
    type: ssh
    target: { host: h, user: u, password: { env: X }, knownHosts: /kh }
    allow: ["group:x"]
`;
    expect(problems(shared)).toEqual([
      {
        path: "signingKey",
        message:
          "store.postgres needs signingKey.file: every broker replica must sign with the same audit key",
      },
      {
        path: "sshHostKey",
        message:
          "store.postgres with ssh connections needs sshHostKey.file: every broker replica must present the same ssh host key",
      },
    ]);
    const ok = parseConfig(
      shared +
        "signingKey: { file: /etc/gw/audit.pem }\nsshHostKey: { file: /etc/gw/ssh_host_key }\n",
    );
    expect(ok.sshHostKey).toEqual({ file: "/etc/gw/ssh_host_key" });
  });
});
