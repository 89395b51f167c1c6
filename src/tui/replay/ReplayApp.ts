import { useApp, useInput } from "ink";
import { createElement as h, useEffect, useReducer, type ReactElement } from "react";
import type { Replay } from "../../audit/replay.js";
import { useTerminalSize } from "../useTerminalSize.js";
import { ReplayScreen } from "./ReplayScreen.js";
import { delayToNext, initialReplayState, reduce, speedOf } from "./state.js";

export interface ReplayAppProps {
  replay: Replay;
  /** Start playing at once (default: paused on the first statement). */
  autoplay?: boolean;
}

/**
 * `gw replay`: a recorded session, statement by statement, paced by its real timing (idle
 * gaps shortened) at 0.25x–16x, with search.
 */
export function ReplayApp(props: ReplayAppProps): ReactElement {
  const statements = props.replay.statements;
  const [state, dispatch] = useReducer(reduce, statements, (st) => {
    const s = initialReplayState(st);
    return props.autoplay && st.length > 0 ? { ...s, playing: true } : s;
  });
  const { exit } = useApp();
  const size = useTerminalSize();

  // While playing, the next statement comes after its real gap, divided by the speed.
  useEffect(() => {
    if (!state.playing) return;
    const delay = delayToNext(statements, state.index, speedOf(state));
    const t = setTimeout(() => dispatch({ type: "tick" }), delay ?? 0);
    return () => clearTimeout(t);
  }, [state.playing, state.index, state.speedIndex, statements]);

  useInput((input, key) => dispatch({ type: "key", input, key }));

  useEffect(() => {
    if (state.quit) exit();
  }, [state.quit, exit]);

  return h(ReplayScreen, {
    replay: props.replay,
    state,
    columns: size.columns,
    rows: size.rows,
  });
}
