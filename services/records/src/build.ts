/**
 * records' one wiring, used by its own process (main.ts) and by the all-in-one; the caller only
 * chooses the providers (how dbservice is reached, the event bus: RabbitMQ or memory) and passes
 * the settings.
 */
import type { Basics, EventBus, ServiceModule } from "@crm/kit";
import { DbRecordsService } from "@crm/gen/crm/db/v1/db_records_pb";
import { DbImportService } from "@crm/gen/crm/db/v1/db_records_import_pb";
import { DbPrivacyService } from "@crm/gen/crm/db/v1/db_privacy_pb";
import type { RecordsConfig } from "./config.js";
import { createRecordsModule } from "./module.js";

export interface RecordsBuildDeps extends Pick<Basics, "peer" | "log" | "verifier"> {
  cfg: RecordsConfig;
  /** Live record changes (the records.events exchange the outbox relay publishes to), for WatchRecords. */
  bus: EventBus;
}

export async function build(d: RecordsBuildDeps): Promise<ServiceModule> {
  return createRecordsModule({
    db: d.peer("dbservice", DbRecordsService),
    trash: { log: d.log, intervalMs: d.cfg.RECORDS_TRASH_SWEEP_INTERVAL_SECONDS * 1000 },
    changes: { log: d.log, intervalMs: d.cfg.RECORDS_CHANGES_TRIM_INTERVAL_SECONDS * 1000, retentionDays: d.cfg.RECORDS_CHANGES_RETENTION_DAYS, keepVersions: d.cfg.RECORDS_CHANGES_KEEP_VERSIONS },
    privacy: d.peer("dbservice", DbPrivacyService),
    live: { bus: d.bus, log: d.log, heartbeatMs: d.cfg.RECORDS_HEARTBEAT_MS, maxBuffered: d.cfg.RECORDS_STREAM_BUFFER },
    imports: {
      db: d.peer("dbservice", DbImportService),
      verifier: d.verifier,
      log: d.log,
      maxBytes: d.cfg.RECORDS_IMPORT_MAX_BYTES,
      batch: d.cfg.RECORDS_IMPORT_BATCH,
      pollMs: d.cfg.RECORDS_IMPORT_POLL_MS,
      leaseSeconds: d.cfg.RECORDS_IMPORT_LEASE_SECONDS,
    },
  });
}
