/**
 * Services whose handlers are not written yet: their RPCs answer `unimplemented` (never a fake
 * success). Each entry goes away when its service lands.
 */
import type { DescService } from "@bufbuild/protobuf";
import type { ServiceModule } from "@crm/kit";

export function placeholderModule(name: string, service: DescService): ServiceModule {
  return { name, services: [service], routes: (router) => void router.service(service, {}) };
}

export const placeholders: Record<string, DescService> = {};
