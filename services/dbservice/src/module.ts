/** dbservice: the only holder of database credentials. Serves every mounted domain store (mounts.ts). */
import type { ServiceModule } from "@crm/kit";
import { defaultEmailQueue } from "@crm/email/store";
import { AUDIT_QUEUE } from "@crm/contracts";
import type { Relay } from "./relay.js";
import type { Db } from "./db.js";
import { mounts, type StoreContext } from "./mounts.js";

export interface DbModuleDeps {
  db: Db;
  /** The e-mail work queue (EMAIL_QUEUE; default email_tasks) that e-mail tasks are routed to. */
  emailQueue?: string | undefined;
  /** The queue audit events are routed to (AUDIT_QUEUE; default audit_events). */
  auditQueue?: string | undefined;
  /** The outbox relay (relay.ts): closed with the module; woken after each commit that wrote to the outbox. */
  relay?: Pick<Relay, "afterCommit" | "close"> | undefined;
}

export function createDbModule({ db, emailQueue, auditQueue, relay }: DbModuleDeps): ServiceModule {
  const afterOutbox = () => relay?.afterCommit();
  const ctx: StoreContext = { db, afterOutbox, email: { queue: emailQueue ?? defaultEmailQueue, afterOutbox }, auditQueue: auditQueue ?? AUDIT_QUEUE };
  return {
    name: "dbservice",
    services: mounts.map((m) => m.service),
    // Run before a tenant is known: no user token, each guarded by requirePeer instead.
    publicMethods: mounts.flatMap((m) => m.publicMethods),
    routes(router) {
      for (const m of mounts) m.routes(router, ctx);
    },
    ready: () => db.ping(),
    close: async () => {
      await relay?.close();
      await db.close();
    },
  };
}
