/**
 * A company's events that are not record changes, as they cross the bus (binary protobuf, the
 * type in `x-crm-type`, like every event: ./events.ts): users added or deactivated
 * (`users.events`) and finished imports (`records.events` under `imports.<tenant>`). The admin and
 * records stores write them to the outbox; webhooks decodes them.
 */
import { fromBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { UserEventSchema, type UserEvent } from "@crm/gen/crm/admin/v1/admin_pb";
import { ImportFinishedSchema, type ImportFinished } from "@crm/gen/crm/records/v1/import_pb";
import { encodeEvent, type EncodedEvent } from "./events.js";
import { RECORD_EVENTS_EXCHANGE, USER_EVENTS_EXCHANGE, importRoutingKey, userRoutingKey } from "./messaging.js";

type Addressed = EncodedEvent & { exchange: string; routingKey: string; messageId: string };

/** An ImportFinished, encoded and addressed: to `records.events` with its tenant's imports routing key, its event id as the message id. */
export function importFinishedEvent(init: MessageInitShape<typeof ImportFinishedSchema> & { eventId: string; tenantId: string }): Addressed {
  return { exchange: RECORD_EVENTS_EXCHANGE, routingKey: importRoutingKey(init.tenantId), messageId: init.eventId, ...encodeEvent(ImportFinishedSchema, init) };
}

/** Reads an ImportFinished; throws on bytes that are not one. */
export function decodeImportFinished(body: Uint8Array): ImportFinished {
  return fromBinary(ImportFinishedSchema, body);
}

/** A UserEvent, encoded and addressed: to `users.events` with its tenant's routing key, its event id as the message id. */
export function userEvent(init: MessageInitShape<typeof UserEventSchema> & { eventId: string; companyId: string }): Addressed {
  return { exchange: USER_EVENTS_EXCHANGE, routingKey: userRoutingKey(init.companyId), messageId: init.eventId, ...encodeEvent(UserEventSchema, init) };
}

/** Reads a UserEvent; throws on bytes that are not one. */
export function decodeUserEvent(body: Uint8Array): UserEvent {
  return fromBinary(UserEventSchema, body);
}
