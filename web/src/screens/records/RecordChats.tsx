/**
 * A record page's attached chats (issue 19: "a record page with … an attached chat"): the
 * reader's chats attached to this company, person or deal (ChatService.ListChats with `record`),
 * each a link to the chat with its unread count; a new chat about the record (CreateChat, then
 * SetChatRecord), one of the reader's other chats attached here, and "Detach". Any member may
 * attach a chat they are in; a chat is attached to one record at a time (attaching moves it).
 */
import { useId, useState, type FormEvent } from "react";
import { Link } from "wouter";
import { useQuery } from "@connectrpc/connect-query";
import { createClient } from "@connectrpc/connect";
import { ChatService } from "@crm/gen/crm/chat/v1/chat_pb";
import type { ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import { transport } from "../../session";
import { describeError } from "../../errors";
import { useInvalidate } from "./common";
import { useWords } from "./words";

const chats = createClient(ChatService, transport);

export function RecordChats({ objectType, recordId, name }: { objectType: ObjectType; recordId: string; name: string }) {
  const words = useWords();
  const { w, t } = words;
  const id = useId();
  const invalidate = useInvalidate();
  const record = { objectType, id: recordId };
  const here = useQuery(ChatService.method.listChats, { record, pageSize: 50 });
  const mine = useQuery(ChatService.method.listChats, { pageSize: 200 });
  const attached = here.data?.chats ?? [];
  const others = (mine.data?.chats ?? []).filter((c) => !attached.some((a) => a.chatId === c.chatId));
  const [title, setTitle] = useState("");
  const [pick, setPick] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const run = async (f: () => Promise<unknown>) => {
    setBusy(true);
    setError(undefined);
    try {
      await f();
    } catch (e) {
      setError(describeError(e, words.i18n));
    } finally {
      setBusy(false);
      await invalidate(ChatService.method.listChats);
    }
  };
  const create = (e: FormEvent) => {
    e.preventDefault();
    void run(async () => {
      const made = await chats.createChat({ name: title.trim() || name });
      await chats.setChatRecord({ chatId: made.chat!.chatId, record });
      setTitle("");
    });
  };
  const attach = (e: FormEvent) => {
    e.preventDefault();
    if (!pick) return;
    void run(async () => {
      await chats.setChatRecord({ chatId: pick, record });
      setPick("");
    });
  };
  return (
    <section aria-labelledby={`${id}-title`} className="record-chats">
      <h2 id={`${id}-title`}>{w("chatsHere")}</h2>
      {here.isPending ? (
        <p aria-busy="true">{t("app.loading")}</p>
      ) : attached.length === 0 ? (
        <p>{w("noChatsHere")}</p>
      ) : (
        <ul className="linked-list">
          {attached.map((c) => (
            <li key={c.chatId}>
              <Link href={`/chats/${c.chatId}`}>{c.name}</Link>
              {c.unreadCount > 0n && <span className="hint"> · {t("chats.unread", { count: Number(c.unreadCount) })}</span>}{" "}
              <button type="button" className="secondary small" disabled={busy} onClick={() => void run(() => chats.setChatRecord({ chatId: c.chatId }))} aria-label={w("detachChat", { name: c.name })}>
                {w("detach")}
              </button>
            </li>
          ))}
        </ul>
      )}
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      <form className="inline-form" onSubmit={create}>
        <label htmlFor={`${id}-new`}>{w("newChatHere")}</label>
        <input id={`${id}-new`} value={title} placeholder={name} maxLength={200} onChange={(e) => setTitle(e.target.value)} />
        <button type="submit" disabled={busy}>
          {w("startChat")}
        </button>
      </form>
      {others.length > 0 && (
        <form className="inline-form" onSubmit={attach}>
          <label htmlFor={`${id}-pick`}>{w("attachChat")}</label>
          <select id={`${id}-pick`} value={pick} onChange={(e) => setPick(e.target.value)}>
            <option value="">{w("pickChat")}</option>
            {others.map((c) => (
              <option key={c.chatId} value={c.chatId}>
                {c.name}
              </option>
            ))}
          </select>
          <button type="submit" className="secondary" disabled={busy || !pick}>
            {w("attach")}
          </button>
        </form>
      )}
    </section>
  );
}
