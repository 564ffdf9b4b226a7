/**
 * PermissionService's store: rec_member_grants (migration 142), one row per object type whose
 * every record members may change. The write policies of the records, tasks and notes read it
 * (crm_may_edit_kind, crm_may_edit_task), so the grant is enforced by PostgreSQL; the store only
 * says who may set it before the policy would refuse.
 */
import type { ServiceImpl } from "@connectrpc/connect";
import { AppError, invalid } from "@crm/kit";
import type { DbRecordsService } from "@crm/gen/crm/db/v1/db_records_pb";
import { ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import type { Sql } from "@crm/dbservice/db";
import { isAdmin, type Acting } from "./acting.js";
import type { HandlerContext } from "@connectrpc/connect";

type Tx = <T>(ctx: HandlerContext, fn: (sql: Sql, a: Acting) => Promise<T>) => Promise<T>;
type GrantKind = "company" | "person" | "deal" | "task" | "note";

const kinds: Partial<Record<ObjectType, GrantKind>> = {
  [ObjectType.COMPANY]: "company",
  [ObjectType.PERSON]: "person",
  [ObjectType.DEAL]: "deal",
  [ObjectType.TASK]: "task",
  [ObjectType.NOTE]: "note",
};
const order: GrantKind[] = ["company", "person", "deal", "task", "note"];
const toProto: Record<GrantKind, ObjectType> = { company: ObjectType.COMPANY, person: ObjectType.PERSON, deal: ObjectType.DEAL, task: ObjectType.TASK, note: ObjectType.NOTE };

/** The object type of a grant, or invalid_argument naming `field`. */
export function grantKind(t: ObjectType, field = "objectType"): GrantKind {
  const k = kinds[t];
  if (!k) throw invalid([{ field, description: "must be OBJECT_TYPE_COMPANY, OBJECT_TYPE_PERSON, OBJECT_TYPE_DEAL, OBJECT_TYPE_TASK or OBJECT_TYPE_NOTE" }]);
  return k;
}

/** Does a grant let this member change every record of the type? (The policies' crm_members_edit_all.) */
export async function membersEditAll(sql: Sql, a: Acting, kind: string): Promise<boolean> {
  if (a.role !== "member") return false;
  const { rowCount } = await sql.query("SELECT 1 FROM rec_member_grants WHERE object_type = $1", [kind]);
  return !!rowCount;
}

async function granted(sql: Sql): Promise<ObjectType[]> {
  const { rows } = await sql.query<{ object_type: GrantKind }>("SELECT object_type FROM rec_member_grants");
  const set = new Set(rows.map((r) => r.object_type));
  return order.filter((k) => set.has(k)).map((k) => toProto[k]);
}

export function permissionStore(tx: Tx): Pick<ServiceImpl<typeof DbRecordsService>, "getRecordPermissionsDB" | "setMembersEditAllDB"> {
  return {
    async getRecordPermissionsDB(_req, ctx) {
      return { response: { membersEditAll: await tx(ctx, (sql) => granted(sql)) } };
    },
    async setMembersEditAllDB({ request: r }, ctx) {
      const kind = grantKind(r?.objectType ?? ObjectType.UNSPECIFIED);
      const allowed = r?.allowed ?? false;
      const list = await tx(ctx, async (sql, a) => {
        if (!isAdmin(a)) throw new AppError("permission_denied", "only owners and admins decide what members may change; everyone may read it");
        if (allowed) {
          await sql.query("INSERT INTO rec_member_grants (company_id, object_type, updated_by) VALUES ($1, $2, $3) ON CONFLICT (company_id, object_type) DO NOTHING", [a.companyId, kind, a.userId]);
        } else {
          await sql.query("DELETE FROM rec_member_grants WHERE object_type = $1", [kind]);
        }
        return granted(sql);
      });
      return { response: { membersEditAll: list } };
    },
  };
}
