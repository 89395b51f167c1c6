/**
 * The raw TCP session (`type: tcp`): bytes relayed both ways with backpressure, metadata
 * recorded, and the policy check `gw broker check` uses. (Kept beside the ssh tests for their
 * socket harness.)
 */
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { connect, createServer, type Server } from "node:net";
import { createHash } from "node:crypto";
import { tcpConnection, validateTcpPolicy } from "../../../src/protocols/tcp/config.js";
import { TcpSession } from "../../../src/protocols/tcp/session.js";
import { startHarness, until, type Harness } from "./harness.js";

let echo: Server;
let echoPort: number;
let relay: Harness;
const starts: string[] = [];

function session(port: number) {
  return startHarness(
    (ch, ends) =>
      new TcpSession(ch, {
        target: { host: "127.0.0.1", port, connectTimeoutMs: 2000 },
        hooks: {
          onStart: async (i) => void starts.push(i.target),
          onEnd: (i) => void ends.push(i),
        },
        log: { log: () => undefined },
      }),
  );
}

beforeAll(async () => {
  echo = createServer((s) => s.pipe(s));
  await new Promise<void>((r) => echo.listen(0, "127.0.0.1", r));
  echoPort = (echo.address() as { port: number }).port;
  relay = await session(echoPort);
});

afterAll(async () => {
  await relay?.close();
  echo?.close();
});

function exchange(port: number, data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = connect(port, "127.0.0.1");
    const got: Buffer[] = [];
    let n = 0;
    s.on("data", (d: Buffer) => {
      got.push(d);
      n += d.length;
      if (n >= data.length) s.end();
    });
    s.on("close", () => resolve(Buffer.concat(got)));
    s.on("error", reject);
    s.write(data);
  });
}

describe("tcp session", () => {
  test("relays bytes both ways, large transfers intact, and records the session", async () => {
    const small = await exchange(relay.port, Buffer.from("hello"));
    expect(small.toString()).toBe("hello");
    const big = Buffer.alloc(8 * 1024 * 1024);
    for (let i = 0; i < big.length; i += 4096) big[i] = i % 251;
    const back = await exchange(relay.port, big);
    expect(createHash("sha256").update(back).digest("hex")).toBe(
      createHash("sha256").update(big).digest("hex"),
    );
    expect(starts).toContain(`127.0.0.1:${echoPort}`);
    await until(() => relay.ends.length >= 2, "the sessions to end");
    const last = relay.ends[relay.ends.length - 1]!;
    expect(last.bytesIn).toBe(big.length);
    expect(last.bytesOut).toBe(big.length);
  });

  test("a target that refuses: the client is closed, the end says why", async () => {
    const dead = await session(1);
    const got = await exchange(dead.port, Buffer.from("x"));
    expect(got.length).toBe(0);
    await until(() => dead.ends.length > 0, "the end");
    expect(dead.ends[0]!.reason).toBe("upstream_error");
    await dead.close();
  });
});

describe("tcp policy check", () => {
  test("only a policy that allows everything fits", () => {
    expect(validateTcpPolicy(undefined)).toBeNull();
    expect(
      validateTcpPolicy({ default: "allow", rules: [], onUnparseable: "block" } as never),
    ).toBeNull();
    expect(validateTcpPolicy({ rules: [{ action: "block" }] })).toMatch(/it has 1 rule\(s\)/);
    expect(validateTcpPolicy({ mask: { columns: [] } })).toMatch(/masks values/);
    expect(validateTcpPolicy({ readOnly: true })).toMatch(/read-only/);
    expect(validateTcpPolicy({ default: "hold" })).toMatch(/default is hold/);
  });

  test("the connection schema", () => {
    const ok = tcpConnection.parse({
      type: "tcp",
      target: { host: "redis.internal", port: 6379 },
      allow: ["group:x"],
    });
    expect(ok.target.connectTimeout).toBe(10);
    expect(
      tcpConnection.safeParse({ type: "tcp", target: { host: "h" }, allow: ["group:x"] }).success,
    ).toBe(false);
  });
});
