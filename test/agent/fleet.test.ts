/**
 * An agent in front of several broker replicas connects to every one of them: to each URL
 * given, and to each address of a name (a headless Service), keeping the name; replicas that
 * leave DNS are let go, new ones picked up. Each replica can then dial targets through it.
 */
import { afterEach, describe, expect, it } from "vitest";
import { AgentFleet } from "../../src/agent/fleet.js";
import { AllowList } from "../../src/agent/allow-list.js";
import { readBytes, startEcho, startHub, tokens, type HubServer } from "./fixtures.js";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`gave up waiting: ${what}`);
}

const connected = (h: HubServer) => h.hub.status().find((a) => a.name === "edge")?.connected;

async function echoThrough(h: HubServer, port: number): Promise<string> {
  const s = await h.hub.dial("edge", "127.0.0.1", port, { connection: "db-edge", timeoutMs: 5000 });
  s.write("ping");
  const got = (await readBytes(s, 4)).toString();
  s.destroy();
  return got;
}

function fleet(
  brokers: string[],
  extra: Partial<ConstructorParameters<typeof AgentFleet>[0]> = {},
) {
  const f = new AgentFleet({
    brokers,
    name: "edge",
    token: () => tokens.edge(),
    allow: AllowList.any(),
    backoff: { initialMs: 50, maxMs: 400 },
    ...extra,
  });
  const outcome = f.run().then(
    () => null,
    (err: unknown) => err,
  );
  cleanups.push(() => f.stop());
  return { f, outcome };
}

describe("an agent before several replicas", () => {
  it("connects to every broker URL given; each one dials targets through it", async () => {
    const a = await startHub();
    const b = await startHub();
    cleanups.push(
      () => a.close(),
      () => b.close(),
    );
    const echo = await startEcho();
    cleanups.push(() => echo.close());
    const { f } = fleet([a.url, b.url]);
    await until(() => connected(a) === true && connected(b) === true, "both replicas");
    expect(f.size).toBe(2);
    expect(await echoThrough(a, echo.port)).toBe("ping");
    expect(await echoThrough(b, echo.port)).toBe("ping");
    expect(echo.accepted()).toBe(2);
  });

  it("connects to each address of a name, follows DNS, and lets go of replicas that left", async () => {
    const a = await startHub({ host: "127.0.0.1" });
    // The same port on another loopback address: one name, two replicas.
    const b = await startHub({ host: "127.0.0.2", port: a.port });
    cleanups.push(
      () => a.close(),
      () => b.close(),
    );
    let addresses = ["127.0.0.1", "127.0.0.2"];
    const lookups: string[] = [];
    const { f } = fleet([`http://brokers.gw.test:${a.port}`], {
      lookup: async (host) => {
        lookups.push(host);
        return addresses.map((address) => ({ address, family: 4 }));
      },
      refreshMs: 100,
    });
    await until(() => connected(a) === true && connected(b) === true, "both addresses");
    expect(lookups[0]).toBe("brokers.gw.test");
    expect(f.size).toBe(2);
    addresses = ["127.0.0.1"];
    await until(() => connected(b) === false, "the replica that left DNS to be let go");
    expect(connected(a)).toBe(true);
    expect(f.size).toBe(1);
    addresses = ["127.0.0.1", "127.0.0.2"];
    await until(() => connected(b) === true, "the replica back in DNS to be picked up");
  });

  it("stops as a whole when a replica refuses it for good", async () => {
    const a = await startHub();
    const b = await startHub();
    cleanups.push(
      () => a.close(),
      () => b.close(),
    );
    const { outcome } = fleet([a.url, b.url], { token: () => tokens.other() });
    const err = (await outcome) as { code?: string } | null;
    expect(err).not.toBeNull();
    expect(connected(a)).toBe(false);
    expect(connected(b)).toBe(false);
  });
});
