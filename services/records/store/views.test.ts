/**
 * Saved views on the real PostgreSQL: personal views are their user's only, shared ones are read
 * by all and made or changed by owners and admins (the policies, proven with SQL that forgets its
 * WHERE too); filters and sorts are checked against the object type; etags; pages; tenants apart.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Code } from "@connectrpc/connect";
import { ObjectType, Operator, type Filter } from "@crm/gen/crm/records/v1/common_pb";
import { FieldType } from "@crm/gen/crm/records/v1/field_pb";
import { installHint, need, postgresUp } from "@crm/testkit";
import { expectCode, fieldsOf, storeHarness, type StoreHarness, type Tenant } from "../test/harness.js";

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

const open: Filter = { node: { case: "condition", value: { field: "status", operator: Operator.EQUALS, values: ["open"] } } } as Filter;

test("personal views are their user's; shared ones everyone's to read and the admins' to change", { skip }, async () => {
  const mine = (await A.member.store.createViewDB({ request: { view: { name: "My open deals", objectType: ObjectType.DEAL, filter: open, orderBy: "amount_minor desc", columns: ["name", "amount_minor"] } } })).response!.view!;
  assert.deepEqual([mine.shared, mine.ownerId, mine.etag, mine.orderBy], [false, A.member.userId, "1", "amount_minor desc"]);
  assert.equal(mine.filter?.node.case, "condition");
  await expectCode(A.member.store.createViewDB({ request: { view: { name: "Everyone's", objectType: ObjectType.DEAL, shared: true } } }), Code.PermissionDenied, /owners and admins/);
  const shared = (await A.admin.store.createViewDB({ request: { view: { name: "Pipeline", objectType: ObjectType.DEAL, shared: true } } })).response!.view!;

  // Seen: one's own and the shared ones.
  const names = async (u: typeof A.member) => (await u.store.listViewsDB({ request: {} })).response!.views.map((v) => v.name).sort();
  assert.deepEqual(await names(A.member), ["My open deals", "Pipeline"]);
  assert.deepEqual(await names(A.member2), ["Pipeline"]);
  assert.deepEqual(await names(A.admin), ["Pipeline"], "an admin does not see a member's personal view either");
  await expectCode(A.member2.store.getViewDB({ request: { id: mine.id } }), Code.NotFound);
  await expectCode(B.owner.store.getViewDB({ request: { id: shared.id } }), Code.NotFound, /no view/);

  // Changed: a personal view by its user, a shared one by owners and admins.
  await expectCode(A.member.store.updateViewDB({ request: { view: { id: shared.id, name: "Mine now" }, updateMask: { paths: ["name"] } } }), Code.PermissionDenied);
  await expectCode(A.member.store.updateViewDB({ request: { view: { id: mine.id, shared: true }, updateMask: { paths: ["shared"] } } }), Code.PermissionDenied);
  await expectCode(A.owner.store.updateViewDB({ request: { view: { id: mine.id, name: "x" }, updateMask: { paths: ["name"] } } }), Code.NotFound, /personal/);
  const renamed = (await A.owner.store.updateViewDB({ request: { view: { id: shared.id, name: "Whole pipeline", etag: "1" }, updateMask: { paths: ["name"] } } })).response!.view!;
  assert.deepEqual([renamed.name, renamed.etag, renamed.ownerId], ["Whole pipeline", "2", A.admin.userId]);
  await expectCode(A.admin.store.updateViewDB({ request: { view: { id: shared.id, name: "stale", etag: "1" }, updateMask: { paths: ["name"] } } }), Code.Aborted);
  await expectCode(A.member.store.deleteViewDB({ request: { id: shared.id } }), Code.PermissionDenied);
  await A.member.store.deleteViewDB({ request: { id: mine.id } });
  await expectCode(A.member.store.getViewDB({ request: { id: mine.id } }), Code.NotFound);

  // The policies decide even for SQL that forgets its WHERE.
  await h.asApp(A.member2, async (c) => {
    assert.equal((await c.query("SELECT 1 FROM rec_views")).rowCount, 1, "only the shared view");
    assert.equal((await c.query("UPDATE rec_views SET name = 'hijacked'")).rowCount, 0);
    assert.equal((await c.query("DELETE FROM rec_views")).rowCount, 0);
    await assert.rejects(c.query("INSERT INTO rec_views (company_id, owner_id, object_type, name, shared) VALUES ($1, $2, 'deal', 'sneaky', true)", [A.companyId, A.member2.userId]), /row-level security/);
  });
});

test("a view is checked as List checks its query; names unique per visibility", { skip }, async () => {
  const e = await expectCode(
    A.member.store.createViewDB({ request: { view: { name: "", objectType: ObjectType.COMPANY, orderBy: "amount_minor", columns: ["name", "stage_id"],
      filter: { node: { case: "condition", value: { field: "delete_time", operator: Operator.IS_NOT_EMPTY, values: [] as string[] } } } as Filter } } }),
    Code.InvalidArgument,
  );
  assert.deepEqual(fieldsOf(e).sort(), ["view.columns[1]", "view.filter.condition.field", "view.name", "view.orderBy"]);
  const trash = (await A.member.store.createViewDB({ request: { view: { name: "Trash", objectType: ObjectType.COMPANY, showDeleted: true,
    filter: { node: { case: "condition", value: { field: "delete_time", operator: Operator.IS_NOT_EMPTY, values: [] as string[] } } } as Filter } } })).response!.view!;
  await expectCode(A.member.store.updateViewDB({ request: { view: { id: trash.id, showDeleted: false }, updateMask: { paths: ["show_deleted"] } } }), Code.InvalidArgument, /showDeleted/);
  await expectCode(A.member.store.createViewDB({ request: { view: { name: "TRASH", objectType: ObjectType.COMPANY } } }), Code.AlreadyExists, /view.name|name/);
  await A.member2.store.createViewDB({ request: { view: { name: "Trash", objectType: ObjectType.COMPANY } } }); // another user's personal view may share the name
  for (let i = 0; i < 5; i++) await A.member.store.createViewDB({ request: { view: { name: `View ${i}`, objectType: ObjectType.PERSON } } });
  const first = (await A.member.store.listViewsDB({ request: { objectType: ObjectType.PERSON, pageSize: 3 } })).response!;
  const rest = (await A.member.store.listViewsDB({ request: { objectType: ObjectType.PERSON, pageSize: 3, pageToken: first.nextPageToken } })).response!;
  assert.deepEqual([...first.views, ...rest.views].map((v) => v.name), ["View 0", "View 1", "View 2", "View 3", "View 4"]);
  assert.equal(rest.nextPageToken, "");
});

test("a view's filter and order name only active custom fields of its type, checked against their definitions", { skip }, async () => {
  const field = async (key: string, type: FieldType) =>
    (await A.admin.store.createFieldDB({ request: { field: { objectType: ObjectType.DEAL, key, label: key, type } } })).response!.field!;
  await field("score", FieldType.NUMBER);
  const old = await field("legacy_code", FieldType.TEXT);
  await A.admin.store.archiveFieldDB({ request: { id: old.id } });
  const cond = (f: string, ...values: string[]): Filter => ({ node: { case: "condition", value: { field: f, operator: Operator.EQUALS, values } } }) as Filter;
  const and = (...filters: Filter[]): Filter => ({ node: { case: "and", value: { filters } } }) as Filter;
  const create = (name: string, filter: Filter, orderBy = "") => A.member.store.createViewDB({ request: { view: { name, objectType: ObjectType.DEAL, filter, orderBy } } });

  // Unknown, archived and ill-typed: refused by path, nothing written.
  const e = await expectCode(create("bad", and(open, cond("custom.nope", "x"), cond("custom.legacy_code", "x"), cond("custom.score", "many")), "custom.gone desc"), Code.InvalidArgument);
  assert.deepEqual(fieldsOf(e), [
    "view.filter.and.filters[1].condition.field",
    "view.filter.and.filters[2].condition.field",
    "view.filter.and.filters[3].condition.values[0]",
    "view.orderBy",
  ]);
  assert.match(e.message, /custom\.nope is not a custom field of deals \(or it is archived\)/);
  assert.match(e.message, /custom\.legacy_code/);
  const { rows } = await h.pool.query("SELECT count(*)::int AS n FROM rec_views WHERE company_id = $1 AND name = 'bad'", [A.companyId]);
  assert.equal(rows[0].n, 0);

  // An active one passes; another tenant's definitions are not this one's.
  const good = (await create("Scored", cond("custom.score", "5"), "custom.score desc")).response!.view!;
  await expectCode(B.member.store.createViewDB({ request: { view: { name: "B", objectType: ObjectType.DEAL, filter: cond("custom.score", "5") } } }), Code.InvalidArgument, /custom\.score is not a custom field/);

  // UpdateView checks the view as it will be: a new filter, and the kept one after its field was archived.
  const u = await expectCode(
    A.member.store.updateViewDB({ request: { view: { id: good.id, filter: cond("custom.legacy_code", "x") }, updateMask: { paths: ["filter"] } } }),
    Code.InvalidArgument,
  );
  assert.deepEqual(fieldsOf(u), ["view.filter.condition.field"]);
  await A.admin.store.archiveFieldDB({ request: { id: (await A.admin.store.listFieldsDB({ request: { objectType: ObjectType.DEAL } })).response!.fields.find((f) => f.key === "score")!.id } });
  const kept = await expectCode(A.member.store.updateViewDB({ request: { view: { id: good.id, name: "Renamed" }, updateMask: { paths: ["name"] } } }), Code.InvalidArgument);
  assert.deepEqual(fieldsOf(kept), ["view.filter.condition.field", "view.orderBy"], "the kept filter names a field archived since: fix it in the same update");
  assert.equal((await A.member.store.getViewDB({ request: { id: good.id } })).response!.view!.name, "Scored", "nothing changed");
});

test("a view's custom columns name active fields of its type; a field archived later leaves the view usable", { skip }, async () => {
  const field = async (objectType: ObjectType, key: string) =>
    (await A.admin.store.createFieldDB({ request: { field: { objectType, key, label: key, type: FieldType.TEXT } } })).response!.field!;
  const region = await field(ObjectType.PERSON, "region");
  const tier = await field(ObjectType.PERSON, "tier");
  await field(ObjectType.COMPANY, "vat_id");
  const retired = await field(ObjectType.PERSON, "retired_code");
  await A.admin.store.archiveFieldDB({ request: { id: retired.id } });
  const create = (name: string, columns: string[], u = A.member) => u.store.createViewDB({ request: { view: { name, objectType: ObjectType.PERSON, columns } } });

  // Unknown, archived, another type's, and a built-in field of another type: each named by its index, nothing written.
  const e = await expectCode(create("bad columns", ["first_name", "custom.nope", "custom.retired_code", "custom.vat_id", "stage_id", "custom.region"]), Code.InvalidArgument);
  assert.deepEqual(fieldsOf(e), ["view.columns[1]", "view.columns[2]", "view.columns[3]", "view.columns[4]"]);
  assert.match(e.message, /custom\.nope is not a custom field of people \(or it is archived\)/);
  assert.match(e.message, /custom\.vat_id is not a custom field of people/);
  const { rows } = await h.pool.query("SELECT count(*)::int AS n FROM rec_views WHERE company_id = $1 AND name = 'bad columns'", [A.companyId]);
  assert.equal(rows[0].n, 0);
  // Another tenant's definitions are not this one's.
  await expectCode(create("B's", ["custom.region"], B.member), Code.InvalidArgument, /custom\.region is not a custom field of people/);

  // Active ones pass, in order; a change of the columns is checked the same way.
  const view = (await create("By region", ["first_name", "custom.region", "custom.tier", "last_name"])).response!.view!;
  assert.deepEqual(view.columns, ["first_name", "custom.region", "custom.tier", "last_name"]);
  const u = await expectCode(
    A.member.store.updateViewDB({ request: { view: { id: view.id, columns: ["custom.tier", "custom.retired_code"] }, updateMask: { paths: ["columns"] } } }),
    Code.InvalidArgument,
  );
  assert.deepEqual(fieldsOf(u), ["view.columns[1]"]);

  // The field is archived: the view still opens and lists, without that column; it can still be
  // renamed (its columns untouched); unarchiving the field shows the column again where it was.
  await A.admin.store.archiveFieldDB({ request: { id: region.id } });
  const opened = (await A.member.store.getViewDB({ request: { id: view.id } })).response!.view!;
  assert.deepEqual(opened.columns, ["first_name", "custom.tier", "last_name"]);
  const listed = (await A.member.store.listViewsDB({ request: { objectType: ObjectType.PERSON } })).response!.views.find((v) => v.id === view.id)!;
  assert.deepEqual(listed.columns, ["first_name", "custom.tier", "last_name"]);
  const renamed = (await A.member.store.updateViewDB({ request: { view: { id: view.id, name: "People by region", etag: opened.etag }, updateMask: { paths: ["name"] } } })).response!.view!;
  assert.deepEqual([renamed.name, renamed.columns], ["People by region", ["first_name", "custom.tier", "last_name"]]);
  await A.admin.store.unarchiveFieldDB({ request: { id: region.id } });
  assert.deepEqual((await A.member.store.getViewDB({ request: { id: view.id } })).response!.view!.columns, ["first_name", "custom.region", "custom.tier", "last_name"]);

  // Columns saved as shown while archived leave the archived one out for good.
  await A.admin.store.archiveFieldDB({ request: { id: tier.id } });
  const shown = (await A.member.store.getViewDB({ request: { id: view.id } })).response!.view!;
  const saved = (await A.member.store.updateViewDB({ request: { view: { id: view.id, columns: [...shown.columns, "emails"] }, updateMask: { paths: ["columns"] } } })).response!.view!;
  assert.deepEqual(saved.columns, ["first_name", "custom.region", "last_name", "emails"]);
  await A.admin.store.unarchiveFieldDB({ request: { id: tier.id } });
  assert.deepEqual((await A.member.store.getViewDB({ request: { id: view.id } })).response!.view!.columns, ["first_name", "custom.region", "last_name", "emails"]);
});
