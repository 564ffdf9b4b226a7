import { z } from "zod";
import { env } from "@crm/kit";
import { AUDIT_QUEUE, EMAIL_QUEUE } from "@crm/contracts";

export const dbEnv = z.object({
  DATABASE_URL: env.url(["postgres", "postgresql"]),
  DB_POOL_MAX: env.int(10, 1, 200),
  /** Opening a connection (TCP + startup) past this fails the call with unavailable. */
  DB_CONNECT_TIMEOUT_MS: env.int(2_000, 10, 120_000),
  /** A statement past this fails with unavailable (client timer, and PostgreSQL's statement_timeout). */
  DB_QUERY_TIMEOUT_MS: env.int(5_000, 10, 600_000),
  /** Access tokens' lifetime (auth's setting): sessions revoked this long ago (+60 s) are listed again when Redis lost the list. */
  ACCESS_TOKEN_TTL_SECONDS: env.int(900, 60, 3600),
  /** The queue e-mail tasks are routed to (the email service consumes the same EMAIL_QUEUE). */
  EMAIL_QUEUE: env.str(EMAIL_QUEUE),
  /** The queue audit events are routed to (admin consumes the same AUDIT_QUEUE). */
  AUDIT_QUEUE: env.str(AUDIT_QUEUE),
  /** How long audit events are kept; older ones are deleted hourly (audit-retention.ts). */
  AUDIT_RETENTION_DAYS: env.int(365, 1, 36_500),
});

export type DbConfig = z.infer<typeof dbEnv>;
