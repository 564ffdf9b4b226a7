/**
 * Time booked on records, on the real PostgreSQL through the store (DbTimerService): the record
 * must exist in the entry's own company — the composite foreign keys refuse another tenant's deal
 * even for SQL that skips the store — at most one record per entry, a purged record leaves the
 * time without it, and a record's entries and totals are read by record.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { DbTimerService } from "@crm/gen/crm/db/v1/db_timer_pb";
import { ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import type { Principal, Role } from "@crm/kit";
import { expectError, inMemory, installHint, need, postgresUp } from "@crm/testkit";
import { migratedDatabase, type MigratedDatabase } from "../../dbservice/test/helpers.js";
import { timerStore } from "./timer-store.js";

const skip = need("PostgreSQL", await postgresUp(), installHint.postgres);
const H = 3_600_000;
const ts = timestampFromMs;

let m: MigratedDatabase;
const world = inMemory();
let transport: ReturnType<typeof world.serve>;
before(async () => {
  if (skip) return;
  m = await migratedDatabase();
  transport = world.serve((r) => r.service(DbTimerService, timerStore(m.db)), { from: "timers" });
});
after(async () => {
  await m?.drop();
});

async function tenant() {
  const companyId = randomUUID();
  await m.pool.query("INSERT INTO companies (id, name) VALUES ($1, 'Booked')", [companyId]);
  const user = async (role: Role) => {
    const { rows } = await m.pool.query<{ id: string }>("INSERT INTO users (company_id, email, name, role) VALUES ($1, $2, 'U', $3) RETURNING id", [companyId, `${randomUUID()}@example.com`, role]);
    const p: Principal = world.user({ userId: rows[0]!.id, companyId, role });
    return { ...p, store: world.client(DbTimerService, transport, p) };
  };
  const owner = await user("owner");
  const member = await user("member");
  const { rows: [customer] } = await m.pool.query<{ id: string }>("INSERT INTO rec_companies (company_id, name, owner_id) VALUES ($1, 'Globex', $2) RETURNING id", [companyId, owner.userId]);
  const { rows: [pipeline] } = await m.pool.query<{ id: string }>("INSERT INTO rec_pipelines (company_id, name) VALUES ($1, 'Sales') RETURNING id", [companyId]);
  const { rows: [stage] } = await m.pool.query<{ id: string }>("INSERT INTO rec_stages (company_id, pipeline_id, name, sort_order) VALUES ($1, $2, 'Lead', 0) RETURNING id", [companyId, pipeline!.id]);
  const { rows: [deal] } = await m.pool.query<{ id: string }>(
    "INSERT INTO rec_deals (company_id, name, pipeline_id, stage_id, position, owner_id) VALUES ($1, 'Rollout', $2, $3, 'a0', $4) RETURNING id",
    [companyId, pipeline!.id, stage!.id, owner.userId],
  );
  return { companyId, owner, member, customer: customer!.id, deal: deal!.id };
}

const deal = (id: string) => ({ objectType: ObjectType.DEAL, id });
const company = (id: string) => ({ objectType: ObjectType.COMPANY, id });
const count = async (userId: string) => Number((await m.pool.query<{ n: string }>("SELECT count(*) AS n FROM timers WHERE user_id = $1", [userId])).rows[0]!.n);

test("entries are booked on a deal or company of the same company, billable or not; another company's record is not_found", { skip }, async () => {
  const a = await tenant();
  const b = await tenant();
  const started = await a.member.store.startTimerDB({ description: "demo", record: deal(a.deal), billable: true });
  assert.deepEqual([started.timer?.record?.objectType, started.timer?.record?.id, started.timer?.billable], [ObjectType.DEAL, a.deal, true]);
  const switched = await a.member.store.startTimerDB({ record: company(a.customer) });
  assert.equal(switched.stopped?.record?.id, a.deal);
  const ended = await a.member.store.endTimerDB({ record: {}, billable: true });
  assert.deepEqual([ended.timer?.record, ended.timer?.billable], [undefined, true]);

  const before = await count(a.member.userId);
  await expectError(a.member.store.startTimerDB({ record: deal(b.deal) }), Code.NotFound, { fields: ["record.id"], message: /no deal with this id in your company/ });
  await expectError(a.member.store.addTimerDB({ startTime: ts(Date.now() - 9 * H), endTime: ts(Date.now() - 8 * H), record: company(b.customer) }), Code.NotFound);
  await expectError(a.member.store.startTimerDB({ record: company(a.deal) }), Code.NotFound, { message: /no company/ });
  await expectError(a.member.store.startTimerDB({ record: { objectType: ObjectType.PERSON, id: randomUUID() } }), Code.InvalidArgument, { fields: ["record.objectType"] });
  const t = await a.member.store.addTimerDB({ startTime: ts(Date.now() - 7 * H), endTime: ts(Date.now() - 6 * H), record: deal(a.deal) });
  await expectError(a.member.store.changeTimerDB({ timerId: t.timer!.timerId, record: deal(b.deal) }), Code.NotFound);
  assert.equal(await count(a.member.userId), before + 1, "nothing else was written");
  const changed = await a.member.store.changeTimerDB({ timerId: t.timer!.timerId, record: company(a.customer), billable: true });
  assert.deepEqual([changed.timer?.record?.objectType, changed.timer?.billable], [ObjectType.COMPANY, true]);
});

test("schema: the foreign keys hold for SQL that skips the store; one record at most; a purged record leaves the time", { skip }, async () => {
  const a = await tenant();
  const b = await tenant();
  const c = await m.pool.connect();
  try {
    await c.query(`BEGIN; SET LOCAL ROLE crm_app; SELECT set_config('app.company_id', '${a.companyId}', true)`);
    const insert = (dealId: string | null, companyId: string | null, hoursAgo: number) =>
      c.query("SAVEPOINT s").then(() =>
        c.query("INSERT INTO timers (company_id, user_id, start_time, end_time, rec_deal_id, rec_company_id) VALUES ($1, $2, now() - make_interval(hours => $5), now() - make_interval(hours => $5 - 1), $3, $4)", [
          a.companyId, a.member.userId, dealId, companyId, hoursAgo,
        ]).then(() => "ok", async (e: { code: string; constraint: string }) => {
          await c.query("ROLLBACK TO SAVEPOINT s");
          return `${e.code} ${e.constraint}`;
        }));
    assert.equal(await insert(b.deal, null, 30), "23503 timers_rec_deal_fkey");
    assert.equal(await insert(null, b.customer, 30), "23503 timers_rec_company_fkey");
    assert.equal(await insert(a.deal, a.customer, 30), "23514 timers_one_record");
    assert.equal(await insert(a.deal, null, 30), "ok");
    await c.query("COMMIT");
  } finally {
    c.release();
  }
  // The purge (records' DELETE) keeps the entry and drops the reference.
  await m.pool.query("DELETE FROM rec_deals WHERE id = $1", [a.deal]);
  const { rows } = await m.pool.query("SELECT rec_deal_id FROM timers WHERE user_id = $1", [a.member.userId]);
  assert.deepEqual(rows, [{ rec_deal_id: null }]);
});

test("a record's entries of every user, billable filter, per-record report; another company's record is not_found", { skip }, async () => {
  const a = await tenant();
  const b = await tenant();
  const now = Date.now();
  await a.member.store.addTimerDB({ startTime: ts(now - 5 * H), endTime: ts(now - 4 * H), record: deal(a.deal), billable: true });
  await a.owner.store.addTimerDB({ startTime: ts(now - 4 * H), endTime: ts(now - 3 * H), record: deal(a.deal) });
  await a.owner.store.addTimerDB({ startTime: ts(now - 3 * H), endTime: ts(now - 2 * H), record: company(a.customer) });
  const onDeal = await a.member.store.listTimersDB({ record: deal(a.deal), allUsers: true, pageSize: 1 });
  assert.equal(onDeal.timers[0]?.userId, a.owner.userId);
  const next = await a.member.store.listTimersDB({ record: deal(a.deal), allUsers: true, pageSize: 1, pageToken: onDeal.nextPageToken });
  assert.equal(next.timers[0]?.userId, a.member.userId);
  assert.equal(next.nextPageToken, "");
  assert.equal((await a.member.store.listTimersDB({ record: deal(a.deal), allUsers: true, billable: true, pageSize: 10 })).timers.length, 1);
  assert.equal((await a.owner.store.listTimersDB({ allUsers: true, pageSize: 10 })).timers.length, 3);
  await expectError(a.member.store.listTimersDB({ allUsers: true, pageSize: 10 }), Code.PermissionDenied);
  await expectError(b.owner.store.listTimersDB({ record: deal(a.deal), allUsers: true, pageSize: 10 }), Code.NotFound);
  await expectError(b.owner.store.reportEntriesDB({ from: ts(now - 6 * H), to: ts(now), record: company(a.customer) }), Code.NotFound);
  const report = await a.owner.store.reportEntriesDB({ from: ts(now - 6 * H), to: ts(now), record: company(a.customer) });
  assert.deepEqual(report.entries.map((e) => e.record?.id), [a.customer]);
});
