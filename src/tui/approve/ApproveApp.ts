import { useApp, useInput } from "ink";
import { createElement as h, useEffect, useReducer, useRef, type ReactElement } from "react";
import type { ApprovalFeedEvent, ApprovalView, FeedStatus } from "../../tunnel/approvals-client.js";
import { useTerminalSize } from "../useTerminalSize.js";
import { ApproveScreen } from "./ApproveScreen.js";
import { initialState, reducer, type DecisionCommand } from "./state.js";

export interface FeedHandlers {
  onEvent(event: ApprovalFeedEvent): void;
  onStatus(status: FeedStatus): void;
}

export interface ApproveAppProps {
  /** The broker being watched, as people know it (its URL). */
  broker: string;
  /** Follows the live feed until `signal` aborts; rejects when it cannot go on. */
  watch(handlers: FeedHandlers, signal: AbortSignal): Promise<void>;
  /** Sends one decision; rejects with the broker's error ({ code, message, hint }). */
  decide(command: DecisionCommand): Promise<ApprovalView>;
  /** The clock; default Date.now. */
  now?: () => number;
  /** How often ages and countdowns are redrawn; default 1 s. */
  tickMs?: number;
}

interface ErrorLike {
  code?: unknown;
  message?: unknown;
  hint?: unknown;
}

/** `gw approve`: the live queue of requests waiting for this person's decision. */
export function ApproveApp(props: ApproveAppProps): ReactElement {
  const clock = props.now ?? Date.now;
  const [state, dispatch] = useReducer(reducer, undefined, () => initialState(clock()));
  const { exit } = useApp();
  const size = useTerminalSize();
  const propsRef = useRef(props);
  propsRef.current = props;

  // The live feed: pushed by the broker, reconnected by the client; nothing here polls.
  useEffect(() => {
    const ctl = new AbortController();
    propsRef.current
      .watch(
        {
          onEvent: (event) =>
            dispatch(
              event.type === "snapshot"
                ? { type: "snapshot", approvals: event.approvals }
                : { type: "event", event },
            ),
          onStatus: (status) => dispatch({ type: "feed", status }),
        },
        ctl.signal,
      )
      .catch((err: unknown) => {
        if (ctl.signal.aborted) return;
        const e = err as ErrorLike;
        dispatch({ type: "feed", status: { state: "stopped" } });
        dispatch({
          type: "notice",
          message: {
            kind: "error",
            text: `The live feed stopped: ${String(e?.message ?? err)}`,
            ...(typeof e?.hint === "string" ? { hint: e.hint } : {}),
          },
        });
      });
    return () => ctl.abort();
  }, []);

  // The clock for ages and countdowns (a redraw, not a request).
  useEffect(() => {
    const t = setInterval(() => dispatch({ type: "tick", now: clock() }), props.tickMs ?? 1000);
    return () => clearInterval(t);
  }, [clock, props.tickMs]);

  // Decisions queued by the reducer go to the broker; the answer comes back as an action.
  useEffect(() => {
    if (state.outbox.length === 0) return;
    const batch = state.outbox;
    dispatch({ type: "commandsTaken", upTo: batch[batch.length - 1]!.seq });
    for (const cmd of batch) {
      propsRef.current.decide(cmd).then(
        (approval) =>
          dispatch({ type: "decisionSucceeded", id: cmd.id, decision: cmd.decision, approval }),
        (err: unknown) => {
          const e = err as ErrorLike;
          dispatch({
            type: "decisionFailed",
            id: cmd.id,
            decision: cmd.decision,
            message: typeof e?.message === "string" ? e.message : String(err),
            hint: typeof e?.hint === "string" ? e.hint : undefined,
            code: typeof e?.code === "string" ? e.code : undefined,
          });
        },
      );
    }
  }, [state.outbox]);

  // Keys go to the reducer as they are: it maps them with the mode it is in at that moment,
  // so a key typed right after another (d, then the reason) never meets a stale mode.
  useInput((input, key) => dispatch({ type: "key", input, key }));

  useEffect(() => {
    if (state.quit) exit();
  }, [state.quit, exit]);

  return h(ApproveScreen, {
    state,
    broker: props.broker,
    columns: size.columns,
    rows: size.rows,
  });
}
