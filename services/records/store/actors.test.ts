/**
 * Who the timeline names, enforced by PostgreSQL: an entry naming an API key is admitted only for
 * the key the transaction was started with (app.api_key_id, set by the store from the verified
 * token) and only when that key is the acting user's; an entry naming a user only for the acting
 * user. The API-key path end to end is in test/reports-e2e.test.ts.
 */
import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { after, before, test } from "node:test";
import { installHint, need, postgresUp } from "@crm/testkit";
import { storeHarness, type StoreHarness, type Tenant, type User } from "../test/harness.js";

const skip = need("PostgreSQL", await postgresUp(), installHint.postgres);

let h: StoreHarness;
let A: Tenant;
before(async () => {
  if (skip) return;
  h = await storeHarness();
  A = await h.tenant("A");
});
after(async () => {
  await h?.close();
});

async function apiKey(u: User): Promise<string> {
  const { rows } = await h.pool.query<{ id: string }>(
    "INSERT INTO api_keys (company_id, name, prefix, key_hash, scopes, requests_per_minute, created_by) VALUES ($1, 'sync', $2, $3, '{deals:write}', 60, $4) RETURNING id",
    [u.companyId, randomBytes(6).toString("hex"), randomBytes(32), u.userId],
  );
  return rows[0]!.id;
}

test("timeline entries name the transaction's own actor: the user, or the user's key it was started with", { skip }, async () => {
  const mine = await apiKey(A.member);
  const theirs = await apiKey(A.member2);
  const record = randomUUID();
  const insert = (c: { query: (q: string, v: unknown[]) => Promise<unknown> }, type: string, id: string) =>
    c.query("INSERT INTO rec_timeline (company_id, object_type, record_id, action, actor_type, actor_id, actor_name) VALUES ($1, 'deal', $2, 'created', $3, $4, 'API key sync')", [A.companyId, record, type, id]);
  await h.asApp(A.member, async (c) => {
    await c.query("SAVEPOINT s");
    await assert.rejects(insert(c, "api_key", mine), /row-level security/, "no key was named for the transaction");
    await c.query("ROLLBACK TO s");
    await c.query("SELECT set_config('app.api_key_id', $1, true)", [theirs]);
    await assert.rejects(insert(c, "api_key", theirs), /row-level security/, "another user's key");
    await c.query("ROLLBACK TO s");
    await c.query("SELECT set_config('app.api_key_id', $1, true)", [mine]);
    await assert.rejects(insert(c, "user", A.member2.userId), /row-level security/, "another user");
    await c.query("ROLLBACK TO s");
    await c.query("SELECT set_config('app.api_key_id', $1, true)", [mine]);
    await insert(c, "api_key", mine);
    await insert(c, "user", A.member.userId);
    await assert.rejects(insert(c, "system", mine), /row-level security/);
  });
});
