/**
 * crm.records.v1.PrivacyService: a person's data-protection requests (export everything held about
 * them as JSON, erase them). The handlers check the id and call the store (DbPrivacyService in
 * store/privacy.ts), which decides who may (owners and admins, by the role in the database), does
 * the work in one transaction and writes the audit event in it.
 */
import type { Client, ServiceImpl } from "@connectrpc/connect";
import { invalid, isUuid } from "@crm/kit";
import type { DbPrivacyService } from "@crm/gen/crm/db/v1/db_privacy_pb";
import type { PrivacyService } from "@crm/gen/crm/records/v1/privacy_pb";

function personId(id: string): string {
  if (!isUuid(id)) throw invalid([{ field: "personId", description: id ? `must be a person id (UUID), got ${JSON.stringify(id.slice(0, 80))}` : "is required: the person's id (UUID)" }]);
  return id.toLowerCase();
}

export function privacyService(db: Client<typeof DbPrivacyService>): ServiceImpl<typeof PrivacyService> {
  return {
    async exportPersonData(req) {
      const { response } = await db.exportPersonDataDB({ request: { personId: personId(req.personId) } });
      return response ?? {};
    },
    async erasePerson(req) {
      const { response } = await db.erasePersonDB({ request: { personId: personId(req.personId) } });
      return response ?? {};
    },
  };
}
