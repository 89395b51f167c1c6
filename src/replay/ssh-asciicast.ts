import { toAsciicast, type SshEvent } from "../protocols/ssh/events.js";
import { channelLabel, defaultChannel, terminalOf, type SshReplay } from "./ssh-replay.js";

/**
 * One channel of an ssh session as an asciicast v2 file (`asciinema play`), through the ssh
 * recorder's own toAsciicast. `channel` defaults to the first shell; null when the channel
 * never ran a shell or a command (an sftp channel has no terminal to play).
 */
export function sshAsciicast(r: SshReplay, channel?: number): string | null {
  const ch = channel ?? defaultChannel(r);
  if (ch === null) return null;
  const c = r.channels.find((x) => x.channel === ch);
  // Without a pty nothing turned \n into \r\n; asciinema plays the bytes as a tty would show
  // them, so do it here, as the player's emulator does.
  const eol = terminalOf(r, ch).convertEol;
  const events: SshEvent[] = r.events.map(({ event: e }) =>
    eol && e.kind === "output" && e.channel === ch
      ? { ...e, data: e.data.replace(/\r?\n/g, "\r\n") }
      : e,
  );
  const s = r.session;
  return toAsciicast(events, {
    channel: ch,
    timestamp: s.startedAt,
    title: `gw session ${s.id} · ${s.identity.name} on ${s.connection} · ${c ? channelLabel(c) : `channel ${ch}`}`,
  });
}
