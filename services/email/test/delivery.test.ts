/**
 * E-mail delivery with the email service as its own process (the cluster shape): dbservice and
 * email run as child processes with mTLS, on real PostgreSQL and RabbitMQ, sending to a real SMTP
 * server in this process. The worker process is SIGKILLed mid-batch; the SMTP server refuses for
 * a while; some messages can never be sent.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import pg from "pg";
import { DbAuthService } from "@crm/gen/crm/db/v1/db_auth_pb";
import { DbEmailService } from "@crm/gen/crm/db/v1/db_email_pb";
import { EmailKind, EmailStatus } from "@crm/gen/crm/email/v1/email_pb";
import { deadLetterQueueOf } from "@crm/contracts";
import { installHint, need, postgresUp, rabbitUp } from "@crm/testkit";
import { startMiniCluster, type MiniCluster, type ServiceProcess } from "./processes.js";
import { startSmtpSink, type SmtpSink } from "./smtp-sink.js";

const skip = need("PostgreSQL", await postgresUp(), installHint.postgres) || need("RabbitMQ", await rabbitUp(), installHint.rabbitmq);

let cluster: MiniCluster;
let sink: SmtpSink;
let worker: ServiceProcess | undefined;
let companyId: string;
let sql: pg.Pool;

const workerEnv = () => ({
  SMTP_URL: sink.url,
  EMAIL_WORKERS: "5",
  EMAIL_MAX_ATTEMPTS: "3",
  EMAIL_RETRY_BASE_MS: "200",
  EMAIL_COMPANY_RATE_PER_SECOND: "100000",
  EMAIL_FROM: "CRM <no-reply@crm.test>",
});

before(async () => {
  if (skip) return;
  sink = await startSmtpSink();
  cluster = await startMiniCluster();
  sql = new pg.Pool({ connectionString: cluster.db.url, max: 2 });
  const auth = cluster.client(DbAuthService, "auth");
  const reg = await auth.registerCompany({
    companyName: "Mail Co",
    locale: "en",
    ownerEmail: "owner@mail.test",
    ownerName: "Owner",
    passwordHash: "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
    session: { refreshHash: new Uint8Array(32).fill(7), expiresAt: { seconds: BigInt(Math.floor(Date.now() / 1000) + 3600), nanos: 0 } },
  });
  companyId = reg.companyId;
});

after(async () => {
  await worker?.kill("SIGKILL");
  await sql?.end();
  await cluster?.close();
  await sink?.close();
});

/** Queues `n` e-mails through dbservice (as the auth service would), 25 at a time. */
async function queueMany(n: number, to: (i: number) => string, tag: string): Promise<string[]> {
  const db = cluster.client(DbEmailService, "auth");
  const ids: string[] = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: 25 }, async () => {
      while (next < n) {
        const i = next++;
        const r = await db.queueEmail({ companyId, email: { to: to(i), subject: `${tag} ${i}`, text: `Hello ${i}`, html: `<p>Hello ${i}</p>`, locale: "en", kind: EmailKind.CUSTOM } });
        ids[i] = r.emailId;
      }
    }),
  );
  return ids;
}

/** Polls the e-mails table (a real signal: the workers' records) until `cond` holds. */
async function untilDb(query: string, params: unknown[], cond: (rows: Record<string, unknown>[]) => boolean, what: string, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { rows } = await sql.query(query, params);
    if (cond(rows)) return rows;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(rows).slice(0, 500)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Until `n` tasks wait in the work queue (the relay published them). */
async function untilQueued(n: number) {
  const deadline = Date.now() + 60_000;
  while ((await cluster.queueDepth(cluster.queue)) < n) {
    assert.ok(Date.now() < deadline, `${n} tasks in the queue within 60 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const idOf = (messageId: string) => /^<([0-9a-f-]{36})@crm\.test>$/.exec(messageId)?.[1];

test("SIGKILL of the email worker process in the middle of 2,000 e-mails: after a restart every e-mail arrives exactly once", { skip, timeout: 900_000 }, async (t) => {
  const ids = await queueMany(2000, (i) => `person${i}@example.com`, "batch");
  // After 1,000 accepted messages the server stops answering: every worker is then inside an SMTP
  // transaction whose message the server has NOT accepted, and the process is killed there.
  sink.policy = () => (sink.accepted.length >= 1000 ? "hold" : "accept");
  worker = await cluster.startEmail(workerEnv());
  let first = 0;
  await sink.until(() => (sink.accepted.length > 0 && (first ||= performance.now()), sink.accepted.length >= 1000), "1,000 accepted", 400_000);
  const seconds = (performance.now() - first) / 1000;
  t.diagnostic(`5 workers: ${Math.round(999 / seconds)} e-mails/s to the local SMTP server (STARTTLS), queue → 250 OK → recorded`);
  await sink.until(() => sink.held === 5, "all 5 workers waiting for the server's answer");
  assert.equal(await worker.kill("SIGKILL"), null, "killed by the signal");
  sink.release(false); // never answered: the 5 messages were not accepted and will be redelivered
  sink.policy = () => "accept";
  worker = await cluster.startEmail(workerEnv());
  await sink.until(() => sink.counts.size >= 2000, "2,000 distinct messages", 400_000);
  await untilDb("SELECT count(*)::int AS n FROM emails WHERE id = ANY($1) AND status = 'sent'", [ids], (r) => r[0]!.n === 2000, "2,000 recorded as sent");

  const dupes = [...sink.counts].filter(([, n]) => n !== 1);
  assert.deepEqual(dupes, [], "no message accepted twice");
  assert.equal(sink.accepted.length, 2000);
  assert.deepEqual(new Set(sink.accepted.map((m) => idOf(m.messageId))), new Set(ids), "the Message-ID is the e-mail id");
  assert.ok(sink.accepted.every((m) => m.secure), "STARTTLS was used (the server offered it)");
  assert.ok(sink.accepted.every((m, _i) => m.emailId === idOf(m.messageId)));
  const { rows } = await sql.query("SELECT max(attempts)::int AS max, min(attempts)::int AS min FROM emails WHERE id = ANY($1)", [ids]);
  assert.deepEqual(rows[0], { max: 1, min: 1 }, "a redelivery after the crash is not a failed attempt");
  assert.equal(await cluster.queueDepth(cluster.queue), 0);
});

test("the SMTP server refuses for a while (451): retried with backoff, each e-mail arrives once, attempts recorded", { skip, timeout: 120_000 }, async () => {
  assert.ok(worker, "the worker of the previous test runs");
  const start = sink.accepted.length;
  const refusals = new Map<string, number>();
  let refused = 0;
  sink.policy = (m) => {
    const n = refusals.get(m.messageId) ?? 0;
    if (refused < 150 && n < 2) {
      refused++;
      refusals.set(m.messageId, n + 1);
      return "temporary";
    }
    return "accept";
  };
  const ids = await queueMany(100, (i) => `retry${i}@example.com`, "retry");
  await sink.until(() => ids.every((id) => sink.counts.get(`<${id}@crm.test>`) === 1), "100 accepted after retries");
  const rows = await untilDb("SELECT attempts, last_error FROM emails WHERE id = ANY($1) AND status = 'sent'", [ids], (r) => r.length === 100, "100 sent");
  assert.equal(sink.accepted.length - start, 100, "each accepted once");
  assert.equal(refused, 150);
  const attempts = rows.reduce((s, r) => s + (r.attempts as number), 0);
  assert.equal(attempts, 250, "every refusal is an attempt, plus the one that went through");
  assert.ok(rows.filter((r) => (r.attempts as number) > 1).every((r) => /SMTP 451/.test(r.last_error as string)));
});

test("never sendable: a permanent refusal (550) fails at once, endless 451s fail after 3 attempts; both dead-lettered with the last error", { skip, timeout: 120_000 }, async () => {
  sink.policy = (m) => (m.to[0]!.startsWith("nobody") ? "permanent" : m.to[0]!.startsWith("busy") ? "temporary" : "accept");
  const [gone] = await queueMany(1, () => "nobody@example.com", "gone");
  const [busy] = await queueMany(1, () => "busy@example.com", "busy");
  const db = cluster.client(DbEmailService, "email");
  await untilDb("SELECT count(*)::int AS n FROM emails WHERE id = ANY($1) AND status = 'failed'", [[gone, busy]], (r) => r[0]!.n === 2, "both failed");
  const a = await db.getEmailStatusDB({ emailId: gone!, companyId });
  assert.equal(a.status, EmailStatus.FAILED);
  assert.equal(a.attempts, 1);
  assert.match(a.lastError, /^SMTP 550: Mailbox does not exist/);
  const b = await db.getEmailStatusDB({ emailId: busy!, companyId });
  assert.equal(b.status, EmailStatus.FAILED);
  assert.equal(b.attempts, 3);
  assert.match(b.lastError, /^SMTP 451: Try again later/);
  const deadline = Date.now() + 30_000;
  while ((await cluster.queueDepth(deadLetterQueueOf(cluster.queue))) < 2) {
    assert.ok(Date.now() < deadline, "both tasks reach the dead-letter queue");
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(sink.counts.get(`<${gone}@crm.test>`), undefined);
  assert.equal(sink.counts.get(`<${busy}@crm.test>`), undefined);
});

test("per-company rate: one company's bulk waits its turn, another company's e-mail goes out meanwhile; waits are not attempts", { skip, timeout: 120_000 }, async () => {
  // Both companies' tasks wait in the queue, the bulk first; then a worker with a low rate starts.
  await worker?.kill("SIGTERM");
  sink.policy = () => "accept";
  const other = await cluster.client(DbAuthService, "auth").registerCompany({
    companyName: "Other Co",
    locale: "en",
    ownerEmail: "owner@other.test",
    ownerName: "Other",
    passwordHash: "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
    session: { refreshHash: new Uint8Array(32).fill(9), expiresAt: { seconds: BigInt(Math.floor(Date.now() / 1000) + 3600), nanos: 0 } },
  });
  const bulk = await queueMany(100, (i) => `bulk${i}@example.com`, "bulk");
  const db = cluster.client(DbEmailService, "auth");
  const single = (await db.queueEmail({ companyId: other.companyId, email: { to: "single@other.test", subject: "Hi", text: "Hello", locale: "en", kind: EmailKind.CUSTOM } })).emailId;
  const key = (id: string) => `<${id}@crm.test>`;
  await untilQueued(101);
  worker = await cluster.startEmail({ ...workerEnv(), EMAIL_COMPANY_RATE_PER_SECOND: "20" });
  await sink.until(() => sink.counts.has(key(single)), "the other company's e-mail");
  const bulkBefore = bulk.filter((id) => sink.counts.has(key(id))).length;
  assert.ok(bulkBefore < 100, `the other company did not wait for the whole bulk (${bulkBefore} of 100 went first)`);
  await sink.until(() => bulk.every((id) => sink.counts.get(key(id)) === 1), "the whole bulk, once each");
  const rows = await untilDb("SELECT attempts FROM emails WHERE id = ANY($1) AND status = 'sent'", [bulk], (r) => r.length === 100, "bulk recorded as sent");
  assert.ok(rows.every((r) => r.attempts === 1), "waiting for the rate is not an attempt");
});
