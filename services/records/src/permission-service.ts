/**
 * The crm.records.v1 handlers of PermissionService: the object type is checked here and by the
 * store; who may set a grant is the store's and row-level security's business (owners and admins).
 */
import type { Client, ServiceImpl } from "@connectrpc/connect";
import { AppError, invalid } from "@crm/kit";
import type { DbRecordsService } from "@crm/gen/crm/db/v1/db_records_pb";
import { ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import type { PermissionService } from "@crm/gen/crm/records/v1/permission_pb";

const grantable = new Set([ObjectType.COMPANY, ObjectType.PERSON, ObjectType.DEAL, ObjectType.TASK, ObjectType.NOTE]);

function answer<T>(res: { response?: T }): T {
  if (!res.response) throw new AppError("internal", "the records store sent an empty answer");
  return res.response;
}

export function permissionService(db: Client<typeof DbRecordsService>): ServiceImpl<typeof PermissionService> {
  return {
    async getRecordPermissions(request) {
      return answer(await db.getRecordPermissionsDB({ request }));
    },
    async setMembersEditAll(request) {
      if (!grantable.has(request.objectType)) {
        throw invalid([{ field: "objectType", description: "must be OBJECT_TYPE_COMPANY, OBJECT_TYPE_PERSON, OBJECT_TYPE_DEAL, OBJECT_TYPE_TASK or OBJECT_TYPE_NOTE" }]);
      }
      return answer(await db.setMembersEditAllDB({ request }));
    },
  };
}
