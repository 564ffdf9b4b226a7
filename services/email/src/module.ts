/** The email service module: EmailService plus the workers that consume `email_tasks`. */
import { join } from "node:path";
import type { Client } from "@connectrpc/connect";
import type { Counter, EventBus, Logger, ServiceModule, TokenVerifier } from "@crm/kit";
import type { DbEmailService } from "@crm/gen/crm/db/v1/db_email_pb";
import { EmailService } from "@crm/gen/crm/email/v1/email_pb";
import type { EmailConfig } from "./config.js";
import { emailService } from "./email-service.js";
import { fileSender, smtpSender, type Sender } from "./transport.js";
import { startEmailWorkers, type EmailWorkers } from "./worker.js";

export interface EmailModuleDeps {
  cfg: EmailConfig;
  db: Client<typeof DbEmailService>;
  bus: EventBus;
  counter: Counter;
  verifier: TokenVerifier;
  log: Logger;
}

export type EmailModule = ServiceModule & { workers: EmailWorkers };

// Service callers without a user token must get past the auth interceptor; the handlers check the caller.
export const emailPublicMethods = ["SendEmail", "GetEmailStatus"].map((m) => `/${EmailService.typeName}/${m}`);

export async function createEmailModule(d: EmailModuleDeps): Promise<EmailModule> {
  const { cfg } = d;
  const senderOpts = { from: cfg.EMAIL_FROM, timeoutMs: cfg.SMTP_TIMEOUT_MS };
  let newSender: () => Sender;
  if (cfg.SMTP_URL) {
    const url = cfg.SMTP_URL;
    newSender = () => smtpSender(url, senderOpts);
  } else {
    const files = cfg.EMAIL_WORKERS > 0 ? fileSender(join(cfg.DATA_DIR, "outbox"), senderOpts, d.log) : undefined;
    newSender = () => files!;
  }
  const workers = await startEmailWorkers({
    bus: d.bus,
    db: d.db,
    newSender,
    counter: d.counter,
    log: d.log,
    cfg: {
      queue: cfg.EMAIL_QUEUE,
      workers: cfg.EMAIL_WORKERS,
      prefetch: cfg.EMAIL_PREFETCH,
      maxAttempts: cfg.EMAIL_MAX_ATTEMPTS,
      retryBaseMs: cfg.EMAIL_RETRY_BASE_MS,
      retryMaxMs: cfg.EMAIL_RETRY_MAX_MS,
      companyRatePerSecond: cfg.EMAIL_COMPANY_RATE_PER_SECOND,
    },
  });
  const impl = emailService({ db: d.db, verifier: d.verifier });
  return {
    name: "email",
    services: [EmailService],
    publicMethods: emailPublicMethods,
    workers,
    routes(router) {
      router.service(EmailService, impl);
    },
    ready: () => d.bus.ready(),
    close: () => workers.close(),
  };
}
