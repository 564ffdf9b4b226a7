/**
 * The records service module: CompanyService, PersonService, PipelineService, DealService,
 * TimelineService, FieldService, TaskService, NoteService, RecordStreamService (live lists through
 * the event bus), SearchService, ViewService, ReportService, plus the trash's 30-day purge job.
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
import { ReportService } from "@crm/gen/crm/records/v1/report_pb";
import { SearchService } from "@crm/gen/crm/records/v1/search_pb";
import { RecordStreamService } from "@crm/gen/crm/records/v1/stream_pb";
import { ViewService } from "@crm/gen/crm/records/v1/view_pb";
import { TaskService } from "@crm/gen/crm/records/v1/task_pb";
import { TimelineService } from "@crm/gen/crm/records/v1/timeline_pb";
import { createHub } from "./hub.js";
import { recordsServices } from "./records-service.js";
import { permissionService } from "./permission-service.js";
import { reportService } from "./report-service.js";
import { searchService } from "./search-service.js";
import { createTrashSweeper } from "./trash-sweeper.js";
import { viewService } from "./view-service.js";
import { recordStream } from "./watch.js";

export interface RecordsModuleDeps {
  db: Client<typeof DbRecordsService>;
  /** Runs the trash's 30-day purge every intervalMs when set. */
  trash?: { log: Logger; intervalMs: number } | undefined;
  /** WatchRecords: live changes from the bus, heartbeats, per-stream buffer. */
  live: { bus: EventBus; log: Logger; heartbeatMs: number; maxBuffered?: number };
}

export async function createRecordsModule(d: RecordsModuleDeps): Promise<ServiceModule> {
  const s = recordsServices({ db: d.db });
  const hub = await createHub({ bus: d.live.bus, log: d.live.log });
  const stream = recordStream({ db: d.db, hub, heartbeatMs: d.live.heartbeatMs, maxBuffered: d.live.maxBuffered });
  const sweeper = d.trash && createTrashSweeper({ db: d.db, log: d.trash.log, intervalMs: d.trash.intervalMs });
  sweeper?.start();
  return {
    name: "records",
    services: [CompanyService, PersonService, PipelineService, DealService, TimelineService, FieldService, TaskService, NoteService, RecordStreamService, SearchService, ViewService, ReportService, PermissionService],
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
    },
    close: async () => {
      sweeper?.stop();
      await hub.close();
    },
  };
}
