/**
 * The backing servers (PostgreSQL, Redis, RabbitMQ): their deadlines, and the one place that turns
 * their failures into `unavailable` answers naming the server, whatever code path met them.
 *
 * Every call to a backing server has a deadline (configurable, below); past it the call fails at
 * once instead of hanging, the caller answers `unavailable` ("Redis at 10.0.0.5:6379 is not
 * answering (Command timed out); try again shortly"), and the client recovers by itself when the
 * server is back (ioredis and pg reconnect, the event bus reconnects with backoff).
 */
import { z } from "zod";
import { env, loadConfig } from "./config.js";
import { AppError } from "./errors.js";

/** Deadlines every process reads (dbservice's PostgreSQL ones are in its own config). */
export const deadlineEnv = {
  /** A Redis command that got no reply within this fails ("Command timed out"). */
  REDIS_COMMAND_TIMEOUT_MS: env.int(1_000, 10, 60_000),
  /** Connecting to Redis (TCP + handshake). */
  REDIS_CONNECT_TIMEOUT_MS: env.int(2_000, 10, 60_000),
  /** A message RabbitMQ has not confirmed within this counts as not published (the outbox keeps it). */
  AMQP_CONFIRM_TIMEOUT_MS: env.int(5_000, 10, 120_000),
};

export type Deadlines = z.infer<z.ZodObject<typeof deadlineEnv>>;

/** The deadlines in `environment` (validated: a bad value stops the process with one line). */
export function deadlines(environment: NodeJS.ProcessEnv = process.env): Deadlines {
  return loadConfig(z.object(deadlineEnv), environment);
}

export type Dependency = "PostgreSQL" | "Redis" | "RabbitMQ";

const addresses = new Map<Dependency, string>();

/** Records where this process finds a backing server, for the messages below (host:port, no credentials). */
export function dependencyAt(name: Dependency, address: string): void {
  addresses.set(name, address);
}

/** host:port of a URL, never its credentials. */
export function addressOf(url: string): string {
  try {
    const u = new URL(url);
    return u.host || u.pathname;
  } catch {
    return "(unparsable address)";
  }
}

// ioredis: the client's own failures (not connected, deadline, gave up retrying).
const redisClientErrors = /^(Stream isn't writeable|Command timed out|Connection is closed|Reached the max retries per request limit|Socket timeout)/;
// Redis answers meaning "not now": loading a dump, a read-only replica, a failover, a busy script, out of memory.
const redisReplyErrors = /^(LOADING|READONLY|MASTERDOWN|BUSY|TRYAGAIN|CLUSTERDOWN|OOM) /;
// pg: connection-level SQLSTATEs (shutdown, cannot connect, too many connections) and the client's own failures.
const pgCodes = new Set(["57P01", "57P02", "57P03", "08000", "08001", "08003", "08004", "08006", "53300"]);
const pgClientErrors = /^(Connection terminated|timeout exceeded when trying to connect|Query read timeout|Client has encountered a connection error)/;
// amqplib: a channel or connection that went away under a call.
const amqpErrors = /^(Channel closed|Channel ended|Connection closed|Socket closed abruptly)/;
const networkCodes = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN"]);

function which(err: Error & { code?: unknown }): Dependency | undefined {
  const { name, message } = err;
  if (name === "BusUnavailableError" || name === "IllegalOperationError" || amqpErrors.test(message)) return "RabbitMQ";
  if (name === "MaxRetriesPerRequestError" || redisClientErrors.test(message) || (name === "ReplyError" && redisReplyErrors.test(message))) return "Redis";
  if ((typeof err.code === "string" && pgCodes.has(err.code)) || pgClientErrors.test(message)) return "PostgreSQL";
  return undefined;
}

/**
 * `unavailable` naming the backing server when `err` is one of their failures (ioredis, pg,
 * amqplib, or a refused/reset/timed-out connection), else undefined. AppErrors pass unchanged.
 */
export function dependencyError(err: unknown): AppError | undefined {
  if (err instanceof AppError) return err.reason === "unavailable" ? err : undefined;
  if (!(err instanceof Error)) return undefined;
  const e = err as Error & { code?: unknown; address?: unknown; port?: unknown };
  const dep = which(e);
  if (dep) {
    const at = addresses.get(dep);
    return new AppError("unavailable", `${dep}${at ? ` at ${at}` : ""} is not answering (${firstLine(e.message)}); try again shortly`);
  }
  if (typeof e.code === "string" && networkCodes.has(e.code)) {
    const at = typeof e.address === "string" ? `${e.address}${e.port ? `:${String(e.port)}` : ""}` : undefined;
    return new AppError("unavailable", `a server this service depends on${at ? ` (${at})` : ""} is not answering (${e.code}); try again shortly`);
  }
  return undefined;
}

const firstLine = (s: string) => s.split("\n", 1)[0]!.slice(0, 200);
