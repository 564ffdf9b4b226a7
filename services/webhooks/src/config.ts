import { z } from "zod";
import { env } from "@crm/kit";

export const webhooksEnv = z.object({
  /** Deliveries in flight at once in this process (its worker pool). */
  WEBHOOKS_CONCURRENCY: env.int(64, 1, 10_000),
  /** Deliveries in flight at once per endpoint (across every process): a slow endpoint holds this many of the pool at most. */
  WEBHOOKS_PER_ENDPOINT: env.int(4, 1, 100),
  /** The deadline of one delivery (connect, send, answer). */
  WEBHOOKS_TIMEOUT_MS: env.int(10_000, 100, 60_000),
  /** How often the workers look for due deliveries when nothing woke them. */
  WEBHOOKS_POLL_MS: env.int(500, 10, 60_000),
  /**
   * How long a finished delivery waits for others to be settled with it (one CompleteDeliveriesDB
   * call, one transaction); 0 settles what finished in the same turn together.
   */
  WEBHOOKS_SETTLE_MS: env.int(5, 0, 1000),
  /** Allow loopback, private and link-local receivers (a test box, or receivers on a private network). */
  WEBHOOKS_ALLOW_PRIVATE: env.bool(false),
  /** Addresses allowed although private ("10.1.0.0/16,::1/128"), comma-separated. */
  WEBHOOKS_ALLOW_CIDRS: env.str(""),
  /** The durable queue on records.events the service consumes (record changes, finished imports). */
  WEBHOOKS_QUEUE: env.str("webhooks.records"),
  /** The durable queue on users.events (users added or deactivated). */
  WEBHOOKS_USERS_QUEUE: env.str("webhooks.users"),
  /**
   * Chat messages as webhook events (`chat.message`). Off by default: when on, the broker keeps a
   * durable copy of every chat message of every company for this service (one more quorum-queue
   * write per message, measured on SendMessage and fan-out), whether or not an endpoint asked.
   */
  WEBHOOKS_CHAT_EVENTS: env.bool(false),
  /** The durable queue on chat.events (chat messages, for endpoints that ask for them), when WEBHOOKS_CHAT_EVENTS is on. */
  WEBHOOKS_CHAT_QUEUE: env.str("webhooks.chat"),
});

export type WebhooksConfig = z.infer<typeof webhooksEnv>;
