/** crm users add FILE (bulk invite from CSV, one result per row), crm users list, crm users sessions / signout. */
import { readFile } from "node:fs/promises";
import type { Client } from "@connectrpc/connect";
import type { Command } from "commander";
import { AddUserStatus, AdminService, UserStatus } from "@crm/gen/crm/admin/v1/admin_pb";
import { Role } from "@crm/gen/crm/auth/v1/auth_pb";
import type { Context, Wrap } from "../context.js";
import { CliError, Exit, usageError } from "../errors.js";
import { table } from "../format.js";
import { iso, roleName } from "../session.js";
import { parseRole, parseUsersCsv, type UserRow } from "../users-csv.js";
import { uuidOf } from "../ids.js";

/** AddUsers takes 1..1000 rows a call. */
const CHUNK = 1000;

export interface RowResult {
  row: number;
  email: string;
  status: "created" | "already_exists" | "invalid";
  reason?: string;
  userId?: string;
  emailQueued?: boolean;
}

export function registerUsers(program: Command, act: Wrap) {
  const users = program.command("users").description("the people of your company (owners and admins)");
  users
    .command("add")
    .description("invite users from a CSV file (columns email, name, phone, role); one result per row")
    .argument("<file>", 'the CSV file ("-" for standard input)')
    .option("--role <role>", "role of rows without one: member, admin or owner", "member")
    .action(act(add))
    .addHelpText("after", "\nExit code 4 when some rows failed (the others are invited); 0 when every row was invited or existed.\n");
  users
    .command("list")
    .description("list users")
    .option("-q, --query <text>", "part of a name, e-mail or phone")
    .option("--status <status>", "active, invited or deactivated")
    .action(act(list));
  users
    .command("sessions")
    .description("a user's active sessions: where and when they are signed in")
    .argument("<user>", "the user's e-mail or id")
    .action(act(sessions));
  users
    .command("signout")
    .description("end one session of a user, or every one (the account stays active: they can log in again)")
    .argument("<user>", "the user's e-mail or id")
    .argument("[session]", "the session to end (from crm users sessions); without it, every session of the user")
    .action(act(signout));
}

/** A user id as given, or the id of the user with that e-mail (compared case-insensitively). */
async function userIdOf(admin: Client<typeof AdminService>, user: string): Promise<string> {
  const id = uuidOf(user);
  if (id) return id;
  if (!user.includes("@")) throw usageError(`${JSON.stringify(user)}: give the user's e-mail or id`);
  const email = user.toLowerCase();
  let pageToken = "";
  do {
    const r = await admin.listUsers({ query: user, pageSize: 500, pageToken });
    const found = r.users.find((u) => u.email.toLowerCase() === email);
    if (found) return found.userId;
    pageToken = r.nextPageToken;
  } while (pageToken);
  throw new CliError(`no user with the e-mail ${user} in your company (crm users list shows them)`);
}

async function sessions(ctx: Context, user: string): Promise<number> {
  const admin = (await ctx.connect()).client(AdminService);
  const userId = await userIdOf(admin, user);
  const r = await admin.listUserSessions({ userId });
  const rows = r.sessions.map((s) => ({ sessionId: s.sessionId, createdAt: iso(s.createdAt), lastUsedAt: iso(s.lastUsedAt), expiresAt: iso(s.expiresAt), userAgent: s.userAgent, ip: s.ip, current: s.current }));
  if (ctx.json) ctx.out(`${JSON.stringify(rows)}\n`);
  else if (!rows.length) ctx.note(`${user} has no active session.`);
  else ctx.out(table(["SESSION", "LAST USED", "CREATED", "EXPIRES", "ADDRESS", "AGENT"], rows.map((s) => [s.sessionId + (s.current ? " (this one)" : ""), s.lastUsedAt, s.createdAt, s.expiresAt, s.ip, s.userAgent])));
  return Exit.ok;
}

async function signout(ctx: Context, user: string, session: string | undefined): Promise<number> {
  const sessionId = session === undefined ? undefined : uuidOf(session);
  if (session !== undefined && !sessionId) throw usageError(`session ${JSON.stringify(session)}: give a session id from crm users sessions`);
  const admin = (await ctx.connect()).client(AdminService);
  const userId = await userIdOf(admin, user);
  if (sessionId) {
    await admin.revokeUserSession({ userId, sessionId });
    if (ctx.json) ctx.out(`${JSON.stringify({ userId, revokedSessions: 1 })}\n`);
    else ctx.note(`Session ${session} of ${user} ended.`);
    return Exit.ok;
  }
  const { revokedSessions } = await admin.revokeUserSessions({ userId });
  if (ctx.json) ctx.out(`${JSON.stringify({ userId, revokedSessions })}\n`);
  else ctx.note(`${revokedSessions} session${revokedSessions === 1 ? "" : "s"} of ${user} ended.`);
  return Exit.ok;
}

async function readText(ctx: Context, file: string): Promise<string> {
  if (file !== "-") return readFile(file, "utf8");
  let text = "";
  for await (const chunk of ctx.io.stdin) text += typeof chunk === "string" ? chunk : (chunk as Buffer).toString("utf8");
  return text;
}

const statusName: Record<AddUserStatus, RowResult["status"]> = {
  [AddUserStatus.UNSPECIFIED]: "invalid",
  [AddUserStatus.CREATED]: "created",
  [AddUserStatus.ALREADY_EXISTS]: "already_exists",
  [AddUserStatus.INVALID]: "invalid",
};

async function add(ctx: Context, file: string, opts: { role: string }): Promise<number> {
  const defaultRole = parseRole(opts.role);
  if (defaultRole === undefined || defaultRole === Role.UNSPECIFIED) throw usageError(`--role ${JSON.stringify(opts.role)}: use member, admin or owner`);
  const { rows, problems } = parseUsersCsv(await readText(ctx, file), defaultRole, file === "-" ? "standard input" : file);
  const results: RowResult[] = problems.map((p) => ({ row: p.row, email: p.email, status: "invalid", reason: p.reason }));
  let emailsQueued = 0;
  if (rows.length) {
    const admin = (await ctx.connect()).client(AdminService);
    for (let i = 0; i < rows.length; i += CHUNK) {
      const chunk: UserRow[] = rows.slice(i, i + CHUNK);
      const r = await admin.addUsers({ users: chunk.map(({ email, phone, name, role }) => ({ email, phone, name, role })) });
      emailsQueued += r.stats?.emailsQueued ?? 0;
      for (const res of r.results) {
        const row = chunk[res.index];
        results.push({
          row: row?.row ?? 0,
          email: res.email || row?.email || "",
          status: statusName[res.status] ?? "invalid",
          ...(res.reason ? { reason: res.reason } : {}),
          ...(res.userId ? { userId: res.userId } : {}),
          emailQueued: res.emailQueued,
        });
      }
    }
  }
  results.sort((a, b) => a.row - b.row);
  const stats = {
    created: results.filter((r) => r.status === "created").length,
    alreadyExisting: results.filter((r) => r.status === "already_exists").length,
    failed: results.filter((r) => r.status === "invalid").length,
    emailsQueued,
  };
  if (ctx.json) ctx.out(`${JSON.stringify({ results, stats })}\n`);
  else {
    if (results.length) ctx.out(table(["ROW", "EMAIL", "RESULT", "USER / REASON"], results.map((r) => [String(r.row), r.email, r.status.replace("_", " "), r.userId ?? r.reason ?? ""])));
    ctx.note(`${stats.created} invited, ${stats.alreadyExisting} already existed, ${stats.failed} failed; ${stats.emailsQueued} e-mail${stats.emailsQueued === 1 ? "" : "s"} queued.`);
  }
  if (results.length === 0) {
    ctx.note("The file has no rows.");
    return Exit.ok;
  }
  return stats.failed ? Exit.partial : Exit.ok;
}

const statuses: Record<string, UserStatus> = { active: UserStatus.ACTIVE, invited: UserStatus.INVITED, deactivated: UserStatus.DEACTIVATED };

async function list(ctx: Context, opts: { query?: string; status?: string }): Promise<number> {
  const status = opts.status === undefined ? UserStatus.UNSPECIFIED : statuses[opts.status.toLowerCase()];
  if (status === undefined) throw usageError(`--status ${JSON.stringify(opts.status)}: use active, invited or deactivated`);
  const admin = (await ctx.connect()).client(AdminService);
  const users = [];
  let pageToken = "";
  do {
    const r = await admin.listUsers({ query: opts.query ?? "", status, pageSize: 500, pageToken });
    users.push(...r.users);
    pageToken = r.nextPageToken;
  } while (pageToken);
  const rows = users.map((u) => ({ userId: u.userId, email: u.email, phone: u.phone, name: u.name, role: roleName(u.role), status: (UserStatus[u.status] ?? "").toLowerCase(), createdAt: iso(u.createdAt) }));
  if (ctx.json) ctx.out(`${JSON.stringify(rows)}\n`);
  else ctx.out(table(["NAME", "EMAIL", "PHONE", "ROLE", "STATUS", "ID"], rows.map((u) => [u.name, u.email, u.phone, u.role, u.status, u.userId])));
  return Exit.ok;
}
