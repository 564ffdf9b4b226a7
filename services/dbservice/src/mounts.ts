/**
 * Every domain store dbservice mounts, in one list: its crm.db.v1 service, how its implementation
 * is made, the folder of its migrations and the methods that run before a tenant is known.
 * module.ts serves this list and migrate.ts runs its migrations; mounting a new domain's store is
 * one entry here (and its imports).
 */
import type { DescService } from "@bufbuild/protobuf";
import type { ConnectRouter, ServiceImpl } from "@connectrpc/connect";
import { DbAdminService } from "@crm/gen/crm/db/v1/db_admin_pb";
import { DbAuthService } from "@crm/gen/crm/db/v1/db_auth_pb";
import { DbChatService } from "@crm/gen/crm/db/v1/db_chat_pb";
import { DbEmailService } from "@crm/gen/crm/db/v1/db_email_pb";
import { DbTimerService } from "@crm/gen/crm/db/v1/db_timer_pb";
import { DbRecordsService } from "@crm/gen/crm/db/v1/db_records_pb";
import { DbAuditService } from "@crm/gen/crm/db/v1/db_audit_pb";
import { DbPrivacyService } from "@crm/gen/crm/db/v1/db_privacy_pb";
import { DbWebhooksService } from "@crm/gen/crm/db/v1/db_webhooks_pb";
import { DbImportService } from "@crm/gen/crm/db/v1/db_records_import_pb";
import { adminStore, auditLog, auditStore, migrationsDir as adminMigrations } from "@crm/admin/store";
import { authStore, migrationsDir as authMigrations, roleToProto, statusToProto } from "@crm/auth/store";
import { chatStore, migrationsDir as chatsMigrations } from "@crm/chats/store";
import { emailProblem, emailStore, queueEmails, type EmailQueueConfig } from "@crm/email/store";
import { timerStore, migrationsDir as timersMigrations } from "@crm/timers/store";
import { importStore, privacyStore, recordsStore, migrationsDir as recordsMigrations } from "@crm/records/store";
import { webhooksStore, migrationsDir as webhooksMigrations } from "@crm/webhooks/store";
import type { Db } from "./db.js";

/** What a store is made from. */
export interface StoreContext {
  db: Db;
  /** Wakes the outbox relay: called by a store after a commit that wrote to the outbox. */
  afterOutbox: () => void;
  /** Where e-mail tasks go (EMAIL_QUEUE) and the relay's wake-up. */
  email: EmailQueueConfig & { afterOutbox: () => void };
  /** Where audit events go (AUDIT_QUEUE). */
  auditQueue: string;
}

export interface Mount {
  service: DescService;
  /** The folder of the domain's migrations (services/<domain>/store/migrations), if it has its own. */
  migrations?: string | undefined;
  /** Full paths (/crm.db.v1.X/Method) of the methods that run before a tenant is known: no user token, each guarded by requirePeer. */
  publicMethods: string[];
  routes(router: ConnectRouter, ctx: StoreContext): void;
}

/** One mounted store: `store` makes the service's implementation; `publicMethods` are method names. */
export function mount<S extends DescService>(
  service: S,
  store: (ctx: StoreContext) => Partial<ServiceImpl<S>>,
  o: { migrations?: string; publicMethods?: string[] } = {},
): Mount {
  return {
    service,
    migrations: o.migrations,
    publicMethods: (o.publicMethods ?? []).map((m) => `/${service.typeName}/${m}`),
    routes: (router, ctx) => void router.service(service, store(ctx)),
  };
}

/** The audit log (the admin store's) as every store that writes to it gets it. */
const audit = ({ db, afterOutbox, auditQueue }: StoreContext) => auditLog(db, afterOutbox, auditQueue);

export const mounts: readonly Mount[] = [
  // Login and registration run before a tenant is known (requirePeer("auth")), and so does an API
  // key's use. The audit log is the admin store's, handed in (a store imports no other store).
  mount(DbAuthService, (ctx) => authStore(ctx.db, { audit: audit(ctx) }), {
    migrations: authMigrations,
    publicMethods: ["RegisterCompany", "LoginDB", "CreateSession", "RotateRefreshToken", "UseApiKeyDB"],
  }),
  // The timers service's periodic job: requirePeer("timers").
  mount(DbTimerService, ({ db }) => timerStore(db), { migrations: timersMigrations, publicMethods: ["StopForgottenTimersDB"] }),
  // A store imports no other store: admin's gets the e-mail store's queueing and auth's role mapping here.
  // Password reset and invitations run for no user (requirePeer("auth")).
  mount(
    DbAdminService,
    (ctx) =>
      adminStore(ctx.db, {
        emails: { problem: emailProblem, queue: (sql, companyId, emails) => queueEmails(ctx.db, sql, ctx.email, companyId, emails), afterOutbox: ctx.email.afterOutbox },
        roleToProto,
        statusToProto,
        audit: audit(ctx),
      }),
    { migrations: adminMigrations, publicMethods: ["CreatePasswordReset", "LookupToken", "ConsumeResetToken", "ConsumeInviteToken"] },
  ),
  // The `emails` table is created by admin's migrations. E-mail state for services acting for no user (requirePeer).
  mount(DbEmailService, ({ db, email }) => emailStore(db, email), {
    publicMethods: ["QueueEmail", "MarkEmailSent", "MarkEmailFailed", "GetEmailStatusDB", "AdvanceEmailWorkers"],
  }),
  mount(DbChatService, ({ db, afterOutbox }) => chatStore({ db, afterOutbox }), { migrations: chatsMigrations }),
  // The audit log: listed by owners and admins; RecordAuditEventsDB (actions that write nothing else) only for our services.
  mount(DbAuditService, (ctx) => auditStore(ctx.db, audit(ctx)), { publicMethods: ["RecordAuditEventsDB"] }),
  // The records service's trash purge job: requirePeer("records").
  mount(DbRecordsService, ({ db, afterOutbox }) => recordsStore(db, { afterOutbox }), { migrations: recordsMigrations, publicMethods: ["PurgeTrashDB", "TrimChangesDB"] }),
  // The webhooks service's delivery queue runs for no user (requirePeer("webhooks")); giving up
  // e-mails the owners through the e-mail store's queueing, handed in here.
  mount(
    DbWebhooksService,
    (ctx) =>
      webhooksStore(ctx.db, {
        audit: audit(ctx),
        emails: { queue: (sql, companyId, emails) => queueEmails(ctx.db, sql, ctx.email, companyId, emails), afterOutbox: ctx.email.afterOutbox },
      }),
    { migrations: webhooksMigrations, publicMethods: ["EnqueueEventDB", "EnqueueEventsDB", "ClaimDeliveriesDB", "CompleteDeliveryDB", "CompleteDeliveriesDB", "PurgeDeliveriesDB"] },
  ),
  // Imports and exports (the records store's migrations); the job's batches run for no user: requirePeer("records").
  mount(DbImportService, (ctx) => importStore(ctx.db, { afterOutbox: ctx.afterOutbox, audit: audit(ctx) }), { publicMethods: ["ClaimImportDB", "RunImportBatchDB"] }),
  // A person's export and erasure (the records store's; its audit events in the same transaction).
  mount(DbPrivacyService, (ctx) => privacyStore(ctx.db, { audit: audit(ctx), afterOutbox: ctx.afterOutbox })),
];
