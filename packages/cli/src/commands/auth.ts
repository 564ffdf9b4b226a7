/** crm login, crm logout, crm whoami. */
import type { Command } from "commander";
import { read } from "read";
import { AuthService } from "@crm/gen/crm/auth/v1/auth_pb";
import type { Context, Wrap } from "../context.js";
import { CliError, Exit, unwrap, usageError } from "../errors.js";
import { pairs } from "../format.js";
import { iso, roleName } from "../session.js";

/** Reads stdin to its end (for --password-stdin). */
async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  let text = "";
  for await (const chunk of stream) text += typeof chunk === "string" ? chunk : (chunk as Buffer).toString("utf8");
  return text;
}

/** An e-mail (has "@") or a phone (digits, +, spaces, dashes, dots, parentheses). */
export function loginOf(text: string): { email: string } | { phone: string } {
  const t = text.trim();
  if (t.includes("@")) return { email: t };
  if (/^\+?[\d\s().-]{5,}$/.test(t)) return { phone: t };
  throw usageError(`${JSON.stringify(text)} is neither an e-mail address nor a phone number`);
}

export function registerAuth(program: Command, act: Wrap) {
  program
    .command("login")
    .description("log in (e-mail or phone, password); the session is stored in your config dir, mode 0600")
    .argument("[login]", "your e-mail or phone (asked when not given)")
    .option("--email <email>", "log in with this e-mail")
    .option("--phone <phone>", "log in with this phone (+14155550100)")
    .option("--password-stdin", "read the password from standard input (for scripts; else CRM_PASSWORD or a prompt)")
    .action(act(login));

  program
    .command("logout")
    .description("end this session on the server and forget it here")
    .option("--all", "end every session of yours, on every device")
    .action(act(logout));

  program.command("whoami").description("who you are logged in as, and where").action(act(whoami));
}

async function login(ctx: Context, arg: string | undefined, opts: { email?: string; phone?: string; passwordStdin?: boolean }): Promise<number> {
  const { io } = ctx;
  const given = [arg, opts.email, opts.phone].filter((v) => v !== undefined);
  if (given.length > 1) throw usageError("give one of LOGIN, --email or --phone");
  let who: { email?: string; phone?: string };
  if (opts.email !== undefined) who = { email: opts.email };
  else if (opts.phone !== undefined) who = { phone: opts.phone };
  else if (arg !== undefined) who = loginOf(arg);
  else if (io.stdin.isTTY && !opts.passwordStdin) who = loginOf(await read({ prompt: "E-mail or phone: ", input: io.stdin, output: io.stderr }));
  else throw usageError("give your e-mail or phone: crm login ann@example.com");

  let password: string;
  if (opts.passwordStdin) password = (await readAll(io.stdin)).replace(/\r?\n$/, "");
  else if (io.env.CRM_PASSWORD) password = io.env.CRM_PASSWORD;
  else if (io.stdin.isTTY) password = await read({ prompt: "Password: ", silent: true, replace: "", input: io.stdin, output: io.stderr });
  else throw usageError("no password: standard input is not a terminal; use --password-stdin or CRM_PASSWORD");
  if (!password) throw usageError("the password is empty");

  const api = await ctx.connect();
  const s = await api.login(who, password);
  if (ctx.json) ctx.out(`${JSON.stringify({ server: api.server, login: s.login, userId: s.userId, companyId: s.companyId, role: s.role })}\n`);
  else ctx.note(`Logged in to ${api.server} as ${s.login} (${s.role}).`);
  return Exit.ok;
}

async function logout(ctx: Context, opts: { all?: boolean }): Promise<number> {
  const api = await ctx.connect();
  if (!(await api.session())) {
    if (ctx.json) ctx.out(`${JSON.stringify({ server: api.server, loggedOut: false })}\n`);
    else ctx.note(`Not logged in to ${api.server}.`);
    return Exit.ok;
  }
  const auth = api.client(AuthService);
  let revoked = 1;
  try {
    if (opts.all) revoked = (await auth.logoutAll({})).revoked;
    else await auth.logout({});
  } catch (e) {
    // A session that ended already is simply forgotten; anything else is reported (and the
    // session forgotten here all the same: its tokens leave this machine).
    const err = unwrap(e);
    if (!(err instanceof CliError && err.exitCode === Exit.auth)) throw e;
  } finally {
    await api.forget();
  }
  if (ctx.json) ctx.out(`${JSON.stringify({ server: api.server, loggedOut: true, ...(opts.all ? { revoked } : {}) })}\n`);
  else ctx.note(opts.all ? `Logged out of ${api.server} everywhere (${revoked} session${revoked === 1 ? "" : "s"} ended).` : `Logged out of ${api.server}.`);
  return Exit.ok;
}

async function whoami(ctx: Context): Promise<number> {
  const api = await ctx.connect();
  const me = await api.client(AuthService).check({});
  const s = await api.session();
  const info = { server: api.server, login: s?.login ?? "", userId: me.userId, companyId: me.companyId, role: roleName(me.role), sessionId: me.sessionId, accessExpiresAt: iso(me.expiresAt) };
  if (ctx.json) ctx.out(`${JSON.stringify(info)}\n`);
  else
    ctx.out(
      pairs([
        ["server", info.server],
        ["login", info.login || (ctx.io.env.CRM_API_KEY ? "(API key from CRM_API_KEY)" : "")],
        ["user", info.userId],
        ["company", info.companyId],
        ["role", info.role],
      ]),
    );
  return Exit.ok;
}
