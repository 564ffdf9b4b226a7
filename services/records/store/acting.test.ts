/**
 * The acting user is set by dbservice's transaction helper in the same first round trip as the
 * app role and the tenant (db.ts begin): the user's current role comes back with it, and the
 * policies see crm_user() and crm_role() from the first statement of the store on.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type pg from "pg";
import { installHint, need, postgresUp } from "@crm/testkit";
import { storeHarness, type StoreHarness, type Tenant } from "../test/harness.js";

const skip = need("PostgreSQL", await postgresUp(), installHint.postgres);

let h: StoreHarness;
let A: Tenant;
let B: Tenant;
before(async () => {
  if (skip) return;
  h = await storeHarness();
  A = await h.tenant("A");
  B = await h.tenant("B");
});
after(async () => {
  await h?.close();
});

/** Counts the statements (round trips) sent by the pool's connections while `run` runs. */
const patched = new WeakSet<pg.PoolClient>();
let counting: { n: number } | undefined;
async function roundTrips<T>(run: (count: () => number) => Promise<T>): Promise<T> {
  const onAcquire = (c: pg.PoolClient) => {
    if (patched.has(c)) return;
    patched.add(c);
    const query = c.query.bind(c) as (...a: unknown[]) => unknown;
    (c as unknown as { query: unknown }).query = (...a: unknown[]) => {
      if (counting) counting.n++;
      return query(...a);
    };
  };
  h.pool.on("acquire", onAcquire);
  counting = { n: 0 };
  const current = counting;
  try {
    return await run(() => current.n);
  } finally {
    counting = undefined;
    h.pool.off("acquire", onAcquire);
  }
}

test("one round trip sets role, tenant, acting user and returns the user's current role", { skip }, async () => {
  await roundTrips(async (count) => {
    const seen = await h.db.tenant(
      A.companyId,
      async (sql, start) => {
        assert.equal(count(), 1, "BEGIN, role, tenant and acting user in one query");
        const { rows } = await sql.query<{ u: string; r: string; me: string }>("SELECT crm_user()::text AS u, crm_role() AS r, current_user AS me");
        return { ...rows[0]!, role: start.role };
      },
      { actingUser: A.admin.userId },
    );
    assert.deepEqual(seen, { u: A.admin.userId, r: "admin", me: "crm_app", role: "admin" });
  });
});

test("a user of another tenant, or a deactivated one, has no role (the policies then show nothing)", { skip }, async () => {
  const roleOf = (companyId: string, userId: string) => h.db.tenant(companyId, async (_sql, start) => start.role, { actingUser: userId });
  assert.equal(await roleOf(A.companyId, B.owner.userId), "");
  await h.pool.query("UPDATE users SET status = 'deactivated' WHERE id = $1", [A.member2.userId]);
  assert.equal(await roleOf(A.companyId, A.member2.userId), "");
  assert.equal(await roleOf(A.companyId, A.member.userId), "member");
  // Without an acting user the start is as before, and no role is looked up.
  assert.equal(await h.db.tenant(A.companyId, async (_sql, start) => start.role), "");
});

test("an acting user id that is not a UUID is refused before any SQL", { skip }, async () => {
  await assert.rejects(
    async () => h.db.tenant(A.companyId, async () => "ran", { actingUser: "x'; DROP TABLE users; --" }),
    (err: Error) => /no valid user/.test(err.message),
  );
});
