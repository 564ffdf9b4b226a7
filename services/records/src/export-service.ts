/**
 * The crm.records.v1 ExportService handler: the list as CSV pages from dbservice (ExportPageDB,
 * keyset-paged, CSV made by PostgreSQL's COPY), streamed on as they come, the next page asked for
 * while this one is sent: at most two pages in memory. UTF-8 with a BOM so Excel opens it.
 */
import type { Client, ServiceImpl } from "@connectrpc/connect";
import { invalid } from "@crm/kit";
import type { DbImportService } from "@crm/gen/crm/db/v1/db_records_import_pb";
import { ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import type { ExportRecordsRequest, ExportService } from "@crm/gen/crm/records/v1/export_pb";

const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

/** The CSV's bytes, page by page; `rows` counts what was sent. */
export async function* exportCsv(db: Client<typeof DbImportService>, request: ExportRecordsRequest, pageSize = 20_000): AsyncGenerator<{ data: Uint8Array; rows: bigint }> {
  if (![ObjectType.COMPANY, ObjectType.PERSON, ObjectType.DEAL].includes(request.objectType)) {
    throw invalid([{ field: "objectType", description: "must be OBJECT_TYPE_COMPANY, OBJECT_TYPE_PERSON or OBJECT_TYPE_DEAL" }]);
  }
  if (request.columns.length > 200) throw invalid([{ field: "columns", description: "at most 200 columns" }]);
  if (request.viewId) throw invalid([{ field: "viewId", description: "is not supported yet: send the view's filter, orderBy and columns" }]);
  let rows = 0n;
  // One page ahead: the store makes page n+1 while page n goes to the client.
  const fetchPage = (pageToken: string, withHeader: boolean) => {
    const p = db.exportPageDB({ request, pageToken, pageSize, withHeader });
    p.catch(() => undefined); // a page fetched ahead for a client that went away: nobody awaits it
    return p;
  };
  let next = fetchPage("", true);
  for (let first = true; ; first = false) {
    const page = await next;
    if (page.nextPageToken) next = fetchPage(page.nextPageToken, false);
    rows += page.rows;
    yield { data: first ? Buffer.concat([BOM, page.data]) : page.data, rows };
    if (!page.nextPageToken) return;
  }
}

export function exportService(db: Client<typeof DbImportService>): ServiceImpl<typeof ExportService> {
  return {
    async *exportRecords(request) {
      yield* exportCsv(db, request);
    },
  };
}
