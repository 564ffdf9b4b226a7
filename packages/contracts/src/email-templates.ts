/**
 * The e-mails the system writes: an invitation (welcome) and a password reset, in English and
 * Russian, each as plain text and HTML. Pure functions. Every value that came from a person
 * (names, company name, addresses) is HTML-escaped in the HTML part and stripped of line breaks in
 * the subject, so no user input is ever interpreted as HTML or as a header. A contract because two
 * services render them (admin invites, auth resets passwords) before calling the email service.
 */

export type Locale = "en" | "ru";

export interface RenderedEmail {
  subject: string;
  text: string;
  html: string;
  locale: Locale;
}

/** "ru", "ru-RU" → ru; anything else → en. */
export function pickLocale(locale: string | undefined): Locale {
  return (locale ?? "").trim().toLowerCase().split(/[-_]/)[0] === "ru" ? "ru" : "en";
}

const htmlEscapes: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
export const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => htmlEscapes[c]!);

/** One line, no control characters, at most `max` characters (for subjects and greetings). */
export function oneLine(s: string, max = 200): string {
  const flat = s.replace(/[\u0000-\u001f\u007f\u2028\u2029]+/g, " ").replace(/\s+/g, " ").trim();
  const chars = [...flat];
  return chars.length > max ? `${chars.slice(0, max - 1).join("")}…` : flat;
}

/** The link with the token in the fragment: browsers never send it to a server or a Referer. */
export function tokenLink(appUrl: string, path: string, token: string): string {
  return `${appUrl.replace(/\/+$/, "")}${path}#token=${encodeURIComponent(token)}`;
}

function page(locale: Locale, title: string, paragraphs: string[], button: { href: string; label: string }, after: string[]): string {
  const p = (inner: string) => `<p style="margin:0 0 16px">${inner}</p>`;
  return [
    "<!DOCTYPE html>",
    `<html lang="${locale}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>${escapeHtml(title)}</title></head>`,
    '<body style="font-family:-apple-system,Segoe UI,Roboto,Arial,sans-serif;font-size:15px;line-height:1.5;color:#222;max-width:560px;margin:0 auto;padding:24px">',
    ...paragraphs.map(p),
    p(`<a href="${escapeHtml(button.href)}" style="display:inline-block;background:#2f6fed;color:#fff;text-decoration:none;padding:10px 18px;border-radius:6px">${escapeHtml(button.label)}</a>`),
    p(`<span style="color:#666;font-size:13px">${escapeHtml(button.href)}</span>`),
    ...after.map((a) => `<p style="margin:0 0 16px;color:#666;font-size:13px">${a}</p>`),
    "</body></html>",
  ].join("\n");
}

export interface WelcomeInput {
  locale: string;
  companyName: string;
  /** Who added the user; empty when unknown. */
  inviterName: string;
  name: string;
  email: string;
  /** E.164 or empty: a second login. */
  phone: string;
  /** APP_URL + token: where the user sets a password (AcceptInvite). */
  link: string;
  validHours: number;
}

export function renderWelcome(i: WelcomeInput): RenderedEmail {
  const locale = pickLocale(i.locale);
  const company = oneLine(i.companyName);
  const name = oneLine(i.name);
  const inviter = oneLine(i.inviterName);
  const e = escapeHtml;
  if (locale === "ru") {
    const subject = oneLine(`Приглашение в ${company} — CRM`, 200);
    const who = inviter ? `${inviter} добавил(а) вас` : "Вас добавили";
    const login = i.phone ? `${i.email} (или телефон ${i.phone})` : i.email;
    const text = [
      `Здравствуйте, ${name}!`,
      "",
      `${who} в компанию «${company}» в CRM.`,
      "",
      `Ваш логин: ${login}`,
      `Задайте пароль по ссылке (она действует один раз, ${i.validHours} ч):`,
      i.link,
      "",
      "Если вы не ждали этого письма, просто не обращайте на него внимания.",
    ].join("\n");
    const html = page(
      locale,
      subject,
      [`Здравствуйте, ${e(name)}!`, `${e(who)} в компанию «${e(company)}» в CRM.`, `Ваш логин: <b>${e(i.email)}</b>${i.phone ? ` (или телефон ${e(i.phone)})` : ""}`, `Задайте пароль — ссылка действует один раз, ${i.validHours} ч:`],
      { href: i.link, label: "Задать пароль" },
      ["Если вы не ждали этого письма, просто не обращайте на него внимания."],
    );
    return { subject, text, html, locale };
  }
  const subject = oneLine(`You're invited to ${company} on CRM`, 200);
  const who = inviter ? `${inviter} added you` : "You have been added";
  const login = i.phone ? `${i.email} (or your phone ${i.phone})` : i.email;
  const text = [
    `Hello ${name},`,
    "",
    `${who} to ${company} on CRM.`,
    "",
    `Your login: ${login}`,
    `Set your password here (the link works once, for ${i.validHours} hours):`,
    i.link,
    "",
    "If you did not expect this e-mail, you can ignore it.",
  ].join("\n");
  const html = page(
    locale,
    subject,
    [`Hello ${e(name)},`, `${e(who)} to ${e(company)} on CRM.`, `Your login: <b>${e(i.email)}</b>${i.phone ? ` (or your phone ${e(i.phone)})` : ""}`, `Set your password — the link works once, for ${i.validHours} hours:`],
    { href: i.link, label: "Set my password" },
    ["If you did not expect this e-mail, you can ignore it."],
  );
  return { subject, text, html, locale };
}

export interface ResetInput {
  locale: string;
  name: string;
  email: string;
  link: string;
  validMinutes: number;
}

export function renderPasswordReset(i: ResetInput): RenderedEmail {
  const locale = pickLocale(i.locale);
  const name = oneLine(i.name);
  const e = escapeHtml;
  if (locale === "ru") {
    const subject = "Сброс пароля CRM";
    const text = [
      `Здравствуйте, ${name}!`,
      "",
      `Кто-то (надеемся, вы) попросил сбросить пароль учётной записи CRM ${i.email}.`,
      `Задайте новый пароль по ссылке (она действует один раз, ${i.validMinutes} мин):`,
      i.link,
      "",
      "После смены пароля все ваши сеансы будут завершены.",
      "Если вы не просили сброс, не обращайте внимания на это письмо: пароль останется прежним.",
    ].join("\n");
    const html = page(
      locale,
      subject,
      [`Здравствуйте, ${e(name)}!`, `Кто-то (надеемся, вы) попросил сбросить пароль учётной записи CRM <b>${e(i.email)}</b>.`, `Ссылка действует один раз, ${i.validMinutes} мин:`],
      { href: i.link, label: "Задать новый пароль" },
      ["После смены пароля все ваши сеансы будут завершены.", "Если вы не просили сброс, не обращайте внимания на это письмо: пароль останется прежним."],
    );
    return { subject, text, html, locale };
  }
  const subject = "Reset your CRM password";
  const text = [
    `Hello ${name},`,
    "",
    `Someone (hopefully you) asked to reset the password of the CRM account ${i.email}.`,
    `Set a new password here (the link works once, for ${i.validMinutes} minutes):`,
    i.link,
    "",
    "Changing the password signs you out everywhere.",
    "If you did not ask for this, ignore this e-mail: your password stays as it is.",
  ].join("\n");
  const html = page(
    locale,
    subject,
    [`Hello ${e(name)},`, `Someone (hopefully you) asked to reset the password of the CRM account <b>${e(i.email)}</b>.`, `The link works once, for ${i.validMinutes} minutes:`],
    { href: i.link, label: "Set a new password" },
    ["Changing the password signs you out everywhere.", "If you did not ask for this, ignore this e-mail: your password stays as it is."],
  );
  return { subject, text, html, locale };
}
