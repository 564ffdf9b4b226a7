/**
 * The webhooks domain's rules: event types, what an endpoint may be, the retry schedule and the
 * payload. No I/O: the handlers, the store and the worker call these.
 */
import { toJson } from "@bufbuild/protobuf";
import { ChangeAction, RecordChangeSchema, type RecordChange } from "@crm/gen/crm/records/v1/stream_pb";
import { ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import type { Violation } from "@crm/kit";

export const objectNames: Record<number, string> = {
  [ObjectType.COMPANY]: "company",
  [ObjectType.PERSON]: "person",
  [ObjectType.DEAL]: "deal",
  [ObjectType.TASK]: "task",
  [ObjectType.NOTE]: "note",
};

export const actionNames: Record<number, string> = {
  [ChangeAction.CREATED]: "created",
  [ChangeAction.UPDATED]: "updated",
  [ChangeAction.DELETED]: "deleted",
  [ChangeAction.RESTORED]: "restored",
  [ChangeAction.STAGE_CHANGED]: "stage_changed",
  [ChangeAction.PURGED]: "purged",
  [ChangeAction.LINKED]: "linked",
  [ChangeAction.UNLINKED]: "unlinked",
};

/** The type of a test event (SendTest). */
export const TEST_EVENT_TYPE = "webhook.test";

export const limits = {
  urlLength: 2000,
  eventTypes: 100,
  description: 500,
  /** RotateSecret's overlap when 0 is asked, and its most. */
  defaultOverlapSeconds: 86_400,
  maxOverlapSeconds: 7 * 86_400,
  defaultPageSize: 50,
  pageSize: 200,
  /** Retries go on this long after a delivery was queued; then the endpoint is disabled. */
  retryWindowMs: 24 * 3600 * 1000,
  /** The delivery log is kept this long. */
  logRetentionMs: 30 * 24 * 3600 * 1000,
  /** Bytes of an answer kept in the log (and read at most). */
  responsePrefixBytes: 1024,
} as const;

/** "company.created" for a record change. */
export function eventTypeOf(c: Pick<RecordChange, "objectType" | "action">): string {
  return `${objectNames[c.objectType] ?? "record"}.${actionNames[c.action] ?? "changed"}`;
}

/** The patterns an endpoint's event_types may hold that match `type`: itself, "<object>.*", "*". */
export function patternsFor(type: string): string[] {
  return [type, `${type.split(".")[0]}.*`, "*"];
}

const typePattern = /^(\*|(company|person|deal|task|note)\.(\*|created|updated|deleted|restored|stage_changed|purged|linked|unlinked)|webhook\.test)$/;

/** The event id (webhook-id) of a record change: stable, so every retry, redelivery and replay sends the same. */
export const eventIdOf = (tenantId: string, version: bigint) => `evt_${tenantId.replaceAll("-", "")}_${version}`;

/** The Standard Webhooks payload of a record change: type, timestamp, data (event id, tenant version, the change with the record). */
export function payloadOf(c: RecordChange): { eventId: string; type: string; body: string } {
  const eventId = eventIdOf(c.tenantId, c.version);
  const type = eventTypeOf(c);
  const change = toJson(RecordChangeSchema, c, { useProtoFieldName: true }) as Record<string, unknown>;
  const time = change.change_time ?? new Date(0).toISOString();
  const body = JSON.stringify({ type, timestamp: time, data: { event_id: eventId, tenant_version: c.version.toString(), ...change } });
  return { eventId, type, body };
}

export function testPayload(eventId: string, endpointId: string, now: Date): string {
  return JSON.stringify({ type: TEST_EVENT_TYPE, timestamp: now.toISOString(), data: { event_id: eventId, tenant_version: "0", endpoint_id: endpointId, message: "a test event" } });
}

/** Violations of an endpoint's URL as typed (syntax only: where it points is checked by the address guard). */
export function urlViolations(url: string, field = "url"): Violation[] {
  if (url.length === 0) return [{ field, description: "is required" }];
  if (url.length > limits.urlLength) return [{ field, description: `must be at most ${limits.urlLength} characters` }];
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return [{ field, description: "must be an absolute http:// or https:// URL" }];
  }
  if (u.protocol !== "https:" && u.protocol !== "http:") return [{ field, description: "must be an http:// or https:// URL" }];
  if (u.username || u.password) return [{ field, description: "must not hold a user name or password" }];
  if (u.hash) return [{ field, description: "must not hold a #fragment" }];
  return [];
}

export function eventTypeViolations(types: readonly string[], field = "eventTypes"): Violation[] {
  if (types.length === 0) return [{ field, description: "must name at least one event type (\"*\" for every event)" }];
  if (types.length > limits.eventTypes) return [{ field, description: `must name at most ${limits.eventTypes} event types` }];
  return types.flatMap((t, i) => (typePattern.test(t) ? [] : [{ field: `${field}[${i}]`, description: "must be \"*\", \"<object>.*\" or \"<object>.<action>\" (objects: company, person, deal, task, note; actions: created, updated, deleted, restored, stage_changed, purged, linked, unlinked)" }]));
}

export function descriptionViolations(d: string, field = "description"): Violation[] {
  return d.length > limits.description ? [{ field, description: `must be at most ${limits.description} characters` }] : [];
}

/**
 * When to try again after `attempts` failed attempts: exponential from 1 s, capped at 1 h, with
 * full jitter over the upper half (`random` in [0, 1)); undefined once the 24 hours since the
 * delivery was queued are over (give up: disable the endpoint).
 */
export function nextAttemptAt(attempts: number, queuedAtMs: number, nowMs: number, random: number): number | undefined {
  const cap = 3600_000;
  const base = Math.min(cap, 1000 * 2 ** Math.max(0, attempts - 1));
  const delay = base / 2 + (base / 2) * random;
  const at = nowMs + delay;
  if (nowMs - queuedAtMs >= limits.retryWindowMs) return undefined;
  return Math.min(at, queuedAtMs + limits.retryWindowMs);
}

/** A 2xx answer delivered the event; anything else (3xx included: redirects are not followed) failed. */
export const delivered = (status: number) => status >= 200 && status < 300;

/** A signing secret as the service makes them (whsec_ and base64 of 24 to 64 random bytes). */
export function secretViolations(secret: string, field = "secret"): Violation[] {
  return /^whsec_[A-Za-z0-9+/]{32,88}={0,2}$/.test(secret) ? [] : [{ field, description: "must be a whsec_ signing secret" }];
}

/** An endpoint's fields as the store receives them: the same rules the handler applies, re-checked (`at` prefixes the field names). */
export function endpointViolations(e: { url?: string; eventTypes?: readonly string[]; description?: string; secret?: string }, at = ""): Violation[] {
  return [
    ...(e.url !== undefined ? urlViolations(e.url, `${at}url`) : []),
    ...(e.eventTypes !== undefined ? eventTypeViolations(e.eventTypes, `${at}eventTypes`) : []),
    ...(e.description !== undefined ? descriptionViolations(e.description, `${at}description`) : []),
    ...(e.secret !== undefined ? secretViolations(e.secret, `${at}secret`) : []),
  ];
}
