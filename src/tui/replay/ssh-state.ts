import type { Key } from "ink";
import { sshActionFor, type SshKeyAction } from "./ssh-keys.js";
import { MAX_GAP_MS, SPEEDS } from "./state.js";

/**
 * The ssh player's state, as a pure reducer: where in the session (ms), playing or not, the
 * speed, the channel shown. The screen itself is derived from the position (the terminal
 * emulator re-creates it), so seeking is only a number here.
 */
export interface SshPlayerState {
  durationMs: number;
  /** Times of the marked events, ascending. */
  markers: readonly number[];
  /** Channel numbers the player can show, in order. */
  channels: readonly number[];
  channelIndex: number;
  positionMs: number;
  playing: boolean;
  speedIndex: number;
  message: string | null;
  quit: boolean;
}

export type SshPlayerAction =
  | SshKeyAction
  | { type: "key"; input: string; key: Partial<Key> }
  /** Playing: the next moment to show. */
  | { type: "advance"; toMs: number }
  /** Playing reached the end. */
  | { type: "ended" };

const NORMAL_SPEED = SPEEDS.indexOf(1);

export function initialSshState(opts: {
  durationMs: number;
  markers: readonly number[];
  channels: readonly number[];
  channel: number | null;
  autoplay?: boolean;
}): SshPlayerState {
  const at = opts.channel === null ? -1 : opts.channels.indexOf(opts.channel);
  return {
    durationMs: opts.durationMs,
    markers: [...opts.markers].sort((a, b) => a - b),
    channels: opts.channels,
    channelIndex: Math.max(0, at),
    positionMs: 0,
    playing: opts.autoplay === true,
    speedIndex: NORMAL_SPEED,
    message: null,
    quit: false,
  };
}

export function sshSpeed(s: SshPlayerState): number {
  return SPEEDS[s.speedIndex]!;
}

export function currentChannel(s: SshPlayerState): number | null {
  return s.channels[s.channelIndex] ?? null;
}

/** A frame's worth of real time: stops closer than this are shown together. */
export const FRAME_MS = 33;

/**
 * When (real ms from now) and to where (session ms) playing moves next, from `pos` through the
 * sorted `stops` (output and events): each gap divided by the speed, idle gaps shortened to
 * MAX_GAP_MS, and stops less than a frame apart merged. Null at the end.
 */
export function nextStop(
  stops: readonly number[],
  pos: number,
  speed: number,
): { delayMs: number; toMs: number } | null {
  let i = upperBound(stops, pos);
  if (i >= stops.length) return null;
  const gap = Math.min(stops[i]! - pos, MAX_GAP_MS) / speed;
  if (gap >= FRAME_MS) return { delayMs: gap, toMs: stops[i]! };
  const horizon = pos + FRAME_MS * speed;
  while (i + 1 < stops.length && stops[i + 1]! <= horizon) i++;
  return { delayMs: FRAME_MS, toMs: stops[i]! };
}

/** The index of the first value greater than `v` in ascending `xs`. */
export function upperBound(xs: readonly number[], v: number): number {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (xs[mid]! <= v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export function reduceSsh(s: SshPlayerState, a: SshPlayerAction): SshPlayerState {
  const to = (ms: number, message: string | null = null): SshPlayerState => ({
    ...s,
    positionMs: Math.max(0, Math.min(s.durationMs, ms)),
    message,
  });
  switch (a.type) {
    case "key": {
      const action = sshActionFor(a.input, a.key);
      return action === null ? s : reduceSsh(s, action);
    }
    case "togglePlay":
      if (s.playing) return { ...s, playing: false, message: null };
      // Playing from the end starts over.
      return { ...(s.positionMs >= s.durationMs ? to(0) : s), playing: true, message: null };
    case "seek":
      return to(s.positionMs + a.byMs);
    case "event": {
      const m = s.markers;
      const target =
        a.dir === 1
          ? m.find((x) => x > s.positionMs)
          : [...m].reverse().find((x) => x < s.positionMs);
      if (target === undefined) {
        return { ...s, message: a.dir === 1 ? "no later event" : "no earlier event" };
      }
      return { ...to(target), playing: false };
    }
    case "speed": {
      const speedIndex = Math.max(0, Math.min(SPEEDS.length - 1, s.speedIndex + a.by));
      return { ...s, speedIndex };
    }
    case "jump":
      return { ...to(a.where === "start" ? 0 : s.durationMs), playing: false };
    case "channel": {
      const n = s.channels.length;
      if (n < 2) return { ...s, message: "this session has one channel" };
      return { ...s, channelIndex: (s.channelIndex + a.by + n) % n, message: null };
    }
    case "advance":
      return s.playing ? to(a.toMs) : s;
    case "ended":
      return s.playing ? { ...to(s.durationMs, "end of the session"), playing: false } : s;
    case "quit":
      return { ...s, quit: true, playing: false };
  }
}
