/**
 * The plain pages for the links in e-mails, for where the web console is not served: GET
 * /account-links/accept-invite and /account-links/reset-password (the token in the fragment,
 * `#token=…`, or the query, `?token=…`). The e-mailed links themselves point at /accept-invite and
 * /reset-password, which are the web console's screens (docs/console.md); where no console is
 * built or shipped (an all-in-one without web/dist, a gateway whose CRM_GW_WEB_ROOT is empty) those
 * paths redirect here, fragment and query kept. Each page is a small static HTML form; its script
 * (/account-links/account.js, a separate file so the Content-Security-Policy allows no inline code)
 * calls AcceptInvite or ResetPassword over Connect JSON on the same origin and says what happened.
 * Served by the auth module, so they exist in the all-in-one and, through the gateway, in a cluster.
 */
import type http from "node:http";
import type http2 from "node:http2";

type Req = http.IncomingMessage | http2.Http2ServerRequest;
type Res = http.ServerResponse | http2.Http2ServerResponse;

export const accountAssetPrefix = "/account-links/";
export const accountPagePaths = ["/account-links/accept-invite", "/account-links/reset-password"] as const;

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

type Lang = "en" | "ru";
type Page = (typeof accountPagePaths)[number];

interface PageText {
  title: string;
  intro: string;
  button: string;
  done: string;
}

/** Words the form and its script use, per language (the script itself holds none). */
interface FormText {
  password: string;
  passwordHelp: string;
  confirm: string;
  next: string;
  noscript: string;
  noToken: string;
  tooShort: string;
  differ: string;
  sending: string;
  failed: string;
  unreachable: string;
}

const rpcs: Record<Page, "AcceptInvite" | "ResetPassword"> = { "/account-links/accept-invite": "AcceptInvite", "/account-links/reset-password": "ResetPassword" };

const texts: Record<Lang, { pages: Record<Page, PageText>; form: FormText }> = {
  en: {
    pages: {
      "/account-links/accept-invite": {
        title: "Accept your invitation",
        intro: "Choose a password to activate your account. You will log in with your e-mail address (or phone number) and this password.",
        button: "Activate my account",
        done: "Your account is active. You can now log in with your e-mail address and this password.",
      },
      "/account-links/reset-password": {
        title: "Choose a new password",
        intro: "Type a new password for your account. Your other sessions end when it is set.",
        button: "Set the new password",
        done: "Your password is changed and your other sessions are ended. Log in with the new password.",
      },
    },
    form: {
      password: "New password",
      passwordHelp: "8 to 128 characters. A long phrase is easiest to remember; very common passwords are refused.",
      confirm: "The same password again",
      next: "Go to the CRM",
      noscript: "This page needs JavaScript to send your password.",
      noToken: "This link has no token. Open the link from your e-mail again, or ask for a new one.",
      tooShort: "The password is too short: use at least 8 characters.",
      differ: "The two passwords differ: type the same password twice.",
      sending: "Sending…",
      failed: "The CRM refused it (HTTP {status}). Try again, or ask for a new link.",
      unreachable: "The CRM could not be reached. Check your connection and try again.",
    },
  },
  ru: {
    pages: {
      "/account-links/accept-invite": {
        title: "Примите приглашение",
        intro: "Придумайте пароль, чтобы активировать учётную запись. Входить вы будете по адресу электронной почты (или номеру телефона) и этому паролю.",
        button: "Активировать учётную запись",
        done: "Учётная запись активна. Теперь можно войти по адресу электронной почты и этому паролю.",
      },
      "/account-links/reset-password": {
        title: "Новый пароль",
        intro: "Введите новый пароль. Остальные ваши сеансы завершатся, когда он будет установлен.",
        button: "Установить пароль",
        done: "Пароль изменён, остальные сеансы завершены. Войдите с новым паролем.",
      },
    },
    form: {
      password: "Новый пароль",
      passwordHelp: "От 8 до 128 символов. Длинную фразу проще запомнить; слишком распространённые пароли не принимаются.",
      confirm: "Тот же пароль ещё раз",
      next: "Перейти в CRM",
      noscript: "Чтобы отправить пароль, этой странице нужен JavaScript.",
      noToken: "В ссылке нет токена. Откройте ссылку из письма ещё раз или запросите новую.",
      tooShort: "Пароль слишком короткий: нужно не меньше 8 символов.",
      differ: "Пароли не совпадают: введите один и тот же пароль дважды.",
      sending: "Отправка…",
      failed: "CRM отклонила запрос (HTTP {status}). Попробуйте ещё раз или запросите новую ссылку.",
      unreachable: "Не удалось связаться с CRM. Проверьте подключение и попробуйте ещё раз.",
    },
  },
};

/** ru when the browser prefers Russian (as the company's e-mails are), else en. */
export function pageLanguage(acceptLanguage: string | undefined): Lang {
  const first = (acceptLanguage ?? "").split(",")[0]!.trim().toLowerCase();
  return first === "ru" || first.startsWith("ru-") || first.startsWith("ru;") ? "ru" : "en";
}

const attr = (s: string) => s.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;");

const html = (path: Page, lang: Lang) => {
  const p = texts[lang].pages[path];
  const f = texts[lang].form;
  const messages = { done: p.done, noToken: f.noToken, tooShort: f.tooShort, differ: f.differ, sending: f.sending, failed: f.failed, unreachable: f.unreachable };
  const data = Object.entries(messages).map(([k, v]) => `data-${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}="${attr(v)}"`).join(" ");
  return `<!DOCTYPE html>
<html lang="${lang}">
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
<form id="account-form" data-rpc="${rpcs[path]}" ${data} method="post" action="#" novalidate>
<label for="password">${f.password}</label>
<input id="password" name="password" type="password" autocomplete="new-password" minlength="8" maxlength="128" required aria-describedby="password-help">
<p id="password-help" class="help">${f.passwordHelp}</p>
<label for="confirm">${f.confirm}</label>
<input id="confirm" name="confirm" type="password" autocomplete="new-password" required>
<button type="submit">${p.button}</button>
</form>
<p id="status" role="status" aria-live="polite"></p>
<p id="next" hidden><a href="/">${f.next}</a></p>
<noscript><p>${f.noscript}</p></noscript>
</main>
</body>
</html>
`;
};

/** The form's script: reads the token, checks the two passwords match, calls the RPC, reports. */
export const accountScript = `"use strict";
(function () {
  var form = document.getElementById("account-form");
  var status = document.getElementById("status");
  var next = document.getElementById("next");
  var button = form.querySelector("button");
  var text = form.dataset; // the page's words, in its language
  var token = new URLSearchParams(location.hash.slice(1)).get("token") || new URLSearchParams(location.search).get("token") || "";
  // The token stays out of the address bar, the history and any later Referer.
  if (location.hash || location.search) history.replaceState(null, "", location.pathname);
  function say(message, kind) {
    status.textContent = message;
    status.className = kind || "";
  }
  if (!token) {
    form.hidden = true;
    say(text.noToken, "error");
    return;
  }
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var password = form.elements.password.value;
    if (password.length < 8) {
      say(text.tooShort, "error");
      form.elements.password.focus();
      return;
    }
    if (password !== form.elements.confirm.value) {
      say(text.differ, "error");
      form.elements.confirm.focus();
      return;
    }
    var rpc = form.dataset.rpc;
    var body = rpc === "AcceptInvite" ? { token: token, password: password } : { token: token, newPassword: password };
    button.disabled = true;
    say(text.sending);
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
            say(text.done, "ok");
          } else {
            say(data.message || text.failed.replace("{status}", String(res.status)), "error");
          }
        });
      }, function () {
        say(text.unreachable, "error");
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

const rendered: Record<Lang, Record<string, string>> = {
  en: Object.fromEntries(accountPagePaths.map((path) => [path, html(path, "en")])),
  ru: Object.fromEntries(accountPagePaths.map((path) => [path, html(path, "ru")])),
};
const assets: Record<string, [string, string]> = {
  [`${accountAssetPrefix}account.js`]: ["text/javascript; charset=utf-8", accountScript],
  [`${accountAssetPrefix}account.css`]: ["text/css; charset=utf-8", accountStyles],
};

/** The auth module's http() hook for these pages: true when it answered. */
export function serveAccountPages(req: Req, res: Res): boolean {
  if (req.method !== "GET" && req.method !== "HEAD") return false;
  const path = (req.url ?? "").split("?")[0]!;
  const acceptLanguage = req.headers["accept-language"];
  const page = rendered[pageLanguage(Array.isArray(acceptLanguage) ? acceptLanguage[0] : acceptLanguage)][path];
  const asset = assets[path];
  if (page === undefined && asset === undefined) return false;
  const [type, body] = page !== undefined ? ["text/html; charset=utf-8", page] : asset!;
  res.writeHead(200, {
    ...commonHeaders,
    "content-type": type,
    "content-length": String(Buffer.byteLength(body)),
    // The pages may change with a release; the token never reaches the server (it is in the fragment).
    "cache-control": page !== undefined ? "no-store" : "public, max-age=300",
    ...(page !== undefined ? { vary: "Accept-Language" } : {}),
  });
  if (req.method === "HEAD") res.end();
  else res.end(body);
  return true;
}
