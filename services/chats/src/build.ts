/**
 * chats' one wiring, used by its own process (main.ts) and by the all-in-one; the caller only
 * chooses the providers (how dbservice is reached, the event bus: RabbitMQ or memory).
 */
import type { Basics, EventBus, ServiceModule } from "@crm/kit";
import { DbChatService } from "@crm/gen/crm/db/v1/db_chat_pb";
import type { ChatsConfig } from "./config.js";
import { createChatsModule } from "./module.js";

export interface ChatsBuildDeps extends Pick<Basics, "log" | "peer"> {
  cfg: ChatsConfig;
  /** Live chat events (the chat.events exchange the outbox relay publishes to). */
  bus: EventBus;
}

export async function build(d: ChatsBuildDeps): Promise<ServiceModule> {
  return createChatsModule({ cfg: d.cfg, db: d.peer("dbservice", DbChatService), bus: d.bus, log: d.log });
}
