/**
 * Exit codes and error messages of `crm`. Scripts branch on the exit code; people read one line
 * (plus one line per bad field of an invalid_argument).
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { reasonOf, violationsOf, type Violation } from "@crm/kit/errors";

/** The documented exit codes (README.md, "Exit codes"). */
export const Exit = {
  ok: 0,
  /** The call failed: the server refused it, it could not be reached, a file could not be read. */
  error: 1,
  /** The command line was wrong: unknown command or option, missing or bad argument. */
  usage: 2,
  /** Not logged in, or the session ended: run `crm login`. */
  auth: 3,
  /** Some rows or items failed, the rest succeeded (users add, import). */
  partial: 4,
} as const;
export type ExitCode = (typeof Exit)[keyof typeof Exit];

/** An error the CLI itself raises, with the exit code it ends with. */
export class CliError extends Error {
  override name = "CliError";
  constructor(
    message: string,
    readonly exitCode: ExitCode = Exit.error,
  ) {
    super(message);
  }
}

export const usageError = (message: string) => new CliError(message, Exit.usage);
export const authError = (message: string) => new CliError(message, Exit.auth);

/** "invalid_argument" for Code.InvalidArgument: the names the API documents. */
export function codeName(code: Code): string {
  return Code[code].replace(/[a-z][A-Z]/g, (m) => `${m[0]}_${m[1]}`).toLowerCase();
}

export interface Described {
  exitCode: ExitCode;
  /** The line a person reads (without the "crm: " prefix). */
  message: string;
  /** Connect code name, or "usage" / "error" for the CLI's own errors. */
  code: string;
  /** The stable reason (`crm-error`), when the server sent one. */
  reason?: string;
  violations: Violation[];
}

/** The CLI's own error behind a ConnectError (thrown in an interceptor, e.g. the refresh), or e. */
export function unwrap(e: unknown): unknown {
  return e instanceof ConnectError && e.cause instanceof CliError ? e.cause : e;
}

/** What went wrong, for people and for --json. `server` names where the call went. */
export function describe(thrown: unknown, server?: string): Described {
  const e = unwrap(thrown);
  if (e instanceof CliError) return { exitCode: e.exitCode, message: e.message, code: e.exitCode === Exit.usage ? "usage" : e.exitCode === Exit.auth ? "unauthenticated" : "error", violations: [] };
  if (!(e instanceof ConnectError)) {
    const err = e as NodeJS.ErrnoException;
    if (err?.code === "ENOENT" && err.path) return { exitCode: Exit.error, message: `no such file: ${err.path}`, code: "error", violations: [] };
    return { exitCode: Exit.error, message: err instanceof Error ? err.message : String(e), code: "error", violations: [] };
  }
  const code = codeName(e.code);
  const reason = reasonOf(e);
  const violations = violationsOf(e);
  const where = server ? ` at ${server}` : "";
  let message = e.rawMessage || code;
  if (violations.length) message = `the server refused the request (${code}):`;
  if (e.code === Code.Unavailable && !reason) message = `cannot reach the CRM${where}: ${e.rawMessage} (is it running? set --server or CRM_SERVER)`;
  else if (e.code === Code.Unauthenticated && reason !== "invalid_credentials") message = `${e.rawMessage || "not logged in"}: run \`crm login\``;
  else if (e.code === Code.PermissionDenied) message = `permission denied: ${e.rawMessage || "your role may not do this"}`;
  return {
    exitCode: e.code === Code.Unauthenticated ? Exit.auth : Exit.error,
    message,
    code,
    ...(reason ? { reason } : {}),
    violations,
  };
}

/** The lines printed on stderr: "crm: …" and one indented line per bad field. */
export function errorLines(d: Described): string[] {
  return [`crm: ${d.message}`, ...d.violations.map((v) => `  ${v.field}: ${v.description}`)];
}
