/**
 * The crm.records.v1 ExportService handler: the list as CSV pages from dbservice (ExportPageDB,
 * keyset-paged, CSV lines made by PostgreSQL), streamed on as they come: one page in memory at a
 * time. UTF-8 with a BOM so Excel opens it.
 */
import type { Client, ServiceImpl } from "@connectrpc/connect";
import { invalid } from "@crm/kit";
import type { DbImportService } from "@crm/gen/crm/db/v1/db_records_import_pb";
import { ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import type { ExportRecordsRequest, ExportService } from "@crm/gen/crm/records/v1/export_pb";

const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

/** The CSV's bytes, page by page; `rows` counts what was sent. */
export async function* exportCsv(db: Client<typeof DbImportService>, request: ExportRecordsRequest, pageSize = 10_000): AsyncGenerator<{ data: Uint8Array; rows: bigint }> {
  if (![ObjectType.COMPANY, ObjectType.PERSON, ObjectType.DEAL].includes(request.objectType)) {
    throw invalid([{ field: "objectType", description: "must be OBJECT_TYPE_COMPANY, OBJECT_TYPE_PERSON or OBJECT_TYPE_DEAL" }]);
  }
  if (request.columns.length > 200) throw invalid([{ field: "columns", description: "at most 200 columns" }]);
  if (request.viewId) throw invalid([{ field: "viewId", description: "is not supported yet: send the view's filter, orderBy and columns" }]);
  let token = "";
  let rows = 0n;
  let first = true;
  for (;;) {
    const page = await db.exportPageDB({ request, pageToken: token, pageSize, withHeader: first });
    rows += page.rows;
    yield { data: first ? Buffer.concat([BOM, page.data]) : page.data, rows };
    first = false;
    token = page.nextPageToken;
    if (!token) return;
  }
}

export function exportService(db: Client<typeof DbImportService>): ServiceImpl<typeof ExportService> {
  return {
    async *exportRecords(request) {
      yield* exportCsv(db, request);
    },
  };
}
