/**
 * Services whose handlers are not written yet: their RPCs answer `unimplemented` (never a fake
 * success). Each entry goes away when its service lands.
 */
import type { DescService } from "@bufbuild/protobuf";
import type { ServiceModule } from "@crm/kit";
import { AdminService } from "@crm/gen/crm/admin/v1/admin_pb";
import { CacheService } from "@crm/gen/crm/cache/v1/cache_pb";
import { ChatService } from "@crm/gen/crm/chat/v1/chat_pb";
import { EmailService } from "@crm/gen/crm/email/v1/email_pb";
import { LogsService } from "@crm/gen/crm/logs/v1/logs_pb";
import { TimerService } from "@crm/gen/crm/timer/v1/timer_pb";

export function placeholderModule(name: string, service: DescService): ServiceModule {
  return { name, services: [service], routes: (router) => void router.service(service, {}) };
}

export const placeholders = {
  chats: ChatService,
  timers: TimerService,
  admin: AdminService,
  email: EmailService,
  logs: LogsService,
  cache: CacheService,
} as const;
