/**
 * The audit log's retention job: every hour (and shortly after start) deletes audit events older
 * than AUDIT_RETENTION_DAYS through the admin store's purge, which runs as crm_retention on this
 * process's own connection, never as the application role (services/admin/store/audit-store.ts).
 * Safe on several replicas: each pass deletes what is old, in batches.
 */
import type pg from "pg";
import type { Logger } from "@crm/kit";
import { purgeAuditEvents } from "@crm/admin/store";

export interface AuditRetention {
  /** One pass now; resolves to the rows deleted. */
  run(): Promise<number>;
  close(): Promise<void>;
}

export function startAuditRetention(o: { pool: pg.Pool; days: number; log: Logger; everyMs?: number; firstAfterMs?: number }): AuditRetention {
  let running: Promise<number> | undefined;
  let closed = false;
  const run = () =>
    (running ??= purgeAuditEvents(o.pool, o.days)
      .then((n) => {
        if (n > 0) o.log.info({ deleted: n, days: o.days }, "audit events past their retention deleted");
        return n;
      })
      .finally(() => (running = undefined)));
  const pass = () => {
    if (!closed) run().catch((err: unknown) => o.log.warn({ err: String(err) }, "audit retention pass failed; the next one retries"));
  };
  const first = setTimeout(pass, o.firstAfterMs ?? 60_000).unref();
  const timer = setInterval(pass, o.everyMs ?? 3_600_000).unref();
  return {
    run,
    async close() {
      closed = true;
      clearTimeout(first);
      clearInterval(timer);
      await running?.catch(() => {});
    },
  };
}
