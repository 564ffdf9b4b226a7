/**
 * Unread messages: the chats list's badge per chat, and the total beside "Chats" in the menu (the
 * same ListChats query as the chats screen, polled every 15 s and after each MarkRead). The number
 * is shown; the link's name says it in words ("Sales, 3 unread"), for screen readers.
 */
import { useQuery } from "@connectrpc/connect-query";
import { Link, useRoute } from "wouter";
import { ChatService } from "@crm/gen/crm/chat/v1/chat_pb";
import { useI18n } from "../i18n";
import { chatListInput } from "../prefetch";

/** The number, for the eye, and in words for a screen reader (it is part of the link's name). */
export function UnreadBadge({ count }: { count: number }) {
  const { t, number } = useI18n();
  return (
    <>
      <span className="badge" aria-hidden="true">
        {number(count)}
      </span>
      <span className="visually-hidden">, {t("chats.unread", { count })}</span>
    </>
  );
}

/** "Chats" in the menu, with the unread messages of every chat but the one open on screen. */
export function ChatsLink() {
  const { t } = useI18n();
  const list = useQuery(ChatService.method.listChats, chatListInput, { refetchInterval: 15_000 });
  const [active] = useRoute("/chats/*?");
  const [, open] = useRoute<{ id: string }>("/chats/:id");
  const total = (list.data?.chats ?? []).reduce((n, c) => n + (c.chatId === open?.id ? 0 : Number(c.unreadCount)), 0);
  return (
    <Link href="/chats" aria-current={active ? "page" : undefined}>
      {t("nav.chats")}
      {total > 0 && <UnreadBadge count={total} />}
    </Link>
  );
}
