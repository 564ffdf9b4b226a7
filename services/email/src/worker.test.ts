/** The worker's rules on the in-memory bus, with a fake database and fake SMTP senders. */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { AppError, createLogger, memoryBus, memoryCounter, toConnectError, type Delivery } from "@crm/kit";
import type { DbEmailService } from "@crm/gen/crm/db/v1/db_email_pb";
import { EmailStatus, EmailTaskSchema } from "@crm/gen/crm/email/v1/email_pb";
import { until } from "@crm/testkit";
import { SendFailure, type OutgoingMessage, type Sender } from "./transport.js";
import { startEmailWorkers, type WorkerConfig } from "./worker.js";

const log = createLogger("test", "silent");

interface Row {
  status: EmailStatus;
  attempts: number;
  lastError: string;
}

function fakeDb() {
  const rows = new Map<string, Row>();
  let calls = 0;
  const client = {
    async getEmailStatusDB({ emailId }: { emailId: string }) {
      const r = rows.get(emailId);
      if (!r) throw toConnectError(new AppError("not_found", "no such e-mail"));
      return { emailId, ...r };
    },
    async markEmailSent({ emailId }: { emailId: string }) {
      const r = rows.get(emailId)!;
      if (r.status === EmailStatus.SENT) return { updated: false, attempts: r.attempts };
      r.status = EmailStatus.SENT;
      r.attempts++;
      return { updated: true, attempts: r.attempts };
    },
    async advanceEmailWorkers({ sent, next }: { sent: { emailId: string }[]; next: { emailId: string }[] }) {
      calls++;
      const marked = [];
      for (const s of sent) marked.push(await client.markEmailSent(s));
      return {
        sent: marked,
        next: next.map(({ emailId }) => {
          const r = rows.get(emailId);
          return { found: Boolean(r), email: r ? { emailId, ...r } : undefined };
        }),
      };
    },
    async markEmailFailed({ emailId, error, final }: { emailId: string; error: string; final: boolean }) {
      const r = rows.get(emailId)!;
      if (r.status === EmailStatus.QUEUED) {
        r.attempts++;
        r.lastError = error;
        if (final) r.status = EmailStatus.FAILED;
      }
      return { attempts: r.attempts, status: r.status };
    },
  };
  return { rows, client: client as unknown as Client<typeof DbEmailService>, calls: () => calls };
}

function task(companyId: string, to = "someone@example.com") {
  const emailId = randomUUID();
  const body = toBinary(EmailTaskSchema, create(EmailTaskSchema, { emailId, companyId, to, subject: "Hi", text: "Hello", attempt: 1 }));
  return { emailId, body };
}

const cfg = (over: Partial<WorkerConfig> = {}): WorkerConfig => ({
  queue: "email_tasks",
  workers: 3,
  prefetch: 2,
  maxAttempts: 3,
  retryBaseMs: 5,
  retryMaxMs: 50,
  companyRatePerSecond: 1000,
  ...over,
});

function recordingSender(behaviour: (m: OutgoingMessage, n: number) => void = () => {}) {
  const sent: OutgoingMessage[] = [];
  const tries = new Map<string, number>();
  const newSender = (): Sender => ({
    async send(m) {
      const n = (tries.get(m.id) ?? 0) + 1;
      tries.set(m.id, n);
      behaviour(m, n);
      sent.push(m);
      return { messageId: `<${m.id}@test>`, response: "250 OK" };
    },
    close() {},
  });
  return { sent, tries, newSender };
}

test("each task is sent once; a duplicate of a sent task is dropped without sending", async () => {
  const bus = memoryBus(log);
  const db = fakeDb();
  const smtp = recordingSender();
  const w = await startEmailWorkers({ bus, db: db.client, newSender: smtp.newSender, counter: memoryCounter(), log, cfg: cfg() });
  const company = randomUUID();
  const tasks = Array.from({ length: 50 }, () => task(company));
  for (const t of tasks) db.rows.set(t.emailId, { status: EmailStatus.QUEUED, attempts: 0, lastError: "" });
  for (const t of tasks) await bus.publish("", "email_tasks", t.body, { messageId: t.emailId });
  await until("50 recorded as sent", () => [...db.rows.values()].every((r) => r.status === EmailStatus.SENT), 5_000);
  // The relay (at-least-once) delivers a few again.
  for (const t of tasks.slice(0, 10)) await bus.publish("", "email_tasks", t.body, { messageId: t.emailId });
  await until("10 duplicates dropped", () => w.stats.duplicates === 10, 5_000);
  assert.equal(smtp.sent.length, 50);
  assert.equal(new Set(smtp.sent.map((m) => m.id)).size, 50);
  assert.ok([...db.rows.values()].every((r) => r.status === EmailStatus.SENT && r.attempts === 1));
  // The 3 workers' lookups and records share calls: fewer calls than e-mails (one alone needs 2: lookup, record).
  assert.ok(db.calls() < 50, `60 lookups and 50 records in ${db.calls()} calls`);
  await w.close();
  await bus.close();
});

test("two tasks of one e-mail at once (the relay published it twice): sent once, though lookups start before a worker is free", async () => {
  const bus = memoryBus(log);
  const db = fakeDb();
  const smtp = recordingSender();
  const w = await startEmailWorkers({ bus, db: db.client, newSender: smtp.newSender, counter: memoryCounter(), log, cfg: cfg({ workers: 3, prefetch: 4 }) });
  const company = randomUUID();
  const tasks = Array.from({ length: 30 }, () => task(company));
  for (const t of tasks) db.rows.set(t.emailId, { status: EmailStatus.QUEUED, attempts: 0, lastError: "" });
  for (const t of tasks) for (let copy = 0; copy < 2; copy++) await bus.publish("", "email_tasks", t.body, { messageId: t.emailId });
  await until("60 tasks handled", () => w.stats.sent + w.stats.duplicates === 60, 5_000);
  assert.equal(smtp.sent.length, 30);
  assert.equal(new Set(smtp.sent.map((m) => m.id)).size, 30);
  assert.equal(w.stats.duplicates, 30);
  await w.close();
  await bus.close();
});

test("a temporary refusal is retried with backoff and recorded; the message then goes out once", async () => {
  const bus = memoryBus(log);
  const db = fakeDb();
  const smtp = recordingSender((_m, n) => {
    if (n <= 2) throw Object.assign(new Error("try again later"), { responseCode: 451 });
  });
  const w = await startEmailWorkers({ bus, db: db.client, newSender: smtp.newSender, counter: memoryCounter(), log, cfg: cfg() });
  const t = task(randomUUID());
  db.rows.set(t.emailId, { status: EmailStatus.QUEUED, attempts: 0, lastError: "" });
  await bus.publish("", "email_tasks", t.body);
  await until("sent after retries", () => db.rows.get(t.emailId)!.status === EmailStatus.SENT, 5_000);
  assert.equal(smtp.sent.length, 1);
  assert.equal(db.rows.get(t.emailId)!.attempts, 3);
  assert.match(db.rows.get(t.emailId)!.lastError, /SMTP 451: try again later/);
  await w.close();
  await bus.close();
});

test("a permanent refusal fails at once and dead-letters; endless temporary failures fail after maxAttempts", async () => {
  const bus = memoryBus(log);
  const db = fakeDb();
  const smtp = recordingSender((m) => {
    if (m.to.startsWith("nobody")) throw new SendFailure("SMTP 550: no such user", true);
    if (m.to.startsWith("busy")) throw Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" });
  });
  const dead: Delivery[] = [];
  await bus.declareQueue("email_tasks", { deadLetterQueue: "email_tasks.dead" });
  await bus.consume("email_tasks.dead", (d) => void dead.push(d));
  const w = await startEmailWorkers({ bus, db: db.client, newSender: smtp.newSender, counter: memoryCounter(), log, cfg: cfg() });
  const a = task(randomUUID(), "nobody@example.com");
  const b = task(randomUUID(), "busy@example.com");
  for (const t of [a, b]) db.rows.set(t.emailId, { status: EmailStatus.QUEUED, attempts: 0, lastError: "" });
  await bus.publish("", "email_tasks", a.body, { messageId: a.emailId });
  await bus.publish("", "email_tasks", b.body, { messageId: b.emailId });
  await until("both dead-lettered", () => dead.length === 2, 5_000);
  assert.deepEqual(db.rows.get(a.emailId), { status: EmailStatus.FAILED, attempts: 1, lastError: "SMTP 550: no such user" });
  assert.equal(db.rows.get(b.emailId)!.status, EmailStatus.FAILED);
  assert.equal(db.rows.get(b.emailId)!.attempts, 3);
  assert.match(db.rows.get(b.emailId)!.lastError, /ECONNREFUSED/);
  assert.equal(smtp.tries.get(a.emailId), 1);
  assert.equal(smtp.tries.get(b.emailId), 3);
  assert.equal(w.stats.failed, 2);
  await w.close();
  await bus.close();
});

test("per-company rate: a bulk sender is held back, another company's e-mail goes out meanwhile", async () => {
  const bus = memoryBus(log);
  const db = fakeDb();
  const smtp = recordingSender();
  const w = await startEmailWorkers({ bus, db: db.client, newSender: smtp.newSender, counter: memoryCounter(), log, cfg: cfg({ companyRatePerSecond: 5 }) });
  const bulk = randomUUID();
  const other = randomUUID();
  const many = Array.from({ length: 12 }, () => task(bulk));
  const one = task(other);
  for (const t of [...many, one]) db.rows.set(t.emailId, { status: EmailStatus.QUEUED, attempts: 0, lastError: "" });
  for (const t of many) await bus.publish("", "email_tasks", t.body);
  await bus.publish("", "email_tasks", one.body);
  await until("the other company's e-mail", () => db.rows.get(one.emailId)!.status === EmailStatus.SENT, 5_000);
  const bulkSentBefore = smtp.sent.filter((m) => many.some((t) => t.emailId === m.id)).length;
  assert.ok(bulkSentBefore <= 5, `at most the rate of the bulk company went first (${bulkSentBefore})`);
  await until("all recorded as sent", () => [...db.rows.values()].every((r) => r.status === EmailStatus.SENT), 10_000);
  assert.equal(w.stats.sent, 13);
  assert.ok(w.stats.deferred >= 7);
  assert.ok([...db.rows.values()].every((r) => r.attempts === 1), "deferrals are not attempts");
  await w.close();
  await bus.close();
});

test("a task for an unknown e-mail is dropped; a database outage is retried", async () => {
  const bus = memoryBus(log);
  const db = fakeDb();
  let down = 2;
  const real = db.client as unknown as { advanceEmailWorkers(r: unknown): Promise<unknown> };
  const flaky = {
    ...(db.client as unknown as Record<string, unknown>),
    async advanceEmailWorkers(req: unknown) {
      if (down-- > 0) throw new ConnectError("database unavailable", Code.Unavailable);
      return real.advanceEmailWorkers(req);
    },
  } as unknown as Client<typeof DbEmailService>;
  const smtp = recordingSender();
  const w = await startEmailWorkers({ bus, db: flaky, newSender: smtp.newSender, counter: memoryCounter(), log, cfg: cfg({ workers: 1 }) });
  const t = task(randomUUID());
  db.rows.set(t.emailId, { status: EmailStatus.QUEUED, attempts: 0, lastError: "" });
  await bus.publish("", "email_tasks", t.body);
  await until("sent once the database is back", () => db.rows.get(t.emailId)!.status === EmailStatus.SENT, 5_000);
  await bus.publish("", "email_tasks", task(randomUUID()).body);
  await bus.publish("", "email_tasks", Buffer.from("not a task"));
  await until("the unknown and the malformed task dropped", () => w.stats.dropped === 2, 5_000);
  assert.equal(smtp.sent.length, 1);
  await w.close();
  await bus.close();
});
