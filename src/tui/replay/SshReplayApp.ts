import { useApp, useInput } from "ink";
import {
  createElement as h,
  useEffect,
  useMemo,
  useReducer,
  useRef,
  useState,
  type ReactElement,
} from "react";
import type { ScreenSnapshot } from "../../replay/screen.js";
import { defaultChannel, terminalOf, type SshReplay } from "../../replay/ssh-replay.js";
import { TerminalReplayer } from "../../replay/terminal-replayer.js";
import { useTerminalSize } from "../useTerminalSize.js";
import { initialSshState, nextStop, reduceSsh, currentChannel, sshSpeed } from "./ssh-state.js";
import { SshReplayScreen, isTerminalChannel } from "./SshReplayScreen.js";

/** Runs `fn` after `ms`; returns how to cancel it. Tests pass their own to drive playing. */
export type Schedule = (fn: () => void, ms: number) => () => void;

const realSchedule: Schedule = (fn, ms) => {
  const t = setTimeout(fn, ms);
  return () => clearTimeout(t);
};

export interface SshReplayAppProps {
  replay: SshReplay;
  /** The channel shown first (default: the first shell). */
  channel?: number;
  autoplay?: boolean;
  schedule?: Schedule;
}

/**
 * `gw replay` of an ssh session: a channel's terminal re-created by a terminal emulator at
 * the player's position, played on the session's real timing (idle gaps shortened) at
 * 0.25x–16x, with seeking, jumps between marked events, and channel switching.
 */
export function SshReplayApp(props: SshReplayAppProps): ReactElement {
  const { replay } = props;
  const schedule = props.schedule ?? realSchedule;
  const [state, dispatch] = useReducer(reduceSsh, props, (p) =>
    initialSshState({
      durationMs: p.replay.durationMs,
      markers: p.replay.markers.map((m) => m.ms),
      channels: p.replay.channels.map((c) => c.channel),
      channel: p.channel ?? defaultChannel(p.replay),
      autoplay: p.autoplay === true,
    }),
  );
  const { exit } = useApp();
  const size = useTerminalSize();
  const ch = currentChannel(state);
  const channel = replay.channels.find((c) => c.channel === ch);
  const terminal = isTerminalChannel(channel);
  const spec = useMemo(() => (ch === null ? null : terminalOf(replay, ch)), [replay, ch]);

  // One emulator per channel shown, kept while the player runs: going forward only feeds
  // what is new.
  const replayers = useRef(new Map<number, TerminalReplayer>());
  useEffect(() => {
    const map = replayers.current;
    return () => {
      for (const r of map.values()) r.dispose();
      map.clear();
    };
  }, []);

  const [shown, setShown] = useState<{
    channel: number;
    ms: number;
    screen: ScreenSnapshot;
  } | null>(null);
  useEffect(() => {
    if (ch === null || spec === null || !terminal) return;
    let replayer = replayers.current.get(ch);
    if (!replayer) {
      replayer = new TerminalReplayer(spec);
      replayers.current.set(ch, replayer);
    }
    let live = true;
    const ms = state.positionMs;
    replayer.screenAt(ms).then(
      (screen) => {
        if (live && screen) setShown({ channel: ch, ms, screen });
      },
      () => undefined,
    );
    return () => {
      live = false;
    };
  }, [ch, spec, terminal, state.positionMs]);

  // Where playing stops: the channel's output, every marked event, and the end.
  const stops = useMemo(() => {
    const set = new Set<number>(replay.markers.map((m) => m.ms));
    for (const f of spec?.frames ?? []) set.add(f.ms);
    set.add(replay.durationMs);
    return [...set].sort((a, b) => a - b);
  }, [replay, spec]);

  const speed = sshSpeed(state);
  useEffect(() => {
    if (!state.playing) return;
    const step = nextStop(stops, state.positionMs, speed);
    if (step === null) {
      dispatch({ type: "ended" });
      return;
    }
    return schedule(() => dispatch({ type: "advance", toMs: step.toMs }), step.delayMs);
  }, [state.playing, state.positionMs, speed, stops, schedule]);

  useInput((input, key) => dispatch({ type: "key", input, key }));

  useEffect(() => {
    if (state.quit) exit();
  }, [state.quit, exit]);

  return h(SshReplayScreen, {
    replay,
    state,
    shown,
    columns: size.columns,
    rows: size.rows,
  });
}
