/**
 * records' one wiring, used by its own process (main.ts) and by the all-in-one; the caller only
 * chooses how dbservice is reached (over mTLS, or in memory). It has no settings of its own yet.
 */
import type { Basics, ServiceModule } from "@crm/kit";
import { DbRecordsService } from "@crm/gen/crm/db/v1/db_records_pb";
import { createRecordsModule } from "./module.js";

export type RecordsBuildDeps = Pick<Basics, "peer">;

export async function build(d: RecordsBuildDeps): Promise<ServiceModule> {
  return createRecordsModule({ db: d.peer("dbservice", DbRecordsService) });
}
