/**
 * A webhooks worker as its own process, for the SIGKILL test: the real store on the database of
 * TEST_WEBHOOKS_DATABASE_URL, the delivery workers and the guarded sender (loopback allowed).
 * Prints "ready" once leasing; the test kills it with SIGKILL mid-delivery.
 */
import pg from "pg";
import { createClient } from "@connectrpc/connect";
import { DbWebhooksService } from "@crm/gen/crm/db/v1/db_webhooks_pb";
import { inMemory } from "@crm/testkit";
import { auditLog } from "@crm/admin/store";
import { queueEmails } from "@crm/email/store";
import { createDb } from "@crm/dbservice/db";
import { webhooksStore } from "../store/index.js";
import { createDeliverer } from "../src/deliverer.js";
import { createGuard } from "../src/guard.js";
import { createSender } from "../src/sender.js";
import { storePublic } from "./harness.js";

const db = createDb(new pg.Pool({ connectionString: process.env.TEST_WEBHOOKS_DATABASE_URL, max: 4 }));
const mem = inMemory();
const impl = webhooksStore(db, { audit: auditLog(db), emails: { queue: (sql, c, e) => queueEmails(db, sql, { queue: "email_tasks" }, c, e), afterOutbox: () => {} } });
const store = createClient(DbWebhooksService, mem.serve((r) => void r.service(DbWebhooksService, impl), { from: "webhooks", publicMethods: storePublic }));
const timeoutMs = 10_000;
const deliverer = createDeliverer({
  db: store,
  send: createSender({ guard: createGuard({ allowCidrs: ["127.0.0.0/8"] }), timeoutMs, maxBytes: 1024 }),
  log: mem.log,
  clock: Date.now,
  concurrency: 4,
  perEndpoint: 4,
  timeoutMs,
  pollMs: 50,
  settleMs: 5,
});
deliverer.start();
// The workers' timers do not hold a process open; this one runs until killed.
setInterval(() => {}, 60_000);
process.stdout.write("ready\n");
