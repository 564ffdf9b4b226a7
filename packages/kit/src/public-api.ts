/**
 * The API the gateway routes: every public service, i.e. everything but the internal crm.db.v1.
 * The gateway sends server reflection (grpcurl, buf curl) to auth, as it sends gRPC health there,
 * so auth's server describes all of these, not only its own services (runtime.ts). A new public
 * service goes here and into services/gateway/nginx.conf.template's routes;
 * services/gateway/test/reflection.test.ts checks both against packages/gen.
 */
import type { DescService } from "@bufbuild/protobuf";
import { AdminService } from "@crm/gen/crm/admin/v1/admin_pb";
import { AuditService } from "@crm/gen/crm/admin/v1/audit_pb";
import { ApiKeyService } from "@crm/gen/crm/auth/v1/api_keys_pb";
import { AuthService } from "@crm/gen/crm/auth/v1/auth_pb";
import { CacheService } from "@crm/gen/crm/cache/v1/cache_pb";
import { ChatService } from "@crm/gen/crm/chat/v1/chat_pb";
import { EmailService } from "@crm/gen/crm/email/v1/email_pb";
import { LogsService } from "@crm/gen/crm/logs/v1/logs_pb";
import { CompanyService } from "@crm/gen/crm/records/v1/company_pb";
import { DealService } from "@crm/gen/crm/records/v1/deal_pb";
import { ExportService } from "@crm/gen/crm/records/v1/export_pb";
import { FieldService } from "@crm/gen/crm/records/v1/field_pb";
import { ImportService } from "@crm/gen/crm/records/v1/import_pb";
import { NoteService } from "@crm/gen/crm/records/v1/note_pb";
import { PermissionService } from "@crm/gen/crm/records/v1/permission_pb";
import { PersonService } from "@crm/gen/crm/records/v1/person_pb";
import { PipelineService } from "@crm/gen/crm/records/v1/pipeline_pb";
import { PrivacyService } from "@crm/gen/crm/records/v1/privacy_pb";
import { ReportService } from "@crm/gen/crm/records/v1/report_pb";
import { SearchService } from "@crm/gen/crm/records/v1/search_pb";
import { RecordStreamService } from "@crm/gen/crm/records/v1/stream_pb";
import { TaskService } from "@crm/gen/crm/records/v1/task_pb";
import { TimelineService } from "@crm/gen/crm/records/v1/timeline_pb";
import { ViewService } from "@crm/gen/crm/records/v1/view_pb";
import { TimerService } from "@crm/gen/crm/timer/v1/timer_pb";
import { WebhookService } from "@crm/gen/crm/webhooks/v1/webhooks_pb";
import { reflectionService, type ServiceName } from "./service-names.js";

export const publicApi: readonly DescService[] = [
  AuthService,
  ApiKeyService,
  ChatService,
  TimerService,
  AdminService,
  AuditService,
  EmailService,
  LogsService,
  CacheService,
  CompanyService,
  PersonService,
  PipelineService,
  DealService,
  TimelineService,
  FieldService,
  TaskService,
  NoteService,
  RecordStreamService,
  SearchService,
  ViewService,
  ImportService,
  ExportService,
  ReportService,
  PermissionService,
  PrivacyService,
  WebhookService,
];

export { reflectionService };

/** The services a process's server reflection describes besides its own: the public API for auth. */
export function reflectedBy(service: ServiceName): readonly DescService[] | undefined {
  return service === reflectionService ? publicApi : undefined;
}
