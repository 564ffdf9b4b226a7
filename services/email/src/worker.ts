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
 * The status lookups and "sent" records of all workers go to dbservice in shared batches
 * (ledger.ts): one call and one transaction per round of the workers, not per e-mail. A task's
 * lookup starts when it arrives, so it overlaps the SMTP conversation of the task before it; an
 * e-mail's record is written before its worker starts the next SMTP conversation.
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
import { RetryLaterError, callContext, consumeInTrace, isUuid, scrubText, watchQueueDepth, type Consumer, type Counter, type Delivery, type EventBus, type Logger } from "@crm/kit";
import { DbEmailService } from "@crm/gen/crm/db/v1/db_email_pb";
import { EmailStatus, EmailTaskSchema, type EmailTask } from "@crm/gen/crm/email/v1/email_pb";
import { deadLetterQueueOf } from "@crm/contracts";
import { createLedger } from "./ledger.js";
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

export const retryDelay = (cfg: Pick<WorkerConfig, "retryBaseMs" | "retryMaxMs">) => (attempt: number) =>
  Math.min(cfg.retryBaseMs * 2 ** (attempt - 1), cfg.retryMaxMs);

/** Declares the work queue and its dead-letter queue (dbservice declares them with the same arguments). */
export async function declareEmailQueue(bus: EventBus, queue: string): Promise<void> {
  await bus.declareQueue(queue, { deadLetterQueue: deadLetterQueueOf(queue) });
}

/** A delivered task, and the lookup of its e-mail's status (started when it arrived). */
interface Arrived {
  task: EmailTask;
  status: Promise<EmailStatus | undefined>;
}

/** Records and lookups per call to dbservice. */
const LEDGER_BATCH = 100;

export async function startEmailWorkers(deps: WorkerDeps): Promise<EmailWorkers> {
  const { bus, db, log, cfg } = deps;
  const stats: WorkerStats = { sent: 0, duplicates: 0, retried: 0, failed: 0, deferred: 0, dropped: 0 };
  const dlq = deadLetterQueueOf(cfg.queue);
  await declareEmailQueue(bus, cfg.queue);
  // crm_queue_depth of the work queue and its dead-letter queue, read from the broker at each scrape
  const unwatch = [cfg.queue, dlq].map((q) => watchQueueDepth(q, () => bus.queueDepth(q)));

  const ledger = createLedger(
    async (records, lookups) => {
      const r = await db.advanceEmailWorkers({
        sent: records.map((s) => ({ emailId: s.emailId, companyId: s.companyId, sentAt: timestampFromDate(s.sentAt), smtpMessageId: s.messageId })),
        next: lookups.map((l) => ({ emailId: l.emailId, companyId: l.companyId })),
      });
      return { next: lookups.map((_, i) => (r.next[i]?.found ? r.next[i]!.email?.status : undefined)) };
    },
    {
      maxBatch: LEDGER_BATCH,
      recordTries: 9,
      retryDelayMs: (n) => Math.min(100 * 2 ** (n - 1), 5_000),
      onLost: (r, err) => log.error({ email_id: r.emailId, company_id: r.companyId, err: String(err) }, "e-mail sent but not recorded as sent; a redelivery would send it again"),
    },
  );

  async function deadLetter(msg: Delivery) {
    await bus.publish("", dlq, msg.body, { messageId: msg.messageId, contentType: msg.contentType, headers: msg.headers, persistent: true });
  }

  /**
   * Per e-mail id, the end (sent and recorded, dropped or failed) of the last task of it that this
   * process took. A task's lookup starts as soon as it arrives, while its worker still sends the
   * task before it; a second task of an e-mail this process holds already looks up only after the
   * first one ended, so it sees the first one's record.
   */
  const held = new Map<string, Promise<void>>();

  /** Reads a delivered task and starts the lookup of its e-mail; undefined: malformed. */
  function arrive(msg: Delivery, ended: Promise<void>): Arrived | undefined {
    let task: EmailTask;
    try {
      task = fromBinary(EmailTaskSchema, msg.body);
    } catch {
      return undefined;
    }
    if (!isUuid(task.emailId) || !isUuid(task.companyId)) return undefined;
    const ref = { emailId: task.emailId, companyId: task.companyId };
    const before = held.get(ref.emailId);
    held.set(ref.emailId, ended);
    void ended.then(() => {
      if (held.get(ref.emailId) === ended) held.delete(ref.emailId);
    });
    const status = before ? before.then(() => ledger.status(ref)) : ledger.status(ref);
    status.catch(() => {}); // awaited (and its failure thrown) when the task's turn comes
    return { task, status };
  }

  /** One worker: its SMTP connection, one task at a time. */
  class Worker {
    constructor(readonly sender: Sender) {}

    async handle(msg: Delivery, arrived: Arrived | undefined): Promise<void> {
      if (!arrived) {
        log.error({ message_id: msg.messageId }, "malformed e-mail task dead-lettered");
        await deadLetter(msg);
        stats.dropped++;
        return;
      }
      const { task } = arrived;
      const ids = { email_id: task.emailId, company_id: task.companyId, attempt: msg.attempt };

      // Sent already? A failure (database unavailable) throws: this task again later.
      const status = await arrived.status;
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
        // SMTP servers' text can hold anything: scrubbed so the text rule (kit text-rules.ts) never refuses the record.
        await db.markEmailFailed({ emailId: task.emailId, companyId: task.companyId, error: scrubText(f.message), final }).catch((e) => log.warn({ ...ids, err: String(e) }, "could not record the failed attempt"));
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
      // Recorded before this worker starts its next SMTP conversation: a crash while the workers
      // wait for the server's answers leaves no message accepted but unrecorded.
      await ledger.recordSent({ emailId: task.emailId, companyId: task.companyId, sentAt: new Date(), messageId: accepted.messageId });
    }
  }

  const consumers: Consumer[] = [];
  const workers: Worker[] = [];
  for (let w = 0; w < cfg.workers; w++) {
    const worker = new Worker(deps.newSender());
    workers.push(worker);
    // Each task runs in its own call context: logs carry the task id, and the worker's calls to
    // dbservice go out under the email service's identity, never a user's token from the producer's
    // call (the ledger's batched calls run in the context the workers were started in).
    const inOwnContext = (msg: Delivery, arrived: Arrived | undefined) =>
      callContext.run({ requestId: msg.messageId ?? "email-task", traceparent: msg.headers.traceparent }, () =>
        consumeInTrace(`${cfg.queue} process`, msg.headers, { "messaging.system": "rabbitmq", "messaging.destination.name": cfg.queue, "messaging.message.id": msg.messageId ?? "" }, () => worker.handle(msg, arrived)),
      );
    // One task at a time per worker: the next starts once this one was sent and recorded (or
    // dropped, or failed); the bus acks it when its handler resolved.
    let chain: Promise<unknown> = Promise.resolve();
    const serial = (msg: Delivery): Promise<void> => {
      let end!: () => void;
      const arrived = arrive(msg, new Promise<void>((r) => (end = r)));
      const run = chain.then(() => inOwnContext(msg, arrived));
      chain = run.catch(() => {});
      run.then(end, end);
      return run;
    };
    consumers.push(await bus.consume(cfg.queue, serial, { prefetch: cfg.prefetch, maxAttempts: cfg.maxAttempts, retryDelayMs: retryDelay(cfg) }));
  }
  if (cfg.workers > 0) log.info({ queue: cfg.queue, workers: cfg.workers, bus: bus.kind }, "e-mail workers started");

  return {
    stats,
    async close() {
      // Consumers stop and wait for their tasks, whose acks wait for their records.
      for (const u of unwatch) u();
      await Promise.all(consumers.map((c) => c.close()));
      for (const w of workers) w.sender.close();
    },
  };
}
