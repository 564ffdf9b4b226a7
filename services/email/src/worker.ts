/**
 * The e-mail workers: EMAIL_WORKERS consumers of the durable `email_tasks` queue, each with its
 * own SMTP connection, handling one task at a time. A task is acknowledged only after the SMTP
 * server accepted the message and the e-mail was recorded as sent.
 *
 * Exactly-once, as far as SMTP allows: the e-mail id is the Message-ID, and a task whose e-mail is
 * already sent (a redelivery after a crash, a duplicate from the outbox relay) is dropped without
 * sending. The one window left is a crash after the server's "250 OK" and before the record
 * commits: the redelivered task sends the message again, with the same Message-ID.
 *
 * Failures: a temporary one (4xx, connection refused, timeout) is recorded (attempts, last_error)
 * and retried after EMAIL_RETRY_BASE_MS · 2^(n-1); a permanent refusal (5xx), or the last of
 * EMAIL_MAX_ATTEMPTS, marks the e-mail failed and dead-letters the task (`<queue>.dead`).
 * A company over EMAIL_COMPANY_RATE_PER_SECOND has its tasks put back for about a second (no
 * attempt counted), so one tenant's bulk invite cannot hold every worker.
 */
import { fromBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { Client } from "@connectrpc/connect";
import { RetryLaterError, callContext, consumeInTrace, type Consumer, type Counter, type Delivery, type EventBus, type Logger } from "@crm/kit";
import { DbEmailService } from "@crm/gen/crm/db/v1/db_email_pb";
import { EmailStatus, EmailTaskSchema, type EmailTask } from "@crm/gen/crm/email/v1/email_pb";
import { classify, type Sender } from "./transport.js";

export interface WorkerConfig {
  queue: string;
  workers: number;
  prefetch: number;
  maxAttempts: number;
  retryBaseMs: number;
  retryMaxMs: number;
  companyRatePerSecond: number;
}

export interface WorkerDeps {
  bus: EventBus;
  db: Client<typeof DbEmailService>;
  /** A new sender for each worker (its own SMTP connection). */
  newSender: () => Sender;
  counter: Counter;
  log: Logger;
  cfg: WorkerConfig;
}

export interface WorkerStats {
  sent: number;
  duplicates: number;
  retried: number;
  failed: number;
  deferred: number;
  /** Tasks that were malformed or named an unknown e-mail. */
  dropped: number;
}

export interface EmailWorkers {
  stats: WorkerStats;
  close(): Promise<void>;
}

export const deadLetterQueueOf = (queue: string) => `${queue}.dead`;

export const retryDelay = (cfg: Pick<WorkerConfig, "retryBaseMs" | "retryMaxMs">) => (attempt: number) =>
  Math.min(cfg.retryBaseMs * 2 ** (attempt - 1), cfg.retryMaxMs);

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Declares the work queue and its dead-letter queue (dbservice declares them with the same arguments). */
export async function declareEmailQueue(bus: EventBus, queue: string): Promise<void> {
  await bus.declareQueue(queue, { deadLetterQueue: deadLetterQueueOf(queue) });
}

/** How long a sent e-mail waits for the next task to share its "sent" record with, before it is recorded alone. */
const RECORD_ALONE_AFTER_MS = 2;

/** An e-mail the SMTP server accepted whose "sent" record is still to be written; its task is acked after. */
interface Unrecorded {
  task: EmailTask;
  messageId: string;
  recorded: () => void;
}

/** What handling a task left to do: nothing (ack now), or wait for its "sent" record before the ack. */
type Outcome = void | { recorded: Promise<void> };

export async function startEmailWorkers(deps: WorkerDeps): Promise<EmailWorkers> {
  const { bus, db, log, cfg } = deps;
  const stats: WorkerStats = { sent: 0, duplicates: 0, retried: 0, failed: 0, deferred: 0, dropped: 0 };
  const dlq = deadLetterQueueOf(cfg.queue);
  await declareEmailQueue(bus, cfg.queue);

  const sentRequest = (u: Unrecorded) => ({ emailId: u.task.emailId, companyId: u.task.companyId, sentAt: timestampFromDate(new Date()), smtpMessageId: u.messageId });

  /** Records a sent e-mail on its own, insisting (a lost record means a resend after a crash). */
  async function recordAlone(u: Unrecorded) {
    for (let i = 0; ; i++) {
      try {
        await db.markEmailSent(sentRequest(u));
        break;
      } catch (err) {
        if (i >= 8) {
          log.error({ email_id: u.task.emailId, company_id: u.task.companyId, err: String(err) }, "e-mail sent but not recorded as sent; a redelivery would send it again");
          break;
        }
        await new Promise((r) => setTimeout(r, Math.min(100 * 2 ** i, 5_000)));
      }
    }
    u.recorded();
  }

  async function deadLetter(msg: Delivery) {
    await bus.publish("", dlq, msg.body, { messageId: msg.messageId, contentType: msg.contentType, headers: msg.headers, persistent: true });
  }

  /** One worker: its SMTP connection, and the e-mail it sent last whose record is pending. */
  class Worker {
    private unrecorded: Unrecorded | undefined;
    private timer: NodeJS.Timeout | undefined;
    constructor(readonly sender: Sender) {}

    /** Takes the pending record (the caller writes it). */
    take(): Unrecorded | undefined {
      const u = this.unrecorded;
      this.unrecorded = undefined;
      clearTimeout(this.timer);
      return u;
    }

    /** The e-mail was accepted; its record goes with the next task's status check, or alone soon. */
    pend(task: EmailTask, messageId: string): Promise<void> {
      return new Promise<void>((recorded) => {
        this.unrecorded = { task, messageId, recorded };
        this.timer = setTimeout(() => {
          const u = this.take();
          if (u) void recordAlone(u);
        }, RECORD_ALONE_AFTER_MS);
      });
    }

    async handle(msg: Delivery): Promise<Outcome> {
      const prev = this.take();
      let task: EmailTask | undefined;
      try {
        task = fromBinary(EmailTaskSchema, msg.body);
      } catch {
        task = undefined;
      }
      if (!task || !uuid.test(task.emailId) || !uuid.test(task.companyId)) {
        if (prev) await recordAlone(prev);
        log.error({ message_id: msg.messageId }, "malformed e-mail task dead-lettered");
        await deadLetter(msg);
        stats.dropped++;
        return;
      }
      const ids = { email_id: task.emailId, company_id: task.companyId, attempt: msg.attempt };

      // One round trip: the previous e-mail's "sent" record, and this one's status (sent already?).
      let status: EmailStatus | undefined;
      try {
        const r = await db.advanceEmailWorker({ sent: prev ? sentRequest(prev) : undefined, next: { emailId: task.emailId, companyId: task.companyId } });
        prev?.recorded();
        status = r.nextFound ? r.next?.status : undefined;
      } catch (err) {
        if (prev) await recordAlone(prev);
        throw err; // database unavailable: this task again later
      }
      if (status === undefined) {
        log.warn(ids, "task for an unknown e-mail dropped");
        stats.dropped++;
        return;
      }
      if (status === EmailStatus.SENT || status === EmailStatus.FAILED) {
        stats.duplicates++;
        log.debug(ids, "task of an e-mail already sent or failed dropped");
        return;
      }

      const rateKey = `email:rate:${task.companyId}`;
      if ((await deps.counter.hit(rateKey, 1)) > cfg.companyRatePerSecond) {
        stats.deferred++;
        const wait = Math.max(1, await deps.counter.ttl(rateKey)) * 1000;
        throw new RetryLaterError(wait + Math.floor(Math.random() * 250), `company ${task.companyId} is over its sending rate`);
      }

      let accepted;
      try {
        accepted = await this.sender.send({ id: task.emailId, to: task.to, subject: task.subject, text: task.text, html: task.html, locale: task.locale });
      } catch (err) {
        const f = classify(err);
        const final = f.permanent || msg.attempt >= cfg.maxAttempts;
        await db.markEmailFailed({ emailId: task.emailId, companyId: task.companyId, error: f.message, final }).catch((e) => log.warn({ ...ids, err: String(e) }, "could not record the failed attempt"));
        if (!final) {
          stats.retried++;
          log.warn({ ...ids, err: f.message, retryInMs: retryDelay(cfg)(msg.attempt) }, "e-mail attempt failed; will retry");
          throw f; // the bus brings attempt n+1 after the backoff
        }
        stats.failed++;
        log.error({ ...ids, err: f.message, permanent: f.permanent }, "e-mail failed for good; task dead-lettered");
        if (f.permanent) {
          await deadLetter(msg);
          return;
        }
        throw f; // last attempt: the bus rejects it into the dead-letter queue
      }
      stats.sent++;
      log.debug({ ...ids, response: accepted.response }, "e-mail sent");
      return { recorded: this.pend(task, accepted.messageId) };
    }
  }

  const consumers: Consumer[] = [];
  const workers: Worker[] = [];
  for (let w = 0; w < cfg.workers; w++) {
    const worker = new Worker(deps.newSender());
    workers.push(worker);
    // Each task runs in its own call context: logs carry the task id, and the worker's calls to
    // dbservice go out under the email service's identity, never a user's token from the producer's call.
    const inOwnContext = (msg: Delivery) =>
      callContext.run({ requestId: msg.messageId ?? "email-task", traceparent: msg.headers.traceparent }, () =>
        consumeInTrace(`${cfg.queue} process`, msg.headers, { "messaging.system": "rabbitmq", "messaging.destination.name": cfg.queue, "messaging.message.id": msg.messageId ?? "" }, () => worker.handle(msg)),
      );
    // One task at a time per worker: the next starts once this one was sent (or dropped, or failed);
    // its ack (the returned promise) waits until it is recorded as sent.
    let chain: Promise<unknown> = Promise.resolve();
    const serial = (msg: Delivery): Promise<void> => {
      const run = chain.then(() => inOwnContext(msg));
      chain = run.catch(() => {});
      return run.then((outcome) => outcome?.recorded);
    };
    consumers.push(await bus.consume(cfg.queue, serial, { prefetch: cfg.prefetch, maxAttempts: cfg.maxAttempts, retryDelayMs: retryDelay(cfg) }));
  }
  if (cfg.workers > 0) log.info({ queue: cfg.queue, workers: cfg.workers, bus: bus.kind }, "e-mail workers started");

  return {
    stats,
    async close() {
      // Consumers stop and wait for their tasks; pending records are written within milliseconds.
      await Promise.all(consumers.map((c) => c.close()));
      for (const w of workers) w.sender.close();
    },
  };
}
