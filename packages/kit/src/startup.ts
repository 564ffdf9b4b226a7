/**
 * Start-up failures as ONE line: every step that depends on a setting (a server to reach, a port
 * to bind, a file to read) runs through `dependsOn`, which turns whatever it throws into a
 * ConfigError naming the variable, its value (passwords hidden) and what to do. `main()` prints
 * that line and exits 1; anything else that escapes start-up is still one line, never a stack.
 */
import { z } from "zod";
import { ConfigError, env, loadConfig, redact } from "./config.js";

type Cause = Error & { code?: string; errno?: number; syscall?: string; address?: string; port?: number; hostname?: string };

/** What went wrong, in words, for the errors start-up steps meet (Node system errors, pg errors). */
export function describeFailure(err: unknown): string {
  const e = err as Cause;
  const where = e.address ? ` at ${e.address}${e.port !== undefined ? `:${e.port}` : ""}` : "";
  switch (e.code) {
    case "ECONNREFUSED":
      return `nothing accepts connections${where} (connection refused)`;
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return e.hostname ? `the host name ${JSON.stringify(e.hostname)} cannot be resolved (${e.code})` : `a host name cannot be resolved (${e.code})`;
    case "ETIMEDOUT":
      return `no answer${where} (timed out)`;
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return `the host is unreachable${where} (${e.code})`;
    case "EADDRINUSE":
      return `the port is already in use${where}`;
    case "EADDRNOTAVAIL":
      return `the address is not one of this machine's${where}`;
    case "EACCES":
    case "EPERM":
      return e.syscall === "listen" || e.syscall === "bind" ? `permission denied to listen${where} (ports below 1024 need privileges)` : `permission denied (${e.message})`;
    case "ENOENT":
      return `no such file or folder (${e.message})`;
    case "3D000":
      return e.message; // database "x" does not exist
    case "28P01":
    case "28000":
      return `the server refused the login (${e.message})`;
    case "42501":
      return `permission denied in the database (${e.message})`;
    default:
      return e instanceof Error ? e.message.split("\n")[0]! : String(err).split("\n")[0]!;
  }
}

/**
 * Runs one start-up step that depends on `variable` (whose value is `value`); a failure becomes
 * `config: VARIABLE=value: <what failed>; <todo>`. ConfigErrors pass through unchanged.
 */
export async function dependsOn<T>(variable: string, value: string | number | undefined, todo: string | ((err: unknown) => string), step: () => T | Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw startupError(variable, value, err, typeof todo === "function" ? todo(err) : todo);
  }
}

export function startupError(variable: string, value: string | number | undefined, err: unknown, todo: string): ConfigError {
  const shown = value === undefined ? `${variable} (not set)` : `${variable}=${redact(String(value))}`;
  return new ConfigError(`config: ${shown}: ${describeFailure(err)}; ${todo}`);
}

/** What to do when a PostgreSQL server named by DATABASE_URL cannot be used at start. */
export function databaseTodo(err: unknown, url: string): string {
  const code = (err as Cause).code;
  let name = "";
  try {
    name = decodeURIComponent(new URL(url).pathname.slice(1));
  } catch {
    // not a URL: loadConfig refused it before
  }
  if (code === "3D000") return `create it (createdb ${name || "<name>"}, or CREATE DATABASE) or name an existing database in DATABASE_URL`;
  if (code === "28P01" || code === "28000") return "fix the user or password in DATABASE_URL, or allow this login in pg_hba.conf";
  return "start PostgreSQL there, or point DATABASE_URL at a server that runs";
}

/**
 * A listen() failure of startServer, blamed on the setting that chose it: HOST when the address
 * is not usable, OPS_PORT when the failed port is the ops port, else PORT.
 */
export function listenError(err: unknown, cfg: { HOST: string; PORT: number; OPS_PORT?: number | undefined }): unknown {
  const e = err as Cause;
  if (e?.syscall !== "listen" && e?.syscall !== "bind" && e?.syscall !== "getaddrinfo") return err;
  if (e.code === "ENOTFOUND" || e.code === "EAI_AGAIN" || e.code === "EADDRNOTAVAIL" || e.syscall === "getaddrinfo") {
    return startupError("HOST", cfg.HOST, err, "set HOST to an address of this machine (127.0.0.1 for this machine only, 0.0.0.0 for every interface)");
  }
  const ops = cfg.OPS_PORT !== undefined && e.port === cfg.OPS_PORT && e.port !== 0;
  const variable = ops ? "OPS_PORT" : "PORT";
  const todo = e.code === "EADDRINUSE"
    ? `stop what listens there or choose another ${variable} (0 picks a free one)`
    : `choose another ${variable} (1024 or above, or 0 for a free one)`;
  return startupError(variable, ops ? cfg.OPS_PORT : cfg.PORT, err, todo);
}

/**
 * PUBLIC_URL: the address people reach the CRM at (the gateway's, in a cluster); every link in an
 * e-mail starts with it. APP_URL, its former name, is still read. undefined when neither is set.
 */
export const publicUrlEnv = {
  PUBLIC_URL: env.url(["http", "https"]),
  APP_URL: env.url(["http", "https"]),
};

export function publicUrl(environment: NodeJS.ProcessEnv = process.env): string | undefined {
  const cfg = loadConfig(z.object(publicUrlEnv), environment);
  return (cfg.PUBLIC_URL ?? cfg.APP_URL)?.replace(/\/+$/, "");
}

/** PUBLIC_URL for a service that sends links and has no address of its own to default to. */
export function requirePublicUrl(environment: NodeJS.ProcessEnv = process.env): string {
  const url = publicUrl(environment);
  if (!url) throw new ConfigError("config: PUBLIC_URL must be the URL people reach the CRM at, e.g. https://crm.example.com (the gateway's address): links in e-mails start with it (it is not set)");
  return url;
}
