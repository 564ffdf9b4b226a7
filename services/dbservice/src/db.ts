/**
 * PostgreSQL access for dbservice: every request runs in ONE transaction that first switches to
 * the app role and sets the tenant (one round trip), so row-level security applies even to a
 * query that forgets `WHERE company_id`.
 */
import pg from "pg";
import { AppError, addressOf, dependencyAt, dependencyError, isUuid } from "@crm/kit";
import { enqueue, enqueueMany, enqueueText, type OutboxMessage } from "./outbox.js";

export type Sql = pg.PoolClient;
export type { OutboxMessage };
/** For a store's statement that writes its outbox rows itself, in the same round trip (outbox.ts). */
export { OUTBOX_COLUMNS, outboxInsertFromJson, outboxJson, outboxValues } from "./outbox.js";

/** What a script for `Db.tenantScript` is: SQL text for this connection, and whether it changes the session. */
export interface Script {
  /** Statements separated by `;` (simple query protocol: ONE round trip), without BEGIN or COMMIT. */
  text: string;
  /** It creates session state (e.g. PREPARE), which outlives a failed transaction: the connection is then discarded. */
  keepsState?: boolean;
  /**
   * Outbox messages made from the result of the script's last statement (e.g. events that carry
   * the ids and seqs its INSERT returned), written in the same transaction. They cost a second
   * round trip: that INSERT and COMMIT.
   */
  outbox?: (result: pg.QueryResult) => OutboxMessage[];
}

/** How `Db.tenant` starts its transaction, besides the app role and the tenant. */
export interface TenantOptions {
  /**
   * The acting user (a UUID from a verified token): `app.user_id` is set to it and `app.role` to
   * the user's CURRENT role read from `users` ('' unless the user is active), in the same first
   * round trip, for row-level security policies that depend on who acts (crm_user(), crm_role()).
   */
  actingUser?: string;
}

/** What the start of a `Db.tenant` transaction found. */
export interface TenantStart {
  /** With `actingUser`: the user's current role ("owner", "admin", "member"), or "" when not active. */
  role: string;
  /** With `actingUser`: the transaction's time (now(), as every statement of it sees it). */
  at?: Date;
}

export interface Db {
  pool: pg.Pool;
  /** Runs `fn` in a transaction as the app role with `companyId` as the tenant (and, with `o.actingUser`, the acting user and role). */
  tenant<T>(companyId: string, fn: (sql: Sql, start: TenantStart) => Promise<T>, o?: TenantOptions): Promise<T>;
  /** Runs `fn` in a transaction as the app role with no tenant (only SECURITY DEFINER functions see rows). */
  system<T>(fn: (sql: Sql) => Promise<T>): Promise<T>;
  /**
   * Runs the script `build` writes for the connection it got (it may quote literals with it, or
   * know which statements it holds) as ONE round trip: the same transaction as `tenant` (BEGIN,
   * role, tenant), the script, COMMIT (two with `Script.outbox`). Returns the result of the
   * script's last statement.
   */
  tenantScript(companyId: string, build: (sql: Sql) => Script): Promise<pg.QueryResult>;
  /**
   * `tenantScript` with no tenant, as `system` runs (only SECURITY DEFINER functions see rows): for
   * a request answered by one statement, e.g. the login's account lookup, in ONE round trip
   * instead of three (the start, the statement, COMMIT).
   */
  systemScript(build: (sql: Sql) => Script): Promise<pg.QueryResult>;
  /**
   * Statements sent with the COMMIT of `sql`'s transaction (one of `tenant` or `system`), in the
   * same round trip, then the INSERT of `outbox` messages: for the last writes of a transaction
   * that holds a hot row lock until it commits (the records' per-tenant version), so the lock is
   * held one round trip less. `text` has literal values only (quote them with sql.escapeLiteral);
   * several calls append in order. When a statement fails, COMMIT does not run and `tenant` rejects.
   */
  atCommit(sql: Sql, text: string, outbox?: OutboxMessage[]): void;
  /** Writes to the transactional outbox in `sql`'s transaction (outbox.ts; the relay publishes it after commit). */
  enqueue(sql: Sql, msg: OutboxMessage): Promise<void>;
  /** Many outbox messages in one statement. */
  enqueueMany(sql: Sql, msgs: OutboxMessage[]): Promise<void>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface PoolOptions {
  url: string;
  max: number;
  /** DB_CONNECT_TIMEOUT_MS, DB_QUERY_TIMEOUT_MS */
  connectTimeoutMs: number;
  queryTimeoutMs: number;
}

/**
 * The pool every request uses, with deadlines: a connection not opened within connectTimeoutMs and
 * a statement not answered within queryTimeoutMs fail (unavailable) instead of hanging the call;
 * PostgreSQL cancels such a statement itself too (statement_timeout). Broken connections are
 * replaced, so the pool recovers by itself when the server is back.
 */
export function createPool(o: PoolOptions): pg.Pool {
  dependencyAt("PostgreSQL", addressOf(o.url));
  return new pg.Pool({
    connectionString: o.url,
    max: o.max,
    connectionTimeoutMillis: o.connectTimeoutMs,
    query_timeout: o.queryTimeoutMs,
    statement_timeout: o.queryTimeoutMs,
    keepAlive: true,
  });
}

/** The client gave up waiting for an answer: the connection's state is unknown, so it is not reused (no ROLLBACK on it either). */
export const isQueryTimeout = (err: unknown) => err instanceof Error && err.message === "Query read timeout";

export const APP_ROLE = "crm_app";

// Connection-level failures: the database is down or restarting. The request can be retried.
const unavailableCodes = new Set(["57P01", "57P02", "57P03", "08000", "08001", "08003", "08006", "53300"]);

/**
 * The start of every request's transaction: the app role, the tenant ("" for none) and, when
 * named, the acting user with their current role (the last statement's one row: `role`). One
 * round trip (the simple query protocol); the one place it is written.
 */
function begin(companyId: string, actingUser?: string): string {
  // The ids come from a verified token, but they are checked again: they are spliced into SQL text.
  if (companyId !== "" && !isUuid(companyId)) throw new AppError("unauthenticated", "the token names no valid company");
  const start = `BEGIN; SET LOCAL ROLE ${APP_ROLE}; SELECT set_config('app.company_id', '${companyId}', true)`;
  if (actingUser === undefined) return start;
  if (companyId === "" || !isUuid(actingUser)) throw new AppError("unauthenticated", "the token names no valid user");
  // Read after the tenant is set: row-level security shows only the tenant's users.
  return `${start}; SELECT set_config('app.user_id', '${actingUser}', true),
    set_config('app.role', coalesce((SELECT role FROM users WHERE id = '${actingUser}' AND status = 'active'), ''), true) AS role, now() AS at`;
}

/**
 * The one transaction helper: a pooled connection for `fn`, rolled back when `fn` throws, released
 * after. A connection whose state is unknown (a client-side timeout, a failed ROLLBACK, an error
 * while checked out, or `discard()` called) is destroyed instead of reused. Errors leave through
 * `mapErrors` (default mapPgError: unavailable for connection failures, and so on).
 */
export async function transaction<T>(
  pool: pg.Pool,
  fn: (client: pg.PoolClient, discard: () => void) => Promise<T>,
  mapErrors: (err: unknown) => unknown = mapPgError,
): Promise<T> {
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (err) {
    throw mapErrors === mapPgError ? unavailable(err) : err;
  }
  let broken = false;
  // A connection that drops while checked out emits 'error' on the client (the pool listens
  // only to idle ones): without a listener that would crash the process. The query fails too.
  const onError = () => (broken = true);
  client.on("error", onError);
  try {
    return await fn(client, onError);
  } catch (err) {
    if (isQueryTimeout(err)) broken = true;
    else await client.query("ROLLBACK").catch(() => (broken = true));
    throw mapErrors(err);
  } finally {
    client.off("error", onError);
    client.release(broken ? true : undefined);
  }
}

export function createDb(pool: pg.Pool): Db {
  /** What each open transaction sends with its COMMIT (atCommit). */
  const tails = new WeakMap<Sql, string[]>();
  function run<T>(companyId: string, fn: (sql: Sql, start: TenantStart) => Promise<T>, actingUser?: string): Promise<T> {
    const start = begin(companyId, actingUser);
    return transaction(pool, async (client) => {
      tails.set(client, []);
      try {
        const started = (await client.query(start)) as unknown as pg.QueryResult[];
        const first = actingUser === undefined ? undefined : (started[started.length - 1]!.rows[0] as { role?: unknown; at?: unknown } | undefined);
        const role = String(first?.role ?? "");
        const result = await fn(client, first?.at instanceof Date ? { role, at: first.at } : { role });
        const tail = tails.get(client)!;
        await client.query(tail.length ? `${tail.join(";\n")};\nCOMMIT` : "COMMIT");
        return result;
      } finally {
        tails.delete(client);
      }
    });
  }
  /** tenantScript and systemScript: the start, the script and COMMIT in one round trip (two with an outbox). */
  function script(companyId: string, build: (sql: Sql) => Script): Promise<pg.QueryResult> {
    const start = begin(companyId);
    return transaction(pool, async (client, discard) => {
      const s = build(client);
      try {
        if (!s.outbox) {
          const results = (await client.query(`${start};\n${s.text};\nCOMMIT`)) as unknown as pg.QueryResult[];
          return results[results.length - 2]!;
        }
        const results = (await client.query(`${start};\n${s.text}`)) as unknown as pg.QueryResult[];
        const result = results[results.length - 1]!;
        const outbox = enqueueText(s.outbox(result), (v) => client.escapeLiteral(v));
        await client.query(outbox ? `${outbox};\nCOMMIT` : "COMMIT");
        return result;
      } catch (err) {
        if (s.keepsState) discard();
        throw err;
      }
    });
  }
  return {
    pool,
    tenant(companyId, fn, o) {
      if (companyId === "") throw new AppError("unauthenticated", "the token names no valid company");
      return run(companyId, fn, o?.actingUser);
    },
    system(fn) {
      return run("", fn);
    },
    tenantScript(companyId, build) {
      if (companyId === "") throw new AppError("unauthenticated", "the token names no valid company");
      return script(companyId, build);
    },
    systemScript(build) {
      return script("", build);
    },
    atCommit(sql, text, outbox = []) {
      const tail = tails.get(sql);
      if (!tail) throw new Error("atCommit outside a tenant or system transaction");
      const insert = enqueueText(outbox, (v) => sql.escapeLiteral(v));
      for (const t of [text.trim(), insert]) if (t) tail.push(t);
    },
    enqueue,
    enqueueMany,
    async ping() {
      await pool.query("SELECT 1");
    },
    close: () => pool.end(),
  };
}

/** "database unavailable: PostgreSQL at host:port is not answering (…); try again shortly". */
export function unavailable(err: unknown): AppError {
  const named = dependencyError(err);
  return new AppError("unavailable", `database unavailable: ${named && named.message.startsWith("PostgreSQL") ? named.message : `PostgreSQL is not answering (${(err as Error)?.message ?? String(err)}); try again shortly`}`);
}

export function mapPgError(err: unknown): unknown {
  if (err instanceof AppError) return err;
  const code = (err as { code?: string }).code;
  if (code && unavailableCodes.has(code)) return unavailable(err);
  if (code === "57014") return new AppError("unavailable", "database unavailable: a statement ran past DB_QUERY_TIMEOUT_MS and PostgreSQL cancelled it; try again shortly");
  if (!code && err instanceof Error && /ECONNREFUSED|ECONNRESET|Connection terminated|timeout/i.test(err.message)) return unavailable(err);
  if (code === "40001" || code === "40P01") return new AppError("unavailable", "the database aborted a conflicting transaction; retry");
  return err;
}
