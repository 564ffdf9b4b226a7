/**
 * `crm`: the CRM's command-line tool (README.md beside this folder). `run(argv, io)` parses the
 * arguments with commander, runs one command and returns its exit code (errors.ts: Exit); it
 * never calls process.exit, so tests run it in memory.
 */
import { Command, CommanderError } from "commander";
import { registerAuth } from "./commands/auth.js";
import { registerChat } from "./commands/chat.js";
import { registerData } from "./commands/data.js";
import { registerRecords } from "./commands/records.js";
import { registerTimers } from "./commands/timers.js";
import { registerUsers } from "./commands/users.js";
import { Context, processIo, type Action, type GlobalOptions, type Io } from "./context.js";
import { describe, errorLines, Exit } from "./errors.js";
import { FILTER_HELP } from "./filter.js";

const EXIT_HELP = `
Exit codes: 0 ok, 1 error (refused by the server, unreachable, bad file), 2 usage (bad command
line), 3 authentication needed (run crm login), 4 partial failure (some rows failed).

Environment: CRM_SERVER (the server), CRM_API_KEY (use an API key instead of a login),
CRM_PASSWORD (the password for crm login), XDG_CONFIG_HOME (sessions in $XDG_CONFIG_HOME/crm,
else ~/.config/crm).
`;

export function buildProgram(io: Io, done: (code: number) => void, onContext: (ctx: Context) => void): Command {
  const program = new Command("crm")
    .description("The CRM on the command line: log in, invite users, follow a chat, report time, list, import and export records.")
    .option("-s, --server <url>", "the CRM's address, gateway or all-in-one (env CRM_SERVER; default: the server of the last login, else http://127.0.0.1:8080)")
    .option("--json", "print JSON for scripts (streams: one JSON document per line)")
    .exitOverride()
    .configureOutput({
      writeOut: (s) => void io.stdout.write(s),
      writeErr: (s) => void io.stderr.write(s),
      outputError: (s, write) => write(`crm: ${s.replace(/^error: /, "")}`),
    })
    .showHelpAfterError("(run with --help for usage)")
    .addHelpText("after", EXIT_HELP)
    .helpCommand(true);

  /** Wraps a command's action: builds the context from the global options, records the exit code. */
  const act =
    (fn: Action) =>
    async (...args: unknown[]) => {
      const cmd = args.at(-1) as Command;
      const ctx = new Context(io, cmd.optsWithGlobals<GlobalOptions>());
      onContext(ctx);
      done((await fn(ctx, ...args.slice(0, -1))) ?? Exit.ok);
    };

  registerAuth(program, act);
  registerUsers(program, act);
  registerChat(program, act);
  registerTimers(program, act);
  registerRecords(program, act);
  registerData(program, act);
  program
    .command("filters")
    .description("how to write --filter")
    .action(() => void io.stdout.write(FILTER_HELP));
  return program;
}

export async function run(argv: string[], given: Partial<Io> = {}): Promise<number> {
  const io: Io = { ...processIo(), ...given };
  let code: number = Exit.ok;
  let ctx: Context | undefined;
  const program = buildProgram(
    io,
    (c) => (code = c),
    (c) => (ctx = c),
  );
  try {
    await program.parseAsync(argv, { from: "user" });
    return code;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? Exit.ok : Exit.usage; // commander printed it
    const d = describe(e, ctx?.server);
    if (ctx?.json) io.stderr.write(`${JSON.stringify({ error: { code: d.code, ...(d.reason ? { reason: d.reason } : {}), message: d.message, violations: d.violations } })}\n`);
    else io.stderr.write(`${errorLines(d).join("\n")}\n`);
    return d.exitCode;
  }
}
