/**
 * Where an agent's token comes from: GW_TOKEN, then a service principal from the AZURE_*
 * variables (even when a person ran `gw login` on the machine), then a `gw login
 * --service-principal`; a person's sign-in alone is refused with what to do instead.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { agentTokenProvider } from "../../src/agent/token-source.js";
import { GwError } from "../../src/errors.js";
import { writeSignIn } from "../../src/identity/sign-in-state.js";

const BROKER = "https://gw.example.com";
const AZURE = {
  AZURE_TENANT_ID: "tenant",
  AZURE_CLIENT_ID: "client",
  AZURE_CLIENT_SECRET: "s3cret-value",
};

let dir: string;
let saved: string | undefined;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "gw-agent-token-"));
  saved = process.env["GW_CONFIG_DIR"];
  process.env["GW_CONFIG_DIR"] = dir;
});
afterEach(() => {
  if (saved === undefined) delete process.env["GW_CONFIG_DIR"];
  else process.env["GW_CONFIG_DIR"] = saved;
  rmSync(dir, { recursive: true, force: true });
});

function personSignedIn(): void {
  writeSignIn({
    version: 1,
    kind: "user",
    broker: BROKER,
    authority: "https://login.example/tenant",
    clientId: "cli",
    scopes: ["api://gw/access"],
    signedInAt: new Date().toISOString(),
    homeAccountId: "dana.tenant",
  });
}

describe("agentTokenProvider", () => {
  it("GW_TOKEN wins", () => {
    personSignedIn();
    const p = agentTokenProvider({ broker: BROKER, env: { GW_TOKEN: "t", ...AZURE } });
    expect(p.kind).toBe("env-token");
  });

  it("a service principal from AZURE_* beats a person's gw login", () => {
    personSignedIn();
    expect(agentTokenProvider({ broker: BROKER, env: AZURE }).kind).toBe("azure-env");
  });

  it("a person's sign-in alone is refused", () => {
    personSignedIn();
    let err: unknown;
    try {
      agentTokenProvider({ broker: BROKER, env: {} });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(GwError);
    expect((err as GwError).code).toBe("agent_needs_service_principal");
    expect((err as GwError).exitCode).toBe(4);
    expect((err as GwError).hint).toContain("AZURE_CLIENT_ID");
  });

  it("no sign-in at all: not signed in", () => {
    expect(() => agentTokenProvider({ broker: BROKER, env: {} })).toThrow("not signed in");
  });
});
