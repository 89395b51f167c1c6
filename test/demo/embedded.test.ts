/**
 * `gw demo --embedded`: the same demo on PGlite (PostgreSQL in WebAssembly, in-process, behind
 * pglite-socket), which is what the demo uses where no PostgreSQL server is installed. The
 * tunnel masks, blocks and holds as with a real server, and Ctrl-C leaves nothing behind.
 */
import { existsSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BackgroundGw } from "../helpers/cli.js";
import { alive, processesMentioning, psql, startDemo, type DemoJson } from "./helpers.js";

let demo: BackgroundGw<DemoJson>;

beforeAll(async () => {
  demo = await startDemo(["--embedded"]);
});

afterAll(async () => {
  if (demo && demo.child.exitCode === null) await demo.stop("SIGKILL");
});

describe("gw demo --embedded", () => {
  it("runs on PGlite", () => {
    expect(demo.json.postgres.kind).toBe("pglite");
    expect(demo.json.psqlUrl).toMatch(/^postgresql:\/\/127\.0\.0\.1:\d+\/postgres$/);
  });

  it("masks, blocks and holds through the tunnel", async () => {
    const url = demo.json.psqlUrl;
    const r = await psql(url, "SELECT email, card_number FROM customers ORDER BY id LIMIT 2");
    expect(r.stderr).toBe("");
    expect(r.stdout.trim().split("\n")).toEqual([
      "[redacted:email]|[redacted]",
      "[redacted:email]|[redacted]",
    ]);
    const drop = await psql(url, "DROP TABLE orders");
    expect(drop.stderr).toContain("blocked by rule no-destruction");
    const held = await psql(url, "DELETE FROM orders", {}, 3_000);
    expect(held.stderr).toContain("waiting for approval of request");
    const count = await psql(url, "SELECT count(*) FROM orders");
    expect(count.stdout.trim()).toBe("60");
  });

  it("stops on SIGINT and leaves nothing behind", async () => {
    const r = await demo.stop("SIGINT");
    expect(r.code).toBe(0);
    expect(alive(demo.json.pid)).toBe(false);
    expect(existsSync(demo.json.dir)).toBe(false);
    expect(processesMentioning(demo.json.dir)).toEqual([]);
  });
});
