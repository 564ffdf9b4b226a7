/** dbservice: the only holder of database credentials. */
import type { ServiceModule } from "@crm/kit";
import { DbAuthService } from "@crm/gen/crm/db/v1/db_auth_pb";
import { DbTimerService } from "@crm/gen/crm/db/v1/db_timer_pb";
import { DbAdminService } from "@crm/gen/crm/db/v1/db_admin_pb";
import { DbEmailService } from "@crm/gen/crm/db/v1/db_email_pb";
import { DbChatService } from "@crm/gen/crm/db/v1/db_chat_pb";
import type { Relay } from "./relay.js";
import type { Db } from "./db.js";
import { adminStore } from "@crm/admin/store";
import { authStore, roleToProto, statusToProto } from "@crm/auth/store";
import { chatStore } from "@crm/chats/store";
import { defaultEmailQueue, emailProblem, emailStore, queueEmails } from "@crm/email/store";
import { timerStore } from "@crm/timers/store";

export interface DbModuleDeps {
  db: Db;
  /** The e-mail work queue (EMAIL_QUEUE; default email_tasks) that e-mail tasks are routed to. */
  emailQueue?: string | undefined;
  /** The outbox relay (relay.ts): closed with the module; woken after commits when it cannot LISTEN. */
  relay?: Pick<Relay, "afterCommit" | "close"> | undefined;
}

export function createDbModule({ db, emailQueue, relay }: DbModuleDeps): ServiceModule {
  const emailCfg = { queue: emailQueue ?? defaultEmailQueue, afterOutbox: () => relay?.afterCommit() };
  return {
    name: "dbservice",
    services: [DbAuthService, DbTimerService, DbAdminService, DbEmailService, DbChatService],
    // Run before a tenant is known: no user token, guarded by requirePeer("auth") instead.
    publicMethods: [
      ...["RegisterCompany", "LoginDB", "CreateSession", "RotateRefreshToken"].map((m) => `/${DbAuthService.typeName}/${m}`),
      `/${DbTimerService.typeName}/StopForgottenTimersDB`, // the timers service's periodic job: requirePeer("timers")
      // Password reset and invitations (requirePeer("auth")); e-mail state for services acting for no user (requirePeer).
      ...["CreatePasswordReset", "LookupToken", "ConsumeResetToken", "ConsumeInviteToken"].map((m) => `/${DbAdminService.typeName}/${m}`),
      ...["QueueEmail", "MarkEmailSent", "MarkEmailFailed", "GetEmailStatusDB", "AdvanceEmailWorkers"].map((m) => `/${DbEmailService.typeName}/${m}`),
    ],
    routes(router) {
      router.service(DbAuthService, authStore(db));
      router.service(DbTimerService, timerStore(db));
      router.service(DbAdminService, adminStore(db, {
        // A store imports no other store: admin's gets the e-mail store's queueing and auth's role mapping here.
        emails: { problem: emailProblem, queue: (sql, companyId, emails) => queueEmails(db, sql, emailCfg, companyId, emails), afterOutbox: emailCfg.afterOutbox },
        roleToProto,
        statusToProto,
      }));
      router.service(DbEmailService, emailStore(db, emailCfg));
      router.service(DbChatService, chatStore({ db, afterOutbox: () => relay?.afterCommit() }));
    },
    ready: () => db.ping(),
    close: async () => {
      await relay?.close();
      await db.close();
    },
  };
}
