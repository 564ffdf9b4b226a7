/**
 * The services' names and the ports of the original design. A leaf module: runtime.ts (which
 * re-exports both) and service-identities.ts import it, so neither imports the other.
 */
export const servicePorts = {
  auth: 50055,
  dbservice: 8081,
  chats: 50095,
  timers: 50020,
  admin: 50070,
  email: 50051,
  logs: 50150,
  cache: 50060,
  records: 50110,
  webhooks: 50130,
} as const;
export type ServiceName = keyof typeof servicePorts;

/**
 * The service that answers server reflection for the gateway (as it answers gRPC health there):
 * its process describes the whole public API (public-api.ts, loaded by that process only).
 */
export const reflectionService: ServiceName = "auth";
