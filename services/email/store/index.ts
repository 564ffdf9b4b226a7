/**
 * The e-mail store as dbservice mounts it: the DbEmailService implementation (SQL on `emails`;
 * each e-mail's task goes to dbservice's outbox in the same transaction), and `queueEmails` for
 * admin's AddUsers (handed to admin's store by dbservice's mounting), which queues invitations in
 * its own transaction. Its table is created by
 * services/admin/store/migrations/1700000000030_admin_email.sql, shared with admin's tables (one
 * recorded migration name, so the file was not split).
 */
export { defaultEmailQueue, emailProblem, emailStore, queueEmails, type EmailQueueConfig, type QueuedEmail } from "./email-store.js";
