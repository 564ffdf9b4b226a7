/**
 * English and Russian: one small dictionary per language (Russian must have every English key),
 * `{name}` placeholders, and Intl for dates, times, numbers and plurals. The choice is kept in
 * localStorage and set on <html lang>.
 */
import { createContext, useContext, useEffect, useMemo, useState, type ReactNode } from "react";

const en = {
  "app.name": "CRM",
  "app.loading": "Loading…",
  "app.skip": "Skip to content",
  "app.notFound": "There is no page at this address.",
  "nav.label": "Main",
  "nav.chats": "Chats",
  "nav.timers": "Timers",
  "lang.label": "Language",
  "auth.logout": "Log out",
  "auth.logoutAll": "Log out everywhere",
  "auth.loggedOutAll": "Logged out of {count} sessions.",
  "login.title": "Log in",
  "login.login": "E-mail or phone",
  "login.loginHint": "Phone numbers in international format, like +14155552671",
  "login.password": "Password",
  "login.submit": "Log in",
  "login.noAccount": "No account yet?",
  "login.toSignup": "Register your company",
  "signup.title": "Register your company",
  "signup.company": "Company name",
  "signup.name": "Your name",
  "signup.email": "E-mail",
  "signup.phone": "Phone (optional)",
  "signup.phoneHint": "International format, like +14155552671",
  "signup.password": "Password",
  "signup.passwordHint": "At least 8 characters; common passwords are refused",
  "signup.submit": "Create the company",
  "signup.haveAccount": "Already registered?",
  "signup.toLogin": "Log in",
  "form.busy": "Please wait…",
  "error.invalid_credentials": "Wrong e-mail/phone or password.",
  "error.resource_exhausted": "Too many attempts. Wait a few minutes and try again.",
  "error.network": "The server cannot be reached. Check the connection and try again.",
  "error.sessionEnded": "Your session has ended. Please log in again.",
  "error.insecureOrigin": "The password is right, but this browser keeps the session cookies only over HTTPS or on localhost. Open the console through the HTTPS gateway, or at {local} on the server itself.",
  "nav.account": "Account",
  "nav.admin": "Admin",
  "login.forgot": "Forgot your password?",
  "form.fixFields": "Please correct the marked fields.",
  "error.permission": "You are not allowed to do this.",
  "forgot.title": "Forgot your password?",
  "forgot.intro": "Type the e-mail address or phone number you log in with. We will e-mail you a link to choose a new password.",
  "forgot.submit": "Send me a link",
  "forgot.sent": "If an account with that e-mail or phone exists, a link to choose a new password is on its way to its e-mail address. It works once and expires soon.",
  "forgot.back": "Back to log in",
  "recovery.password": "New password",
  "recovery.confirm": "The same password again",
  "recovery.differ": "The two passwords differ: type the same password twice.",
  "recovery.noTokenReset": "This link has no token. Open the link from the e-mail again, or ask for a new one.",
  "recovery.noTokenInvite": "This link has no token. Open the link from the invitation e-mail again, or ask an admin of your company to invite you again.",
  "reset.title": "Choose a new password",
  "reset.intro": "Type a new password for your account. Every session of the account ends when it is set.",
  "reset.submit": "Set the new password",
  "reset.done": "Your password is changed and your sessions are ended. Log in with the new password.",
  "invite.title": "Accept your invitation",
  "invite.intro": "Choose a password to activate your account. You will log in with your e-mail address (or phone number) and this password.",
  "invite.submit": "Activate my account",
  "role.owner": "Owner",
  "role.admin": "Admin",
  "role.member": "Member",
  "account.title": "Your account",
  "account.role": "Your role: {role}.",
  "account.password": "Password",
  "account.passwordHow": "To change your password, ask for a link by e-mail and choose the new one there; your sessions end when it is set.",
  "account.passwordLink": "E-mail me a password link",
  "account.sessions": "Your sessions",
  "account.sessionsHint": "Each browser or app you are logged in with. End any you do not recognise.",
  "account.device": "Device",
  "account.ip": "Address",
  "account.created": "Logged in",
  "account.lastUsed": "Last active",
  "account.actions": "Actions",
  "account.current": "(this browser)",
  "account.revoke": "End session",
  "account.revokeOne": "End session: {device}, {when}",
  "account.revoked": "The session has ended.",
  "admin.forbidden": "This page is for the owners and admins of the company.",
  "chats.title": "Chats",
  "chats.list": "Your chats",
  "chats.empty": "No chats yet: create the first one.",
  "chats.newName": "New chat name",
  "chats.create": "Create chat",
  "chats.unread": "{count} unread",
  "chats.pick": "Pick a chat on the left, or create one.",
  "chat.messages": "Messages",
  "chat.noMessages": "No messages yet. Say hello!",
  "chat.older": "Load older messages",
  "chat.beginning": "The beginning of the chat.",
  "chat.you": "You",
  "chat.member": "Member {id}",
  "chat.message": "Message",
  "chat.send": "Send",
  "chat.live": "Live",
  "chat.reconnecting": "Reconnecting…",
  "chat.notFound": "This chat does not exist or you are not a member.",
  "chat.record.company": "Company",
  "chat.record.person": "Person",
  "chat.record.deal": "Deal",
  "chat.record.trash": "in the trash",
  "timer.running": "Running timer",
  "timer.none": "No timer running",
  "timer.stop": "Stop timer",
  "timer.start": "Start timer",
  "timer.switch": "Switch to this",
  "timers.title": "Timers",
  "timers.what": "What are you working on?",
  "timers.weekTotal": "Week total: {total}",
  "timers.empty": "No time tracked in this week.",
  "timers.day": "Day",
  "timers.description": "Description",
  "timers.start": "Start",
  "timers.end": "End",
  "timers.duration": "Duration",
  "timers.now": "running",
  "timers.noDescription": "(no description)",
};

export type MessageKey = keyof typeof en;

const ru: Record<MessageKey, string> = {
  "app.name": "CRM",
  "app.loading": "Загрузка…",
  "app.skip": "Перейти к содержимому",
  "app.notFound": "По этому адресу ничего нет.",
  "nav.label": "Главное меню",
  "nav.chats": "Чаты",
  "nav.timers": "Таймеры",
  "lang.label": "Язык",
  "auth.logout": "Выйти",
  "auth.logoutAll": "Выйти на всех устройствах",
  "auth.loggedOutAll": "Завершено сеансов: {count}.",
  "login.title": "Вход",
  "login.login": "Эл. почта или телефон",
  "login.loginHint": "Телефон в международном формате, например +79161234567",
  "login.password": "Пароль",
  "login.submit": "Войти",
  "login.noAccount": "Ещё нет учётной записи?",
  "login.toSignup": "Зарегистрировать компанию",
  "signup.title": "Регистрация компании",
  "signup.company": "Название компании",
  "signup.name": "Ваше имя",
  "signup.email": "Эл. почта",
  "signup.phone": "Телефон (необязательно)",
  "signup.phoneHint": "Международный формат, например +79161234567",
  "signup.password": "Пароль",
  "signup.passwordHint": "Не меньше 8 символов; распространённые пароли не принимаются",
  "signup.submit": "Создать компанию",
  "signup.haveAccount": "Уже зарегистрированы?",
  "signup.toLogin": "Войти",
  "form.busy": "Подождите…",
  "error.invalid_credentials": "Неверная почта/телефон или пароль.",
  "error.resource_exhausted": "Слишком много попыток. Подождите несколько минут и попробуйте снова.",
  "error.network": "Сервер недоступен. Проверьте подключение и попробуйте снова.",
  "error.sessionEnded": "Сеанс завершён. Войдите снова.",
  "error.insecureOrigin": "Пароль верный, но браузер хранит cookie сеанса только по HTTPS или на localhost. Откройте консоль через HTTPS-шлюз или по адресу {local} на самом сервере.",
  "nav.account": "Профиль",
  "nav.admin": "Админка",
  "login.forgot": "Забыли пароль?",
  "form.fixFields": "Исправьте отмеченные поля.",
  "error.permission": "У вас нет прав на это действие.",
  "forgot.title": "Забыли пароль?",
  "forgot.intro": "Введите адрес электронной почты или телефон, с которым вы входите. Мы пришлём письмо со ссылкой для нового пароля.",
  "forgot.submit": "Прислать ссылку",
  "forgot.sent": "Если учётная запись с такой почтой или телефоном существует, письмо со ссылкой для нового пароля уже отправлено на её адрес. Ссылка одноразовая и скоро истекает.",
  "forgot.back": "Вернуться ко входу",
  "recovery.password": "Новый пароль",
  "recovery.confirm": "Тот же пароль ещё раз",
  "recovery.differ": "Пароли не совпадают: введите один и тот же пароль дважды.",
  "recovery.noTokenReset": "В ссылке нет токена. Откройте ссылку из письма ещё раз или запросите новую.",
  "recovery.noTokenInvite": "В ссылке нет токена. Откройте ссылку из письма-приглашения ещё раз или попросите администратора пригласить вас снова.",
  "reset.title": "Новый пароль",
  "reset.intro": "Введите новый пароль. Все сеансы учётной записи завершатся, когда он будет установлен.",
  "reset.submit": "Установить пароль",
  "reset.done": "Пароль изменён, сеансы завершены. Войдите с новым паролем.",
  "invite.title": "Примите приглашение",
  "invite.intro": "Придумайте пароль, чтобы активировать учётную запись. Входить вы будете по адресу электронной почты (или номеру телефона) и этому паролю.",
  "invite.submit": "Активировать учётную запись",
  "role.owner": "Владелец",
  "role.admin": "Администратор",
  "role.member": "Сотрудник",
  "account.title": "Ваша учётная запись",
  "account.role": "Ваша роль: {role}.",
  "account.password": "Пароль",
  "account.passwordHow": "Чтобы сменить пароль, запросите ссылку по почте и задайте новый пароль по ней; ваши сеансы завершатся, когда он будет установлен.",
  "account.passwordLink": "Прислать ссылку для пароля",
  "account.sessions": "Ваши сеансы",
  "account.sessionsHint": "Каждый браузер или приложение, где вы вошли. Завершите те, которые вам незнакомы.",
  "account.device": "Устройство",
  "account.ip": "Адрес",
  "account.created": "Вход",
  "account.lastUsed": "Последняя активность",
  "account.actions": "Действия",
  "account.current": "(этот браузер)",
  "account.revoke": "Завершить сеанс",
  "account.revokeOne": "Завершить сеанс: {device}, {when}",
  "account.revoked": "Сеанс завершён.",
  "admin.forbidden": "Эта страница — для владельцев и администраторов компании.",
  "chats.title": "Чаты",
  "chats.list": "Ваши чаты",
  "chats.empty": "Чатов пока нет: создайте первый.",
  "chats.newName": "Название нового чата",
  "chats.create": "Создать чат",
  "chats.unread": "Непрочитанных: {count}",
  "chats.pick": "Выберите чат слева или создайте новый.",
  "chat.messages": "Сообщения",
  "chat.noMessages": "Сообщений пока нет. Напишите первым!",
  "chat.older": "Загрузить более ранние",
  "chat.beginning": "Начало чата.",
  "chat.you": "Вы",
  "chat.member": "Участник {id}",
  "chat.message": "Сообщение",
  "chat.send": "Отправить",
  "chat.live": "В сети",
  "chat.reconnecting": "Переподключение…",
  "chat.notFound": "Такого чата нет, или вы не его участник.",
  "chat.record.company": "Компания",
  "chat.record.person": "Контакт",
  "chat.record.deal": "Сделка",
  "chat.record.trash": "в корзине",
  "timer.running": "Идёт таймер",
  "timer.none": "Нет таймера",
  "timer.stop": "Остановить таймер",
  "timer.start": "Запустить таймер",
  "timer.switch": "Переключиться на это",
  "timers.title": "Таймеры",
  "timers.what": "Над чем вы работаете?",
  "timers.weekTotal": "Всего за неделю: {total}",
  "timers.empty": "За эту неделю время не учтено.",
  "timers.day": "День",
  "timers.description": "Описание",
  "timers.start": "Начало",
  "timers.end": "Конец",
  "timers.duration": "Длительность",
  "timers.now": "идёт",
  "timers.noDescription": "(без описания)",
};

export const dictionaries = { en, ru } as const;
export type Locale = keyof typeof dictionaries;
export const localeNames: Record<Locale, string> = { en: "English", ru: "Русский" };

const storageKey = "crm.locale";

function initialLocale(): Locale {
  const saved = localStorage.getItem(storageKey);
  if (saved === "en" || saved === "ru") return saved;
  return navigator.language.toLowerCase().startsWith("ru") ? "ru" : "en";
}

export interface I18n {
  locale: Locale;
  setLocale(l: Locale): void;
  t(key: MessageKey, params?: Record<string, string | number>): string;
  /** t() for words a lazily loaded screen brings along (so they stay out of the first download). */
  format(template: string, params?: Record<string, string | number>): string;
  /** 7 Dec 2026, 14:05 */
  dateTime(d: Date): string;
  /** 14:05 */
  time(d: Date): string;
  /** Mon, 7 Dec */
  day(d: Date): string;
  /** 1:02:03 */
  clock(ms: number): string;
  /** 12.5 h / 12,5 ч */
  hours(ms: number): string;
  number(n: number | bigint): string;
}

/** `{name}` placeholders filled in, numbers per locale (also for the lazily loaded screens' own words). */
export function format(template: string, params: Record<string, string | number> | undefined, num: Intl.NumberFormat): string {
  return template.replace(/\{(\w+)\}/g, (_, name: string) => (params?.[name] !== undefined ? (typeof params[name] === "number" ? num.format(params[name]) : String(params[name])) : `{${name}}`));
}

function make(locale: Locale, setLocale: (l: Locale) => void): I18n {
  const dict = dictionaries[locale];
  const dateTime = new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeStyle: "short" });
  const time = new Intl.DateTimeFormat(locale, { timeStyle: "short" });
  const day = new Intl.DateTimeFormat(locale, { weekday: "short", day: "numeric", month: "short" });
  const num = new Intl.NumberFormat(locale);
  const two = new Intl.NumberFormat(locale, { minimumIntegerDigits: 2 });
  const hours = new Intl.NumberFormat(locale, { style: "unit", unit: "hour", unitDisplay: "short", maximumFractionDigits: 1 });
  return {
    locale,
    setLocale,
    t: (key, params) => format(dict[key], params, num),
    format: (template, params) => format(template, params, num),
    dateTime: (d) => dateTime.format(d),
    time: (d) => time.format(d),
    day: (d) => day.format(d),
    clock(ms) {
      const s = Math.max(0, Math.floor(ms / 1000));
      return `${num.format(Math.floor(s / 3600))}:${two.format(Math.floor(s / 60) % 60)}:${two.format(s % 60)}`;
    },
    hours: (ms) => hours.format(ms / 3_600_000),
    number: (n) => num.format(n),
  };
}

const I18nContext = createContext<I18n | null>(null);

export function I18nProvider({ children }: { children: ReactNode }) {
  const [locale, setLocaleState] = useState<Locale>(initialLocale);
  const value = useMemo(
    () =>
      make(locale, (l) => {
        localStorage.setItem(storageKey, l);
        setLocaleState(l);
      }),
    [locale],
  );
  useEffect(() => {
    document.documentElement.lang = locale;
  }, [locale]);
  return <I18nContext.Provider value={value}>{children}</I18nContext.Provider>;
}

export function useI18n(): I18n {
  const v = useContext(I18nContext);
  if (!v) throw new Error("useI18n outside I18nProvider");
  return v;
}
