/**
 * The admin domain's rules used on both sides: by the service's request checks (validation.ts)
 * and by its store (services/admin/store), which checks again what it is given (dbservice trusts
 * no caller's input), against the caller's role as the database knows it. Pure: no I/O.
 */
import { invalid, isUuid, type Role } from "@crm/kit";
import { normaliseEmail, normalisePhone } from "@crm/contracts/logins";

export const limits = {
  /** Rows of one AddUsers (and of one RegisterUsersInCompany). */
  rows: 1000,
  name: 200,
  pageSize: 500,
  defaultPageSize: 50,
} as const;

/**
 * Roles by their number in crm.auth.v1.Role (the admin API) and crm.db.v1.UserRole (the store's):
 * the two enums share it. 0, unspecified, is no role.
 */
const roleByNumber: Record<number, Role> = { 1: "owner", 2: "admin", 3: "member" };
const ROLES = "must be ROLE_OWNER, ROLE_ADMIN or ROLE_MEMBER";

/** A row of AddUsers as given; `role` a crm.auth.v1.Role or crm.db.v1.UserRole (unspecified: member). */
export interface NewUserInput {
  email: string;
  phone: string;
  role: number;
  name: string;
}

export interface ValidRow {
  /** Normalised (@crm/contracts/logins). */
  email: string;
  /** E.164 or empty. */
  phone: string;
  /** Trimmed. */
  name: string;
  role: Role;
}

/** One row's verdict: `row` when it can be created, else `reason` naming each bad field. */
export interface RowCheck {
  index: number;
  /** Normalised when valid, else as given (trimmed). */
  email: string;
  row?: ValidRow;
  reason?: string;
}

/**
 * Judges every row on its own, for a caller of role `caller`. A row repeating the email or phone
 * of an earlier valid row is invalid (the earlier one wins). Throws only when there are 0 or more
 * than limits.rows rows.
 */
export function checkRows(users: NewUserInput[], caller: Role): RowCheck[] {
  if (users.length < 1 || users.length > limits.rows) throw invalid([{ field: "users", description: `must hold 1..${limits.rows} rows; got ${users.length}` }]);
  const firstEmail = new Map<string, number>();
  const firstPhone = new Map<string, number>();
  return users.map((u, index) => {
    const problems: string[] = [];
    const email = normaliseEmail(u.email);
    if (!email) problems.push(u.email.trim() ? "email: must be a valid e-mail address like name@example.com" : "email: is required");
    let phone = "";
    if (u.phone.trim()) {
      phone = normalisePhone(u.phone) ?? "";
      if (!phone) problems.push("phone: must be in E.164 format like +14155552671");
    }
    const name = u.name.trim();
    const length = [...name].length;
    if (length < 1) problems.push("name: is required");
    else if (length > limits.name) problems.push(`name: must be at most ${limits.name} characters`);
    const role = u.role === 0 ? "member" : roleByNumber[u.role];
    if (!role) problems.push(`role: ${ROLES}`);
    else if (role === "owner" && caller !== "owner") problems.push("role: only an owner can add owners; choose ROLE_ADMIN or ROLE_MEMBER");
    if (email && firstEmail.has(email)) problems.push(`email: repeats row ${firstEmail.get(email)}`);
    if (phone && firstPhone.has(phone)) problems.push(`phone: repeats row ${firstPhone.get(phone)}`);
    if (problems.length) return { index, email: email ?? u.email.trim(), reason: problems.join("; ") };
    firstEmail.set(email!, index);
    if (phone) firstPhone.set(phone, index);
    return { index, email: email!, row: { email: email!, phone, name, role: role! } };
  });
}

/** A page size of ListUsers (the service turns 0 into limits.defaultPageSize first). */
export const pageSizeFits = (n: number) => n >= 1 && n <= limits.pageSize;

/** The user a call acts on: a UUID (from ListUsers). */
export function userIdOf(userId: string): string {
  if (!isUuid(userId)) throw invalid([{ field: "userId", description: userId ? "must be a user id (UUID) from ListUsers" : "is required" }]);
  return userId;
}

/**
 * The user and session a sessions call acts on: UUIDs from ListUsers and ListUserSessions; every
 * bad one is a field violation. `sessionId` undefined: no session is named (the user's every one).
 */
export function sessionTargetOf(userId: string, sessionId?: string): { userId: string; sessionId: string } {
  const v: { field: string; description: string }[] = [];
  if (!isUuid(userId)) v.push({ field: "userId", description: userId ? "must be a user id (UUID) from ListUsers" : "is required" });
  if (sessionId !== undefined && !isUuid(sessionId)) v.push({ field: "sessionId", description: sessionId ? "must be a session id (UUID) from ListUserSessions" : "is required" });
  if (v.length) throw invalid(v);
  return { userId, sessionId: sessionId ?? "" };
}

/** At most this many sessions are listed by ListUserSessions (the most recently used). */
export const sessionListLimit = 500;

/** The role ChangeRole sets (a crm.auth.v1.Role or crm.db.v1.UserRole): one of the three, never unspecified. */
export function newRoleOf(role: number): Role {
  const r = roleByNumber[role];
  if (!r) throw invalid([{ field: "role", description: ROLES }]);
  return r;
}

/** The audit log's limits (ListAuditEvents, ExportAuditEvents, the store). */
export const auditLimits = {
  pageSize: 500,
  defaultPageSize: 50,
  /** The store's page (the export reads in these). */
  storePageSize: 1000,
  actions: 50,
} as const;

/** A filter of ListAuditEvents / ExportAuditEvents as given (times in ms since the epoch). */
export interface AuditFilterInput {
  actorId: string;
  actions: string[];
  startMs: number | undefined;
  endMs: number | undefined;
}

const actionShape = /^[a-z][a-z_]*\.[a-z][a-z_]*$/;

/** Checks a filter: an actor id (UUID) or none, action names, a time range that is not reversed. */
export function checkAuditFilter(f: AuditFilterInput): AuditFilterInput {
  const problems: { field: string; description: string }[] = [];
  if (f.actorId && !isUuid(f.actorId)) problems.push({ field: "actorId", description: "must be a user or API key id (UUID), or empty for everyone" });
  if (f.actions.length > auditLimits.actions) problems.push({ field: "actions", description: `at most ${auditLimits.actions}` });
  f.actions.forEach((a, i) => {
    if (!actionShape.test(a) || a.length > 64) problems.push({ field: `actions[${i}]`, description: "must be an action like auth.login or api_key.created" });
  });
  if (f.startMs !== undefined && f.endMs !== undefined && f.startMs >= f.endMs) problems.push({ field: "endTime", description: "must be after startTime" });
  if (problems.length) throw invalid(problems);
  return f;
}

/** The keyset of the audit log's pages: the last event's sequence number. */
export const encodeAuditPageToken = (seq: string) => Buffer.from(`a1:${seq}`).toString("base64url");

export function decodeAuditPageToken(token: string): string {
  const m = /^a1:([1-9][0-9]{0,18})$/.exec(Buffer.from(token, "base64url").toString("utf8"));
  if (!m) throw invalid([{ field: "pageToken", description: "is not a token from a previous ListAuditEvents answer; leave it empty for the first page" }]);
  return m[1]!;
}
