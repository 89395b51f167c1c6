/**
 * The device-code flow's state: codes handed out, approved or declined by a person (the login
 * page) or by a test, and polled for by the client.
 *
 * Polling follows Entra and RFC 8628: `authorization_pending` until a decision; then tokens once
 * (a redeemed code is dead), or `authorization_declined` every time; `expired_token` after
 * `expires_in`. A client that polls again sooner than `interval` seconds (with 20% leeway for
 * timer jitter) gets `slow_down`, and its interval grows by 5 s, as RFC 8628 says. `interval: 0`
 * turns the rate check off; `slowDownNextPoll()` still forces one.
 */
import { randomBytes, randomInt } from "node:crypto";
import { ExitCode, GwError } from "../../errors.js";
import { OAuthError, invalidGrant } from "./oauth-errors.js";

export type DeviceCodeStatus = "pending" | "approved" | "declined" | "redeemed";

export interface DeviceCodeEntry {
  deviceCode: string;
  userCode: string;
  clientId: string;
  /** The scopes asked for at the devicecode endpoint, as sent. */
  scope: string;
  /** Epoch ms. */
  createdAt: number;
  expiresAt: number;
  /** Seconds the client must wait between polls. */
  interval: number;
  lastPollAt: number | undefined;
  polls: number;
  status: DeviceCodeStatus;
  /** Who approved it. */
  userOid: string | undefined;
}

/** What tests and the demo see of a code waiting for a person. */
export interface PendingDeviceCode {
  userCode: string;
  clientId: string;
  scope: string;
  /** Epoch ms. */
  expiresAt: number;
  /** Polls so far. */
  polls: number;
}

export interface AutoApprove {
  /** Who signs in; default the first user of the directory. */
  userOid?: string;
  /** Polls answered `authorization_pending` before the approval; default 0 (the first poll gets tokens). */
  afterPolls?: number;
}

export interface DeviceFlowOptions {
  /** Seconds; Entra's is 900. */
  expiresIn: number;
  /** Seconds; Entra's is 5. */
  interval: number;
  now: () => number;
  autoApprove: { userOid: string; afterPolls: number } | undefined;
}

// Entra's user codes are 9 characters of upper-case letters and digits. Leave out the ones people
// confuse (0/O, 1/I/L) since a person types it.
const USER_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789";
const USER_CODE_LENGTH = 9;
/** Leeway for timers that fire a little early, and for request latency. */
const POLL_LEEWAY = 0.2;

export function normalizeUserCode(code: string): string {
  return code.replace(/[\s-]/g, "").toUpperCase();
}

function deviceCodeError(message: string): GwError {
  return new GwError("local_entra_device_code", message, { exitCode: ExitCode.usage });
}

export class DeviceFlow {
  private readonly byDeviceCode = new Map<string, DeviceCodeEntry>();
  private readonly byUserCode = new Map<string, DeviceCodeEntry>();
  private slowDowns = 0;
  private waiters: Array<(p: PendingDeviceCode) => void> = [];

  constructor(private readonly opts: DeviceFlowOptions) {}

  start(clientId: string, scope: string): DeviceCodeEntry {
    this.prune();
    let userCode: string;
    do {
      userCode = Array.from(
        { length: USER_CODE_LENGTH },
        () => USER_CODE_ALPHABET[randomInt(USER_CODE_ALPHABET.length)],
      ).join("");
    } while (this.byUserCode.has(userCode));
    const now = this.opts.now();
    const entry: DeviceCodeEntry = {
      deviceCode: `LOCAL.${randomBytes(64).toString("base64url")}`,
      userCode,
      clientId,
      scope,
      createdAt: now,
      expiresAt: now + this.opts.expiresIn * 1000,
      interval: this.opts.interval,
      lastPollAt: undefined,
      polls: 0,
      status: "pending",
      userOid: undefined,
    };
    this.byDeviceCode.set(entry.deviceCode, entry);
    this.byUserCode.set(userCode, entry);
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w(toPending(entry));
    return entry;
  }

  /**
   * One poll of the token endpoint. Returns the approved entry (now redeemed) when tokens are due;
   * otherwise throws the OAuthError Entra would answer.
   */
  poll(deviceCode: string, clientId: string): DeviceCodeEntry {
    const e = this.byDeviceCode.get(deviceCode);
    const now = this.opts.now();
    if (!e) {
      throw invalidGrant(
        70000,
        "Provided grant is invalid or malformed. The device_code is not one this server issued.",
      );
    }
    if (e.clientId !== clientId) {
      throw invalidGrant(
        70000,
        "Provided grant is invalid or malformed. The device_code was issued to a different client.",
      );
    }
    if (now >= e.expiresAt) {
      throw new OAuthError(
        "expired_token",
        70020,
        "The provided value for the input parameter 'device_code' is not valid. This device code has expired.",
      );
    }
    if (e.status === "redeemed") {
      throw invalidGrant(
        70000,
        "Provided grant is invalid or malformed. The device_code was already redeemed.",
      );
    }
    const last = e.lastPollAt;
    e.lastPollAt = now;
    e.polls++;
    if (this.slowDowns > 0) {
      this.slowDowns--;
      throw slowDown();
    }
    if (
      last !== undefined &&
      e.interval > 0 &&
      now - last < e.interval * 1000 * (1 - POLL_LEEWAY)
    ) {
      e.interval += 5;
      throw slowDown();
    }
    if (e.status === "declined") {
      throw new OAuthError(
        "authorization_declined",
        70000,
        "The end user denied the authorization request. (OAuth 2.0 device flow: the user declined the sign-in.)",
      );
    }
    const auto = this.opts.autoApprove;
    if (e.status === "pending" && auto && e.polls > auto.afterPolls) {
      e.status = "approved";
      e.userOid = auto.userOid;
    }
    if (e.status === "pending") {
      throw new OAuthError(
        "authorization_pending",
        70016,
        "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
      );
    }
    e.status = "redeemed";
    return e;
  }

  /** A person (or a test) entered the code and signed in as `userOid`. */
  approve(userCode: string, userOid: string): DeviceCodeEntry {
    const e = this.decidable(userCode);
    e.status = "approved";
    e.userOid = userOid;
    return e;
  }

  decline(userCode: string): DeviceCodeEntry {
    const e = this.decidable(userCode);
    e.status = "declined";
    return e;
  }

  /** The entry for a code a person typed, whatever its state; undefined if there is none. */
  lookup(userCode: string): DeviceCodeEntry | undefined {
    return this.byUserCode.get(normalizeUserCode(userCode));
  }

  isExpired(e: DeviceCodeEntry): boolean {
    return this.opts.now() >= e.expiresAt;
  }

  pending(): PendingDeviceCode[] {
    this.prune();
    return [...this.byDeviceCode.values()]
      .filter((e) => e.status === "pending" && !this.isExpired(e))
      .map(toPending);
  }

  /** The oldest pending code, or the next one handed out. */
  waitForPending(timeoutMs: number): Promise<PendingDeviceCode> {
    const first = this.pending()[0];
    if (first) return Promise.resolve(first);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(deviceCodeError(`no device code was requested within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = (p: PendingDeviceCode): void => {
        clearTimeout(timer);
        resolve(p);
      };
      this.waiters.push(waiter);
    });
  }

  /** The next `n` polls (of any device code) answer slow_down. */
  slowDownNextPoll(n = 1): void {
    this.slowDowns += n;
  }

  private decidable(userCode: string): DeviceCodeEntry {
    const e = this.lookup(userCode);
    if (!e) throw deviceCodeError(`no device code ${JSON.stringify(userCode)} was handed out`);
    if (this.isExpired(e)) throw deviceCodeError(`device code ${e.userCode} has expired`);
    if (e.status !== "pending") {
      throw deviceCodeError(`device code ${e.userCode} was already ${e.status}`);
    }
    return e;
  }

  private prune(): void {
    const cutoff = this.opts.now() - 3_600_000;
    for (const [code, e] of this.byDeviceCode) {
      if (e.expiresAt < cutoff) {
        this.byDeviceCode.delete(code);
        this.byUserCode.delete(e.userCode);
      }
    }
  }
}

function slowDown(): OAuthError {
  return new OAuthError(
    "slow_down",
    70016,
    "OAuth 2.0 device flow error. The client is polling too frequently: wait the returned interval between polls.",
  );
}

function toPending(e: DeviceCodeEntry): PendingDeviceCode {
  return {
    userCode: e.userCode,
    clientId: e.clientId,
    scope: e.scope,
    expiresAt: e.expiresAt,
    polls: e.polls,
  };
}
