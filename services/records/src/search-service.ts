/**
 * The crm.records.v1 handler of SearchService: checks the request (every bad field at once,
 * nothing sent on) and forwards it to dbservice's DbRecordsService, which searches as the caller.
 */
import type { Client, ServiceImpl } from "@connectrpc/connect";
import { AppError, invalid, type Violation } from "@crm/kit";
import type { DbRecordsService } from "@crm/gen/crm/db/v1/db_records_pb";
import type { SearchService } from "@crm/gen/crm/records/v1/search_pb";
import { checkSearch } from "./rules.js";

export function searchService(db: Client<typeof DbRecordsService>): ServiceImpl<typeof SearchService> {
  return {
    async search(request) {
      const v: Violation[] = [];
      checkSearch(request, v);
      if (v.length) throw invalid(v);
      const res = await db.searchDB({ request });
      if (!res.response) throw new AppError("internal", "the records store sent an empty answer");
      return res.response;
    },
  };
}
