import { z } from "zod";
import { secretRef } from "../config/refs.js";

/**
 * The `notifications` section of the broker config: webhooks told about approval requests.
 *
 *   notifications:
 *     webhooks:
 *       - url: { env: GW_TEAMS_WEBHOOK }     # or a plain https URL with no secret in it
 *         format: teams                      # generic (default) | teams | slack
 *         events: [created, decided]         # default: all four
 *         headers:
 *           Authorization: { env: GW_HOOK_AUTH }
 *
 * Webhook URLs of Teams and Slack carry their secret in the URL, so `url` may be a secret
 * reference like header values; header values are always references (never inline).
 */

export const NOTIFY_EVENTS = ["created", "decided", "expired", "cancelled"] as const;
export type NotifyEvent = (typeof NOTIFY_EVENTS)[number];
export const WEBHOOK_FORMATS = ["generic", "teams", "slack"] as const;
export type WebhookFormat = (typeof WEBHOOK_FORMATS)[number];

const webhookUrl = z.string().refine(
  (s) => {
    try {
      const u = new URL(s);
      return u.protocol === "https:" || u.protocol === "http:";
    } catch {
      return false;
    }
  },
  { error: "expected an http(s) URL" },
);

/** RFC 9110 token characters: what a header name may be made of. */
const headerName = z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, "not a valid header name");

export const webhookConfig = z
  .object({
    /** A name for logs (the URL is never logged: it often holds the secret). */
    name: z.string().min(1).optional(),
    url: z.union([webhookUrl, secretRef], {
      error: "expected an http(s) URL, or { env: VAR } / { file: PATH } holding one",
    }),
    format: z
      .enum(WEBHOOK_FORMATS, { error: `expected one of: ${WEBHOOK_FORMATS.join(", ")}` })
      .default("generic"),
    events: z
      .array(z.enum(NOTIFY_EVENTS, { error: `expected one of: ${NOTIFY_EVENTS.join(", ")}` }))
      .min(1)
      .default([...NOTIFY_EVENTS]),
    /** Extra request headers (an Authorization for a relay, say): secret references only. */
    headers: z.record(headerName, secretRef).optional(),
    /** Put the statement text in the message (default true; false for chat rooms that should not see literals). */
    includeSql: z.boolean().default(true),
    /** PEM file of a private CA for a webhook receiver behind one. */
    ca: z.string().min(1).optional(),
    /** Per attempt, in ms (default 10 s). */
    timeoutMs: z.number().int().min(100).max(120_000).default(10_000),
  })
  .strict();
export type WebhookConfig = z.infer<typeof webhookConfig>;

export const notificationsConfig = z
  .object({
    webhooks: z.array(webhookConfig).default([]),
  })
  .strict();
export type NotificationsConfig = z.infer<typeof notificationsConfig>;
