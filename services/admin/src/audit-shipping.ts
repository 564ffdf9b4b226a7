/**
 * Ships the audit log to Loki: every event the stores wrote to the outbox with its audit row
 * reaches the audit queue (the relay publishes with confirms and deletes a row only after the
 * broker took it), and this consumer hands each to the logs service, acknowledging the message only
 * after Loki accepted it (SaveLogs with wait_shipped). A failure (logs unreachable) brings the message back with backoff;
 * after a week of failures it moves to the dead-letter queue, never dropped. Delivery is at least
 * once: an event shipped twice carries the same time and line, which Loki keeps once.
 */
import type { Client } from "@connectrpc/connect";
import { timestampDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { Consumer, EventBus, Logger } from "@crm/kit";
import { ActorType, type AuditEvent } from "@crm/gen/crm/admin/v1/audit_pb";
import { LogLevel, type LogsService } from "@crm/gen/crm/logs/v1/logs_pb";
import { AUDIT_QUEUE, deadLetterQueueOf } from "@crm/contracts";
import { decodeAuditEvent } from "@crm/contracts/events";

export interface AuditShippingDeps {
  bus: EventBus;
  logs: Client<typeof LogsService>;
  log: Logger;
  /** The audit queue (AUDIT_QUEUE by default; tests use their own). */
  queue?: string | undefined;
}

const actorTypeNames: Record<number, string> = { [ActorType.USER]: "user", [ActorType.API_KEY]: "api_key", [ActorType.SYSTEM]: "system", [ActorType.ANONYMOUS]: "anonymous" };
/** Loki refuses entries older than a week: an older event keeps its time as an attribute and is stamped when shipped. */
const MAX_AGE_MS = 6 * 86_400_000;

/** One audit event as a log entry of the service "audit" (a Loki stream of its own). */
export function auditLogEntry(e: AuditEvent, now = Date.now()) {
  const at = e.occurredAt ? timestampDate(e.occurredAt).getTime() : now;
  const who = e.actorName || e.actorId || actorTypeNames[e.actorType] || "someone";
  const target = e.targetType ? ` ${e.targetType} ${e.targetId}` : "";
  const attributes: Record<string, string> = {
    audit_event_id: e.eventId,
    action: e.action,
    actor_type: actorTypeNames[e.actorType] ?? "",
    actor_id: e.actorId,
    actor_name: e.actorName,
    target_type: e.targetType,
    target_id: e.targetId,
    ip: e.ip,
    occurred_at: new Date(at).toISOString(),
  };
  for (const [k, v] of Object.entries(e.details).slice(0, 40)) if (/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(k)) attributes[`detail.${k}`] = v;
  for (const [k, v] of Object.entries(attributes)) if (v === "") delete attributes[k];
  return {
    name: "audit",
    level: LogLevel.INFO,
    message: `${e.action} by ${who}${target}`,
    companyId: e.companyId,
    userId: e.userId,
    attributes,
    time: now - at < MAX_AGE_MS ? timestampFromMs(at) : undefined,
  };
}

export async function shipAuditEvents(d: AuditShippingDeps): Promise<Consumer> {
  const queue = d.queue ?? AUDIT_QUEUE;
  await d.bus.declareQueue(queue, { deadLetterQueue: deadLetterQueueOf(queue) });
  return d.bus.consume(
    queue,
    async (msg) => {
      let event: AuditEvent;
      try {
        event = decodeAuditEvent(msg.body);
      } catch (err) {
        d.log.error({ err: String(err), messageId: msg.messageId }, "an audit queue message is not an AuditEvent; skipped");
        return;
      }
      // Acked only once Loki has it (wait_shipped): a Loki outage keeps the event in the queue, not in a buffer that may overflow.
      await d.logs.saveLogs({ entries: [auditLogEntry(event)], waitShipped: true }, { timeoutMs: 30_000 });
    },
    // ~ a week of attempts, at most a minute apart, before the dead-letter queue.
    { prefetch: 20, maxAttempts: 10_000, retryDelayMs: (n) => Math.min(60_000, 500 * 2 ** Math.min(n - 1, 7)) },
  );
}
