/**
 * The device-login page: where a person enters the code the CLI showed, picks one of the demo
 * identities and approves or declines. Plain HTML forms, no JavaScript, no passwords: this is a
 * stand-in for Entra's sign-in, and it says so at the top of every page.
 *
 *   GET  /devicelogin[?otc=CODE]   the form (otc pre-fills the code, like Entra's link)
 *   POST /devicelogin              otc, oid, action=approve|decline, csrf
 *
 * The forms carry a per-server anti-CSRF token, so another web page open in the same browser
 * cannot approve a code it started itself.
 */
import { LOCAL_ENTRA_BANNER } from "./banner.js";
import type { DeviceFlow } from "./device-flow.js";
import type { Client, Directory } from "./directory.js";

export interface LoginPageContext {
  dir: Directory;
  deviceFlow: DeviceFlow;
  tenantId: string;
  csrf: string;
}

export interface Page {
  status: number;
  html: string;
}

function esc(s: string): string {
  return s
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}

function layout(title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)} — ${esc(LOCAL_ENTRA_BANNER)}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 36rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
.banner { background: #b00020; color: #fff; font-weight: bold; padding: .8rem 1rem; border-radius: 4px; text-align: center; letter-spacing: .03em; }
.note { color: #555; font-size: .9rem; }
.error { background: #fde7e9; border-left: 4px solid #b00020; padding: .6rem .8rem; }
.ok { background: #e6f4ea; border-left: 4px solid #1e7e34; padding: .6rem .8rem; }
fieldset { border: 1px solid #ccc; border-radius: 4px; margin: 1rem 0; }
label { display: block; margin: .4rem 0; }
input[name=otc] { font: 1.3rem monospace; letter-spacing: .15em; text-transform: uppercase; padding: .3rem; width: 12rem; }
button { font-size: 1rem; padding: .5rem 1.2rem; margin-right: .5rem; }
small { color: #666; }
</style>
</head>
<body>
<div class="banner" role="alert">${esc(LOCAL_ENTRA_BANNER)}</div>
<p class="note">This page is served by gw's local identity server for tests and demos. It signs you
in as a made-up identity, without a password. Real sign-in happens at Microsoft, never here.</p>
${body}
</body>
</html>
`;
}

function clientName(c: Client | undefined, id: string): string {
  return c ? `${c.displayName} (${c.clientId})` : id;
}

function form(ctx: LoginPageContext, code: string, error?: string): string {
  const users = ctx.dir.users
    .map(
      (
        u,
        i,
      ) => `<label><input type="radio" name="oid" value="${esc(u.oid)}"${i === 0 ? " checked" : ""}>
 <b>${esc(u.name)}</b> &lt;${esc(u.preferred_username)}&gt;<br><small>oid ${esc(u.oid)}${
   (u.groups ?? []).length > 0 ? ` · groups ${esc((u.groups ?? []).join(", "))}` : ""
 }${(u.roles ?? []).length > 0 ? ` · roles ${esc((u.roles ?? []).join(", "))}` : ""}</small></label>`,
    )
    .join("\n");
  return `<h1>Sign in with a device code</h1>
${error ? `<p class="error">${esc(error)}</p>` : ""}
<form method="post" action="/devicelogin">
<input type="hidden" name="csrf" value="${esc(ctx.csrf)}">
<p><label>Code shown by the application<br>
<input name="otc" value="${esc(code)}" autocomplete="off" autofocus required maxlength="20"></label></p>
<fieldset><legend>Sign in as</legend>
${users || "<p>No identities are registered.</p>"}
</fieldset>
<p><button type="submit" name="action" value="approve">Approve</button>
<button type="submit" name="action" value="decline">Decline</button></p>
</form>
<p class="note">Tenant ${esc(ctx.tenantId)}</p>`;
}

export function loginPage(ctx: LoginPageContext, query: URLSearchParams): Page {
  return { status: 200, html: layout("Device sign-in", form(ctx, query.get("otc") ?? "")) };
}

export function loginSubmit(ctx: LoginPageContext, body: URLSearchParams): Page {
  const code = (body.get("otc") ?? "").trim();
  if (body.get("csrf") !== ctx.csrf) {
    return {
      status: 403,
      html: layout(
        "Refused",
        `<p class="error">This form did not come from this server's sign-in page. Open the page again and retry.</p>`,
      ),
    };
  }
  const retry = (status: number, error: string): Page => ({
    status,
    html: layout("Device sign-in", form(ctx, code, error)),
  });
  const entry = code === "" ? undefined : ctx.deviceFlow.lookup(code);
  if (!entry) return retry(400, "That code is not valid. Check the code and try again.");
  if (ctx.deviceFlow.isExpired(entry)) {
    return retry(400, "That code has expired. Start the sign-in again in the application.");
  }
  if (entry.status !== "pending") {
    return retry(400, "That code was already used. Start the sign-in again in the application.");
  }
  const app = clientName(ctx.dir.client(entry.clientId), entry.clientId);
  const action = body.get("action");
  if (action === "decline") {
    ctx.deviceFlow.decline(entry.userCode);
    return {
      status: 200,
      html: layout(
        "Sign-in declined",
        `<h1>Sign-in declined</h1><p class="ok">You declined the sign-in to ${esc(app)}. You can close this window.</p>`,
      ),
    };
  }
  if (action !== "approve") return retry(400, "Choose Approve or Decline.");
  const user = ctx.dir.user(body.get("oid") ?? "");
  if (!user) return retry(400, "Choose an identity to sign in as.");
  ctx.deviceFlow.approve(entry.userCode, user.oid);
  return {
    status: 200,
    html: layout(
      "Signed in",
      `<h1>You're signed in</h1><p class="ok">You signed in to ${esc(app)} as <b>${esc(user.name)}</b>
&lt;${esc(user.preferred_username)}&gt;, for the scopes <code>${esc(entry.scope)}</code>.
You can close this window and return to the application.</p>`,
    ),
  };
}
