/** Input rules of the admin RPCs. Pure functions: they return normalised values or throw `invalid`. */
import { invalid, isUuid, type Role, type Violation } from "@crm/kit";
import { Role as ProtoRole } from "@crm/gen/crm/auth/v1/auth_pb";
import { UserStatus } from "@crm/gen/crm/admin/v1/admin_pb";
import { normaliseEmail, normalisePhone } from "@crm/contracts/logins";

export const MAX_ROWS = 1000;

const protoRoles: Record<number, Role> = { [ProtoRole.UNSPECIFIED]: "member", [ProtoRole.OWNER]: "owner", [ProtoRole.ADMIN]: "admin", [ProtoRole.MEMBER]: "member" };

export interface NewUserInput {
  email: string;
  phone: string;
  role: ProtoRole;
  name: string;
}

export interface ValidRow {
  email: string;
  /** E.164 or empty. */
  phone: string;
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
 * Judges every row on its own. A row repeating the email or phone of an earlier valid row is
 * invalid (the earlier one wins). Throws only when the request holds 0 or more than 1000 rows.
 */
export function checkRows(users: NewUserInput[], caller: Role): RowCheck[] {
  if (users.length < 1 || users.length > MAX_ROWS) throw invalid([{ field: "users", description: `must hold 1..${MAX_ROWS} rows; got ${users.length}` }]);
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
    else if (length > 200) problems.push("name: must be at most 200 characters");
    const role = protoRoles[u.role];
    if (!role) problems.push("role: must be ROLE_OWNER, ROLE_ADMIN or ROLE_MEMBER");
    else if (role === "owner" && caller !== "owner") problems.push("role: only an owner can add owners; choose ROLE_ADMIN or ROLE_MEMBER");
    if (email && firstEmail.has(email)) problems.push(`email: repeats row ${firstEmail.get(email)}`);
    if (phone && firstPhone.has(phone)) problems.push(`phone: repeats row ${firstPhone.get(phone)}`);
    if (problems.length) return { index, email: email ?? u.email.trim(), reason: problems.join("; ") };
    firstEmail.set(email!, index);
    if (phone) firstPhone.set(phone, index);
    return { index, email: email!, row: { email: email!, phone, name, role: role! } };
  });
}

export interface ListInput {
  query: string;
  pageSize: number;
  pageToken: string;
  status: UserStatus;
}

export function validateList(req: ListInput): ListInput {
  const v: Violation[] = [];
  const query = req.query.trim();
  if ([...query].length > 200) v.push({ field: "query", description: "must be at most 200 characters" });
  const pageSize = req.pageSize === 0 ? 50 : req.pageSize;
  if (pageSize < 1 || pageSize > 500) v.push({ field: "pageSize", description: "must be 1..500 (0 means 50)" });
  if (!(req.status in UserStatus)) v.push({ field: "status", description: "is not a known user status" });
  if (req.pageToken.length > 2048) v.push({ field: "pageToken", description: "is not a token from a previous ListUsers answer" });
  if (v.length) throw invalid(v);
  return { query, pageSize, pageToken: req.pageToken, status: req.status };
}

export function validateUserId(userId: string): string {
  if (!isUuid(userId)) throw invalid([{ field: "userId", description: userId ? "must be a user id (UUID) from ListUsers" : "is required" }]);
  return userId;
}

export function validateRole(role: ProtoRole): Role {
  const r = role === ProtoRole.UNSPECIFIED ? undefined : protoRoles[role];
  if (!r) throw invalid([{ field: "role", description: "must be ROLE_OWNER, ROLE_ADMIN or ROLE_MEMBER" }]);
  return r;
}
