/**
 * The pages behind the links in e-mails: GET /accept-invite and GET /reset-password (the token in
 * the fragment, `#token=…`, or the query, `?token=…`). Each is a small static HTML form; its
 * script (/account-links/account.js, a separate file so the Content-Security-Policy allows no inline
 * code) calls AcceptInvite or ResetPassword over Connect JSON on the same origin and says what
 * happened. Served by the auth module, so they exist in the all-in-one and, through the gateway,
 * in a cluster. The web console may replace them later; the links must work now.
 */
import type http from "node:http";
import type http2 from "node:http2";

type Req = http.IncomingMessage | http2.Http2ServerRequest;
type Res = http.ServerResponse | http2.Http2ServerResponse;

export const accountPagePaths = ["/accept-invite", "/reset-password"] as const;
export const accountAssetPrefix = "/account-links/";

export const accountPagesCsp = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self'",
  "form-action 'self'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join("; ");

interface PageText {
  title: string;
  intro: string;
  rpc: "AcceptInvite" | "ResetPassword";
  button: string;
  done: string;
}

const pages: Record<(typeof accountPagePaths)[number], PageText> = {
  "/accept-invite": {
    title: "Accept your invitation",
    intro: "Choose a password to activate your account. You will log in with your e-mail address (or phone number) and this password.",
    rpc: "AcceptInvite",
    button: "Activate my account",
    done: "Your account is active. You can now log in with your e-mail address and this password.",
  },
  "/reset-password": {
    title: "Choose a new password",
    intro: "Type a new password for your account. Your other sessions end when it is set.",
    rpc: "ResetPassword",
    button: "Set the new password",
    done: "Your password is changed and your other sessions are ended. Log in with the new password.",
  },
};

const html = (p: PageText) => `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${p.title} — CRM</title>
<link rel="stylesheet" href="${accountAssetPrefix}account.css">
<script src="${accountAssetPrefix}account.js" defer></script>
</head>
<body>
<main>
<h1>${p.title}</h1>
<p>${p.intro}</p>
<form id="account-form" data-rpc="${p.rpc}" data-done="${p.done}" method="post" action="#" novalidate>
<label for="password">New password</label>
<input id="password" name="password" type="password" autocomplete="new-password" minlength="8" maxlength="128" required aria-describedby="password-help">
<p id="password-help" class="help">8 to 128 characters. A long phrase is easiest to remember; very common passwords are refused.</p>
<label for="confirm">The same password again</label>
<input id="confirm" name="confirm" type="password" autocomplete="new-password" required>
<button type="submit">${p.button}</button>
</form>
<p id="status" role="status" aria-live="polite"></p>
<p id="next" hidden><a href="/">Go to the CRM</a></p>
<noscript><p>This page needs JavaScript to send your password.</p></noscript>
</main>
</body>
</html>
`;

/** The form's script: reads the token, checks the two passwords match, calls the RPC, reports. */
export const accountScript = `"use strict";
(function () {
  var form = document.getElementById("account-form");
  var status = document.getElementById("status");
  var next = document.getElementById("next");
  var button = form.querySelector("button");
  var token = new URLSearchParams(location.hash.slice(1)).get("token") || new URLSearchParams(location.search).get("token") || "";
  // The token stays out of the address bar, the history and any later Referer.
  if (location.hash || location.search) history.replaceState(null, "", location.pathname);
  function say(text, kind) {
    status.textContent = text;
    status.className = kind || "";
  }
  if (!token) {
    form.hidden = true;
    say("This link has no token. Open the link from your e-mail again, or ask for a new one.", "error");
    return;
  }
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var password = form.elements.password.value;
    if (password.length < 8) {
      say("The password is too short: use at least 8 characters.", "error");
      form.elements.password.focus();
      return;
    }
    if (password !== form.elements.confirm.value) {
      say("The two passwords differ: type the same password twice.", "error");
      form.elements.confirm.focus();
      return;
    }
    var rpc = form.dataset.rpc;
    var body = rpc === "AcceptInvite" ? { token: token, password: password } : { token: token, newPassword: password };
    button.disabled = true;
    say("Sending…");
    fetch("/crm.auth.v1.AuthService/" + rpc, {
      method: "POST",
      headers: { "content-type": "application/json" },
      credentials: "same-origin",
      body: JSON.stringify(body),
    })
      .then(function (res) {
        return res.json().catch(function () { return {}; }).then(function (data) {
          if (res.ok) {
            form.hidden = true;
            next.hidden = false;
            say(form.dataset.done, "ok");
          } else {
            say(data.message || "The server answered " + res.status + ". Try again, or ask for a new link.", "error");
          }
        });
      }, function () {
        say("The CRM could not be reached. Check your connection and try again.", "error");
      })
      .then(function () { button.disabled = false; });
  });
})();
`;

export const accountStyles = `body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;font-size:16px;line-height:1.5;color:#1d1d1f;background:#f6f7f9;margin:0}
main{max-width:30rem;margin:3rem auto;padding:2rem;background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.12)}
h1{font-size:1.5rem;margin:0 0 1rem}
label{display:block;font-weight:600;margin:1rem 0 .25rem}
input{width:100%;box-sizing:border-box;font:inherit;padding:.5rem;border:1px solid #767676;border-radius:4px}
input:focus,button:focus,a:focus{outline:3px solid #2f6fed;outline-offset:2px}
.help{color:#555;font-size:.9rem;margin:.25rem 0 0}
button{margin-top:1.5rem;font:inherit;font-weight:600;padding:.6rem 1.2rem;border:0;border-radius:4px;background:#1f5bd6;color:#fff;cursor:pointer}
button:disabled{background:#767676;cursor:wait}
#status{margin-top:1rem;min-height:1.5em}
#status.error{color:#b00020}
#status.ok{color:#1b6e20}
`;

const commonHeaders = {
  "content-security-policy": accountPagesCsp,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
};

const rendered = Object.fromEntries(Object.entries(pages).map(([path, p]) => [path, html(p)])) as Record<string, string>;
const assets: Record<string, [string, string]> = {
  [`${accountAssetPrefix}account.js`]: ["text/javascript; charset=utf-8", accountScript],
  [`${accountAssetPrefix}account.css`]: ["text/css; charset=utf-8", accountStyles],
};

/** The auth module's http() hook for these pages: true when it answered. */
export function serveAccountPages(req: Req, res: Res): boolean {
  if (req.method !== "GET" && req.method !== "HEAD") return false;
  const path = (req.url ?? "").split("?")[0]!;
  const page = rendered[path];
  const asset = assets[path];
  if (page === undefined && asset === undefined) return false;
  const [type, body] = page !== undefined ? ["text/html; charset=utf-8", page] : asset!;
  res.writeHead(200, {
    ...commonHeaders,
    "content-type": type,
    "content-length": String(Buffer.byteLength(body)),
    // The pages may change with a release; the token never reaches the server (it is in the fragment).
    "cache-control": page !== undefined ? "no-store" : "public, max-age=300",
  });
  if (req.method === "HEAD") res.end();
  else res.end(body);
  return true;
}
