/**
 * email's one wiring (EmailService and the workers), used by its own process (main.ts) and by the
 * all-in-one; the caller only chooses the providers (how dbservice is reached, the event bus:
 * RabbitMQ or memory, the sending-rate counter: Redis or memory). SMTP_URL, else .eml files
 * under DATA_DIR/outbox, is a setting (module.ts).
 */
import type { Basics, Counter, EventBus } from "@crm/kit";
import { DbEmailService } from "@crm/gen/crm/db/v1/db_email_pb";
import type { EmailConfig } from "./config.js";
import { createEmailModule, type EmailModule } from "./module.js";

export interface EmailBuildDeps extends Pick<Basics, "log" | "peer" | "verifier"> {
  cfg: EmailConfig;
  /** The e-mail tasks' queue (EMAIL_QUEUE), fed by dbservice's outbox relay. */
  bus: EventBus;
  /** Each company's sending rate. */
  counter: Counter;
}

export async function build(d: EmailBuildDeps): Promise<EmailModule> {
  return createEmailModule({ cfg: d.cfg, db: d.peer("dbservice", DbEmailService), bus: d.bus, counter: d.counter, verifier: d.verifier, log: d.log });
}
