/**
 * How events cross the bus: every event is a protobuf message (proto/), sent as binary with its
 * full type name in a header. Stores build them here in TypeScript and write the bytes to the
 * outbox; consumers decode them here. Nothing builds an event by hand (in SQL or as JSON).
 */
import { create, fromBinary, fromJsonString, toBinary, type DescMessage, type MessageInitShape } from "@bufbuild/protobuf";
import { ChatEventSchema, type ChatEvent } from "@crm/gen/crm/chat/v1/chat_pb";
import { RecordChangeSchema, type RecordChange } from "@crm/gen/crm/records/v1/stream_pb";
import { AuditEventSchema, type AuditEvent } from "@crm/gen/crm/admin/v1/audit_pb";
import { AUDIT_QUEUE, CHAT_EVENTS_EXCHANGE, RECORD_EVENTS_EXCHANGE, chatRoutingKey, recordRoutingKey } from "./messaging.js";

/** The content type of every event: binary protobuf. */
export const EVENT_CONTENT_TYPE = "application/protobuf";
/** The header that names an event's message type (e.g. `crm.chat.v1.ChatEvent`). */
export const EVENT_TYPE_HEADER = "x-crm-type";

/** An event's bytes and the properties that describe them. */
export interface EncodedEvent {
  payload: Uint8Array;
  contentType: string;
  headers: Record<string, string>;
}

/** Any event message (`schema` from @crm/gen) encoded for the bus. */
export function encodeEvent<Desc extends DescMessage>(schema: Desc, init: MessageInitShape<Desc>): EncodedEvent {
  return { payload: toBinary(schema, create(schema, init)), contentType: EVENT_CONTENT_TYPE, headers: { [EVENT_TYPE_HEADER]: schema.typeName } };
}

/** A ChatEvent, encoded and addressed: to `chat.events` with the routing key of its chat. */
export function chatEvent(init: MessageInitShape<typeof ChatEventSchema> & { chatId: string }): EncodedEvent & { exchange: string; routingKey: string } {
  return { exchange: CHAT_EVENTS_EXCHANGE, routingKey: chatRoutingKey(init.chatId), ...encodeEvent(ChatEventSchema, init) };
}

/**
 * Reads a ChatEvent off `chat.events`; throws on bytes that are not one.
 *
 * For one release it also reads the proto JSON (`application/json`) that the chat store used to
 * build in SQL for new messages: such events may still wait in an outbox or a replica's queue when
 * a deployment is upgraded, or come from a dbservice replica the rollout has not reached yet.
 * Remove that branch in the release after.
 */
export function decodeChatEvent(body: Uint8Array, contentType: string | undefined): ChatEvent {
  if (contentType === "application/json") return fromJsonString(ChatEventSchema, new TextDecoder().decode(body), { ignoreUnknownFields: true });
  return fromBinary(ChatEventSchema, body);
}

/** An AuditEvent, encoded and addressed: to the audit queue (default exchange; AUDIT_QUEUE unless named), its id as the message id. */
export function auditEvent(
  init: MessageInitShape<typeof AuditEventSchema> & { eventId: string },
  queue = AUDIT_QUEUE,
): EncodedEvent & { exchange: string; routingKey: string; messageId: string } {
  return { exchange: "", routingKey: queue, messageId: init.eventId, ...encodeEvent(AuditEventSchema, init) };
}

/** Reads an AuditEvent off the audit queue; throws on bytes that are not one. */
export function decodeAuditEvent(body: Uint8Array): AuditEvent {
  return fromBinary(AuditEventSchema, body);
}

/**
 * A RecordChange, encoded and addressed: to `records.events` with the routing key of its tenant;
 * its message id is the tenant and version (consumers drop what they saw: delivery is at least once).
 */
export function recordChangeEvent(
  init: MessageInitShape<typeof RecordChangeSchema> & { tenantId: string; version: bigint },
): EncodedEvent & { exchange: string; routingKey: string; messageId: string } {
  return { exchange: RECORD_EVENTS_EXCHANGE, routingKey: recordRoutingKey(init.tenantId), messageId: `${init.tenantId}:${init.version}`, ...encodeEvent(RecordChangeSchema, init) };
}

/**
 * A RecordChange whose version is not known yet, for a store that takes the version in the same
 * statement that writes the event (so the tenant's version row is locked for one round trip only,
 * services/records/store/changes.ts): the event is built and encoded here WITHOUT its version
 * (field 1 left at its default, so absent from the bytes), and the statement puts the version's
 * bytes, `recordChangeVersionField(version)` (as SQL: `crm_pb_int64_field(1, version)`), before
 * them. A protobuf decoder reads fields in any order, so the result decodes as the message with its
 * version: the same event `recordChangeEvent` would have made. The message id is
 * `<tenant>:<version>` as there.
 */
export function unversionedRecordChange(
  init: MessageInitShape<typeof RecordChangeSchema> & { tenantId: string; version?: never },
): EncodedEvent & { exchange: string; routingKey: string } {
  return { exchange: RECORD_EVENTS_EXCHANGE, routingKey: recordRoutingKey(init.tenantId), ...encodeEvent(RecordChangeSchema, init) };
}

/** The field number of RecordChange's version (what `crm_pb_int64_field` gets in SQL). */
export const RECORD_CHANGE_VERSION_FIELD = RecordChangeSchema.field.version.number;

/** The bytes of RecordChange's version field (tag, then the value as a varint): what the SQL puts before an unversioned event. */
export function recordChangeVersionField(version: bigint): Uint8Array {
  const out = [RECORD_CHANGE_VERSION_FIELD << 3];
  let v = BigInt.asUintN(64, version);
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return Uint8Array.from(out);
}

/** Reads a RecordChange (off `records.events`, or as the records store keeps it); throws on bytes that are not one. */
export function decodeRecordChange(body: Uint8Array): RecordChange {
  return fromBinary(RecordChangeSchema, body);
}
