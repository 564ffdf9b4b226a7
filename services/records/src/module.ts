/** The records service module: CompanyService, PersonService, PipelineService, DealService, TimelineService. */
import type { Client } from "@connectrpc/connect";
import type { ServiceModule } from "@crm/kit";
import type { DbRecordsService } from "@crm/gen/crm/db/v1/db_records_pb";
import { CompanyService } from "@crm/gen/crm/records/v1/company_pb";
import { DealService } from "@crm/gen/crm/records/v1/deal_pb";
import { PersonService } from "@crm/gen/crm/records/v1/person_pb";
import { PipelineService } from "@crm/gen/crm/records/v1/pipeline_pb";
import { TimelineService } from "@crm/gen/crm/records/v1/timeline_pb";
import { recordsServices } from "./records-service.js";

export interface RecordsModuleDeps {
  db: Client<typeof DbRecordsService>;
}

export function createRecordsModule(d: RecordsModuleDeps): ServiceModule {
  const s = recordsServices({ db: d.db });
  return {
    name: "records",
    services: [CompanyService, PersonService, PipelineService, DealService, TimelineService],
    routes(router) {
      router.service(CompanyService, s.companies);
      router.service(PersonService, s.people);
      router.service(PipelineService, s.pipelines);
      router.service(DealService, s.deals);
      router.service(TimelineService, s.timeline);
    },
  };
}
