/**
 * The webhooks domain's rules: event types, what an endpoint may be, the retry schedule and the
 * payload. No I/O: the handlers, the store and the worker call these.
 */
import { toJson } from "@bufbuild/protobuf";
import { ChangeAction, RecordChangeSchema, type RecordChange } from "@crm/gen/crm/records/v1/stream_pb";
import { ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import { ImportFinishedSchema, type ImportFinished } from "@crm/gen/crm/records/v1/import_pb";
import { UserChange, UserEventSchema, type UserEvent } from "@crm/gen/crm/admin/v1/admin_pb";
import { MessageSchema, type Message } from "@crm/gen/crm/chat/v1/chat_pb";
import type { Violation } from "@crm/kit";
import { BinaryReader } from "@bufbuild/protobuf/wire";

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

/** The events that are not record changes. */
export const USER_ADDED = "user.added";
export const USER_DEACTIVATED = "user.deactivated";
export const USER_ACTIVATED = "user.activated";
export const IMPORT_FINISHED = "import.finished";
export const CHAT_MESSAGE = "chat.message";

/** Types an endpoint gets only when it names them (or "<kind>.*"): "*" does not include them. */
const optIn = new Set([CHAT_MESSAGE]);

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
  /** Deliveries settled in one CompleteDeliveriesDB call at most. */
  settleBatch: 1000,
  /** Events queued in one EnqueueEventsDB call at most. */
  enqueueBatch: 1000,
  /**
   * How long the intake trusts what a company's endpoints asked for: an event of a type none of
   * them names is skipped without a database call until then. An endpoint created or changed
   * through another webhooks process gets every event the intake takes this long after the change
   * (through this process: at once).
   */
  skipRecheckMs: 2000,
} as const;

/** "company.created" for a record change. */
export function eventTypeOf(c: Pick<RecordChange, "objectType" | "action">): string {
  return `${objectNames[c.objectType] ?? "record"}.${actionNames[c.action] ?? "changed"}`;
}

/**
 * The tenant and event type of an event as published, read from its wire form without decoding
 * the rest (the record, the user): the intake's check whether any endpoint asks for it. A record
 * change (crm.records.v1.RecordChange: tenant_id 2, object_type 3, action 5), a finished import
 * (ImportFinished: tenant_id 2) or a user event (crm.admin.v1.UserEvent: company_id 2, change 3).
 * Undefined when the bytes are not such a message (the store says why).
 */
export function peekEvent(kind: "record" | "import" | "user", bytes: Uint8Array): { tenantId: string; type: string } | undefined {
  try {
    const r = new BinaryReader(bytes);
    let tenantId = "";
    let a = 0;
    let b = 0;
    while (r.pos < r.len) {
      const [no, wt] = r.tag();
      if (no === 2 && wt === 2) tenantId = r.string();
      else if (no === 3 && wt === 0) a = r.int32();
      else if (no === 5 && wt === 0 && kind === "record") b = r.int32();
      else r.skip(wt, no);
    }
    if (!tenantId) return undefined;
    if (kind === "import") return { tenantId, type: IMPORT_FINISHED };
    if (kind === "user") return { tenantId, type: userEventType({ change: a as UserChange }) };
    return { tenantId, type: eventTypeOf({ objectType: a as ObjectType, action: b as ChangeAction }) };
  } catch {
    return undefined;
  }
}

/** The patterns an endpoint's event_types may hold that match `type`: itself, "<kind>.*", and "*" unless the type is opt-in (chat.message). */
export function patternsFor(type: string): string[] {
  const kind = `${type.split(".")[0]}.*`;
  return optIn.has(type) ? [type, kind] : [type, kind, "*"];
}

const typePattern =
  /^(\*|(company|person|deal|task|note)\.(\*|created|updated|deleted|restored|stage_changed|purged|linked|unlinked)|user\.(\*|added|activated|deactivated)|import\.(\*|finished)|chat\.(\*|message)|webhook\.test)$/;

/** What every event type an endpoint may name is, for the API's and the console's lists. */
export const EVENT_TYPES_HELP =
  '"*" (every event but chat messages), "<object>.*" or "<object>.<action>" (objects: company, person, deal, task, note; actions: created, updated, deleted, restored, stage_changed, purged, linked, unlinked), "user.added", "user.activated", "user.deactivated", "user.*", "import.finished", "import.*", "chat.message" or "chat.*" (chat messages: only when named)';

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

/** A webhook-id made from an event's own UUID (user events, finished imports, chat messages: each id is new). */
const idOf = (uuid: string) => `evt_${uuid.replaceAll("-", "")}`;

/** The body of an event that is not a record change: `data` with the event id and the tenant's version when it was queued. */
function envelope(type: string, eventId: string, version: bigint, time: string | undefined, data: Record<string, unknown>): { eventId: string; type: string; body: string } {
  // The event's own id (a UUID) is what the webhook-id is made from: only the webhook-id is sent.
  const rest = { ...data };
  delete rest.event_id;
  const body = JSON.stringify({ type, timestamp: time ?? new Date(0).toISOString(), data: { event_id: eventId, tenant_version: version.toString(), ...rest } });
  return { eventId, type, body };
}

/** user.added, user.activated or user.deactivated. */
export const userEventType = (e: Pick<UserEvent, "change">) => (e.change === UserChange.DEACTIVATED ? USER_DEACTIVATED : e.change === UserChange.ACTIVATED ? USER_ACTIVATED : USER_ADDED);

/** A user added or deactivated: the user (id, e-mail, phone, name, role, status), who did it, when; `version`: the tenant's when it was queued. */
export function userEventPayload(e: UserEvent, version: bigint) {
  const data = toJson(UserEventSchema, e, { useProtoFieldName: true }) as Record<string, unknown>;
  return envelope(userEventType(e), idOf(e.eventId), version, data.event_time as string | undefined, data);
}

/** An import that ended (succeeded, failed or cancelled; dry runs too): the job with its counts. */
export function importFinishedPayload(e: ImportFinished, version: bigint) {
  const data = toJson(ImportFinishedSchema, e, { useProtoFieldName: true }) as Record<string, unknown>;
  return envelope(IMPORT_FINISHED, idOf(e.eventId), version, data.finish_time as string | undefined, data);
}

/** A chat message (the chats' own ChatEvent): the chat and the message; its webhook-id is made from the message id. */
export function chatMessagePayload(companyId: string, m: Message, version: bigint) {
  const message = toJson(MessageSchema, m, { useProtoFieldName: true }) as Record<string, unknown>;
  return envelope(CHAT_MESSAGE, idOf(m.messageId), version, message.created_at as string | undefined, { company_id: companyId, chat_id: m.chatId, message });
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
  return types.flatMap((t, i) => (typePattern.test(t) ? [] : [{ field: `${field}[${i}]`, description: `must be ${EVENT_TYPES_HELP}` }]));
}

/** `chat.message` and `chat.*` when this server does not carry chat messages (WEBHOOKS_CHAT_EVENTS off). */
export function chatTypeViolations(types: readonly string[], chatEvents: boolean, field = "eventTypes"): Violation[] {
  if (chatEvents) return [];
  return types.flatMap((t, i) =>
    t === CHAT_MESSAGE || t === "chat.*" ? [{ field: `${field}[${i}]`, description: "names chat messages, which this server does not send as webhook events (its operator turns them on with WEBHOOKS_CHAT_EVENTS=true)" }] : [],
  );
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
