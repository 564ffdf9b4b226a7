/** The chats service module: crm.chat.v1.ChatService, with live delivery through the event bus. */
import type { Client } from "@connectrpc/connect";
import type { EventBus, Logger, ServiceModule } from "@crm/kit";
import { ChatService } from "@crm/gen/crm/chat/v1/chat_pb";
import type { DbChatService } from "@crm/gen/crm/db/v1/db_chat_pb";
import { chatService } from "./chat-service.js";
import type { ChatsConfig } from "./config.js";
import { createHub } from "./hub.js";

export interface ChatsModuleDeps {
  cfg: ChatsConfig;
  db: Client<typeof DbChatService>;
  bus: EventBus;
  log: Logger;
}

export async function createChatsModule(d: ChatsModuleDeps): Promise<ServiceModule> {
  const hub = await createHub({ bus: d.bus, log: d.log });
  const impl = chatService({ db: d.db, hub, heartbeatMs: d.cfg.CHAT_HEARTBEAT_MS, maxBuffered: d.cfg.CHAT_STREAM_BUFFER });
  return {
    name: "chats",
    services: [ChatService],
    routes(router) {
      router.service(ChatService, impl);
    },
    close: () => hub.close(),
  };
}
