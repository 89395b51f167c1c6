import { Text } from "ink";
import { createElement as h, type ReactElement } from "react";
import type { FeedStatus } from "../../tunnel/approvals-client.js";
import { useTheme } from "../theme.js";
import { truncate } from "./format.js";
import type { ApproveState } from "./state.js";

/** The feed, for people: "live", "reconnecting in 4s: connection refused". */
export function feedText(feed: FeedStatus, now: number): string {
  switch (feed.state) {
    case "connecting":
      return feed.attempt > 1 ? `connecting (attempt ${feed.attempt})…` : "connecting…";
    case "live":
      return "live";
    case "reconnecting": {
      const s = Math.max(0, Math.ceil((feed.retryAt - now) / 1000));
      return `feed lost (${feed.reason}); reconnecting ${s > 0 ? `in ${s}s` : "now"}`;
    }
    case "stopped":
      return "stopped";
  }
}

/**
 * The line above the help: the inline input when one is open (deny reason, filter), else the
 * latest message (broker errors as the broker worded them), else the feed when it is not live.
 */
export function StatusLine(props: { state: ApproveState; width: number }): ReactElement {
  const theme = useTheme();
  const s = props.state;
  const w = props.width;
  if (s.mode === "deny") {
    const prompt = `Deny ${s.denyFor} — reason: `;
    // The end of a long reason is what is being typed: keep it in view.
    const room = Math.max(1, w - prompt.length - 1);
    const chars = Array.from(s.draft);
    const shown =
      chars.length > room ? "…" + chars.slice(chars.length - room + 1).join("") : s.draft;
    return h(
      Text,
      { wrap: "truncate-end" },
      h(Text, { color: theme.danger, bold: true }, prompt),
      shown,
      h(Text, { inverse: true }, " "),
      s.draft === ""
        ? h(Text, { color: theme.muted }, " the requester sees it; Enter denies, Esc cancels")
        : null,
    );
  }
  if (s.mode === "filter") {
    return h(
      Text,
      { wrap: "truncate-end" },
      h(Text, { color: theme.accent, bold: true }, "Filter: "),
      s.draft,
      h(Text, { inverse: true }, " "),
    );
  }
  if (s.message !== null) {
    const m = s.message;
    const color =
      m.kind === "error" ? theme.danger : m.kind === "success" ? theme.success : undefined;
    const text = m.hint ? `${m.text} — ${m.hint}` : m.text;
    return h(
      Text,
      { wrap: "truncate-end", ...(color ? { color } : {}), bold: m.kind === "error" },
      truncate(text, w),
    );
  }
  if (s.feed.state !== "live") {
    return h(
      Text,
      { wrap: "truncate-end", color: theme.warning },
      truncate(feedText(s.feed, s.now), w),
    );
  }
  return h(Text, null, " ");
}
