/**
 * Lists on the real PostgreSQL: the filter tree, sorting with empty values last in both
 * directions, keyset pages that add up to the whole ordered list, tokens bound to their query,
 * totals exact on request and estimated otherwise.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Code } from "@connectrpc/connect";
import { Operator, type Filter } from "@crm/gen/crm/records/v1/common_pb";
import { DealStatus, type Deal } from "@crm/gen/crm/records/v1/deal_pb";
import { StageKind } from "@crm/gen/crm/records/v1/pipeline_pb";
import { installHint, need, postgresUp } from "@crm/testkit";
import type { Sql } from "@crm/dbservice/db";
import { expectCode, fieldsOf, storeHarness, type StoreHarness, type Tenant } from "../test/harness.js";
import { dealList } from "./deals.js";
import { runList } from "./lists.js";

const skip = need("PostgreSQL", await postgresUp(), installHint.postgres);

let h: StoreHarness;
let A: Tenant;
let deals: Deal[] = [];
let wonStage: string;
before(async () => {
  if (skip) return;
  h = await storeHarness();
  A = await h.tenant("Lists");
  const other = await h.tenant("Other");
  const p = (await A.admin.store.createPipelineDB({ request: { pipeline: { name: "P", stages: [{ name: "Open" }, { name: "Won", kind: StageKind.WON }] } } })).response!.pipeline!;
  wonStage = p.stages[1]!.id;
  for (let i = 0; i < 30; i++) {
    const amount = i % 5 === 0 ? {} : { amountMinor: BigInt((i * 37) % 11) * 100n, currencyCode: i % 2 ? "EUR" : "USD" };
    const d = (await A.member.store.createDealDB({ request: { deal: { name: `Deal ${String.fromCharCode(65 + (i % 26))}${i}`, stageId: p.stages[i % 3 === 0 ? 1 : 0]!.id, ...amount } } })).response!.deal!;
    deals.push(d);
  }
  // Another tenant's deals never show.
  const po = (await other.owner.store.createPipelineDB({ request: { pipeline: { name: "P", stages: [{ name: "Open" }] } } })).response!.pipeline!;
  for (let i = 0; i < 3; i++) await other.owner.store.createDealDB({ request: { deal: { name: `Deal ${i}`, stageId: po.stages[0]!.id, amountMinor: 100n, currencyCode: "EUR" } } });
});
after(async () => {
  await h?.close();
});

const cond = (field: string, operator: Operator, ...values: string[]): Filter => ({ node: { case: "condition", value: { field, operator, values } } }) as Filter;
const and = (...filters: Filter[]): Filter => ({ node: { case: "and", value: { filters } } }) as Filter;
const or = (...filters: Filter[]): Filter => ({ node: { case: "or", value: { filters } } }) as Filter;

async function all(filter: Filter | undefined, orderBy: string, pageSize: number) {
  const out: Deal[] = [];
  let pageToken = "";
  let pages = 0;
  do {
    const res = (await A.member2.store.listDealsDB({ request: { filter, orderBy, pageSize, pageToken, showDeleted: false, exactTotal: false } })).response!;
    out.push(...res.deals);
    pageToken = res.nextPageToken;
    pages++;
  } while (pageToken && pages < 100);
  return out;
}

const amt = (d: Deal) => (d.amountMinor === undefined ? null : Number(d.amountMinor));

test("pages of 7 sorted by amount desc, empty amounts last, add up to the whole ordered list", { skip }, async () => {
  const got = await all(undefined, "amount_minor desc, name", 7);
  assert.equal(got.length, 30);
  const expected = [...deals].sort((x, y) => {
    const [a, b] = [amt(x), amt(y)];
    if (a !== b) return a === null ? 1 : b === null ? -1 : b - a;
    if (x.name.toLowerCase() !== y.name.toLowerCase()) return x.name.toLowerCase() < y.name.toLowerCase() ? -1 : 1;
    return x.id < y.id ? -1 : 1;
  });
  assert.deepEqual(got.map((d) => d.id), expected.map((d) => d.id));
  const asc = await all(undefined, "amount_minor", 4);
  assert.deepEqual(asc.filter((d) => amt(d) === null).length, 6);
  assert.ok(asc.slice(-6).every((d) => amt(d) === null), "empty values last in ascending order too");
});

test("a filter tree: status won OR (amount >= 500 AND currency EUR); contains and starts_with ignore case", { skip }, async () => {
  const f = or(cond("status", Operator.EQUALS, "DEAL_STATUS_WON"), and(cond("amount_minor", Operator.GREATER_OR_EQUAL, "500"), cond("currency_code", Operator.IN, "eur")));
  const got = await all(f, "name", 5);
  const expected = deals.filter((d) => d.status === DealStatus.WON || ((amt(d) ?? -1) >= 500 && d.currencyCode === "EUR"));
  assert.deepEqual(new Set(got.map((d) => d.id)), new Set(expected.map((d) => d.id)));
  assert.ok(expected.length > 3 && expected.length < 30);
  assert.equal((await all(cond("name", Operator.STARTS_WITH, "deal b"), "", 50)).length, deals.filter((d) => /^Deal B/.test(d.name)).length);
  assert.equal((await all(cond("name", Operator.CONTAINS, "%"), "", 50)).length, 0, "LIKE wildcards are plain characters");
  assert.equal((await all(cond("amount_minor", Operator.IS_EMPTY), "", 50)).length, 6);
  assert.equal((await all(cond("stage_id", Operator.EQUALS, wonStage), "", 50)).length, 10);
});

test("totals: exact when the list fits one page or when asked, else the planner's estimate; tokens belong to their query", { skip }, async () => {
  const list = (o: { pageSize: number; exactTotal?: boolean; pageToken?: string; filter?: Filter }) =>
    A.member.store.listDealsDB({ request: { orderBy: "", showDeleted: false, pageToken: "", exactTotal: false, ...o } }).then((r) => r.response!);
  const one = await list({ pageSize: 50 });
  assert.deepEqual([one.totalSize, one.totalIsExact], [30n, true]);
  const exact = await list({ pageSize: 5, exactTotal: true });
  assert.deepEqual([exact.totalSize, exact.totalIsExact], [30n, true]);
  const est = await list({ pageSize: 5 });
  assert.equal(est.totalIsExact, false);
  assert.ok(est.totalSize >= 0n);
  const e = await expectCode(list({ pageSize: 5, pageToken: est.nextPageToken, filter: cond("name", Operator.CONTAINS, "a") }), Code.InvalidArgument, /another filter/);
  assert.deepEqual(fieldsOf(e), ["pageToken"]);
  await expectCode(list({ pageSize: 5, pageToken: "bm9wZQ" }), Code.InvalidArgument, /not a token/);
});

test("bad filters name the node: unknown field, wrong operator, value of the wrong type, too deep", { skip }, async () => {
  const bad = async (filter: Filter, orderBy = "") => fieldsOf(await expectCode(A.member.store.listDealsDB({ request: { filter, orderBy, pageSize: 0, pageToken: "", showDeleted: false, exactTotal: false } }), Code.InvalidArgument));
  assert.deepEqual(await bad(and(cond("nope", Operator.EQUALS, "x"), cond("amount_minor", Operator.CONTAINS, "1"))), ["filter.and.filters[0].condition.field", "filter.and.filters[1].condition.operator"]);
  assert.deepEqual(await bad(cond("expected_close_date", Operator.BETWEEN, "2026-01-01", "tomorrow")), ["filter.condition.values[1]"]);
  assert.deepEqual(await bad(cond("delete_time", Operator.IS_EMPTY)), ["filter.condition.field"]);
  const deep = and(and(and(and(cond("name", Operator.EQUALS, "x")))));
  assert.deepEqual(await bad(deep), ["filter.and.filters[0].and.filters[0].and.filters[0].and.filters[0]"]);
  assert.deepEqual(await bad(cond("name", Operator.EQUALS, "x"), "name; DROP TABLE users"), ["orderBy"]);
});

test("pages by create time, both ways and through ties, add up; a later page seeks by one row comparison", { skip }, async () => {
  // A dozen deals share one created_at: the id alone orders them.
  await h.pool.query("UPDATE rec_deals SET created_at = '2026-01-01T00:00:00Z' WHERE id = ANY($1)", [deals.slice(0, 12).map((d) => d.id)]);
  for (const dir of ["desc", "asc"] as const) {
    const got = await all(undefined, `create_time ${dir}`, 5);
    const { rows } = await h.pool.query<{ id: string }>(`SELECT id FROM rec_deals WHERE company_id = $1 AND deleted_at IS NULL ORDER BY created_at ${dir}, id ${dir}`, [A.companyId]);
    assert.deepEqual(got.map((d) => d.id), rows.map((r) => r.id), `create_time ${dir}`);
  }
  // The keyset of "create_time desc" (both keys never empty) is ROW(created_at, id) < ROW(…): an
  // index condition, so page n does not read the n - 1 pages before it; an amount (may be empty)
  // keeps its "or empty" branch and only the id joins the row.
  const first = (await A.member.store.listDealsDB({ request: { orderBy: "create_time desc", pageSize: 5, pageToken: "", showDeleted: false, exactTotal: false } })).response!;
  const byAmount = (await A.member.store.listDealsDB({ request: { orderBy: "amount_minor desc", pageSize: 5, pageToken: "", showDeleted: false, exactTotal: false } })).response!;
  const texts: string[] = [];
  const recording = { query: async (text: string) => (texts.push(text), { rows: [] }) } as unknown as Sql;
  await runList(recording, dealList, { orderBy: "create_time desc", pageSize: 5, pageToken: first.nextPageToken, showDeleted: false, exactTotal: false }, { total: false });
  await runList(recording, dealList, { orderBy: "amount_minor desc", pageSize: 5, pageToken: byAmount.nextPageToken, showDeleted: false, exactTotal: false }, { total: false });
  assert.match(texts[0]!, /\(\(ROW\(d\.created_at, d\.id\) < ROW\(\$1::timestamptz, \$2::uuid\)\)\)/);
  assert.doesNotMatch(texts[0]!, /IS NULL\)/, "no empty branch for never-empty keys");
  assert.match(texts[1]!, /\(d\.amount_minor < \$1::bigint OR d\.amount_minor IS NULL\)\) OR \(d\.amount_minor = \$1::bigint AND ROW\(d\.id\) < ROW\(\$2::uuid\)\)/);
});
