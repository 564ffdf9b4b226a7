/**
 * Custom fields on the real PostgreSQL: definitions (owners and admins), values checked against
 * them on every create and update (every bad one named, with the standard fields' violations),
 * the timeline's diff, filters and sorts on custom.<key> with keyset pages, renaming that keeps
 * values, archiving that hides them (kept, and back with an unarchive), options that are archived
 * instead of removed.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Code } from "@connectrpc/connect";
import { toJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { ObjectType, Operator, type Filter } from "@crm/gen/crm/records/v1/common_pb";
import { FieldType } from "@crm/gen/crm/records/v1/field_pb";
import { installHint, need, postgresUp } from "@crm/testkit";
import { expectCode, fieldsOf, storeHarness, type StoreHarness, type Tenant, type User } from "../test/harness.js";

const skip = need("PostgreSQL", await postgresUp(), installHint.postgres);

let h: StoreHarness;
let A: Tenant;
let B: Tenant;
let stageId: string;
before(async () => {
  if (skip) return;
  h = await storeHarness();
  A = await h.tenant("A");
  B = await h.tenant("B");
  stageId = (await A.admin.store.createPipelineDB({ request: { pipeline: { name: "P", stages: [{ name: "S" }] } } })).response!.pipeline!.stages[0]!.id;
});
after(async () => {
  await h?.close();
});

const cond = (field: string, operator: Operator, ...values: string[]): Filter => ({ node: { case: "condition", value: { field, operator, values } } }) as Filter;
const and = (...filters: Filter[]): Filter => ({ node: { case: "and", value: { filters } } }) as Filter;
const listReq = (o: { filter?: Filter; orderBy?: string; pageSize?: number; pageToken?: string }) => ({ request: { orderBy: "", pageSize: 0, pageToken: "", showDeleted: false, exactTotal: false, ...o } });

async function field(u: User, f: Record<string, unknown>) {
  return (await u.store.createFieldDB({ request: { field: { objectType: ObjectType.DEAL, ...f } } })).response!.field!;
}

test("definitions: owners and admins define; keys are unique per object type; every bad part is named", { skip }, async () => {
  await expectCode(A.member.store.createFieldDB({ request: { field: { objectType: ObjectType.DEAL, key: "x", label: "X", type: FieldType.TEXT } } }), Code.PermissionDenied);
  const e = await expectCode(
    A.admin.store.createFieldDB({ request: { field: { objectType: ObjectType.DEAL, key: "Bad Key", label: "", type: FieldType.SELECT, currencyCode: "EUR", options: [{ value: "a" }, { value: "A" }] } } }),
    Code.InvalidArgument,
  );
  assert.deepEqual(fieldsOf(e).sort(), ["field.currencyCode", "field.key", "field.label", "field.options[1].value"]);
  await expectCode(A.admin.store.createFieldDB({ request: { field: { objectType: ObjectType.DEAL, key: "budget", label: "Budget", type: FieldType.MONEY } } }), Code.InvalidArgument, /currency/);
});

test("values: checked and normalised against the definitions, every bad one named with the standard fields'; the timeline shows custom.<key>", { skip }, async () => {
  await field(A.admin, { key: "tier", label: "Tier", type: FieldType.SELECT, options: [{ value: "Gold" }, { value: "Silver" }, { value: "Old", archived: true }] });
  await field(A.admin, { key: "score", label: "Score", type: FieldType.NUMBER });
  await field(A.admin, { key: "renewal", label: "Renewal", type: FieldType.DATE });
  await field(A.admin, { key: "champion", label: "Champion", type: FieldType.USER });
  await field(A.admin, { key: "budget", label: "Budget", type: FieldType.MONEY, currencyCode: "eur" });
  await field(A.admin, { key: "labels", label: "Labels", type: FieldType.MULTI_SELECT, options: [{ value: "a" }, { value: "b" }, { value: "c" }] });
  await field(A.admin, { key: "site", label: "Site", type: FieldType.URL });
  await field(A.admin, { key: "hot", label: "Hot", type: FieldType.BOOLEAN });
  await field(A.admin, { key: "kickoff", label: "Kickoff", type: FieldType.DATETIME });
  await field(A.admin, { key: "region", label: "Region", type: FieldType.TEXT, required: true });

  const bad = await expectCode(
    A.member.store.createDealDB({
      request: {
        deal: {
          name: "",
          stageId,
          custom: { tier: "Bronze", score: "lots", renewal: "2026-02-30", champion: B.owner.userId, budget: 12.5, labels: ["a", "a"], site: "not a url", hot: "yes", kickoff: "tomorrow", nope: 1 },
        },
      },
    }),
    Code.InvalidArgument,
  );
  assert.deepEqual(fieldsOf(bad).sort(), [
    "deal.custom.budget", "deal.custom.champion", "deal.custom.hot", "deal.custom.kickoff", "deal.custom.labels[1]", "deal.custom.nope", "deal.custom.region",
    "deal.custom.renewal", "deal.custom.score", "deal.custom.site", "deal.custom.tier", "deal.name",
  ]);
  await expectCode(A.member.store.createDealDB({ request: { deal: { name: "x", stageId, custom: { region: "EU", tier: "old" } } } }), Code.InvalidArgument, /archived/);

  const d = (await A.member.store.createDealDB({
    request: { deal: { name: "Big", stageId, custom: { tier: "gold", score: "7.5", renewal: "2026-09-30", champion: A.member.userId, budget: "125000", labels: ["B", "a"], site: "acme.example/x", hot: true, kickoff: "2026-05-01T11:30:00+02:00", region: " EU " } } },
  })).response!.deal!;
  assert.deepEqual(d.custom, { tier: "Gold", score: 7.5, renewal: "2026-09-30", champion: A.member.userId, budget: 125000, labels: ["b", "a"], site: "https://acme.example/x", hot: true, kickoff: "2026-05-01T09:30:00.000Z", region: "EU" });

  // One value by its path; the others stay; a required one cannot be emptied.
  const u = (await A.member.store.updateDealDB({ request: { deal: { id: d.id, custom: { score: 9 }, etag: d.etag }, updateMask: { paths: ["custom.score"] } } })).response!.deal!;
  assert.equal(u.custom?.score, 9);
  assert.equal(u.custom?.tier, "Gold");
  await expectCode(A.member.store.updateDealDB({ request: { deal: { id: d.id, custom: {} }, updateMask: { paths: ["custom.region"] } } }), Code.InvalidArgument, /deal.custom.region: is required/);
  const tl = (await A.member.store.listTimelineDB({ request: { objectType: ObjectType.DEAL, recordId: d.id } })).response!.entries;
  const change = tl[0]!.changes.map((c) => [c.field, c.before && toJson(ValueSchema, c.before), c.after && toJson(ValueSchema, c.after)]);
  assert.deepEqual(change, [["custom.score", 7.5, 9]]);
  assert.ok(tl[1]!.changes.some((c) => c.field === "custom.tier"), "the created entry lists the custom values");
});

test("lists: filter and sort on custom.<key> with their types, keyset pages, 'me'; unknown or archived keys are refused", { skip }, async () => {
  const made: string[] = [];
  for (const [i, tier] of ["Gold", "Silver", "Gold", "Silver", "Gold"].entries()) {
    const d = (await A.admin.store.createDealDB({
      request: { deal: { name: `L${i}`, stageId, custom: { region: "EU", tier, score: i * 10, renewal: `2026-0${i + 1}-15`, hot: i % 2 === 0, labels: i < 2 ? ["c"] : [], champion: i === 4 ? A.admin.userId : A.member.userId } } },
    })).response!.deal!;
    made.push(d.id);
  }
  const names = async (o: Parameters<typeof listReq>[0], u: User = A.admin) => (await u.store.listDealsDB(listReq(o))).response!.deals.map((d) => d.name);
  const only = cond("name", Operator.STARTS_WITH, "l");
  assert.deepEqual(await names({ filter: and(only, cond("custom.tier", Operator.EQUALS, "gold")), orderBy: "custom.score desc" }), ["L4", "L2", "L0"]);
  assert.deepEqual(await names({ filter: and(only, cond("custom.score", Operator.BETWEEN, "10", "30")), orderBy: "custom.score" }), ["L1", "L2", "L3"]);
  assert.deepEqual(await names({ filter: and(only, cond("custom.renewal", Operator.GREATER_OR_EQUAL, "2026-04-01")), orderBy: "custom.renewal desc" }), ["L4", "L3"]);
  assert.deepEqual(await names({ filter: and(only, cond("custom.hot", Operator.EQUALS, "true")), orderBy: "name" }), ["L0", "L2", "L4"]);
  assert.deepEqual(await names({ filter: and(only, cond("custom.labels", Operator.IN, "c", "b")), orderBy: "name" }), ["L0", "L1"]);
  assert.deepEqual(await names({ filter: and(only, cond("custom.labels", Operator.IS_EMPTY)), orderBy: "name" }), ["L2", "L3", "L4"]);
  assert.deepEqual(await names({ filter: and(only, cond("custom.champion", Operator.EQUALS, "me")), orderBy: "name" }), ["L4"]);
  assert.deepEqual(await names({ filter: and(only, cond("custom.champion", Operator.EQUALS, "me")), orderBy: "name" }, A.member), ["L0", "L1", "L2", "L3"]);

  // Keyset pages over a custom sort, in both directions of empty values.
  const seen: string[] = [];
  let pageToken = "";
  do {
    const res = (await A.admin.store.listDealsDB(listReq({ filter: only, orderBy: "custom.tier desc, custom.score", pageSize: 2, pageToken }))).response!;
    seen.push(...res.deals.map((d) => d.name));
    pageToken = res.nextPageToken;
  } while (pageToken);
  assert.deepEqual(seen, ["L1", "L3", "L0", "L2", "L4"]);

  let e = await expectCode(A.admin.store.listDealsDB(listReq({ filter: cond("custom.nope", Operator.EQUALS, "x") })), Code.InvalidArgument);
  assert.deepEqual(fieldsOf(e), ["filter.condition.field"]);
  e = await expectCode(A.admin.store.listDealsDB(listReq({ filter: cond("custom.score", Operator.CONTAINS, "1"), orderBy: "custom.labels" })), Code.InvalidArgument);
  assert.deepEqual(fieldsOf(e).sort(), ["filter.condition.operator", "orderBy"]);
  e = await expectCode(A.admin.store.listDealsDB(listReq({ filter: cond("custom.tier", Operator.EQUALS, "bronze") })), Code.InvalidArgument);
  assert.deepEqual(fieldsOf(e), ["filter.condition.values[0]"]);
  await expectCode(A.admin.store.listCompaniesDB(listReq({ filter: cond("custom.tier", Operator.EQUALS, "gold") })), Code.InvalidArgument, /not a custom field of companies/);
  // Another tenant has none of these fields.
  await expectCode(B.owner.store.listDealsDB(listReq({ orderBy: "custom.score" })), Code.InvalidArgument);
});

test("renaming keeps values; archiving hides them (kept, also through a whole 'custom' write) and unarchiving brings them back; options are archived, not removed", { skip }, async () => {
  const score = (await A.admin.store.listFieldsDB({ request: { objectType: ObjectType.DEAL } })).response!.fields.find((f) => f.key === "score")!;
  const d = (await A.member.store.createDealDB({ request: { deal: { name: "Keep", stageId, custom: { region: "EU", score: 3 } } } })).response!.deal!;
  const renamed = (await A.admin.store.updateFieldDB({ request: { field: { id: score.id, label: "Rating", etag: score.etag }, updateMask: { paths: ["label"] } } })).response!.field!;
  assert.equal(renamed.label, "Rating");
  await expectCode(A.admin.store.updateFieldDB({ request: { field: { id: score.id, label: "Stale", etag: score.etag }, updateMask: { paths: ["label"] } } }), Code.Aborted);
  assert.equal((await A.member.store.getDealDB({ request: { id: d.id } })).response!.deal!.custom?.score, 3);

  await A.admin.store.archiveFieldDB({ request: { id: score.id } });
  const hidden = (await A.member.store.getDealDB({ request: { id: d.id } })).response!.deal!;
  assert.equal(hidden.custom?.score, undefined, "an archived field's value is not shown");
  await expectCode(A.member.store.listDealsDB(listReq({ orderBy: "custom.score" })), Code.InvalidArgument, /archived/);
  await expectCode(A.member.store.updateDealDB({ request: { deal: { id: d.id, custom: { region: "EU", score: 1 } }, updateMask: { paths: ["custom"] } } }), Code.InvalidArgument, /archived/);
  await A.member.store.updateDealDB({ request: { deal: { id: d.id, custom: { region: "US" } }, updateMask: { paths: ["custom"] } } });
  assert.equal((await A.admin.store.listFieldsDB({ request: { objectType: ObjectType.DEAL } })).response!.fields.some((f) => f.key === "score"), false);
  assert.equal((await A.admin.store.listFieldsDB({ request: { objectType: ObjectType.DEAL, showArchived: true } })).response!.fields.find((f) => f.key === "score")?.archiveTime !== undefined, true);
  await expectCode(A.admin.store.createFieldDB({ request: { field: { objectType: ObjectType.DEAL, key: "score", label: "Again", type: FieldType.TEXT } } }), Code.AlreadyExists);

  await A.admin.store.unarchiveFieldDB({ request: { id: score.id } });
  const back = (await A.member.store.getDealDB({ request: { id: d.id } })).response!.deal!;
  assert.deepEqual(back.custom, { region: "US", score: 3 }, "the value was kept through the archive and the whole write");

  const tier = (await A.admin.store.listFieldsDB({ request: { objectType: ObjectType.DEAL } })).response!.fields.find((f) => f.key === "tier")!;
  await expectCode(A.admin.store.updateFieldDB({ request: { field: { id: tier.id, options: [{ value: "Gold" }] }, updateMask: { paths: ["options"] } } }), Code.InvalidArgument, /archived set to true/);
  const opts = (await A.admin.store.updateFieldDB({
    request: { field: { id: tier.id, options: [{ value: "gold", label: "Gold tier" }, { value: "Silver", archived: true }, { value: "Old", archived: true }, { value: "Platinum" }] }, updateMask: { paths: ["options"] } },
  })).response!.field!;
  assert.deepEqual(opts.options.map((o) => [o.value, o.label, o.archived]), [["Gold", "Gold tier", false], ["Silver", "", true], ["Old", "", true], ["Platinum", "", false]]);
  await expectCode(A.member.store.createDealDB({ request: { deal: { name: "x", stageId, custom: { region: "EU", tier: "Silver" } } } }), Code.InvalidArgument, /archived/);
  assert.ok((await A.admin.store.listDealsDB(listReq({ filter: cond("custom.tier", Operator.EQUALS, "silver") }))).response!.deals.length > 0, "records keep an archived option, and filters find it");
});
