import { z } from "zod";
import { env } from "@crm/kit";

export const chatsEnv = z.object({
  /** A heartbeat goes out on a stream idle this long (keeps NGINX and clients from timing out; NGINX's default read timeout is 60 s). */
  CHAT_HEARTBEAT_MS: env.int(15_000, 100, 300_000),
  /** Live events buffered per stream before a slow stream falls back to reading the database. */
  CHAT_STREAM_BUFFER: env.int(10_000, 10, 1_000_000),
});

export type ChatsConfig = z.infer<typeof chatsEnv>;
