import assert from "node:assert/strict";
import { test } from "node:test";
import { escapeHtml, oneLine, pickLocale, renderPasswordReset, renderWelcome, tokenLink } from "./email-templates.js";

const evil = {
  locale: "en",
  companyName: 'Acme <img src=x onerror="alert(1)">\r\nBcc: victim@example.com',
  inviterName: "<b>Boss</b>",
  name: "<script>alert('x')</script> & Co",
  email: "new@example.com",
  phone: "+14155552671",
  link: tokenLink("https://crm.example/", "/accept-invite", "abc_DEF-123"),
  validHours: 72,
};

test("welcome: user input is escaped in HTML, never a tag, and the subject stays one line", () => {
  const m = renderWelcome(evil);
  assert.ok(!m.html.includes("<script>"), "no script tag");
  assert.ok(!m.html.includes("<img"), "no img tag");
  assert.ok(!m.html.includes("<b>Boss</b>"));
  assert.ok(m.html.includes("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; Co"));
  assert.ok(m.html.includes("&lt;img src=x onerror=&quot;alert(1)&quot;&gt;"));
  assert.ok(!/[\r\n]/.test(m.subject), "subject has no line break (no header injection)");
  assert.match(m.subject, /^You're invited to Acme <img src=x onerror="alert\(1\)"> Bcc: victim@example.com on CRM$/);
  // Plain text carries the words as they are (it is not HTML).
  assert.ok(m.text.includes("Hello <script>alert('x')</script> & Co,"));
  assert.ok(m.text.includes("Your login: new@example.com (or your phone +14155552671)"));
  assert.ok(m.text.includes("https://crm.example/accept-invite#token=abc_DEF-123"));
  assert.ok(m.html.includes('href="https://crm.example/accept-invite#token=abc_DEF-123"'));
  assert.ok(m.text.includes("72 hours"));
  assert.equal(m.locale, "en");
});

test("welcome and reset in Russian", () => {
  const w = renderWelcome({ ...evil, locale: "ru-RU", companyName: "Ромашка", inviterName: "Анна", name: "Иван" });
  assert.equal(w.locale, "ru");
  assert.equal(w.subject, "Приглашение в Ромашка — CRM");
  assert.ok(w.text.startsWith("Здравствуйте, Иван!"));
  assert.ok(w.text.includes("Анна добавил(а) вас в компанию «Ромашка»"));
  assert.ok(w.html.includes('<html lang="ru">'));
  const r = renderPasswordReset({ locale: "ru", name: "Иван", email: "ivan@example.com", link: "http://x/reset-password#token=t", validMinutes: 30 });
  assert.equal(r.subject, "Сброс пароля CRM");
  assert.ok(r.text.includes("30 мин"));
  assert.ok(r.text.includes("http://x/reset-password#token=t"));
});

test("reset in English escapes the name; unknown locales fall back to English", () => {
  const r = renderPasswordReset({ locale: "de", name: "<i>x</i>", email: "a@b.co", link: "http://x/reset-password#token=t", validMinutes: 30 });
  assert.equal(r.locale, "en");
  assert.equal(r.subject, "Reset your CRM password");
  assert.ok(r.html.includes("&lt;i&gt;x&lt;/i&gt;"));
  assert.ok(!r.html.includes("<i>x</i>"));
});

test("helpers", () => {
  assert.equal(pickLocale("RU"), "ru");
  assert.equal(pickLocale(""), "en");
  assert.equal(escapeHtml(`<a href="x">'&'</a>`), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
  assert.equal(oneLine("a\r\n\tb  c\u2028d"), "a b c d");
  assert.equal([...oneLine("x".repeat(300), 10)].length, 10);
  assert.equal(tokenLink("http://h:8080///", "/p", "a+b"), "http://h:8080/p#token=a%2Bb");
});
