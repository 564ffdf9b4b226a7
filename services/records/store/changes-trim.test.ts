/**
 * The change log's trimming on the real PostgreSQL (TrimChangesDB, migration 160): in every
 * tenant the oldest changes past the retention go, the newest N versions and anything younger
 * stay, what is kept is one unbroken run of versions, a replay after a trimmed version is refused
 * with failed_precondition naming where to watch from, and only the records service may trim.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Code } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { TrimChangesDBRequestSchema } from "@crm/gen/crm/db/v1/db_records_pb";
import type { AppError } from "@crm/kit";
import { installHint, need, postgresUp } from "@crm/testkit";
import { recordsStore } from "./records-store.js";
import { expectCode, peerContext, storeHarness, type StoreHarness, type Tenant } from "../test/harness.js";

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

const kept = async (t: Tenant) =>
  (await h.pool.query<{ v: string }>("SELECT version::text AS v FROM rec_changes WHERE company_id = $1 ORDER BY version", [t.companyId])).rows.map((r) => Number(r.v));
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
/** Makes the tenant's changes up to `through` look `days` old. */
const age = (t: Tenant, through: number, days: number) =>
  h.pool.query("UPDATE rec_changes SET created_at = now() - make_interval(days => $3) WHERE company_id = $1 AND version <= $2", [t.companyId, through, days]);

test("trimming keeps the young changes and the newest versions, and a replay from before them is refused", { skip }, async () => {
  const store = recordsStore(h.db);
  const trim = async (o: { limit?: number; retentionDays?: number; keepVersions?: bigint }, who = "records") => {
    const r = await store.trimChangesDB(create(TrimChangesDBRequestSchema, { retentionDays: 7, keepVersions: 3n, ...o }), peerContext(who));
    return { trimmed: r.trimmed ?? 0, more: r.more ?? false };
  };
  for (let i = 0; i < 10; i++) await A.member.store.createCompanyDB({ request: { company: { name: `A ${i}` } } });
  for (let i = 0; i < 4; i++) await B.member.store.createCompanyDB({ request: { company: { name: `B ${i}` } } });
  // A: versions 1-6 are 8 days old, 7-10 from today. B: all 8 days old.
  await age(A, 6, 8);
  await age(B, 4, 8);
  // Version 3 of A looks young (a transaction that began late but took its version early):
  // nothing above it may go before it does, or the kept run would have a hole.
  await h.pool.query("UPDATE rec_changes SET created_at = now() WHERE company_id = $1 AND version = 3", [A.companyId]);

  const refused = (reason: string, fields: string[]) => (e: unknown) => {
    const err = e as AppError;
    assert.equal(err.reason, reason, err.message);
    assert.deepEqual(err.violations.map((v) => v.field), fields);
    return true;
  };
  await assert.rejects(trim({}, "timers"), refused("permission_denied", []));
  await assert.rejects(trim({ retentionDays: 0, keepVersions: -1n, limit: 100_001 }), refused("invalid_argument", ["limit", "retentionDays", "keepVersions"]));

  let res = await trim({});
  assert.deepEqual(await kept(A), range(3, 10), "A: 1-2 go; 3 is young, so it and all after it stay");
  assert.deepEqual(await kept(B), [2, 3, 4], "B: the newest 3 versions stay whatever their age");
  assert.equal(res.trimmed, 3);
  assert.equal(res.more, false);

  await age(A, 6, 8);
  // One change per tenant and call: the job calls again while a tenant came back full.
  res = await trim({ limit: 1 });
  assert.deepEqual([res.trimmed, res.more], [1, true]);
  let total = 0;
  do {
    res = await trim({ limit: 1 });
    total += res.trimmed;
  } while (res.more);
  assert.deepEqual(await kept(A), range(7, 10), "A: everything 8 days old is gone, today's stay");
  assert.equal(total, 3);

  // The replay: from the oldest kept on it works; from before it, a clear refusal.
  const replay = await A.member.store.listChangesDB({ afterVersion: 6n });
  assert.deepEqual(replay.changes.map((c) => Number(c.version)), range(7, 10));
  const err = await expectCode(A.member.store.listChangesDB({ afterVersion: 5n }), Code.FailedPrecondition);
  assert.match(err.rawMessage, /replay after version 5 is no longer available.*trimmed.*list the records again and watch from version 10/);
  await expectCode(A.member.store.listChangesDB({ afterVersion: 0n }), Code.FailedPrecondition, /no longer available/);
  assert.equal((await B.member.store.listChangesDB({ afterVersion: 1n })).changes.length, 3, "B's mark is its own");
  // New changes go on from the tenant's version, and the trimmed ones are not written again.
  await A.member.store.createCompanyDB({ request: { company: { name: "A next" } } });
  assert.deepEqual(await kept(A), range(7, 11));
});
