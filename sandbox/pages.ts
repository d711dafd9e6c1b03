import type { ScopeText } from '../src/auth/scopes.js';
import { DEMO_USERS, grantableScopes } from './accounts.js';

const ENTITIES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => ENTITIES[char]);
}

function layout(title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} - ScopeDB sandbox</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 34rem; margin: 3rem auto; padding: 0 1rem; color: #1d2330; }
h1 { font-size: 1.4rem; } .note { color: #5b6478; font-size: .9rem; }
label { display: block; margin: .6rem 0; } input[type=text], input[type=password] { width: 100%; padding: .4rem; }
.scope { border: 1px solid #d5d9e2; border-radius: 6px; padding: .6rem .8rem; margin: .5rem 0; }
.scope small { display: block; color: #5b6478; margin-left: 1.6rem; }
.error { color: #a3261b; } ul.scopes { padding: 0; list-style: none; } button { padding: .5rem 1.2rem; margin-right: .5rem; }
table { border-collapse: collapse; font-size: .9rem; } td, th { padding: .2rem .6rem; text-align: left; }
</style>
</head>
<body>
<p class="note">ScopeDB sandbox: a development authorization server shaped like Casdoor. Not for production.</p>
${body}
</body>
</html>
`;
}

/** `offered`: the server's scopes the issuer offers (what each user may grant is shown). */
export function loginPage(
  uid: string,
  clientName: string,
  offered: readonly string[],
  error?: string,
): string {
  const users = DEMO_USERS.map(
    (user) =>
      `<tr><td><code>${escapeHtml(user.name)}</code></td><td><code>${escapeHtml(user.password)}</code></td><td>${escapeHtml(grantableScopes(user, offered).join(' '))}</td></tr>`,
  ).join('\n');
  return layout(
    'Sign in',
    `<h1>Sign in to continue to ${escapeHtml(clientName)}</h1>
${error ? `<p class="error">${escapeHtml(error)}</p>` : ''}
<form method="post" action="/interaction/${encodeURIComponent(uid)}/login">
<label>User name <input type="text" name="username" autocomplete="username" autofocus required></label>
<label>Password <input type="password" name="password" autocomplete="current-password" required></label>
<button type="submit">Sign in</button>
</form>
<h2>Demo users</h2>
<table><tr><th>User</th><th>Password</th><th>May grant</th></tr>
${users}
</table>`,
  );
}

export interface ConsentItem {
  scope: ScopeText;
  /** The signed-in user may grant it. */
  grantable: boolean;
}

/** The consent form; a refusal instead when the user may not grant one of the scopes. */
export function consentPage(
  uid: string,
  clientName: string,
  userName: string,
  items: readonly ConsentItem[],
): string {
  if (items.some((item) => !item.grantable)) return refusalPage(uid, clientName, userName, items);
  const rows = items
    .map(({ scope }) => {
      const id = `scope-${scope.name.replace(/[^a-z0-9]/gi, '-')}`;
      return `<div class="scope"><label for="${escapeHtml(id)}"><input type="checkbox" id="${escapeHtml(id)}" name="scope" value="${escapeHtml(scope.name)}" checked>
${scopeTitle(scope)}</label>
<small>${escapeHtml(scope.description)}</small></div>`;
    })
    .join('\n');
  return layout(
    'Grant access',
    `<h1>${escapeHtml(clientName)} asks for access</h1>
<p>Signed in as <strong>${escapeHtml(userName)}</strong>. Uncheck what you do not want to grant.</p>
<form method="post" action="/interaction/${encodeURIComponent(uid)}/consent">
${rows}
<button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny">Deny</button>
</form>`,
  );
}

/**
 * What the user sees when the client asks for a scope their account may not grant: which, in
 * words, and only the way back, which ends the flow with access_denied (no narrower grant that
 * would fail at the client later, unexplained).
 */
function refusalPage(
  uid: string,
  clientName: string,
  userName: string,
  items: readonly ConsentItem[],
): string {
  const client = escapeHtml(clientName);
  const user = escapeHtml(userName);
  const refused = items
    .filter((item) => !item.grantable)
    .map(({ scope }) => scopeTitle(scope))
    .join(', ');
  const rows = items
    .map(
      ({ scope, grantable }) =>
        `<li class="scope">${scopeTitle(scope)}: ${grantable ? 'you may grant this' : '<span class="error">you may not grant this</span>'}
<small>${escapeHtml(scope.description)}</small></li>`,
    )
    .join('\n');
  return layout(
    'Access you may not grant',
    `<h1>${client} asks for access you may not grant</h1>
<p>Signed in as <strong>${user}</strong>.</p>
<p class="error" role="alert">Your account (${user}) may not grant ${refused}. An administrator decides which scopes each account may grant.</p>
<p>${client} cannot get this access from you. Going back tells ${client} that access was denied, and why; the access you granted it before stays as it was.</p>
<ul class="scopes">
${rows}
</ul>
<form method="post" action="/interaction/${encodeURIComponent(uid)}/consent">
<button type="submit" name="decision" value="deny">Back to ${client}</button>
</form>`,
  );
}

function scopeTitle(scope: ScopeText): string {
  return `<strong>${escapeHtml(scope.title)}</strong> <code>${escapeHtml(scope.name)}</code>`;
}
