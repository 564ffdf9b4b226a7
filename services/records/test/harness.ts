/**
 * Test support for the records domain: the store on a fresh database of the machine's PostgreSQL,
 * called in memory (createRouterTransport) through the kit's own context, error and auth
 * interceptors, with tokens a test makes up ("<user>.<company>.<role>"), and tenants with users of
 * each role inserted below the service.
 */
import { randomUUID } from "node:crypto";
import assert from "node:assert/strict";
import pg from "pg";
import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createContextValues, createRouterTransport, type Client, type ConnectRouter, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import { DbRecordsService } from "@crm/gen/crm/db/v1/db_records_pb";
import { authInterceptor, contextInterceptor, createLogger, errorInterceptor, peerServiceKey, textInterceptor, violationsOf, type Principal, type Role, type TokenVerifier } from "@crm/kit";
import { freshDatabase, type TestDatabase } from "@crm/testkit";
import { createDb, type Db } from "@crm/dbservice/db";
import { migrate, migrationDirs } from "@crm/dbservice/migrate";
import { migrationsDir, recordsStore } from "../store/index.js";

export const log = createLogger("test", (process.env.TEST_LOG_LEVEL as "silent" | undefined) ?? "silent");

/** Tokens are "<userId>.<companyId>.<role>": the tests decide who calls. */
export const testVerifier: TokenVerifier = {
  async verify(token) {
    const [userId, companyId, role] = token.split(".");
    return { userId: userId!, companyId: companyId!, role: role as Role, sessionId: randomUUID(), expiresAt: 4_000_000_000, token } satisfies Principal;
  },
};

/** In-memory router with the interceptors every server runs (text rule, errors, auth). */
export function inMemory(routes: (r: ConnectRouter) => void) {
  return {
    /** A client calling with `token` ("" for none). */
    client<S extends DescService>(service: S, token: string): Client<S> {
      const auth: Interceptor = (next) => (req) => {
        if (token) req.header.set("authorization", `Bearer ${token}`);
        return next(req);
      };
      return createClient(service, createRouterTransport(routes, { router: { interceptors: [contextInterceptor(), errorInterceptor(log), authInterceptor(testVerifier, new Set()), textInterceptor()] }, transport: { interceptors: [auth] } }));
    },
  };
}

export interface User {
  userId: string;
  companyId: string;
  role: Role;
  token: string;
  store: Client<typeof DbRecordsService>;
}

export interface Tenant {
  companyId: string;
  owner: User;
  admin: User;
  member: User;
  member2: User;
}

export interface StoreHarness {
  tdb: TestDatabase;
  pool: pg.Pool;
  db: Db;
  tenant(name?: string): Promise<Tenant>;
  /** One more user of a tenant. */
  tenantUser(t: Pick<Tenant, "companyId">, role: Role): Promise<User>;
  /** Runs fn as the app role in a tenant with an acting user, as the store does (rolled back). */
  asApp<T>(u: Pick<User, "userId" | "companyId">, fn: (c: pg.PoolClient) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export async function storeHarness(): Promise<StoreHarness> {
  const tdb = await freshDatabase();
  const pool = new pg.Pool({ connectionString: tdb.url, max: 24 });
  let closing = false;
  pool.on("error", (err) => {
    if (!closing) throw err;
  });
  await migrate(pool, log, [...new Set([...migrationDirs, migrationsDir])]);
  const db = createDb(pool);
  const routes = (r: ConnectRouter) => void r.service(DbRecordsService, recordsStore(db));
  const mem = inMemory(routes);

  async function user(companyId: string, role: Role): Promise<User> {
    const { rows } = await pool.query<{ id: string }>("INSERT INTO users (company_id, email, name, role) VALUES ($1, $2, $3, $4) RETURNING id", [companyId, `${role}-${randomUUID()}@example.com`, `A ${role}`, role]);
    const userId = rows[0]!.id;
    const token = `${userId}.${companyId}.${role}`;
    return { userId, companyId, role, token, store: mem.client(DbRecordsService, token) };
  }

  return {
    tdb,
    pool,
    db,
    async tenant(name = "Tenant") {
      const companyId = randomUUID();
      await pool.query("INSERT INTO companies (id, name) VALUES ($1, $2)", [companyId, `${name} ${companyId.slice(0, 8)}`]);
      return { companyId, owner: await user(companyId, "owner"), admin: await user(companyId, "admin"), member: await user(companyId, "member"), member2: await user(companyId, "member") };
    },
    tenantUser: (t, role) => user(t.companyId, role),
    async asApp(u, fn) {
      const c = await pool.connect();
      try {
        await c.query(`BEGIN; SET LOCAL ROLE crm_app; SELECT set_config('app.company_id', '${u.companyId}', true)`);
        await c.query("SELECT set_config('app.user_id', $1, true), set_config('app.role', (SELECT role FROM users WHERE id = $1::uuid), true)", [u.userId]);
        return await fn(c);
      } finally {
        await c.query("ROLLBACK");
        c.release();
      }
    },
    async close() {
      closing = true;
      await pool.end();
      await tdb.drop();
    },
  };
}

/** Awaits a call that must fail with `code`; returns the error (its violations via violationsOf). */
export async function expectCode(p: Promise<unknown>, code: Code, message?: RegExp): Promise<ConnectError> {
  let caught: ConnectError | undefined;
  await assert.rejects(p, (err: unknown) => {
    caught = ConnectError.from(err);
    assert.equal(Code[caught.code], Code[code], `${Code[caught.code]}: ${caught.rawMessage}`);
    if (message) assert.match(caught.rawMessage, message);
    return true;
  });
  return caught!;
}

export const fieldsOf = (err: unknown) => violationsOf(err).map((v) => v.field);

/** The context of a call made by one of our services (its mTLS identity), for the store's peer-only RPCs (PurgeTrashDB, TrimChangesDB). */
export function peerContext(service: string): HandlerContext {
  const values = createContextValues();
  values.set(peerServiceKey, service);
  return { values } as HandlerContext;
}
