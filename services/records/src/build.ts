/**
 * records' one wiring, used by its own process (main.ts) and by the all-in-one; the caller only
 * chooses how dbservice is reached (over mTLS, or in memory) and passes the settings.
 */
import type { Basics, ServiceModule } from "@crm/kit";
import { DbRecordsService } from "@crm/gen/crm/db/v1/db_records_pb";
import type { RecordsConfig } from "./config.js";
import { createRecordsModule } from "./module.js";

export interface RecordsBuildDeps extends Pick<Basics, "peer" | "log"> {
  cfg: RecordsConfig;
}

export async function build(d: RecordsBuildDeps): Promise<ServiceModule> {
  return createRecordsModule({
    db: d.peer("dbservice", DbRecordsService),
    trash: { log: d.log, intervalMs: d.cfg.RECORDS_TRASH_SWEEP_INTERVAL_SECONDS * 1000 },
  });
}
