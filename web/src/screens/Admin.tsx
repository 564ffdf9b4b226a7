/**
 * Admin (owners and admins; a lazily loaded chunk, and the server refuses everyone else anyway):
 * the company's members with role and status, a role change, deactivation; inviting one person,
 * and many at once from a CSV file or pasted CSV (AddUsers, up to 1000 rows a call), with each
 * row's result. Reasons the server gives for a row or a field are shown next to it.
 *
 * A member's row opens their active sessions (ListUserSessions): an admin ends one
 * (RevokeUserSession) or all (RevokeUserSessions) without deactivating the account; an owner's
 * sessions are offered to owners only, as the server rules. The API has no call to reactivate a
 * user: the screen offers what the API has.
 */
import { lazy, Suspense, useDeferredValue, useId, useState, type ChangeEvent, type FormEvent } from "react";
import { Link, useRoute } from "wouter";
import { createConnectQueryKey, useInfiniteQuery, useMutation, useQuery } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import { createClient } from "@connectrpc/connect";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import Papa from "papaparse";
import { AddUserStatus, AdminService, UserStatus, type AddUserResult, type User } from "@crm/gen/crm/admin/v1/admin_pb";
import { Role } from "@crm/gen/crm/auth/v1/auth_pb";
import { transport, type Session } from "../session";
import { membersInput, membersPaging } from "../prefetch";
import { useI18n } from "../i18n";
import { describeError, fieldErrors } from "../errors";
import { Field, FormError, LocalInvalid, useSubmit } from "../forms";
import { roleKeys } from "./Account";
import { SessionTable } from "./SessionTable";

const admin = createClient(AdminService, transport);

// API keys and the audit log: a chunk of their own, fetched when one of them is opened.
const ApiKeys = lazy(() => import("./Integrations").then((m) => ({ default: m.ApiKeys })));
const AuditLog = lazy(() => import("./Integrations").then((m) => ({ default: m.AuditLog })));
const Webhooks = lazy(() => import("./Webhooks").then((m) => ({ default: m.Webhooks })));
const Permissions = lazy(() => import("./Permissions").then((m) => ({ default: m.Permissions })));


// This screen's words: in its own chunk, so the first download of everyone else stays small.
const enWords = {
  "title": "Admin",
  "sections": "Admin sections",
  "members": "Members",
  "invite": "Invite people",
  "apiKeys": "API keys",
  "audit": "Audit log",
  "webhooks": "Webhooks",
  "permissions": "Permissions",
  "search": "Search by name, e-mail or phone",
  "statusFilter": "Status",
  "status": "Status",
  "status.all": "All",
  "status.active": "Active",
  "status.invited": "Invited",
  "status.deactivated": "Deactivated",
  "none": "Nobody matches.",
  "more": "Show more",
  "name": "Name",
  "email": "E-mail",
  "phone": "Phone",
  "role": "Role",
  "added": "Added",
  "field": "Field",
  "roleOf": "Role of {name}",
  "saveRole": "Save role",
  "saveRoleOf": "Save role of {name}",
  "roleChanged": "{name} is now {role}. It takes effect within 15 minutes, at their next token refresh.",
  "deactivate": "Deactivate",
  "deactivateOf": "Deactivate {name}",
  "confirmDeactivate": "Deactivate {name}? They can no longer log in, and every session of theirs ends now.",
  "deactivated": "{name} is deactivated; {count} sessions ended.",
  "sessions": "Sessions",
  "sessionsOf": "Sessions of {name}",
  "sessionsHint": "Each browser or app {name} is logged in with. Ending a session signs them out there at once; the account stays active and they can log in again.",
  "noSessions": "{name} has no active sessions.",
  "expires": "Expires",
  "endSession": "End session",
  "endSessionOf": "End session of {name}: {device}, {when}",
  "sessionEnded": "A session of {name} has ended.",
  "endAll": "Sign out everywhere",
  "endAllOf": "Sign out everywhere: {name}",
  "confirmEndAll": "End every session of {name}? They are signed out on every device now; the account stays active.",
  "endedAll": "{name} is signed out everywhere; {count} sessions ended.",
  "inviteOne": "Invite one person",
  "inviteHint": "They get an e-mail with a link to choose a password; the link works once.",
  "sendInvite": "Send the invitation",
  "invited": "Invitation e-mailed to {email}.",
  "invitedNoMail": "{email} is added, but the invitation e-mail could not be queued.",
  "exists": "Already someone's login: nothing was changed.",
  "inviteMany": "Invite many from CSV",
  "csvHint": "One person per line: email, name, phone (optional), role (member, admin or owner; empty means member). A first line naming the columns may put them in any order. Up to 1000 lines per call; more are sent in parts.",
  "csvFile": "CSV file",
  "csvText": "Or paste the CSV here",
  "csvRows": "{count} rows read.",
  "sendInvites": "Invite {count} people",
  "csvSummary": "Created {created}, already existing {exists}, not valid {invalid}; {queued} invitations e-mailed.",
  "csvResults": "Result per row",
  "line": "Line",
  "result": "Result",
  "rowCreated": "Invited",
  "rowCreatedNoMail": "Added; the e-mail could not be queued",
  "rowInvalid": "Not valid",
  "badRole": "\"{role}\" is not a role: use member, admin or owner",
  "notSent": "not sent: the call was refused for other rows",
};
type Word = keyof typeof enWords;
const ruWords: Record<Word, string> = {
  "title": "Администрирование",
  "sections": "Разделы администрирования",
  "members": "Сотрудники",
  "invite": "Пригласить",
  "apiKeys": "Ключи API",
  "audit": "Журнал аудита",
  "webhooks": "Вебхуки",
  "permissions": "Права",
  "search": "Поиск по имени, почте или телефону",
  "statusFilter": "Состояние",
  "status": "Состояние",
  "status.all": "Все",
  "status.active": "Активен",
  "status.invited": "Приглашён",
  "status.deactivated": "Отключён",
  "none": "Никого не найдено.",
  "more": "Показать ещё",
  "name": "Имя",
  "email": "Эл. почта",
  "phone": "Телефон",
  "role": "Роль",
  "added": "Добавлен",
  "field": "Поле",
  "roleOf": "Роль: {name}",
  "saveRole": "Сохранить роль",
  "saveRoleOf": "Сохранить роль: {name}",
  "roleChanged": "{name}: новая роль — {role}. Она вступит в силу в течение 15 минут, при следующем обновлении токена.",
  "deactivate": "Отключить",
  "deactivateOf": "Отключить: {name}",
  "confirmDeactivate": "Отключить {name}? Вход станет невозможен, все сеансы завершатся сейчас же.",
  "deactivated": "{name}: учётная запись отключена, завершено сеансов: {count}.",
  "sessions": "Сеансы",
  "sessionsOf": "Сеансы: {name}",
  "sessionsHint": "Каждый браузер или приложение, где открыт сеанс ({name}). Завершённый сеанс закрывается сразу; учётная запись остаётся активной, войти можно снова.",
  "noSessions": "{name}: активных сеансов нет.",
  "expires": "Истекает",
  "endSession": "Завершить сеанс",
  "endSessionOf": "Завершить сеанс {name}: {device}, {when}",
  "sessionEnded": "Сеанс {name} завершён.",
  "endAll": "Выйти везде",
  "endAllOf": "Выйти везде: {name}",
  "confirmEndAll": "Завершить все сеансы {name}? Выход произойдёт сейчас же на всех устройствах; учётная запись остаётся активной.",
  "endedAll": "{name}: выполнен выход везде, завершено сеансов: {count}.",
  "inviteOne": "Пригласить одного человека",
  "inviteHint": "Придёт письмо со ссылкой, чтобы задать пароль; ссылка одноразовая.",
  "sendInvite": "Отправить приглашение",
  "invited": "Приглашение отправлено на {email}.",
  "invitedNoMail": "{email} добавлен, но письмо-приглашение не удалось поставить в очередь.",
  "exists": "Это уже чей-то логин: ничего не изменено.",
  "inviteMany": "Пригласить многих из CSV",
  "csvHint": "Один человек на строку: email, имя, телефон (необязательно), роль (member, admin или owner; пусто — сотрудник). Первая строка с названиями столбцов позволяет любой порядок. До 1000 строк за вызов; больше — отправляется частями.",
  "csvFile": "Файл CSV",
  "csvText": "Или вставьте CSV сюда",
  "csvRows": "Прочитано строк: {count}.",
  "sendInvites": "Пригласить: {count}",
  "csvSummary": "Создано {created}, уже были {exists}, с ошибками {invalid}; писем-приглашений: {queued}.",
  "csvResults": "Результат по строкам",
  "line": "Строка",
  "result": "Результат",
  "rowCreated": "Приглашён",
  "rowCreatedNoMail": "Добавлен; письмо не удалось поставить в очередь",
  "rowInvalid": "Ошибка",
  "badRole": "«{role}» — не роль: используйте member, admin или owner",
  "notSent": "не отправлено: вызов отклонён из-за других строк",
};

/** useI18n() plus `w`, this screen's words in the current language. */
function useWords() {
  const i18n = useI18n();
  const dict = i18n.locale === "ru" ? ruWords : enWords;
  return { ...i18n, i18n, w: (key: Word, params?: Record<string, string | number>) => i18n.format(dict[key], params) };
}

const statusKeys: Record<number, Word> = {
  [UserStatus.ACTIVE]: "status.active",
  [UserStatus.INVITED]: "status.invited",
  [UserStatus.DEACTIVATED]: "status.deactivated",
};

/** The roles the caller may give: only an owner makes owners. */
function grantable(s: Session): Role[] {
  return s.role === Role.OWNER ? [Role.MEMBER, Role.ADMIN, Role.OWNER] : [Role.MEMBER, Role.ADMIN];
}

export function Admin({ session }: { session: Session }) {
  const { t, w } = useWords();
  const [invite] = useRoute("/admin/invite");
  const [keysPage] = useRoute("/admin/api-keys");
  const [auditPage] = useRoute("/admin/audit");
  const [hooksPage] = useRoute("/admin/webhooks");
  const [permissionsPage] = useRoute("/admin/permissions");
  const members = !invite && !keysPage && !auditPage && !hooksPage && !permissionsPage;
  return (
    <section aria-labelledby="admin-title">
      <h1 id="admin-title">{w("title")}</h1>
      <nav aria-label={w("sections")} className="subnav">
        <ul>
          <li>
            <Link href="/admin/members" aria-current={members ? "page" : undefined}>
              {w("members")}
            </Link>
          </li>
          <li>
            <Link href="/admin/invite" aria-current={invite ? "page" : undefined}>
              {w("invite")}
            </Link>
          </li>
          <li>
            <Link href="/admin/api-keys" aria-current={keysPage ? "page" : undefined}>
              {w("apiKeys")}
            </Link>
          </li>
          <li>
            <Link href="/admin/audit" aria-current={auditPage ? "page" : undefined}>
              {w("audit")}
            </Link>
          </li>
          <li>
            <Link href="/admin/webhooks" aria-current={hooksPage ? "page" : undefined}>
              {w("webhooks")}
            </Link>
          </li>
          <li>
            <Link href="/admin/permissions" aria-current={permissionsPage ? "page" : undefined}>
              {w("permissions")}
            </Link>
          </li>
        </ul>
      </nav>
      {invite ? (
        <Invite session={session} />
      ) : keysPage ? (
        <Suspense fallback={<p aria-busy="true">{t("app.loading")}</p>}>
          <ApiKeys />
        </Suspense>
      ) : auditPage ? (
        <Suspense fallback={<p aria-busy="true">{t("app.loading")}</p>}>
          <AuditLog />
        </Suspense>
      ) : hooksPage ? (
        <Suspense fallback={<p aria-busy="true">{t("app.loading")}</p>}>
          <Webhooks />
        </Suspense>
      ) : permissionsPage ? (
        <Suspense fallback={<p aria-busy="true">{t("app.loading")}</p>}>
          <Permissions />
        </Suspense>
      ) : (
        <Members session={session} />
      )}
    </section>
  );
}

function useInvalidateUsers() {
  const queryClient = useQueryClient();
  return () => queryClient.invalidateQueries({ queryKey: createConnectQueryKey({ schema: AdminService.method.listUsers, cardinality: undefined }) });
}

function Members({ session }: { session: Session }) {
  const { t, w, i18n } = useWords();
  const searchId = useId();
  const statusId = useId();
  const [query, setQuery] = useState("");
  const [status, setStatus] = useState<UserStatus>(UserStatus.UNSPECIFIED);
  const deferred = useDeferredValue(query.trim());
  const list = useInfiniteQuery(
    AdminService.method.listUsers,
    membersInput(deferred, status),
    { ...membersPaging, placeholderData: (prev) => prev },
  );
  const [notice, setNotice] = useState<{ text: string; error?: boolean }>();
  const users = list.data?.pages.flatMap((p) => p.users) ?? [];
  return (
    <>
      <h2 id="members-title">{w("members")}</h2>
      <form className="filters" role="search" onSubmit={(e) => e.preventDefault()}>
        <div className="field">
          <label htmlFor={searchId}>{w("search")}</label>
          <input id={searchId} type="search" name="query" value={query} onChange={(e) => setQuery(e.target.value)} maxLength={200} />
        </div>
        <div className="field">
          <label htmlFor={statusId}>{w("statusFilter")}</label>
          <select id={statusId} value={status} onChange={(e) => setStatus(Number(e.target.value) as UserStatus)}>
            <option value={UserStatus.UNSPECIFIED}>{w("status.all")}</option>
            {[UserStatus.ACTIVE, UserStatus.INVITED, UserStatus.DEACTIVATED].map((s) => (
              <option key={s} value={s}>
                {w(statusKeys[s]!)}
              </option>
            ))}
          </select>
        </div>
      </form>
      {notice && (
        <p role={notice.error ? "alert" : "status"} className={notice.error ? "error" : "notice"}>
          {notice.text}
        </p>
      )}
      {list.isPending ? (
        <p aria-busy="true">{t("app.loading")}</p>
      ) : list.error ? (
        <p role="alert" className="error">
          {describeError(list.error, i18n)}
        </p>
      ) : users.length === 0 ? (
        <p>{w("none")}</p>
      ) : (
        <table className="entries members" aria-labelledby="members-title">
          <thead>
            <tr>
              <th scope="col">{w("name")}</th>
              <th scope="col">{w("email")}</th>
              <th scope="col">{w("phone")}</th>
              <th scope="col">{w("role")}</th>
              <th scope="col">{w("status")}</th>
              <th scope="col">{w("added")}</th>
              <th scope="col">
                <span className="visually-hidden">{t("account.actions")}</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {users.map((u) => (
              <MemberRow key={u.userId} user={u} session={session} onDone={setNotice} />
            ))}
          </tbody>
        </table>
      )}
      {list.hasNextPage && (
        <button type="button" className="secondary" onClick={() => void list.fetchNextPage()} disabled={list.isFetchingNextPage}>
          {w("more")}
        </button>
      )}
    </>
  );
}

function MemberRow({ user: u, session, onDone }: { user: User; session: Session; onDone(n: { text: string; error?: boolean }): void }) {
  const { t, w, i18n } = useWords();
  const roleId = useId();
  const invalidate = useInvalidateUsers();
  const [role, setRole] = useState(u.role);
  const name = u.name || u.email;
  const me = u.userId === session.userId;
  const fail = (e: unknown) => onDone({ text: `${name}: ${describeError(e, i18n)}`, error: true });
  const changeRole = useMutation(AdminService.method.changeRole, {
    onSuccess: async (r) => {
      onDone({ text: w("roleChanged", { name, role: t(roleKeys[r.user?.role ?? role] ?? "role.member") }) });
      await invalidate();
    },
    onError: (e) => {
      setRole(u.role);
      fail(e);
    },
  });
  const deactivate = useMutation(AdminService.method.deactivateUser, {
    onSuccess: async (r) => {
      onDone({ text: w("deactivated", { name, count: r.revokedSessions }) });
      await invalidate();
    },
    onError: fail,
  });
  const roles = grantable(session);
  const options = roles.includes(u.role) ? roles : [...roles, u.role];
  // Another active user's sessions; an owner's only for owners (the server refuses others anyway).
  const sessionsShown = !me && u.status === UserStatus.ACTIVE && (u.role !== Role.OWNER || session.role === Role.OWNER);
  const [open, setOpen] = useState(false);
  const panelId = useId();
  return (
    <>
      <tr data-user={u.userId}>
        <th scope="row">{u.name}</th>
        <td>{u.email}</td>
        <td>{u.phone}</td>
        <td>
          <form
            className="row-form"
            onSubmit={(e: FormEvent) => {
              e.preventDefault();
              if (role !== u.role) changeRole.mutate({ userId: u.userId, role });
            }}
          >
            <label htmlFor={roleId} className="visually-hidden">
              {w("roleOf", { name })}
            </label>
            <select id={roleId} value={role} onChange={(e) => setRole(Number(e.target.value) as Role)} disabled={me || u.status === UserStatus.DEACTIVATED}>
              {options.map((r) => (
                <option key={r} value={r}>
                  {t(roleKeys[r] ?? "role.member")}
                </option>
              ))}
            </select>
            {role !== u.role && (
              <button type="submit" disabled={changeRole.isPending} aria-label={w("saveRoleOf", { name })}>
                {w("saveRole")}
              </button>
            )}
          </form>
        </td>
        <td>{w(statusKeys[u.status] ?? "status.active")}</td>
        <td>{u.createdAt ? i18n.day(timestampDate(u.createdAt)) : ""}</td>
        <td>
          <div className="row-actions">
            {sessionsShown && (
              <button type="button" className="secondary" aria-expanded={open} aria-controls={open ? panelId : undefined} aria-label={w("sessionsOf", { name })} onClick={() => setOpen(!open)}>
                {w("sessions")}
              </button>
            )}
            {!me && u.status !== UserStatus.DEACTIVATED && (
              <button
                type="button"
                className="secondary danger"
                disabled={deactivate.isPending}
                aria-label={w("deactivateOf", { name })}
                onClick={() => {
                  if (window.confirm(w("confirmDeactivate", { name }))) deactivate.mutate({ userId: u.userId });
                }}
              >
                {w("deactivate")}
              </button>
            )}
          </div>
        </td>
      </tr>
      {open && sessionsShown && (
        <tr className="user-sessions-row">
          <td colSpan={7} id={panelId}>
            <UserSessions userId={u.userId} name={name} onDone={onDone} />
          </td>
        </tr>
      )}
    </>
  );
}

/** One user's active sessions (ListUserSessions), each with a way to end it, and "sign out everywhere". */
function UserSessions({ userId, name, onDone }: { userId: string; name: string; onDone(n: { text: string; error?: boolean }): void }) {
  const { t, w, i18n } = useWords();
  const headingId = useId();
  const list = useQuery(AdminService.method.listUserSessions, { userId });
  const fail = (e: unknown) => onDone({ text: `${name}: ${describeError(e, i18n)}`, error: true });
  const endOne = useMutation(AdminService.method.revokeUserSession, {
    onSuccess: async () => {
      onDone({ text: w("sessionEnded", { name }) });
      await list.refetch();
    },
    onError: async (e) => {
      fail(e);
      await list.refetch();
    },
  });
  const endAll = useMutation(AdminService.method.revokeUserSessions, {
    onSuccess: async (r) => {
      onDone({ text: w("endedAll", { name, count: r.revokedSessions }) });
      await list.refetch();
    },
    onError: fail,
  });
  const sessions = list.data?.sessions ?? [];
  return (
    <section className="user-sessions" aria-labelledby={headingId}>
      <h3 id={headingId}>{w("sessionsOf", { name })}</h3>
      <p className="hint">{w("sessionsHint", { name })}</p>
      {list.isPending ? (
        <p aria-busy="true">{t("app.loading")}</p>
      ) : list.error ? (
        <p role="alert" className="error">
          {describeError(list.error, i18n)}
        </p>
      ) : sessions.length === 0 ? (
        <p>{w("noSessions", { name })}</p>
      ) : (
        <>
          <SessionTable
            sessions={sessions}
            labelledBy={headingId}
            expiresLabel={w("expires")}
            end={(x, named) => (
              <button
                type="button"
                className="secondary"
                disabled={endOne.isPending || endAll.isPending}
                aria-label={w("endSessionOf", { name, device: named.device, when: named.created })}
                onClick={() => endOne.mutate({ userId, sessionId: x.sessionId })}
              >
                {w("endSession")}
              </button>
            )}
          />
          <p>
            <button
              type="button"
              className="secondary danger"
              disabled={endOne.isPending || endAll.isPending}
              aria-label={w("endAllOf", { name })}
              onClick={() => {
                if (window.confirm(w("confirmEndAll", { name }))) endAll.mutate({ userId });
              }}
            >
              {w("endAll")}
            </button>
          </p>
        </>
      )}
    </section>
  );
}

// ---- inviting ----

type Row = { email: string; name: string; phone: string; role: string };

const roleWords: Record<string, Role> = {
  "": Role.MEMBER,
  member: Role.MEMBER,
  admin: Role.ADMIN,
  owner: Role.OWNER,
  role_member: Role.MEMBER,
  role_admin: Role.ADMIN,
  role_owner: Role.OWNER,
  сотрудник: Role.MEMBER,
  администратор: Role.ADMIN,
  владелец: Role.OWNER,
};

/** Column names a header row may use, in English or Russian. */
const headerWords: Record<string, keyof Row> = {
  email: "email",
  "e-mail": "email",
  почта: "email",
  "эл. почта": "email",
  name: "name",
  имя: "name",
  phone: "phone",
  телефон: "phone",
  role: "role",
  роль: "role",
};

/**
 * CSV rows (Papa Parse: quotes, commas or semicolons, any line ends) to people. A first row naming
 * the columns (email, name, phone, role, in any order) is a header; without one the order is
 * email, name, phone, role. `line` is the row's line in the file, for people to find it.
 */
export function parseCsv(text: string): { rows: (Row & { line: number })[]; error?: string } {
  const parsed = Papa.parse<string[]>(text.replace(/^\uFEFF/, ""), { skipEmptyLines: "greedy" });
  const data = parsed.data.map((r) => r.map((c) => c.trim()));
  if (data.length === 0) return { rows: [], error: parsed.errors[0]?.message };
  const head = data[0]!.map((c) => headerWords[c.toLowerCase()]);
  const hasHeader = head.includes("email");
  const columns: (keyof Row | undefined)[] = hasHeader ? head : ["email", "name", "phone", "role"];
  const rows = data.slice(hasHeader ? 1 : 0).map((cells, i) => {
    const row: Row & { line: number } = { email: "", name: "", phone: "", role: "", line: i + (hasHeader ? 2 : 1) };
    columns.forEach((c, j) => {
      if (c) row[c] = cells[j] ?? "";
    });
    return row;
  });
  return { rows, error: parsed.errors[0]?.message };
}

/** "email: must be …; name: is required" (AddUsers' reason for a row) by field. */
function reasonsByField(reason: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of reason.split("; ")) {
    const m = /^(email|phone|name|role): (.*)$/s.exec(part);
    if (m) out[m[1]!] = out[m[1]!] ? `${out[m[1]!]}; ${m[2]}` : m[2]!;
    else out[""] = out[""] ? `${out[""]}; ${part}` : part;
  }
  return out;
}

interface RowResult {
  line: number;
  email: string;
  status: "created" | "exists" | "invalid";
  reasons: Record<string, string>;
  emailQueued: boolean;
}

const MAX_ROWS = 1000;

/** Sends the rows in calls of at most 1000; a row the console can already judge (its role) is not sent. */
async function addRows(rows: (Row & { line: number })[], w: (key: Word, params?: Record<string, string | number>) => string): Promise<RowResult[]> {
  const results: RowResult[] = [];
  const sendable: { row: Row & { line: number }; role: Role }[] = [];
  for (const row of rows) {
    const role = roleWords[row.role.toLowerCase()];
    if (role === undefined) results.push({ line: row.line, email: row.email, status: "invalid", reasons: { role: w("badRole", { role: row.role }) }, emailQueued: false });
    else sendable.push({ row, role });
  }
  for (let i = 0; i < sendable.length; i += MAX_ROWS) {
    const chunk = sendable.slice(i, i + MAX_ROWS);
    try {
      const r = await admin.addUsers({ users: chunk.map(({ row, role }) => ({ email: row.email, name: row.name, phone: row.phone, role })) });
      r.results.forEach((res: AddUserResult) => {
        const row = chunk[res.index]!.row;
        results.push({
          line: row.line,
          email: res.email || row.email,
          status: res.status === AddUserStatus.CREATED ? "created" : res.status === AddUserStatus.ALREADY_EXISTS ? "exists" : "invalid",
          reasons: res.status === AddUserStatus.INVALID ? reasonsByField(res.reason) : {},
          emailQueued: res.emailQueued,
        });
      });
    } catch (e) {
      // The whole call was refused: its field violations name rows (users[3].name); others are the call's.
      const violations = fieldErrors(e);
      if (Object.keys(violations).length === 0) throw e;
      const byRow = new Map<number, Record<string, string>>();
      const general: string[] = [];
      for (const [field, text] of Object.entries(violations)) {
        const m = /^users\[(\d+)\](?:\.(\w+))?$/.exec(field);
        if (m) byRow.set(Number(m[1]), { ...byRow.get(Number(m[1])), [m[2] ?? ""]: text });
        else general.push(`${field}: ${text}`);
      }
      if (general.length) throw e;
      chunk.forEach(({ row }, j) => results.push({ line: row.line, email: row.email, status: "invalid", reasons: byRow.get(j) ?? { "": w("notSent") }, emailQueued: false }));
    }
  }
  return results.sort((a, b) => a.line - b.line);
}

function Invite({ session }: { session: Session }) {
  return (
    <>
      <InviteOne session={session} />
      <InviteMany />
    </>
  );
}

function RoleSelect({ session, value, onChange, error }: { session: Session; value: Role; onChange(r: Role): void; error?: string | undefined }) {
  const { t, w } = useWords();
  const id = useId();
  return (
    <div className="field">
      <label htmlFor={id}>{w("role")}</label>
      <select id={id} name="role" value={value} onChange={(e) => onChange(Number(e.target.value) as Role)} aria-invalid={error ? true : undefined} aria-describedby={error ? `${id}-error` : undefined}>
        {grantable(session).map((r) => (
          <option key={r} value={r}>
            {t(roleKeys[r]!)}
          </option>
        ))}
      </select>
      {error && (
        <small id={`${id}-error`} className="field-error">
          {error}
        </small>
      )}
    </div>
  );
}

function InviteOne({ session }: { session: Session }) {
  const { t, w } = useWords();
  const invalidate = useInvalidateUsers();
  const empty = { name: "", email: "", phone: "" };
  const [f, setF] = useState(empty);
  const [role, setRole] = useState<Role>(Role.MEMBER);
  const [done, setDone] = useState<string>();
  const { busy, error, fieldError, onSubmit } = useSubmit(
    async () => {
      setDone(undefined);
      const r = await admin.addUsers({ users: [{ ...f, role }] });
      const res = r.results[0];
      if (res?.status === AddUserStatus.CREATED) {
        setDone(w(res.emailQueued ? "invited" : "invitedNoMail", { email: res.email }));
        setF(empty);
        setRole(Role.MEMBER);
        await invalidate();
        return;
      }
      // The row's result, not an error of the call: its reasons go next to their fields.
      const { "": general, ...fields } = res?.status === AddUserStatus.ALREADY_EXISTS ? { email: w("exists") } : reasonsByField(res?.reason ?? "");
      throw new LocalInvalid(fields, general);
    },
    { "users[0].email": "email", "users[0].name": "name", "users[0].phone": "phone", "users[0].role": "role" },
  );
  const field = (k: keyof typeof f) => ({ name: k, value: f[k], error: fieldError[k], onChange: (v: string) => setF((p) => ({ ...p, [k]: v })) });
  return (
    <section aria-labelledby="invite-one">
      <h2 id="invite-one">{w("inviteOne")}</h2>
      <p className="hint">{w("inviteHint")}</p>
      <form onSubmit={onSubmit} aria-busy={busy} className="invite-form">
        <Field label={w("name")} autoComplete="off" {...field("name")} />
        <Field label={w("email")} type="email" autoComplete="off" {...field("email")} />
        <Field label={t("signup.phone")} hint={t("signup.phoneHint")} type="tel" autoComplete="off" required={false} {...field("phone")} />
        <RoleSelect session={session} value={role} onChange={setRole} error={fieldError.role} />
        <FormError text={error} />
        {done && (
          <p role="status" className="notice">
            {done}
          </p>
        )}
        <button type="submit" disabled={busy}>
          {busy ? t("form.busy") : w("sendInvite")}
        </button>
      </form>
    </section>
  );
}

function InviteMany() {
  const { t, w, i18n } = useWords();
  const fileId = useId();
  const textId = useId();
  const invalidate = useInvalidateUsers();
  const [text, setText] = useState("");
  const [fileName, setFileName] = useState<string>();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const [results, setResults] = useState<RowResult[]>();
  const parsed = text.trim() ? parseCsv(text) : { rows: [] };

  const onFile = async (e: ChangeEvent<HTMLInputElement>) => {
    const file = e.target.files?.[0];
    if (!file) return;
    setFileName(file.name);
    setResults(undefined);
    setText(await file.text());
  };
  const onSubmit = async (e: FormEvent) => {
    e.preventDefault();
    if (busy || parsed.rows.length === 0) return;
    setBusy(true);
    setError(undefined);
    setResults(undefined);
    try {
      setResults(await addRows(parsed.rows, w));
      await invalidate();
    } catch (err) {
      setError(describeError(err, i18n));
    } finally {
      setBusy(false);
    }
  };
  const count = (s: RowResult["status"]) => results?.filter((r) => r.status === s).length ?? 0;

  return (
    <section aria-labelledby="invite-many">
      <h2 id="invite-many">{w("inviteMany")}</h2>
      <p className="hint" id={`${textId}-hint`}>
        {w("csvHint")}
      </p>
      <form onSubmit={(e) => void onSubmit(e)} aria-busy={busy}>
        <div className="field">
          <label htmlFor={fileId}>{w("csvFile")}</label>
          <input id={fileId} type="file" name="csv" accept=".csv,text/csv,text/plain" onChange={(e) => void onFile(e)} />
        </div>
        <div className="field">
          <label htmlFor={textId}>{w("csvText")}</label>
          <textarea
            id={textId}
            name="csvText"
            rows={6}
            value={text}
            spellCheck={false}
            aria-describedby={`${textId}-hint`}
            onChange={(e) => {
              setFileName(undefined);
              setResults(undefined);
              setText(e.target.value);
            }}
          />
        </div>
        {text.trim() && (
          <p className="hint">
            {fileName ? `${fileName}: ` : ""}
            {w("csvRows", { count: parsed.rows.length })}
            {parsed.error ? ` ${parsed.error}` : ""}
          </p>
        )}
        <FormError text={error} />
        <button type="submit" disabled={busy || parsed.rows.length === 0}>
          {busy ? t("form.busy") : w("sendInvites", { count: parsed.rows.length })}
        </button>
      </form>
      {results && (
        <>
          <p role="status" className="notice">
            {w("csvSummary", { created: count("created"), exists: count("exists"), invalid: count("invalid"), queued: results.filter((r) => r.emailQueued).length })}
          </p>
          <table className="entries results" aria-labelledby="csv-results">
            <caption id="csv-results">{w("csvResults")}</caption>
            <thead>
              <tr>
                <th scope="col">{w("line")}</th>
                <th scope="col">{w("email")}</th>
                <th scope="col">{w("result")}</th>
              </tr>
            </thead>
            <tbody>
              {results.map((r) => (
                <tr key={r.line} className={r.status} data-line={r.line}>
                  <td className="num">{i18n.number(r.line)}</td>
                  <td>{r.email}</td>
                  <td>
                    {r.status === "created" ? w(r.emailQueued ? "rowCreated" : "rowCreatedNoMail") : r.status === "exists" ? w("exists") : w("rowInvalid")}
                    {Object.keys(r.reasons).length > 0 && (
                      <ul className="reasons">
                        {Object.entries(r.reasons).map(([field, why]) => (
                          <li key={field}>{field ? `${w(fieldKeys[field] ?? "field")}: ${why}` : why}</li>
                        ))}
                      </ul>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </section>
  );
}

const fieldKeys: Record<string, Word> = { email: "email", name: "name", phone: "phone", role: "role" };
