/**
 * The local access guard of a tunnel (`gw connect --local-password`).
 *
 * A tunnel's port is open to every process on the machine that can reach the bind address, and
 * each connection through it runs as the person who opened the tunnel: on a shared host another
 * user could ride it. With a local password, the tunnel itself plays the server's part of the
 * PostgreSQL sign-in before any byte goes to the broker:
 *
 *   client  SSLRequest / GSSENCRequest      → tunnel answers 'N' (loopback: the tunnel is the
 *                                              encrypted hop), the client goes on in plain text
 *   client  StartupMessage                  → held
 *   tunnel  AuthenticationCleartextPassword → client
 *   client  PasswordMessage                 → compared in constant time with the tunnel's
 *   right:  the held StartupMessage opens the broker stream; the broker's AuthenticationOk
 *           follows the tunnel's request, which the protocol allows (several Authentication
 *           messages may precede AuthenticationOk).
 *   wrong:  FATAL 28P01, and the connection is closed. Nothing reached the broker.
 *
 * A CancelRequest goes through unchallenged: it carries the session's secret key, which only
 * that session's client knows, and the broker checks it (and who owns the session).
 *
 * Cleartext is fine here: the exchange never leaves the loopback socket it arrived on.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { Socket } from "node:net";
import { Frontend, StartupCode } from "../protocols/postgres/codes.js";
import {
  errorResponse,
  readCString,
  readStartupParams,
  typed,
} from "../protocols/postgres/wire.js";

/** A new random local password: 24 bytes, base64url (no characters URLs or shells mind). */
export function newLocalPassword(): string {
  return randomBytes(24).toString("base64url");
}

export interface GateOptions {
  /** A client that has not finished the exchange by then is dropped; default 30 s. */
  timeoutMs?: number;
  /** Told about every client refused for a wrong or missing password. */
  onRefused?: (reason: string) => void;
}

const MAX_STARTUP = 10_000;
const digest = (s: string | Buffer) => createHash("sha256").update(s).digest();

function authCleartext(): Buffer {
  const b = Buffer.alloc(9);
  b[0] = 0x52; // R
  b.writeInt32BE(8, 1);
  b.writeInt32BE(3, 5); // AuthenticationCleartextPassword
  return b;
}

/**
 * The gate: resolves with the bytes to forward to the broker (the StartupMessage, or a
 * CancelRequest), or null when it answered the client itself and closed the connection.
 */
export function localPasswordGate(
  password: string,
  opts: GateOptions = {},
): (socket: Socket) => Promise<Buffer[] | null> {
  const expected = digest(password);
  return (socket) =>
    new Promise((resolve) => {
      let buf: Buffer = Buffer.alloc(0);
      let startup: Buffer | null = null;
      let user = "";
      let done = false;
      const finish = (result: Buffer[] | null) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        socket.off("data", onData);
        socket.off("close", onClose);
        if (result !== null) socket.pause();
        resolve(result);
      };
      const refuse = (code: string, message: string, reason: string) => {
        opts.onRefused?.(reason);
        socket.end(errorResponse({ severity: "FATAL", code, message }));
        finish(null);
      };
      const timer = setTimeout(() => {
        socket.destroy();
        finish(null);
      }, opts.timeoutMs ?? 30_000);
      const step = (): void => {
        while (!done) {
          if (startup === null) {
            if (buf.length < 8) return;
            const len = buf.readInt32BE(0);
            const code = buf.readInt32BE(4);
            if (len < 8 || len > MAX_STARTUP)
              return refuse("08P01", "gw: invalid startup packet", "invalid startup packet");
            if (buf.length < len) return;
            const msg = buf.subarray(0, len);
            buf = buf.subarray(len);
            if (code === StartupCode.sslRequest || code === StartupCode.gssEncRequest) {
              socket.write("N");
              continue;
            }
            if (code === StartupCode.cancelRequest) return finish([Buffer.from(msg)]);
            if (code !== StartupCode.protocol3)
              return refuse(
                "08P01",
                "gw: unsupported frontend protocol",
                "unsupported protocol version",
              );
            startup = Buffer.from(msg);
            try {
              user = readStartupParams(msg, 0, msg.length).get("user") ?? "";
            } catch {
              return refuse("08P01", "gw: invalid startup packet", "invalid startup packet");
            }
            socket.write(authCleartext());
            continue;
          }
          if (buf.length < 5) return;
          const type = buf[0]!;
          const len = buf.readInt32BE(1);
          if (type !== Frontend.password || len < 5 || len > MAX_STARTUP)
            return refuse(
              "28P01",
              "gw: this tunnel needs its local password",
              "no password message",
            );
          if (buf.length < 1 + len) return;
          const [given] = readCString(buf, 5, 1 + len);
          const rest = buf.subarray(1 + len);
          if (!timingSafeEqual(digest(given), expected)) {
            return refuse(
              "28P01",
              `gw: password authentication failed for user "${user}": wrong local password for this tunnel`,
              "wrong local password",
            );
          }
          return finish(rest.length > 0 ? [startup, Buffer.from(rest)] : [startup]);
        }
      };
      const onData = (chunk: Buffer) => {
        buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
        step();
      };
      const onClose = () => finish(null);
      socket.on("data", onData);
      socket.on("close", onClose);
      socket.resume();
    });
}

/** Exported for tests: the AuthenticationCleartextPassword message the gate sends. */
export const AUTH_CLEARTEXT_PASSWORD = authCleartext();

/** Builds a PasswordMessage (tests drive the gate with raw bytes). */
export function passwordMessageFor(password: string): Buffer {
  return typed(Frontend.password, Buffer.from(password + "\0", "utf8"));
}
