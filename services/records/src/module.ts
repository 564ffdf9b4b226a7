/**
 * The records service module: CompanyService, PersonService, PipelineService, DealService,
 * TimelineService, FieldService, TaskService, NoteService, RecordStreamService (live lists through
 * the event bus), SearchService, ViewService, ReportService, PermissionService, plus the trash's 30-day purge job.
 */
import type { Client } from "@connectrpc/connect";
import type { EventBus, Logger, ServiceModule } from "@crm/kit";
import type { DbRecordsService } from "@crm/gen/crm/db/v1/db_records_pb";
import { CompanyService } from "@crm/gen/crm/records/v1/company_pb";
import { DealService } from "@crm/gen/crm/records/v1/deal_pb";
import { FieldService } from "@crm/gen/crm/records/v1/field_pb";
import { NoteService } from "@crm/gen/crm/records/v1/note_pb";
import { PersonService } from "@crm/gen/crm/records/v1/person_pb";
import { PipelineService } from "@crm/gen/crm/records/v1/pipeline_pb";
import { PermissionService } from "@crm/gen/crm/records/v1/permission_pb";
import { PrivacyService } from "@crm/gen/crm/records/v1/privacy_pb";
import type { DbPrivacyService } from "@crm/gen/crm/db/v1/db_privacy_pb";
import { ReportService } from "@crm/gen/crm/records/v1/report_pb";
import { SearchService } from "@crm/gen/crm/records/v1/search_pb";
import { RecordStreamService } from "@crm/gen/crm/records/v1/stream_pb";
import { ViewService } from "@crm/gen/crm/records/v1/view_pb";
import { TaskService } from "@crm/gen/crm/records/v1/task_pb";
import { TimelineService } from "@crm/gen/crm/records/v1/timeline_pb";
import { ExportService } from "@crm/gen/crm/records/v1/export_pb";
import { ImportService } from "@crm/gen/crm/records/v1/import_pb";
import type { DbImportService } from "@crm/gen/crm/db/v1/db_records_import_pb";
import type { TokenVerifier } from "@crm/kit";
import { hostname } from "node:os";
import { exportService } from "./export-service.js";
import { importHttp } from "./import-http.js";
import { createImportRunner } from "./import-runner.js";
import { defaultImportLimits, importService } from "./import-service.js";
import { createHub } from "./hub.js";
import { recordsServices } from "./records-service.js";
import { permissionService } from "./permission-service.js";
import { privacyService } from "./privacy-service.js";
import { reportService } from "./report-service.js";
import { searchService } from "./search-service.js";
import { createTrashSweeper } from "./trash-sweeper.js";
import { createChangesTrimmer } from "./changes-trimmer.js";
import { viewService } from "./view-service.js";
import { recordStream } from "./watch.js";

export interface RecordsModuleDeps {
  db: Client<typeof DbRecordsService>;
  /** Runs the trash's 30-day purge every intervalMs when set. */
  trash?: { log: Logger; intervalMs: number } | undefined;
  /** Trims the stored record changes (WatchRecords' replay) every intervalMs when set. */
  changes?: { log: Logger; intervalMs: number; retentionDays: number; keepVersions: number } | undefined;
  /** WatchRecords: live changes from the bus, heartbeats, per-stream buffer. */
  live: { bus: EventBus; log: Logger; heartbeatMs: number; maxBuffered?: number };
  /** ImportService and ExportService (import-service.ts, export-service.ts), their HTTP endpoints and this replica's job runner. */
  /** PrivacyService (privacy-service.ts): a person's export and erasure. */
  privacy?: Client<typeof DbPrivacyService> | undefined;
  imports?: { db: Client<typeof DbImportService>; verifier: TokenVerifier; log: Logger; maxBytes: number; batch: number; pollMs: number; leaseSeconds: number } | undefined;
}

export async function createRecordsModule(d: RecordsModuleDeps): Promise<ServiceModule> {
  const s = recordsServices({ db: d.db });
  const hub = await createHub({ bus: d.live.bus, log: d.live.log });
  const stream = recordStream({ db: d.db, hub, heartbeatMs: d.live.heartbeatMs, maxBuffered: d.live.maxBuffered });
  const sweeper = d.trash && createTrashSweeper({ db: d.db, log: d.trash.log, intervalMs: d.trash.intervalMs });
  sweeper?.start();
  const trimmer = d.changes && createChangesTrimmer({ db: d.db, ...d.changes });
  trimmer?.start();
  const im = d.imports;
  const runner = im && createImportRunner({ db: im.db, log: im.log, owner: `${hostname()}:${process.pid}`, pollMs: im.pollMs, leaseSeconds: im.leaseSeconds, batch: im.batch });
  runner?.start();
  const limits = { ...defaultImportLimits, maxBytes: im?.maxBytes ?? defaultImportLimits.maxBytes };
  return {
    name: "records",
    services: [CompanyService, PersonService, PipelineService, DealService, TimelineService, FieldService, TaskService, NoteService, RecordStreamService, SearchService, ViewService, ReportService, ...(d.privacy ? [PrivacyService] : []), ...(im ? [ImportService, ExportService] : [])],
    routes(router) {
      router.service(CompanyService, s.companies);
      router.service(PersonService, s.people);
      router.service(PipelineService, s.pipelines);
      router.service(DealService, s.deals);
      router.service(TimelineService, s.timeline);
      router.service(FieldService, s.fields);
      router.service(TaskService, s.tasks);
      router.service(NoteService, s.notes);
      router.service(RecordStreamService, stream);
      router.service(SearchService, searchService(d.db));
      router.service(ViewService, viewService(d.db));
      router.service(ReportService, reportService(d.db));
      router.service(PermissionService, permissionService(d.db));
      if (d.privacy) router.service(PrivacyService, privacyService(d.privacy));
      if (im) {
        router.service(ImportService, importService({ db: im.db, limits, nudge: () => runner?.nudge() }));
        router.service(ExportService, exportService(im.db));
      }
    },
    ...(im ? { http: importHttp({ db: im.db, verifier: im.verifier, log: im.log, limits }) } : {}),
    close: async () => {
      sweeper?.stop();
      await trimmer?.stop();
      await runner?.stop();
      await hub.close();
    },
  };
}
