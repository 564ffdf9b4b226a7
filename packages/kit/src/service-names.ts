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
} as const;
export type ServiceName = keyof typeof servicePorts;
