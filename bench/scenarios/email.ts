/**
 * E-mail delivery throughput: tasks already on the durable `email_tasks` queue (RabbitMQ), the
 * email service as its own process (mTLS to dbservice, its own process too) with 5 workers, a
 * local SMTP server (smtp-server, STARTTLS) in this process. Per e-mail: the status check
 * (dbservice), the SMTP conversation on the worker's open connection, the "sent" record
 * (dbservice), the ack. Zero lost: every e-mail is accepted exactly once and recorded as sent.
 * The target: ≥ 200 e-mails/s with 5 workers.
 */
import pg from "pg";
import { DbAuthService } from "@crm/gen/crm/db/v1/db_auth_pb";
import { DbEmailService } from "@crm/gen/crm/db/v1/db_email_pb";
import { EmailKind } from "@crm/gen/crm/email/v1/email_pb";
import { installHint, postgresUp, rabbitUp } from "@crm/testkit";
import { startMiniCluster } from "../../services/email/test/processes.js";
import { startSmtpSink } from "../../services/email/test/smtp-sink.js";
import { mb, measured } from "../lib/proc.js";
import type { Check, Ctx, Row, Scenario } from "../lib/report.js";

export const email: Scenario = {
  name: "email",
  title: "E-mails from the email_tasks queue to a local SMTP server (5 workers, separate processes, mTLS)",
  async missing() {
    if (!(await postgresUp())) return `PostgreSQL is not reachable; ${installHint.postgres}`;
    if (!(await rabbitUp())) return `RabbitMQ is not reachable; ${installHint.rabbitmq}`;
    return undefined;
  },
  async run(ctx: Ctx) {
    const n = ctx.quick ? 200 : 5_000;
    const rows: Row[] = [];
    const sink = await startSmtpSink();
    const cluster = await startMiniCluster();
    const sql = new pg.Pool({ connectionString: cluster.db.url, max: 2 });
    let rate = 0;
    let lost = -1;
    let duplicates = -1;
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
      // Wait until the relay moved every task to RabbitMQ, so the run measures the workers alone.
      for (const deadline = Date.now() + 60_000; ; ) {
        const { rows: r } = await sql.query("SELECT count(*)::int AS n FROM outbox");
        if (r[0].n === 0 && (await cluster.queueDepth(cluster.queue)) >= n) break;
        if (Date.now() > deadline) throw new Error("the relay did not publish the tasks within 60 s");
        await new Promise((r) => setTimeout(r, 100));
      }
      ctx.log(`${n} tasks waiting on ${cluster.queue}`);
      const worker = await cluster.startEmail({ SMTP_URL: sink.url, EMAIL_WORKERS: "5", EMAIL_COMPANY_RATE_PER_SECOND: "100000", EMAIL_FROM: "CRM <no-reply@bench.example>" });
      const m = await measured(
        () => [worker.child.pid!, cluster.dbservice.child.pid!],
        async () => {
          await sink.until(() => sink.counts.size >= n, `${n} e-mails`, 600_000);
          for (;;) {
            const { rows: r } = await sql.query("SELECT count(*)::int AS n FROM emails WHERE status = 'sent'");
            if (r[0].n >= n) break;
            await new Promise((r) => setTimeout(r, 20));
          }
        },
      );
      // From the first to the last accepted message (the workers start consuming before the process says "ready").
      const seconds = (sink.accepted[sink.accepted.length - 1]!.at - sink.accepted[0]!.at) / 1000;
      rate = (sink.accepted.length - 1) / seconds;
      duplicates = [...sink.counts.values()].filter((c) => c > 1).length;
      lost = n - sink.counts.size;
      // A worker's cycle per e-mail: the gap between two messages on its SMTP connection.
      const last = new Map<string, number>();
      const cycles: number[] = [];
      for (const a of sink.accepted) {
        const prev = last.get(a.session);
        if (prev !== undefined) cycles.push(a.at - prev);
        last.set(a.session, a.at);
      }
      cycles.sort((a, b) => a - b);
      const pct = (p: number) => cycles[Math.min(cycles.length - 1, Math.floor(p * cycles.length))] ?? 0;
      rows.push({ label: "5 workers, STARTTLS (per-e-mail cycle of one worker as p50/p99)", tool: "smtp-server", requests: n, errors: lost + duplicates, rps: rate, p50Ms: pct(0.5), p99Ms: pct(0.99), cpuMsPerReq: m.cpuMs / n, rssMB: mb(m.rssBytes) });
      ctx.log(`${n} e-mails in ${seconds.toFixed(1)} s: ${rate.toFixed(0)}/s, worker cycle p50 ${pct(0.5).toFixed(1)} ms p99 ${pct(0.99).toFixed(1)} ms, lost ${lost}, duplicates ${duplicates}`);
      await worker.kill("SIGTERM");
    } finally {
      await sql.end();
      await cluster.close();
      await sink.close();
    }
    const checks: Check[] = [
      { label: "queue → SMTP 250 → recorded, 5 workers", value: rate, unit: "e-mails/s", target: "≥ 200", met: rate >= 200 },
      { label: "lost or sent twice", value: lost + duplicates, unit: "e-mails", target: "0", met: lost === 0 && duplicates === 0 },
    ];
    return {
      rows,
      checks,
      notes: [
        `${n} tasks queued through dbservice (outbox → relay → RabbitMQ) before the email process starts; the clock runs from its start to the last "sent" record`,
        "cpu ms per e-mail: email + dbservice processes together (the SMTP server runs in the bench process)",
      ],
    };
  },
};
