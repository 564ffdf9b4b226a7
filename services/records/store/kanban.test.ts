/**
 * Kanban moves under concurrency, on the real PostgreSQL: 20 movers at once into one stage keep
 * one total order and lose no move; 20 movers of ONE deal with the same etag: one wins, the rest
 * are aborted and change nothing.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Deal } from "@crm/gen/crm/records/v1/deal_pb";
import { installHint, need, postgresUp } from "@crm/testkit";
import { storeHarness, type StoreHarness, type Tenant } from "../test/harness.js";

const skip = need("PostgreSQL", await postgresUp(), installHint.postgres);

let h: StoreHarness;
let A: Tenant;
let from: string;
let to: string;
before(async () => {
  if (skip) return;
  h = await storeHarness();
  A = await h.tenant("Kanban");
  const p = (await A.admin.store.createPipelineDB({ request: { pipeline: { name: "Board", stages: [{ name: "From" }, { name: "To" }] } } })).response!.pipeline!;
  [from, to] = p.stages.map((s) => s.id) as [string, string];
});
after(async () => {
  await h?.close();
});

async function column(stageId: string) {
  const res = await A.admin.store.listDealsDB({
    request: { filter: { node: { case: "condition", value: { field: "stage_id", operator: 1, values: [stageId] } } }, orderBy: "position", pageSize: 500, pageToken: "", showDeleted: false, exactTotal: false },
  });
  return res.response!.deals;
}

test("20 concurrent movers into one stage: one total order, every move kept, each placement honoured", { skip }, async () => {
  const create = (name: string, stageId: string) => A.member.store.createDealDB({ request: { deal: { name, stageId } } }).then((r) => r.response!.deal!);
  const seeds: Deal[] = [];
  for (const name of ["s1", "s2", "s3"]) seeds.push(await create(name, to));
  const movers: Deal[] = [];
  for (let i = 0; i < 20; i++) movers.push(await create(`m${i}`, from));

  // Movers 0-4 to the top, 5-9 to the end, 10-14 right after s1, 15-19 right before s3: all at once.
  const place = (i: number) => (i < 5 ? { top: true } : i < 10 ? {} : i < 15 ? { afterDealId: seeds[0]!.id } : { beforeDealId: seeds[2]!.id });
  const results = await Promise.allSettled(movers.map((d, i) => (i % 2 ? A.member : A.admin).store.moveDealDB({ request: { id: d.id, stageId: to, ...place(i) } })));
  const failed = results.filter((r) => r.status === "rejected").map((r) => ConnectError.from((r as PromiseRejectedResult).reason).rawMessage);
  assert.deepEqual(failed, [], "no move is lost");

  const col = await column(to);
  assert.equal(col.length, 23);
  const keys = col.map((d) => d.position);
  assert.equal(new Set(keys).size, 23, "positions are unique");
  assert.deepEqual([...keys].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)), keys, "the list order is the byte order of the keys");
  assert.equal((await column(from)).length, 0);
  const at = (id: string) => col.findIndex((d) => d.id === id);
  const names = col.map((d) => d.name);
  const group = (lo: number, hi: number) => movers.slice(lo, hi).map((d) => at(d.id));
  assert.ok(group(0, 5).every((i) => i < at(seeds[0]!.id)), `top movers first: ${names}`);
  assert.ok(group(5, 10).every((i) => i > at(seeds[2]!.id)), `end movers last: ${names}`);
  assert.ok(group(10, 15).every((i) => i > at(seeds[0]!.id) && i < at(seeds[1]!.id)), `after s1, before s2: ${names}`);
  assert.ok(group(15, 20).every((i) => i > at(seeds[1]!.id) && i < at(seeds[2]!.id)), `before s3, after s2: ${names}`);
  // Each move left one closed and one open stage-history row.
  const { rows } = await h.pool.query<{ n: string }>("SELECT count(*) AS n FROM rec_deal_stage_history WHERE deal_id = ANY($1) AND left_at IS NULL AND stage_id = $2", [movers.map((d) => d.id), to]);
  assert.equal(rows[0]!.n, "20");
});

test("20 concurrent moves of one deal with the same etag: exactly one wins, the others are aborted and change nothing", { skip }, async () => {
  const d = (await A.member.store.createDealDB({ request: { deal: { name: "contested", stageId: from } } })).response!.deal!;
  const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => A.member.store.moveDealDB({ request: { id: d.id, stageId: i % 2 ? to : from, top: i % 3 === 0, etag: d.etag } })));
  const won = results.filter((r) => r.status === "fulfilled");
  const codes = results.filter((r) => r.status === "rejected").map((r) => Code[ConnectError.from((r as PromiseRejectedResult).reason).code]);
  assert.equal(won.length, 1, `one winner; the others: ${codes}`);
  assert.deepEqual([...new Set(codes)], ["Aborted"]);
  const { rows } = await h.pool.query<{ version: string; n: string }>(
    "SELECT d.version, (SELECT count(*) FROM rec_timeline t WHERE t.record_id = d.id) AS n FROM rec_deals d WHERE d.id = $1",
    [d.id],
  );
  assert.deepEqual(rows[0], { version: "2", n: "2" }, "one change, one timeline entry besides 'created'");
});
