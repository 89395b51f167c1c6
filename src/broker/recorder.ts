import type { Identity } from "../identity/principal.js";
import type { SessionHooks } from "../protocols/postgres/session.js";
import type { SessionStore } from "../store/types.js";
import type { Logger } from "./logger.js";

/**
 * The hooks that turn a protocol session into a session record and statement events.
 * The record is written before the first statement may run; a failed write closes the session.
 */
export function recordingHooks(opts: {
  store: SessionStore;
  sessionId: string;
  identity: Identity;
  connection: string;
  clientAddress: string | null;
  log: Logger;
  onStarted?: () => void;
}): SessionHooks {
  const { store, sessionId, identity, log } = opts;
  let started = false;
  let seq = 0;
  return {
    async onStart({ applicationName }) {
      await store.createSession({
        id: sessionId,
        identity: {
          oid: identity.oid,
          name: identity.name,
          type: identity.type,
          upn: identity.upn,
        },
        connection: opts.connection,
        protocol: "postgres",
        applicationName,
        clientAddress: opts.clientAddress,
        startedAt: Date.now(),
        endedAt: null,
        endReason: null,
        endDetail: null,
        bytesIn: 0,
        bytesOut: 0,
        statementCount: 0,
      });
      started = true;
      log.log("info", "session started", { applicationName });
      opts.onStarted?.();
    },
    onStatement(s) {
      return store.addStatement({ sessionId, seq: ++seq, ...s });
    },
    onEnd({ reason, detail, bytesIn, bytesOut, statements }) {
      log.log("info", "session ended", { reason, detail, bytesIn, bytesOut, statements });
      if (!started) return;
      store
        .endSession(sessionId, {
          endedAt: Date.now(),
          endReason: reason,
          endDetail: detail,
          bytesIn,
          bytesOut,
          statementCount: statements,
        })
        .catch((err: unknown) =>
          log.log("error", "could not record the end of a session", { error: String(err) }),
        );
    },
    log(level, msg, fields) {
      log.log(level, msg, fields);
    },
  };
}
