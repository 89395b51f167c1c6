import { afterEach, describe, expect, test, vi } from "vitest";
import { refreshDelay, TokenRefresher, tokenExpiry } from "../../src/tunnel/token-refresher.js";

function jwt(exp: number): string {
  const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url");
  return `${enc({ alg: "RS256" })}.${enc({ exp, n: Math.random() })}.sig`;
}

afterEach(() => {
  vi.useRealTimers();
});

describe("tokenExpiry", () => {
  test("reads exp in milliseconds, or null for anything that is not a JWT", () => {
    expect(tokenExpiry(jwt(1000))).toBe(1_000_000);
    expect(tokenExpiry("opaque")).toBeNull();
    expect(tokenExpiry("a.!!!.c")).toBeNull();
  });
});

describe("refreshDelay", () => {
  test("refreshes a third of the lifetime early, at least 5 s early, at most 5 min early", () => {
    expect(refreshDelay(0, 30_000)).toBe(20_000);
    expect(refreshDelay(0, 9_000)).toBe(4_000);
    expect(refreshDelay(0, 3_600_000)).toBe(3_300_000);
    // Already nearly expired: retry soon, not in a tight loop.
    expect(refreshDelay(0, 2_000)).toBe(1_000);
  });
});

describe("TokenRefresher", () => {
  test("fetches a fresh token before expiry and announces it", async () => {
    vi.useFakeTimers({ now: 0 });
    let n = 0;
    const source = vi.fn(() => jwt(30 + 30 * n++));
    const seen: (number | null)[] = [];
    const r = new TokenRefresher(source, {
      onToken: (_t, exp) => seen.push(exp),
      onError: () => undefined,
    });
    await r.token();
    expect(seen).toEqual([30_000]);
    await vi.advanceTimersByTimeAsync(20_000);
    expect(source).toHaveBeenCalledTimes(2);
    expect(seen).toEqual([30_000, 60_000]);
    // At 20 s the new token has 40 s left: refreshed a third early, at ~46.7 s.
    await vi.advanceTimersByTimeAsync(26_000);
    expect(seen).toEqual([30_000, 60_000]);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(seen).toEqual([30_000, 60_000, 90_000]);
    r.stop();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(source).toHaveBeenCalledTimes(3);
  });

  test("reports a failed refresh and retries with backoff until the token expires", async () => {
    vi.useFakeTimers({ now: 0 });
    let fail = false;
    const source = vi.fn(() => {
      if (fail) throw new Error("invalid_grant");
      return jwt(30);
    });
    const errors: unknown[] = [];
    const r = new TokenRefresher(source, {
      onToken: () => undefined,
      onError: (e) => errors.push(e),
    });
    await r.token();
    fail = true;
    await vi.advanceTimersByTimeAsync(20_000);
    expect(errors).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(2_000);
    expect(errors).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(60_000);
    const calls = source.mock.calls.length;
    await vi.advanceTimersByTimeAsync(60_000);
    // Past expiry nothing is retried on a timer any more.
    expect(source.mock.calls.length).toBe(calls);
    r.stop();
  });

  test("an unchanged token is not announced again", async () => {
    const t = jwt(Math.floor(Date.now() / 1000) + 3600);
    const onToken = vi.fn();
    const r = new TokenRefresher(() => t, { onToken, onError: () => undefined });
    await r.token();
    await r.token();
    expect(onToken).toHaveBeenCalledTimes(1);
    r.stop();
  });
});
