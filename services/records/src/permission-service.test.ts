/**
 * PermissionService's handlers in memory, with a fake store: an object type that takes no grant
 * is refused by name and never reaches the store; good requests reach it unchanged.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Code, createClient, createRouterTransport, type ServiceImpl } from "@connectrpc/connect";
import { DbRecordsService } from "@crm/gen/crm/db/v1/db_records_pb";
import { ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import { PermissionService } from "@crm/gen/crm/records/v1/permission_pb";
import { errorInterceptor } from "@crm/kit";
import { expectCode, fieldsOf, inMemory, log } from "../test/harness.js";
import { permissionService } from "./permission-service.js";

const ID = "0b4e7c1a-6a4b-4bb4-9d0f-6f1b2a3c4d5e";

test("SetMembersEditAll takes companies, people, deals, tasks and notes only; GetRecordPermissions passes through", async () => {
  const calls: string[] = [];
  const store: Partial<ServiceImpl<typeof DbRecordsService>> = {
    async setMembersEditAllDB({ request }) {
      calls.push(`set ${ObjectType[request!.objectType]} ${request!.allowed}`);
      return { response: { membersEditAll: [request!.objectType] } };
    },
    async getRecordPermissionsDB() {
      calls.push("get");
      return { response: { membersEditAll: [] } };
    },
  };
  const db = createClient(DbRecordsService, createRouterTransport((r) => void r.service(DbRecordsService, store), { router: { interceptors: [errorInterceptor(log)] } }));
  const perms = inMemory((r) => void r.service(PermissionService, permissionService(db))).client(PermissionService, `${ID}.${ID}.owner`);
  for (const objectType of [ObjectType.UNSPECIFIED, 6 as ObjectType, 99 as ObjectType]) {
    const e = await expectCode(perms.setMembersEditAll({ objectType, allowed: true }), Code.InvalidArgument);
    assert.deepEqual(fieldsOf(e), ["objectType"]);
  }
  assert.deepEqual(calls, []);
  assert.deepEqual((await perms.setMembersEditAll({ objectType: ObjectType.DEAL, allowed: true })).membersEditAll, [ObjectType.DEAL]);
  await perms.getRecordPermissions({});
  assert.deepEqual(calls, ["set DEAL true", "get"]);
});
