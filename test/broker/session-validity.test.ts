import { afterEach, expect, test, vi } from "vitest";
import { SessionValidity } from "../../src/broker/session-validity.js";
import type { Identity } from "../../src/identity/principal.js";

const base: Identity = {
  oid: "u1",
  tid: "t1",
  name: "U",
  upn: undefined,
  type: "user",
  groups: [],
  roles: [],
  expiresAt: 30,
};

afterEach(() => {
  vi.useRealTimers();
});

test("a session expires at token expiry plus grace, and fires once", async () => {
  vi.useFakeTimers({ now: 0 });
  const onExpire = vi.fn();
  const v = new SessionValidity(base, 5_000, onExpire);
  await vi.advanceTimersByTimeAsync(34_000);
  expect(v.expired).toBe(false);
  expect(onExpire).not.toHaveBeenCalled();
  await vi.advanceTimersByTimeAsync(2_000);
  expect(v.expired).toBe(true);
  expect(onExpire).toHaveBeenCalledTimes(1);
});

test("a fresh token of the same identity extends the session", async () => {
  vi.useFakeTimers({ now: 0 });
  const onExpire = vi.fn();
  const v = new SessionValidity(base, 5_000, onExpire);
  await vi.advanceTimersByTimeAsync(20_000);
  expect(v.extend({ ...base, expiresAt: 60 })).toEqual({ ok: true, expiresAt: 60 });
  await vi.advanceTimersByTimeAsync(40_000);
  expect(onExpire).not.toHaveBeenCalled();
  expect(v.validUntil).toBe(65_000);
  await vi.advanceTimersByTimeAsync(6_000);
  expect(onExpire).toHaveBeenCalledTimes(1);
});

test("another identity's token never extends a session", async () => {
  vi.useFakeTimers({ now: 0 });
  const v = new SessionValidity(base, 0, () => undefined);
  for (const other of [{ oid: "u2" }, { tid: "t2" }, { type: "app" as const }]) {
    const r = v.extend({ ...base, ...other, expiresAt: 999 });
    expect(r.ok).toBe(false);
  }
  expect(v.validUntil).toBe(30_000);
  v.stop();
});
