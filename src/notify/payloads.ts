import type { ApprovalEvent } from "../approvals/service.js";
import type { ApprovalRequest } from "../store/types.js";
import type { WebhookFormat } from "./config.js";

/**
 * What a webhook receives for an approval event, in three shapes: a generic JSON document for
 * anything that reads JSON, a Microsoft Teams message carrying an Adaptive Card, and a Slack
 * incoming-webhook message built of blocks.
 */

export interface PayloadOptions {
  /** Put the statement text in the message; default true. */
  includeSql?: boolean;
}

export function approveCommand(id: string): string {
  return `gw approvals approve ${id}`;
}

export function denyCommand(id: string): string {
  return `gw approvals deny ${id} --reason TEXT`;
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** The statement's first keyword, for titles: DELETE, UPDATE, … */
function verbOf(sql: string): string {
  const m = /^\s*(?:(?:--[^\n]*\n|\/\*[\s\S]*?\*\/)\s*)*([A-Za-z]+)/.exec(sql);
  return m ? m[1]!.toUpperCase() : "statement";
}

function approvalsSoFar(a: ApprovalRequest): number {
  return new Set(a.decisions.filter((d) => d.decision === "approve").map((d) => d.by.oid)).size;
}

/** A one-line title for the event. */
export function titleOf(ev: ApprovalEvent): string {
  const a = ev.approval;
  switch (ev.type) {
    case "created":
      return `Approval needed: ${verbOf(a.sql)} on ${a.connection} by ${a.requester.name || a.requester.oid}`;
    case "decided": {
      const d = ev.decision;
      if (a.status === "approved") return `Approved: ${a.id} on ${a.connection} by ${d.by.name}`;
      if (a.status === "denied") return `Denied: ${a.id} on ${a.connection} by ${d.by.name}`;
      return `${d.by.name} approved ${a.id} (${approvalsSoFar(a)} of ${a.minApprovals}); more approvals needed`;
    }
    case "expired":
      return `Expired: ${a.id} on ${a.connection}; nobody decided in time`;
    case "cancelled":
      return `Cancelled: ${a.id} on ${a.connection}`;
  }
}

/** A sentence under the title: why it is held, or how it ended. */
function summaryOf(ev: ApprovalEvent): string {
  const a = ev.approval;
  if (ev.type === "created") return a.reason;
  if (ev.type === "decided") {
    const d = ev.decision;
    return d.reason ? `${d.decision === "approve" ? "Approved" : "Denied"}: ${d.reason}` : a.reason;
  }
  if (ev.type === "cancelled") return a.statusDetail ?? "The statement stopped waiting.";
  return a.statusDetail ?? "No decision before the request expired.";
}

const requesterText = (a: ApprovalRequest) =>
  `${a.requester.name || a.requester.oid} (${a.requester.type})`;

// --- generic ---------------------------------------------------------------------------

export function genericPayload(ev: ApprovalEvent, opts: PayloadOptions = {}) {
  const a = ev.approval;
  return {
    event: ev.type,
    title: titleOf(ev),
    approval: {
      id: a.id,
      connection: a.connection,
      requester: { name: a.requester.name, type: a.requester.type, oid: a.requester.oid },
      applicationName: a.applicationName,
      agentLabel: a.agentLabel,
      sql: opts.includeSql === false ? null : a.sql,
      statementHash: a.statementHash,
      reason: a.reason,
      rule: { index: a.matchedRule.index, description: a.matchedRule.description },
      approvers: [...a.approvers],
      minApprovals: a.minApprovals,
      createdAt: iso(a.createdAt),
      expiresAt: iso(a.expiresAt),
      status: a.status,
      statusDetail: a.statusDetail,
      decisions: a.decisions.map((d) => ({
        by: { name: d.by.name, oid: d.by.oid },
        decision: d.decision,
        reason: d.reason,
        at: iso(d.at),
      })),
    },
    ...(ev.type === "decided"
      ? {
          decision: {
            by: { name: ev.decision.by.name, oid: ev.decision.by.oid },
            decision: ev.decision.decision,
            reason: ev.decision.reason,
            at: iso(ev.decision.at),
          },
        }
      : {}),
    approveCommand: approveCommand(a.id),
    denyCommand: denyCommand(a.id),
  };
}

// --- Microsoft Teams: an Adaptive Card --------------------------------------------------

/** Teams shows about this much of a text block before it is useless; the rest is cut. */
const TEAMS_SQL_MAX = 4000;

function facts(ev: ApprovalEvent): { title: string; value: string }[] {
  const a = ev.approval;
  const out = [
    { title: "Request", value: a.id },
    { title: "Requester", value: requesterText(a) },
    { title: "Connection", value: a.connection },
    { title: "Application", value: a.applicationName ?? "-" },
  ];
  if (a.agentLabel) out.push({ title: "Agent", value: a.agentLabel });
  out.push({
    title: "Rule",
    value: `${a.matchedRule.index >= 0 ? `#${a.matchedRule.index + 1} ` : ""}${a.matchedRule.description}`,
  });
  out.push({
    title: "Approvers",
    value: `${a.approvers.join(", ")} (${approvalsSoFar(a)} of ${a.minApprovals})`,
  });
  if (a.status === "pending") out.push({ title: "Expires", value: iso(a.expiresAt)! });
  else out.push({ title: "Status", value: a.status });
  return out;
}

function cutText(s: string, max: number): string {
  return s.length <= max ? s : s.slice(0, max - 1) + "…";
}

export function teamsPayload(ev: ApprovalEvent, opts: PayloadOptions = {}) {
  const a = ev.approval;
  const color =
    a.status === "approved"
      ? "Good"
      : a.status === "denied"
        ? "Attention"
        : a.status === "pending"
          ? "Warning"
          : "Default";
  const body: Record<string, unknown>[] = [
    {
      type: "TextBlock",
      size: "Large",
      weight: "Bolder",
      text: titleOf(ev),
      wrap: true,
      color,
    },
    { type: "TextBlock", text: summaryOf(ev), wrap: true, isSubtle: true, spacing: "Small" },
    { type: "FactSet", facts: facts(ev) },
  ];
  if (opts.includeSql !== false) {
    body.push({
      type: "Container",
      style: "emphasis",
      items: [
        {
          type: "TextBlock",
          text: cutText(a.sql, TEAMS_SQL_MAX),
          wrap: true,
          fontType: "Monospace",
        },
      ],
    });
  }
  if (a.status === "pending") {
    body.push({
      type: "TextBlock",
      text: `Approve: ${approveCommand(a.id)}`,
      wrap: true,
      fontType: "Monospace",
      spacing: "Medium",
    });
    body.push({
      type: "TextBlock",
      text: `Deny: ${denyCommand(a.id)}  ·  or review in \`gw approve\``,
      wrap: true,
      fontType: "Monospace",
      isSubtle: true,
      spacing: "None",
    });
  }
  return {
    type: "message",
    summary: titleOf(ev),
    attachments: [
      {
        contentType: "application/vnd.microsoft.card.adaptive",
        contentUrl: null,
        content: {
          $schema: "http://adaptivecards.io/schemas/adaptive-card.json",
          type: "AdaptiveCard",
          version: "1.4",
          msteams: { width: "Full" },
          body,
        },
      },
    ],
  };
}

// --- Slack: incoming webhook with blocks --------------------------------------------------

/** Slack's limits: header text 150, a section's text 3000, a field's 2000, 10 fields. */
const SLACK_HEADER_MAX = 150;
const SLACK_TEXT_MAX = 3000;
const SLACK_FIELD_MAX = 2000;

/** mrkdwn needs &, < and > escaped (they start links and entities). */
export function slackEscape(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function codeBlock(sql: string): string {
  // A ``` inside the statement would end the block early: break it with a zero-width space.
  const body = slackEscape(sql).replace(/```/g, "`\u200b``");
  const room = SLACK_TEXT_MAX - 8;
  return "```" + (body.length > room ? body.slice(0, room - 1) + "…" : body) + "```";
}

export function slackPayload(ev: ApprovalEvent, opts: PayloadOptions = {}) {
  const a = ev.approval;
  const title = titleOf(ev);
  const fields = facts(ev)
    .slice(0, 10)
    .map((f) => ({
      type: "mrkdwn",
      text: cutText(`*${f.title}*\n${slackEscape(f.value)}`, SLACK_FIELD_MAX),
    }));
  const blocks: Record<string, unknown>[] = [
    {
      type: "header",
      text: { type: "plain_text", text: cutText(title, SLACK_HEADER_MAX), emoji: false },
    },
    {
      type: "section",
      text: { type: "mrkdwn", text: cutText(slackEscape(summaryOf(ev)), SLACK_TEXT_MAX) },
      fields,
    },
  ];
  if (opts.includeSql !== false)
    blocks.push({ type: "section", text: { type: "mrkdwn", text: codeBlock(a.sql) } });
  blocks.push({
    type: "context",
    elements: [
      {
        type: "mrkdwn",
        text:
          a.status === "pending"
            ? `Approve with \`${approveCommand(a.id)}\` · deny with \`${denyCommand(a.id)}\` · or review in \`gw approve\``
            : `Request ${a.id} is ${a.status}.`,
      },
    ],
  });
  return { text: title, blocks };
}

export function payloadFor(format: WebhookFormat, ev: ApprovalEvent, opts: PayloadOptions = {}) {
  switch (format) {
    case "teams":
      return teamsPayload(ev, opts);
    case "slack":
      return slackPayload(ev, opts);
    default:
      return genericPayload(ev, opts);
  }
}
