/**
 * The records service module: CompanyService, PersonService, PipelineService, DealService,
 * TimelineService, FieldService, TaskService, NoteService, plus the trash's 30-day purge job.
 */
import type { Client } from "@connectrpc/connect";
import type { Logger, ServiceModule } from "@crm/kit";
import type { DbRecordsService } from "@crm/gen/crm/db/v1/db_records_pb";
import { CompanyService } from "@crm/gen/crm/records/v1/company_pb";
import { DealService } from "@crm/gen/crm/records/v1/deal_pb";
import { FieldService } from "@crm/gen/crm/records/v1/field_pb";
import { NoteService } from "@crm/gen/crm/records/v1/note_pb";
import { PersonService } from "@crm/gen/crm/records/v1/person_pb";
import { PipelineService } from "@crm/gen/crm/records/v1/pipeline_pb";
import { TaskService } from "@crm/gen/crm/records/v1/task_pb";
import { TimelineService } from "@crm/gen/crm/records/v1/timeline_pb";
import { recordsServices } from "./records-service.js";
import { createTrashSweeper } from "./trash-sweeper.js";

export interface RecordsModuleDeps {
  db: Client<typeof DbRecordsService>;
  /** Runs the trash's 30-day purge every intervalMs when set. */
  trash?: { log: Logger; intervalMs: number } | undefined;
}

export function createRecordsModule(d: RecordsModuleDeps): ServiceModule {
  const s = recordsServices({ db: d.db });
  const sweeper = d.trash && createTrashSweeper({ db: d.db, log: d.trash.log, intervalMs: d.trash.intervalMs });
  sweeper?.start();
  return {
    name: "records",
    services: [CompanyService, PersonService, PipelineService, DealService, TimelineService, FieldService, TaskService, NoteService],
    routes(router) {
      router.service(CompanyService, s.companies);
      router.service(PersonService, s.people);
      router.service(PipelineService, s.pipelines);
      router.service(DealService, s.deals);
      router.service(TimelineService, s.timeline);
      router.service(FieldService, s.fields);
      router.service(TaskService, s.tasks);
      router.service(NoteService, s.notes);
    },
    close: async () => sweeper?.stop(),
  };
}
