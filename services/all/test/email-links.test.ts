/**
 * Links in e-mails lead somewhere: the invitation and reset e-mails link to PUBLIC_URL (by default
 * the all-in-one's own address, whatever its port) at /accept-invite and /reset-password. Those
 * are the web console's screens (test/e2e/console-accounts.test.ts drives them in a browser);
 * where no console is built, the same links redirect to auth's plain pages (HTML with a strict CSP
 * and no inline code), whose own script, run against the server with the token from the link,
 * activates the user / sets the new password. This file covers that fallback.
 */
import assert from "node:assert/strict";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runInNewContext } from "node:vm";
import { after, before, describe, it } from "node:test";
import { AdminService } from "@crm/gen/crm/admin/v1/admin_pb";
import { AuthService, Role } from "@crm/gen/crm/auth/v1/auth_pb";
import { emlTo, until, type TestApp } from "@crm/testkit";
import { startTestApp } from "./app.js";
import { PASSWORD, mailParts, registerOwner } from "../../admin/test/helpers.js";

async function mailTo(app: TestApp, to: string, n = 1): Promise<string> {
  await until(`${n} e-mail(s) to ${to}`, () => emlTo(app, to).length >= n, 20_000);
  return emlTo(app, to).at(-1)!;
}

/** The link of the e-mail's text part that starts with `prefix`. */
function linkIn(raw: string, prefix: string): string {
  const text = mailParts(raw).text;
  const at = text.indexOf(prefix);
  assert.ok(at >= 0, `the e-mail links to ${prefix}…:\n${text}`);
  return /^\S+/.exec(text.slice(at))![0];
}

/**
 * GET the link as a browser does (the fragment stays in the browser): without a console, a
 * redirect to auth's plain page under /account-links/, a real HTML page.
 */
async function fetchPage(link: string, language = "en-GB,en;q=0.8"): Promise<string> {
  const res = await fetch(link, { headers: { accept: "text/html", "accept-language": language } });
  assert.equal(res.status, 200, `GET ${link}`);
  assert.ok(res.redirected && new URL(res.url).pathname.startsWith("/account-links/"), `${link} leads to auth's plain page, not ${res.url}`);
  assert.match(String(res.headers.get("content-type")), /^text\/html/);
  const csp = String(res.headers.get("content-security-policy"));
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'self'(;|$)/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
  const html = await res.text();
  assert.match(html, /<form id="account-form"/);
  assert.match(html, /<label for="password">/, "labelled inputs");
  assert.match(html, /role="status" aria-live="polite"/, "results are announced");
  for (const m of html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)) {
    assert.match(m[1]!, /\bsrc="\/account-links\/account\.js"/, "scripts only from a file");
    assert.equal(m[2], "", "no inline code");
  }
  return html;
}

/**
 * Runs the page's own script (as served) with a minimal DOM of the page: the link's URL, the two
 * password fields, and the real fetch against the server. Returns the status text it shows.
 */
async function submitPage(base: string, link: string, html: string, password: string, confirm = password): Promise<{ text: string; kind: string }> {
  const res = await fetch(`${base}/account-links/account.js`);
  assert.equal(res.status, 200);
  assert.match(String(res.headers.get("content-type")), /^text\/javascript/);
  const script = await res.text();
  const url = new URL(link);
  // the form's data-* attributes, as the browser's dataset (the page's words live there)
  const formTag = /<form id="account-form"[^>]*>/.exec(html)![0];
  const dataset = Object.fromEntries(
    [...formTag.matchAll(/data-([a-z-]+)="([^"]*)"/g)].map(([, k, v]) => [
      k!.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase()),
      v!.replace(/&quot;/g, '"').replace(/&lt;/g, "<").replace(/&amp;/g, "&"),
    ]),
  );
  const status = { textContent: "", className: "" };
  const button = { disabled: false };
  let submit: ((e: { preventDefault(): void }) => void) | undefined;
  const form = {
    hidden: false,
    dataset,
    elements: { password: { value: password, focus() {} }, confirm: { value: confirm, focus() {} } },
    querySelector: () => button,
    addEventListener: (_: string, fn: typeof submit) => (submit = fn),
  };
  const elements: Record<string, unknown> = { "account-form": form, status, next: { hidden: true } };
  let replaced = "";
  const sameOriginFetch = (path: string, init: RequestInit) => fetch(new URL(path, base), init);
  runInNewContext(script, {
    document: { getElementById: (id: string) => elements[id] },
    location: { hash: url.hash, search: url.search, pathname: url.pathname },
    history: { replaceState: (_s: unknown, _t: string, to: string) => (replaced = to) },
    URLSearchParams,
    fetch: sameOriginFetch,
  });
  if (url.hash || url.search) assert.equal(replaced, url.pathname, "the token is taken out of the address bar");
  if (!submit) return { text: status.textContent, kind: form.hidden ? `${status.className}, form hidden` : status.className };
  submit({ preventDefault() {} });
  await until("the page to report", () => status.textContent !== "" && status.textContent !== "Sending…" && !button.disabled, 10_000);
  return { text: status.textContent, kind: status.className };
}

describe("without PUBLIC_URL: links to the all-in-one's own address (and no console built: the plain pages)", () => {
  let app: TestApp;
  before(async () => {
    app = await startTestApp({ RESET_MIN_RESPONSE_MS: "0", WEB_DIR: join(tmpdir(), `crm-no-console-${process.pid}`) });
  });
  after(async () => {
    await app?.close();
  });

  it("invitation: the e-mail links to <own address>/accept-invite, the page works and activates the user", async () => {
    const owner = await registerOwner(app);
    const email = `invited-${owner.tag}@example.com`;
    await app.client(AdminService, { token: owner.accessToken }).addUsers({ users: [{ email, name: "Ina", role: Role.MEMBER, phone: "" }] });
    const link = linkIn(await mailTo(app, email), `${app.baseUrl}/accept-invite#token=`);
    const html = await fetchPage(link);

    const mismatch = await submitPage(app.baseUrl, link, html, PASSWORD, "something else entirely");
    assert.equal(mismatch.kind, "error");
    assert.match(mismatch.text, /differ/);

    const weak = await submitPage(app.baseUrl, link, html, "password");
    assert.equal(weak.kind, "error", "the server's refusal is shown");
    assert.match(weak.text, /password/);

    const ok = await submitPage(app.baseUrl, link, html, PASSWORD);
    assert.deepEqual(ok, { text: "Your account is active. You can now log in with your e-mail address and this password.", kind: "ok" });
    assert.ok((await app.client(AuthService).login({ email, password: PASSWORD })).accessToken);

    const again = await submitPage(app.baseUrl, link, html, PASSWORD);
    assert.equal(again.kind, "error", "a spent link says so");
  });

  it("password reset: the e-mail links to <own address>/reset-password, the page sets the new password", async () => {
    const owner = await registerOwner(app);
    await app.client(AuthService).requestPasswordReset({ email: owner.email });
    const link = linkIn(await mailTo(app, owner.email), `${app.baseUrl}/reset-password#token=`);
    const html = await fetchPage(link);
    const ok = await submitPage(app.baseUrl, link, html, "a brand new long passphrase");
    assert.equal(ok.kind, "ok", ok.text);
    assert.ok((await app.client(AuthService).login({ email: owner.email, password: "a brand new long passphrase" })).accessToken);
  });

  it("in Russian for a browser that prefers it (the company's e-mails may be Russian)", async () => {
    const owner = await registerOwner(app, undefined, "ru");
    await app.client(AuthService).requestPasswordReset({ email: owner.email });
    const link = linkIn(await mailTo(app, owner.email), `${app.baseUrl}/reset-password#token=`);
    const html = await fetchPage(link, "ru-RU,ru;q=0.9,en;q=0.5");
    assert.match(html, /<html lang="ru">/);
    const differ = await submitPage(app.baseUrl, link, html, "пароль номер один", "пароль номер два");
    assert.deepEqual(differ, { text: "Пароли не совпадают: введите один и тот же пароль дважды.", kind: "error" });
    const ok = await submitPage(app.baseUrl, link, html, "новый длинный пароль");
    assert.deepEqual(ok, { text: "Пароль изменён, остальные сеансы завершены. Войдите с новым паролем.", kind: "ok" });
  });

  it("a link without its token says what to do", async () => {
    const html = await fetchPage(`${app.baseUrl}/accept-invite?utm=x`);
    const r = await submitPage(app.baseUrl, `${app.baseUrl}/accept-invite`, html, PASSWORD);
    assert.deepEqual(r, { text: "This link has no token. Open the link from your e-mail again, or ask for a new one.", kind: "error, form hidden" });
  });
});

describe("with PUBLIC_URL", () => {
  let app: TestApp;
  before(async () => {
    app = await startTestApp({ PUBLIC_URL: "https://crm.example.org/", RESET_MIN_RESPONSE_MS: "0" });
  });
  after(async () => {
    await app?.close();
  });

  it("every e-mailed link starts with it", async () => {
    const owner = await registerOwner(app);
    const email = `invited-${owner.tag}@example.com`;
    await app.client(AdminService, { token: owner.accessToken }).addUsers({ users: [{ email, name: "Ina", role: Role.MEMBER, phone: "" }] });
    assert.match(linkIn(await mailTo(app, email), "https://crm.example.org/accept-invite#token="), /^https:\/\/crm\.example\.org\/accept-invite#token=[A-Za-z0-9_-]{43}$/);
    await app.client(AuthService).requestPasswordReset({ email: owner.email });
    assert.match(linkIn(await mailTo(app, owner.email), "https://crm.example.org/reset-password#token="), /#token=[A-Za-z0-9_-]{43}$/);
  });
});
