/**
 * http through the whole data path: curl, `gw connect`'s tunnel, the broker and a local API.
 * A smoke test; test/e2e/http-*.test.ts go through each part in depth.
 */
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GROUP_DBA, startStack, type Stack } from "../helpers/stack.js";
import { run } from "../protocols/ssh/harness.js";

const TOKEN = "e2e-" + "bearer-token-0123456789";

describe("http through the broker", () => {
  let api: Server;
  let stack: Stack;
  let port: number;
  const seen: { method: string; url: string; headers: IncomingHttpHeaders }[] = [];

  beforeAll(async () => {
    process.env["GW_E2E_HTTP_TOKEN"] = TOKEN;
    api = createServer((req, res) => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers });
      res.writeHead(200, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          owner: { email: "owner@example.com", name: "Ada" },
          echo: req.headers.authorization,
        }),
      );
    });
    await new Promise<void>((r) => api.listen(0, "127.0.0.1", r));
    stack = await startStack({
      connections: {
        api: {
          type: "http",
          target: {
            url: `http://127.0.0.1:${(api.address() as AddressInfo).port}/v1`,
            bearer: { env: "GW_E2E_HTTP_TOKEN" },
          },
          allow: [`group:${GROUP_DBA}`],
          policy: {
            rules: [
              { match: { method: "DELETE", path: "/**" }, action: "block", reason: "read only" },
            ],
            mask: { json: ["$.owner.email"] },
          },
        },
      },
    });
    const t = await stack.openTunnel(stack.tokens.dba, "api");
    port = t.address.port;
  });

  afterAll(async () => {
    await stack?.stop();
    api?.closeAllConnections();
    await new Promise((r) => api?.close(r));
    delete process.env["GW_E2E_HTTP_TOKEN"];
  });

  it("injects the credential, masks, and never shows the credential", async () => {
    const r = await run("curl", [
      "-sS",
      "-H",
      "Authorization: Bearer mine",
      `http://127.0.0.1:${port}/things`,
    ]);
    const body = JSON.parse(r.stdout);
    expect(body.owner).toEqual({ email: "[redacted]", name: "Ada" });
    expect(r.stdout).not.toContain(TOKEN);
    expect(seen.pop()).toMatchObject({
      url: "/v1/things",
      headers: { authorization: `Bearer ${TOKEN}` },
    });
  });

  it("blocks what the policy blocks, and the session is recorded", async () => {
    const r = await run("curl", [
      "-sS",
      "-o",
      "/dev/null",
      "-w",
      "%{http_code}",
      "-X",
      "DELETE",
      `http://127.0.0.1:${port}/things/1`,
    ]);
    expect(r.stdout).toBe("403");
    expect(seen.some((s) => s.method === "DELETE")).toBe(false);
    const sessions = await stack.store.listSessions({ connection: "api" });
    expect(sessions.length).toBeGreaterThanOrEqual(1);
  });
});
