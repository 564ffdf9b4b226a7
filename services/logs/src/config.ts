import { z } from "zod";
import { env } from "@crm/kit";

export const logsEnv = z.object({
  /** Loki's base URL, e.g. http://loki:3100 (user:password@ in the URL becomes Basic auth). Unset: entries go to this process's log. */
  LOKI_URL: env.url(["http", "https"]),
  /** X-Scope-OrgID for a multi-tenant Loki. */
  LOKI_TENANT: env.optionalStr(),
  /** Push when this many entries are waiting… */
  LOKI_BATCH_ENTRIES: env.int(500, 1, 10_000),
  /** …or this many bytes of log lines… */
  LOKI_BATCH_BYTES: env.int(1024 * 1024, 1024, 16 * 1024 * 1024),
  /** …or this long after the first waiting entry. */
  LOKI_FLUSH_MS: env.int(1000, 10, 60_000),
  /** Entries kept while Loki is slow or down; past it the oldest are dropped (counted, logged). */
  LOKI_BUFFER_ENTRIES: env.int(20_000, 10, 1_000_000),
  LOKI_BUFFER_BYTES: env.int(32 * 1024 * 1024, 64 * 1024, 1024 * 1024 * 1024),
  LOKI_TIMEOUT_MS: env.int(10_000, 100, 120_000),
  /** Retry backoff: doubles from the first delay up to the max (with jitter); Retry-After is honoured. */
  LOKI_RETRY_FIRST_MS: env.int(250, 1, 60_000),
  LOKI_RETRY_MAX_MS: env.int(30_000, 10, 600_000),
  /** Add company_id as a Loki label (one stream per tenant: fine for a few hundred companies). */
  LOKI_COMPANY_LABEL: env.bool(false),
  /** Send trace_id/user_id/company_id as Loki structured metadata too (Loki 3 with schema v13); they are always in the line. */
  LOKI_STRUCTURED_METADATA: env.bool(false),
});

export type LogsConfig = z.infer<typeof logsEnv>;
