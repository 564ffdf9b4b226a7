/** crm.admin.v1.AdminService handlers. Dependencies come in; no wiring here. */
import type { Client, ServiceImpl } from "@connectrpc/connect";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { clientIpKey, invalid, principalOf, requireRole, type Logger, type Revocations, type Role } from "@crm/kit";
import { AddUserStatus, AdminService, UserStatus, type AddUserResult, type User } from "@crm/gen/crm/admin/v1/admin_pb";
import { Role as ProtoRole } from "@crm/gen/crm/auth/v1/auth_pb";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { DbAdminService, RegisterUserResult_Outcome as Outcome, type NewUserRowSchema, type UserRecord } from "@crm/gen/crm/db/v1/db_admin_pb";
import { UserRole } from "@crm/gen/crm/db/v1/db_auth_pb";
import { EmailKind } from "@crm/gen/crm/email/v1/email_pb";
import { renderWelcome, tokenLink } from "@crm/contracts/email-templates";
import { newOpaqueToken } from "@crm/contracts/tokens";
import { checkRows, limits, newRoleOf, pageSizeFits, sessionTargetOf, userIdOf } from "./rules.js";
import { validateList } from "./validation.js";

export interface AdminDeps {
  db: Client<typeof DbAdminService>;
  revocations: Revocations;
  log: Logger;
  /** PUBLIC_URL, read when a link is made. */
  appUrl: () => string;
  inviteTtlHours: number;
  /** How long a revoked session stays on the revocation list: the longest access-token lifetime. */
  revocationTtlSeconds: number;
  now?: () => number;
}

const toDbRole: Record<Role, UserRole> = { owner: UserRole.OWNER, admin: UserRole.ADMIN, member: UserRole.MEMBER };

/** The admin API's view of a stored user (the enums share their numbering). */
export function toUser(u: UserRecord | undefined): Omit<User, "$typeName"> | undefined {
  if (!u) return undefined;
  return { userId: u.userId, email: u.email, phone: u.phone, name: u.name, role: u.role as number as ProtoRole, status: u.status as number as UserStatus, createdAt: u.createdAt };
}

/** Bytes of rows per RegisterUsersInCompany request (the servers' default read limit is 4 MiB). */
const CHUNK_BYTES = 1024 * 1024;

type RowInit = MessageInitShape<typeof NewUserRowSchema>;

const rowBytes = (r: RowInit) =>
  200 + Buffer.byteLength(`${r.email}${r.phone}${r.name}`) + (r.inviteEmail ? Buffer.byteLength(`${r.inviteEmail.to}${r.inviteEmail.subject}${r.inviteEmail.text}${r.inviteEmail.html}`) : 0);

/** Consecutive chunks of at most `budget` bytes (at least one row each). */
export function chunksBySize(rows: RowInit[], budget: number): { offset: number; items: RowInit[] }[] {
  const out: { offset: number; items: RowInit[] }[] = [];
  let size = 0;
  rows.forEach((r, i) => {
    const b = rowBytes(r);
    const last = out[out.length - 1];
    if (!last || size + b > budget) {
      out.push({ offset: i, items: [r] });
      size = b;
    } else {
      last.items.push(r);
      size += b;
    }
  });
  return out;
}

const rowStatus: Record<number, AddUserStatus> = { [Outcome.CREATED]: AddUserStatus.CREATED, [Outcome.ALREADY_EXISTS]: AddUserStatus.ALREADY_EXISTS, [Outcome.INVALID]: AddUserStatus.INVALID };

export function adminService(deps: AdminDeps): ServiceImpl<typeof AdminService> {
  const now = deps.now ?? Date.now;
  return {
    async addUsers(req, ctx) {
      const p = requireRole(ctx, "owner", "admin");
      const checks = checkRows(req.users, p.role);
      const results: Omit<AddUserResult, "$typeName">[] = checks.map((c) => ({
        index: c.index,
        email: c.email,
        status: c.row ? AddUserStatus.UNSPECIFIED : AddUserStatus.INVALID,
        reason: c.reason ?? "",
        userId: "",
        emailQueued: false,
      }));
      const valid = checks.filter((c) => c.row);
      if (valid.length) {
        const company = await deps.db.getCompanyDB({});
        const expiresAt = timestampFromDate(new Date(now() + deps.inviteTtlHours * 3_600_000));
        const rows: RowInit[] = valid.map(({ row }) => {
          const { token, hash } = newOpaqueToken();
          const mail = renderWelcome({
            locale: company.locale,
            companyName: company.name,
            inviterName: company.callerName,
            name: row!.name,
            email: row!.email,
            phone: row!.phone,
            link: tokenLink(deps.appUrl(), "/accept-invite", token),
            validHours: deps.inviteTtlHours,
          });
          return {
            email: row!.email,
            phone: row!.phone,
            name: row!.name,
            role: toDbRole[row!.role],
            inviteTokenHash: hash,
            inviteExpiresAt: expiresAt,
            inviteEmail: { to: row!.email, subject: mail.subject, text: mail.text, html: mail.html, locale: mail.locale, kind: EmailKind.WELCOME },
          };
        });
        // Rendered invitations make the request large (up to ~6 KiB a row): it goes in chunks that
        // stay well under the servers' read limit. Each chunk is one transaction (users with their
        // invitations); a failure midway leaves earlier chunks done, and repeating the call is safe.
        let created = 0;
        for (const chunk of chunksBySize(rows, CHUNK_BYTES)) {
          const res = await deps.db.registerUsersInCompany({ users: chunk.items });
          created += res.created;
          for (const r of res.results) {
            const target = results[valid[chunk.offset + r.index]!.index]!;
            target.status = rowStatus[r.outcome] ?? AddUserStatus.INVALID;
            target.reason = r.reason;
            target.userId = r.userId;
            target.emailQueued = r.emailId !== "";
          }
        }
        deps.log.info({ company_id: p.companyId, user_id: p.userId, rows: req.users.length, created }, "users added");
      }
      const count = (s: AddUserStatus) => results.filter((r) => r.status === s).length;
      return {
        results,
        stats: {
          created: count(AddUserStatus.CREATED),
          alreadyExisting: count(AddUserStatus.ALREADY_EXISTS),
          failed: count(AddUserStatus.INVALID),
          emailsQueued: results.filter((r) => r.emailQueued).length,
        },
      };
    },

    async listUsers(req, ctx) {
      requireRole(ctx, "owner", "admin");
      const q = validateList(req);
      const res = await deps.db.listUsersDB({ query: q.query, pageSize: q.pageSize, pageToken: q.pageToken, status: q.status as number });
      return { users: res.users.map((u) => toUser(u)!), nextPageToken: res.nextPageToken };
    },

    // The directory every member may read (names on records and tasks): no contact details.
    async listMembers(req, ctx) {
      principalOf(ctx);
      const pageSize = req.pageSize === 0 ? limits.pageSize : req.pageSize;
      const v = [];
      if (!pageSizeFits(pageSize)) v.push({ field: "pageSize", description: `must be 1..${limits.pageSize} (0 means ${limits.pageSize})` });
      if (req.pageToken.length > 2048) v.push({ field: "pageToken", description: "is not a token from a previous ListMembers answer" });
      if (v.length) throw invalid(v);
      const res = await deps.db.listMembersDB({ pageSize, pageToken: req.pageToken });
      return { members: res.members.map((m) => ({ userId: m.userId, name: m.name, role: m.role as number as ProtoRole, status: m.status as number as UserStatus })), nextPageToken: res.nextPageToken };
    },

    async deactivateUser(req, ctx) {
      const p = requireRole(ctx, "owner", "admin");
      const userId = userIdOf(req.userId);
      const res = await deps.db.deactivateUserDB({ userId });
      // The sessions are revoked in the database already; the revocation list ends their access tokens now.
      await deps.revocations.revokeSessions(res.revokedSessionIds, deps.revocationTtlSeconds);
      deps.log.info({ company_id: p.companyId, user_id: p.userId, target: userId, sessions: res.revokedSessionIds.length }, "user deactivated");
      return { user: toUser(res.user), revokedSessions: res.revokedSessionIds.length };
    },

    async listUserSessions(req, ctx) {
      const p = requireRole(ctx, "owner", "admin");
      const { userId } = sessionTargetOf(req.userId);
      const res = await deps.db.listUserSessionsDB({ userId });
      return { sessions: res.sessions.map(({ $typeName: _t, $unknown: _u, ...s }) => ({ ...s, current: s.sessionId === p.sessionId })) };
    },

    // One session or all of them, through the same two steps as DeactivateUser (and auth's
    // RevokeSession and LogoutAll): revoked in the database, then on the revocation list, which
    // refuses the sessions' access tokens everywhere and ends their live streams.
    async revokeUserSession(req, ctx) {
      const p = requireRole(ctx, "owner", "admin");
      const { userId, sessionId } = sessionTargetOf(req.userId, req.sessionId);
      const res = await deps.db.revokeUserSessionsDB({ userId, sessionId, ip: ctx.values.get(clientIpKey) });
      await deps.revocations.revokeSessions(res.revokedSessionIds, deps.revocationTtlSeconds);
      deps.log.info({ company_id: p.companyId, user_id: p.userId, target: userId, session_id: sessionId }, "user session revoked");
      return {};
    },

    async revokeUserSessions(req, ctx) {
      const p = requireRole(ctx, "owner", "admin");
      const { userId } = sessionTargetOf(req.userId);
      const res = await deps.db.revokeUserSessionsDB({ userId, ip: ctx.values.get(clientIpKey) });
      await deps.revocations.revokeSessions(res.revokedSessionIds, deps.revocationTtlSeconds);
      deps.log.info({ company_id: p.companyId, user_id: p.userId, target: userId, sessions: res.revokedSessionIds.length }, "user sessions revoked");
      return { revokedSessions: res.revokedSessionIds.length };
    },

    async changeRole(req, ctx) {
      const p = requireRole(ctx, "owner", "admin");
      const userId = userIdOf(req.userId);
      const role = newRoleOf(req.role);
      const res = await deps.db.changeRoleDB({ userId, role: toDbRole[role] });
      deps.log.info({ company_id: p.companyId, user_id: p.userId, target: userId, role }, "role changed");
      return { user: toUser(res.user) };
    },
  };
}
