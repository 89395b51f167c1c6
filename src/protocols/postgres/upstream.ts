import { connect as netConnect } from "node:net";
import type { Duplex } from "node:stream";
import { connect as tlsConnect } from "node:tls";
import { createHash } from "node:crypto";
import { AuthCode, Backend, SqlState } from "./codes.js";
import { MessageFramer } from "./framing.js";
import { PgWireError } from "./pg-wire-error.js";
import { contextTrustingOnly } from "../../net/tls-context.js";
import { DialError, type Dial } from "../../net/dial.js";
import { ScramClient, ScramError } from "./scram.js";
import {
  passwordMessage,
  readCString,
  readNoticeFields,
  saslInitialResponse,
  saslResponse,
  sslRequest,
  startupMessage,
} from "./wire.js";

export interface UpstreamTarget {
  /** Connection name, for messages. */
  name: string;
  host: string;
  port: number;
  database: string;
  user: string;
  password: string | undefined;
  tls: "disable" | "prefer" | "require" | "verify-full";
  ca?: string | undefined;
  connectTimeoutMs: number;
  /**
   * Opens the byte stream to host:port instead of a direct TCP connect: set for a connection
   * with `via: <agent>` (the agent dials the target in its network). TLS runs over it.
   */
  dial?: Dial | undefined;
}

export interface UpstreamSession {
  /** A TCP or TLS socket, or the stream `dial` opened (or TLS over it). */
  socket: Duplex;
  /** ParameterStatus messages as the target sent them, to replay to the client verbatim. */
  parameterMessages: Buffer[];
  backendKey: { pid: number; secret: number } | null;
  /** Bytes the target sent after ReadyForQuery in the same packet (normally none). */
  leftover: Buffer | null;
  encrypted: boolean;
}

function describeNetError(t: UpstreamTarget, err: NodeJS.ErrnoException): PgWireError {
  const where = `${t.host}:${t.port}`;
  const why =
    err.code === "ECONNREFUSED"
      ? "connection refused"
      : err.code === "ENOTFOUND" || err.code === "EAI_AGAIN"
        ? "host not found"
        : err.code === "ETIMEDOUT"
          ? "timed out"
          : (err.code ?? err.message);
  return new PgWireError(
    SqlState.connectionFailure,
    `gw: cannot reach the target of ${t.name} at ${where} (${why})`,
    {
      hint: "The target database may be down or unreachable from the broker; try again later or tell the broker's operators.",
    },
  );
}

/**
 * Opens an authenticated session to the target with the broker's stored credentials.
 * Every failure becomes a PgWireError whose text names the connection, never the password.
 */
export function openUpstream(
  t: UpstreamTarget,
  startupParams: Record<string, string>,
): Promise<UpstreamSession> {
  return new Promise((resolve, reject) => {
    // null until `dial` delivers its stream.
    let socket: Duplex | null = null;
    let settled = false;
    let encrypted = false;
    const timer = setTimeout(() => {
      fail(
        new PgWireError(
          SqlState.connectionFailure,
          `gw: connecting to the target of ${t.name} timed out after ${t.connectTimeoutMs} ms`,
        ),
      );
    }, t.connectTimeoutMs);

    const fail = (err: PgWireError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket?.destroy();
      reject(err);
    };
    const done = (s: UpstreamSession) => {
      if (settled || !socket) return;
      settled = true;
      clearTimeout(timer);
      socket.removeAllListeners("data");
      socket.removeAllListeners("error");
      socket.removeAllListeners("close");
      // Until the session attaches (it first waits for the store), hold what the target sends
      // and keep a listener: an 'error' (a reset) with none would crash the broker. The session
      // sees the socket destroyed and tells the client.
      socket.pause();
      socket.on("error", () => undefined);
      resolve(s);
    };
    const onError = (err: NodeJS.ErrnoException) => {
      if (err.code && /CERT|SELF_SIGNED|UNABLE_TO|ERR_TLS|HOSTNAME/.test(err.code)) {
        fail(
          new PgWireError(
            SqlState.connectionFailure,
            `gw: the target of ${t.name} failed TLS verification (${err.code})`,
            {
              hint: "The broker's CA file or the target's certificate is wrong; tell the broker's operators.",
            },
          ),
        );
      } else fail(describeNetError(t, err));
    };
    const onClose = () =>
      fail(
        new PgWireError(
          SqlState.connectionFailure,
          `gw: the target of ${t.name} closed the connection during sign-in`,
        ),
      );

    const startAuth = () => {
      const sock = socket;
      if (!sock) return;
      const framer = new MessageFramer(1 << 20);
      const params: Buffer[] = [];
      let backendKey: UpstreamSession["backendKey"] = null;
      let scram: ScramClient | null = null;
      let authOk = false;
      sock.write(startupMessage({ ...startupParams, user: t.user, database: t.database }));
      const needPassword = (): string => {
        if (t.password === undefined) {
          throw new PgWireError(
            SqlState.invalidAuthorization,
            `gw: the target of ${t.name} asks for a password, but the broker has none configured`,
            {
              hint: "Tell the broker's operators to set target.password for this connection.",
            },
          );
        }
        return t.password;
      };
      const onMessage = (type: number, buf: Buffer, start: number, end: number): boolean => {
        if (settled) return false;
        switch (type) {
          case Backend.authentication: {
            const code = buf.readInt32BE(start + 5);
            switch (code) {
              case AuthCode.ok:
                authOk = true;
                return true;
              case AuthCode.cleartextPassword:
                sock.write(passwordMessage(needPassword()));
                return true;
              case AuthCode.md5Password: {
                const salt = buf.subarray(start + 9, start + 13);
                const inner = createHash("md5")
                  .update(needPassword() + t.user)
                  .digest("hex");
                const outer = createHash("md5").update(inner).update(salt).digest("hex");
                sock.write(passwordMessage("md5" + outer));
                return true;
              }
              case AuthCode.sasl: {
                const mechs: string[] = [];
                let pos = start + 9;
                while (pos < end && buf[pos] !== 0) {
                  const [m, next] = readCString(buf, pos, end);
                  mechs.push(m);
                  pos = next;
                }
                if (!mechs.includes("SCRAM-SHA-256")) {
                  throw new PgWireError(
                    SqlState.featureNotSupported,
                    `gw: the target of ${t.name} offers only ${mechs.join(", ")}, which gw does not support`,
                  );
                }
                scram = new ScramClient(needPassword());
                sock.write(saslInitialResponse("SCRAM-SHA-256", scram.clientFirstMessage()));
                return true;
              }
              case AuthCode.saslContinue: {
                if (!scram)
                  throw new PgWireError(
                    SqlState.protocolViolation,
                    "gw: the target sent SASL data out of order",
                  );
                const s = scram;
                const serverFirst = buf.toString("utf8", start + 9, end);
                s.clientFinalMessage(serverFirst).then(
                  (msg) => {
                    if (!settled) sock.write(saslResponse(msg));
                  },
                  (err: unknown) => fail(toWire(err)),
                );
                return true;
              }
              case AuthCode.saslFinal: {
                if (!scram)
                  throw new PgWireError(
                    SqlState.protocolViolation,
                    "gw: the target sent SASL data out of order",
                  );
                (scram as ScramClient).verifyServerFinal(buf.toString("utf8", start + 9, end));
                return true;
              }
              default:
                throw new PgWireError(
                  SqlState.featureNotSupported,
                  `gw: the target of ${t.name} asks for an authentication method gw does not support (code ${code})`,
                );
            }
          }
          case Backend.parameterStatus:
            params.push(Buffer.from(buf.subarray(start, end)));
            return true;
          case Backend.backendKeyData:
            backendKey = { pid: buf.readInt32BE(start + 5), secret: buf.readInt32BE(start + 9) };
            return true;
          case Backend.noticeResponse:
          case Backend.negotiateProtocolVersion:
            return true;
          case Backend.errorResponse: {
            const f = readNoticeFields(buf, start, end);
            throw targetRefused(t, f, authOk);
          }
          case Backend.readyForQuery: {
            if (!authOk)
              throw new PgWireError(
                SqlState.protocolViolation,
                "gw: the target skipped authentication",
              );
            const rest = buf.subarray(end);
            done({
              socket: sock,
              parameterMessages: params,
              backendKey,
              leftover: rest.length > 0 ? Buffer.from(rest) : null,
              encrypted,
            });
            return false;
          }
          default:
            throw new PgWireError(
              SqlState.protocolViolation,
              `gw: unexpected message '${String.fromCharCode(type)}' from the target during sign-in`,
            );
        }
      };
      sock.on("data", (chunk: Buffer) => {
        try {
          framer.push(chunk, onMessage);
        } catch (err) {
          fail(toWire(err));
        }
      });
    };

    const toWire = (err: unknown): PgWireError => {
      if (err instanceof PgWireError) return err;
      if (err instanceof ScramError) {
        return new PgWireError(
          SqlState.invalidPassword,
          `gw: SCRAM sign-in to the target of ${t.name} failed: ${err.message}`,
        );
      }
      return new PgWireError(
        SqlState.protocolViolation,
        `gw: the target of ${t.name} sent a malformed message during sign-in`,
      );
    };

    const onConnected = (plain: Duplex) => {
      if (t.tls === "disable") return startAuth();
      plain.write(sslRequest());
      const onAnswer = (chunk: Buffer) => {
        plain.off("data", onAnswer);
        // The answer is one byte; anything after it would be injected before TLS (CVE-2021-23222).
        if (chunk.length !== 1)
          return fail(
            new PgWireError(
              SqlState.protocolViolation,
              `gw: the target of ${t.name} sent unexpected bytes after its SSL answer`,
            ),
          );
        if (chunk[0] === 0x4e /* N */) {
          if (t.tls !== "prefer") {
            return fail(
              new PgWireError(
                SqlState.connectionFailure,
                `gw: the target of ${t.name} does not accept TLS, but the broker requires it (tls: ${t.tls})`,
              ),
            );
          }
          return startAuth();
        }
        if (chunk[0] !== 0x53 /* S */)
          return fail(
            new PgWireError(
              SqlState.protocolViolation,
              `gw: the target of ${t.name} answered the SSL request with garbage`,
            ),
          );
        const verify = t.tls === "verify-full" || (t.tls === "require" && t.ca !== undefined);
        plain.removeListener("error", onError);
        plain.removeListener("close", onClose);
        const secure = tlsConnect({
          socket: plain,
          servername: /^[\d.]+$|:/.test(t.host) ? undefined : t.host,
          ...(t.ca ? { secureContext: contextTrustingOnly(t.ca) } : {}),
          rejectUnauthorized: verify,
          // "require" with a CA checks the chain only, like libpq's verify-ca.
          ...(t.tls === "require" ? { checkServerIdentity: () => undefined } : {}),
        });
        socket = secure;
        secure.on("error", onError);
        secure.on("close", onClose);
        secure.once("secureConnect", () => {
          encrypted = true;
          secure.setNoDelay(true);
          startAuth();
        });
      };
      plain.on("data", onAnswer);
    };

    const attach = (s: Duplex) => {
      socket = s;
      s.on("error", onError);
      s.on("close", onClose);
    };
    if (t.dial) {
      t.dial(t.host, t.port).then(
        (s) => {
          if (settled) return void s.destroy();
          attach(s);
          onConnected(s);
        },
        (err: unknown) => fail(dialFailed(t, err)),
      );
    } else {
      const s = netConnect({ host: t.host, port: t.port });
      s.setNoDelay(true);
      attach(s);
      s.once("connect", () => onConnected(s));
    }
  });
}

/** A target behind an agent that could not be reached: the hub's words, as a wire error. */
function dialFailed(t: UpstreamTarget, err: unknown): PgWireError {
  if (err instanceof DialError)
    return new PgWireError(SqlState.connectionFailure, `gw: ${err.message}`, {
      ...(err.hint ? { hint: err.hint } : {}),
    });
  return new PgWireError(
    SqlState.connectionFailure,
    `gw: cannot reach the target of ${t.name} through its agent`,
    { hint: "Tell the broker's operators; the broker log says why." },
  );
}

function targetRefused(t: UpstreamTarget, f: Map<string, string>, authOk: boolean): PgWireError {
  const code = f.get("C") ?? SqlState.connectionFailure;
  const msg = f.get("M") ?? "unknown error";
  if (!authOk && (code === SqlState.invalidPassword || code === SqlState.invalidAuthorization)) {
    // The target's own message may name the user, which is fine; the password never is in it.
    return new PgWireError(
      code,
      `gw: the target of ${t.name} rejected the broker's stored credentials (${msg})`,
      {
        hint: "This is not your sign-in: the broker's credentials for this connection are wrong. Tell the broker's operators.",
      },
    );
  }
  return new PgWireError(code, `gw: the target of ${t.name} refused the session: ${msg}`, {
    ...(f.get("D") ? { detail: f.get("D")! } : {}),
    ...(f.get("H") ? { hint: f.get("H")! } : {}),
  });
}
