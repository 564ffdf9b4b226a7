import { z } from "zod";
import { env } from "@crm/kit";
import { EMAIL_QUEUE } from "@crm/contracts";

export const emailEnv = z.object({
  /** smtp://user:pass@host:587 (STARTTLS when the server offers it) or smtps://host:465. Query options reach nodemailer, e.g. ?tls.rejectUnauthorized=false. Unset: e-mails are written as .eml files under DATA_DIR/outbox. */
  SMTP_URL: env.url(["smtp", "smtps"]),
  /** The From header of every e-mail; its domain also names the Message-IDs. */
  EMAIL_FROM: env.str("CRM <no-reply@crm.localhost>"),
  /** Where .eml files go when SMTP_URL is unset (DATA_DIR/outbox). */
  DATA_DIR: env.str("./data"),
  /** The durable work queue of e-mail tasks (dbservice must use the same name). */
  EMAIL_QUEUE: env.str(EMAIL_QUEUE),
  /** Concurrent workers, each with its own SMTP connection and AMQP consumer. 0: this process sends nothing (SendEmail still queues). */
  EMAIL_WORKERS: env.int(5, 0, 64),
  /** Tasks each worker holds unacknowledged, sent one at a time; from 2 on, the next task's status lookup is done while the worker sends (it then waits only for its "sent" record between two e-mails). */
  EMAIL_PREFETCH: env.int(2, 1, 100),
  /** Delivery attempts before an e-mail is failed and its task dead-lettered. */
  EMAIL_MAX_ATTEMPTS: env.int(6, 1, 50),
  /** Delay before the second attempt; it doubles for each further one (at most EMAIL_RETRY_MAX_MS). */
  EMAIL_RETRY_BASE_MS: env.int(5_000, 0, 3_600_000),
  EMAIL_RETRY_MAX_MS: env.int(10 * 60_000, 0, 24 * 3_600_000),
  /** E-mails per second one company may send; past it its tasks wait, so other companies' mail goes first. */
  EMAIL_COMPANY_RATE_PER_SECOND: env.int(50, 1, 100_000),
  /** Socket timeout of one SMTP conversation. */
  SMTP_TIMEOUT_MS: env.int(30_000, 100, 600_000),
});

export type EmailConfig = z.infer<typeof emailEnv>;
