/**
 * E-mail delivery throughput: tasks already on the durable `email_tasks` queue (RabbitMQ), the
 * email service as its own process (mTLS to dbservice, its own process too) with 5 workers, a
 * local SMTP server (smtp-server) in this process, with and without STARTTLS. Per e-mail: its
 * status lookup and "sent" record (batched with the other workers' into shared AdvanceEmailWorkers
 * calls to dbservice), the SMTP conversation on the worker's open connection, the ack. Zero lost:
 * every e-mail accepted exactly once and recorded as sent. The issue's target: ≥ 200 e-mails/s with
 * 5 workers. The floor, taking turns with the service: nodemailer straight to the same kind of
 * server with 5 connections (no queue, no database).
 */
import { randomUUID } from "node:crypto";
import pg from "pg";
import { createTransport } from "nodemailer";
import { DbAuthService } from "@crm/gen/crm/db/v1/db_auth_pb";
import { DbEmailService } from "@crm/gen/crm/db/v1/db_email_pb";
import { EmailKind } from "@crm/gen/crm/email/v1/email_pb";
import { unreachable } from "@crm/testkit";
import { startMiniCluster } from "../../services/email/test/processes.js";
import { startSmtpSink, type SmtpSink } from "../../services/email/test/smtp-sink.js";
import { mb, measured } from "../lib/proc.js";
import type { Check, Ctx, Row, Scenario } from "../lib/report.js";

interface Outcome {
  row: Row;
  rate: number;
  lost: number;
  duplicates: number;
}

/**
 * Rate and per-connection cycle from what the sink accepted: from the first to the last accepted
 * message (the workers start consuming before the process says "ready"), and the gaps between two
 * messages on one SMTP connection.
 */
function drainStats(sink: SmtpSink) {
  const seconds = (sink.accepted[sink.accepted.length - 1]!.at - sink.accepted[0]!.at) / 1000;
  const rate = (sink.accepted.length - 1) / seconds;
  const last = new Map<string, number>();
  const cycles: number[] = [];
  for (const a of sink.accepted) {
    const prev = last.get(a.session);
    if (prev !== undefined) cycles.push(a.at - prev);
    last.set(a.session, a.at);
  }
  cycles.sort((a, b) => a - b);
  const pct = (p: number) => cycles[Math.min(cycles.length - 1, Math.floor(p * cycles.length))] ?? 0;
  return { seconds, rate, p50: pct(0.5), p99: pct(0.99) };
}

/**
 * The floor: nodemailer straight to the same kind of server, 5 connections (one pooled transport
 * each, as the workers have), each sending its share back to back; same message shape and headers.
 */
async function floor(ctx: Ctx, label: string, starttls: boolean, n: number): Promise<Outcome> {
  const sink = await startSmtpSink({ starttls });
  const from = "CRM <no-reply@bench.example>";
  const transports = Array.from({ length: 5 }, () => createTransport({ url: sink.url, pool: true, maxConnections: 1, maxMessages: 10_000 }));
  try {
    let next = 0;
    await Promise.all(
      transports.map(async (t) => {
        while (next < n) {
          const i = next++;
          const id = randomUUID();
          await t.sendMail({
            from,
            to: `person${i}@bench.example`,
            subject: `Welcome ${i}`,
            text: `Hello ${i}, welcome aboard.`,
            html: `<p>Hello ${i}, welcome aboard.</p>`,
            messageId: `<${id}@bench.example>`,
            headers: { "X-CRM-Email-Id": id, "Auto-Submitted": "auto-generated", "Content-Language": "en" },
          });
        }
      }),
    );
    const s = drainStats(sink);
    const duplicates = [...sink.counts.values()].filter((c) => c > 1).length;
    const lost = n - sink.counts.size;
    ctx.log(`${label}: ${n} e-mails in ${s.seconds.toFixed(1)} s: ${s.rate.toFixed(0)}/s, connection cycle p50 ${s.p50.toFixed(1)} ms p99 ${s.p99.toFixed(1)} ms`);
    return {
      row: { label: `${label} (p50/p99: one connection's cycle per e-mail)`, floor: true, tool: "smtp-server", requests: n, errors: lost + duplicates, rps: s.rate, p50Ms: s.p50, p99Ms: s.p99 },
      rate: s.rate,
      lost,
      duplicates,
    };
  } finally {
    for (const t of transports) t.close();
    await sink.close();
  }
}

async function variant(ctx: Ctx, label: string, starttls: boolean, n: number): Promise<Outcome> {
  const sink = await startSmtpSink({ starttls });
  const cluster = await startMiniCluster();
  const sql = new pg.Pool({ connectionString: cluster.db.url, max: 2 });
  try {
    const reg = await cluster.client(DbAuthService, "auth").registerCompany({
      companyName: "Bench mail",
      locale: "en",
      ownerEmail: "owner@bench.example",
      ownerName: "Owner",
      passwordHash: "$argon2id$bench",
      session: { refreshHash: new Uint8Array(32).fill(1), expiresAt: { seconds: BigInt(Math.floor(Date.now() / 1000) + 3600), nanos: 0 } },
    });
    const db = cluster.client(DbEmailService, "auth");
    let next = 0;
    await Promise.all(
      Array.from({ length: 25 }, async () => {
        while (next < n) {
          const i = next++;
          await db.queueEmail({ companyId: reg.companyId, email: { to: `person${i}@bench.example`, subject: `Welcome ${i}`, text: `Hello ${i}, welcome aboard.`, html: `<p>Hello ${i}, welcome aboard.</p>`, locale: "en", kind: EmailKind.CUSTOM } });
        }
      }),
    );
    // Until the relay moved every task to RabbitMQ, so the run measures the workers alone.
    for (const deadline = Date.now() + 120_000; ; ) {
      const { rows: r } = await sql.query("SELECT count(*)::int AS n FROM outbox");
      if (r[0].n === 0 && (await cluster.queueDepth(cluster.queue)) >= n) break;
      if (Date.now() > deadline) throw new Error("the relay did not publish the tasks within 120 s");
      await new Promise((r) => setTimeout(r, 100));
    }
    const worker = await cluster.startEmail({ SMTP_URL: sink.url, EMAIL_WORKERS: "5", EMAIL_COMPANY_RATE_PER_SECOND: "100000", EMAIL_FROM: "CRM <no-reply@bench.example>" });
    const m = await measured(
      () => [worker.child.pid!, cluster.dbservice.child.pid!],
      async () => {
        await sink.until(() => sink.counts.size >= n, `${n} e-mails`, 900_000);
        for (;;) {
          const { rows: r } = await sql.query("SELECT count(*)::int AS n FROM emails WHERE status = 'sent'");
          if (r[0].n >= n) break;
          await new Promise((r) => setTimeout(r, 20));
        }
      },
    );
    await worker.kill("SIGTERM");
    // A clean exit, so that `--profile` gets dbservice's CPU profile too (SIGKILL writes none).
    await cluster.dbservice.kill("SIGTERM");
    const { seconds, rate, p50, p99 } = drainStats(sink);
    const duplicates = [...sink.counts.values()].filter((c) => c > 1).length;
    const lost = n - sink.counts.size;
    ctx.log(`${label}: ${n} e-mails in ${seconds.toFixed(1)} s: ${rate.toFixed(0)}/s, worker cycle p50 ${p50.toFixed(1)} ms p99 ${p99.toFixed(1)} ms, lost ${lost}, duplicates ${duplicates}`);
    return {
      row: { label: `${label} (p50/p99: one worker's cycle per e-mail)`, tool: "smtp-server", requests: n, errors: lost + duplicates, rps: rate, p50Ms: p50, p99Ms: p99, cpuMsPerReq: m.cpuMs / n, rssMB: mb(m.rssBytes) },
      rate,
      lost,
      duplicates,
    };
  } finally {
    await sql.end();
    await cluster.close();
    await sink.close();
  }
}

export const email: Scenario = {
  name: "email",
  title: "E-mails from the email_tasks queue to a local SMTP server (5 workers; email and dbservice as separate processes, mTLS)",
  async missing() {
    return unreachable("postgres", "rabbitmq");
  },
  async run(ctx: Ctx) {
    const n = ctx.quick ? 200 : 3_000;
    // Floor and service take turns, so a load swing on the machine hits both alike.
    const tlsFloor = await floor(ctx, "nodemailer straight to the server, 5 connections, STARTTLS", true, n);
    const tls = await variant(ctx, "5 workers, SMTP with STARTTLS", true, n);
    const plainFloor = await floor(ctx, "nodemailer straight to the server, 5 connections, plain SMTP", false, n);
    const plain = await variant(ctx, "5 workers, plain SMTP", false, n);
    const checks: Check[] = [
      { label: "queue → SMTP 250 → recorded, 5 workers, STARTTLS", value: tls.rate, unit: "e-mails/s", target: "≥ 200", met: tls.rate >= 200 },
      { label: "service ÷ nodemailer straight, STARTTLS", value: tls.rate / tlsFloor.rate, unit: "×", target: "informational" },
      { label: "the same without STARTTLS", value: plain.rate, unit: "e-mails/s", target: "informational" },
      { label: "service ÷ nodemailer straight, plain SMTP", value: plain.rate / plainFloor.rate, unit: "×", target: "informational" },
      { label: "lost or sent twice", value: tls.lost + tls.duplicates + plain.lost + plain.duplicates, unit: "e-mails", target: "0", met: tls.lost + tls.duplicates + plain.lost + plain.duplicates === 0 },
    ];
    return {
      rows: [tlsFloor.row, tls.row, plainFloor.row, plain.row],
      checks,
      notes: [
        `${n} tasks per row, queued through dbservice (outbox → relay → RabbitMQ) before the email process starts; rate from the first to the last message the SMTP server accepted`,
        "server CPU per e-mail: the email and dbservice processes together (the SMTP server runs in the bench process; RabbitMQ and PostgreSQL are not counted)",
        "floor: nodemailer in the bench process straight to a fresh SMTP server of the same kind, 5 pooled connections sending back to back, the same message shape (text + HTML, the same headers)",
      ],
    };
  },
};
