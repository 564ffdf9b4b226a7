/**
 * The RabbitMQ names services meet on. The service that publishes and the one that consumes import
 * them from here, so neither holds a copy that could drift from the other's.
 */

/**
 * Chat events (crm.chat.v1.ChatEvent): written to the outbox by the chat store (dbservice), published
 * by the relay, consumed by every chats replica's hub.
 */
export const CHAT_EVENTS_EXCHANGE = "chat.events";
/** The type of `chat.events`: topic, so each chats replica binds only the chats its streams watch. */
export const CHAT_EVENTS_EXCHANGE_TYPE = "topic";
/** The routing key of one chat's events on `chat.events`. */
export const chatRoutingKey = (chatId: string) => `chat.${chatId}`;

/**
 * E-mail tasks (crm.email.v1.EmailTask): written to the outbox by the e-mail store (dbservice),
 * published to this durable queue (through the default exchange, routing key = the queue's name),
 * consumed by the email service's workers. Both read EMAIL_QUEUE; this is its default.
 */
export const EMAIL_QUEUE = "email_tasks";
/** Where a task goes after its last attempt: `<queue>.dead` (e.g. `email_tasks.dead`). */
export const deadLetterQueueOf = (queue: string) => `${queue}.dead`;

/**
 * Audit events (crm.admin.v1.AuditEvent): written to the outbox with each audit row by the admin
 * store (dbservice), published to this durable queue, consumed by the admin service, which ships
 * them to Loki through the logs service. dbservice declares it too, so events wait in the broker
 * until admin first starts. Both read AUDIT_QUEUE; this is its default.
 */
export const AUDIT_QUEUE = "audit_events";

/**
 * Record changes (crm.records.v1.RecordChange): written to the outbox by the records store
 * (dbservice) with every change of a company, person or deal, published by the relay, consumed by
 * every records replica's hub (WatchRecords) and by webhooks. Finished imports
 * (crm.records.v1.ImportFinished) go to the same exchange under `imports.<tenant>`, which no hub binds.
 */
export const RECORD_EVENTS_EXCHANGE = "records.events";
/** The type of `records.events`: topic, so each records replica binds only the tenants its streams watch. */
export const RECORD_EVENTS_EXCHANGE_TYPE = "topic";
/** The routing key of one tenant's record changes on `records.events` (all object types: versions are per tenant). */
export const recordRoutingKey = (tenantId: string) => `records.${tenantId}`;

/** The routing key of one tenant's finished imports on `records.events` (webhooks binds `imports.*`). */
export const importRoutingKey = (tenantId: string) => `imports.${tenantId}`;

/**
 * Users added or deactivated (crm.admin.v1.UserEvent): written to the outbox by the admin store
 * (dbservice) in the transaction of the change, published by the relay, consumed by webhooks.
 */
export const USER_EVENTS_EXCHANGE = "users.events";
/** The type of `users.events`: topic, keyed by tenant like the others. */
export const USER_EVENTS_EXCHANGE_TYPE = "topic";
/** The routing key of one tenant's user events on `users.events`. */
export const userRoutingKey = (tenantId: string) => `users.${tenantId}`;
