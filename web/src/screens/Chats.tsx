/**
 * Chats: the caller's chats with unread badges and the record each is attached to (a link to its
 * page, also in the open chat's header: ChatRecord.tsx), a form to create one, and the open chat: its
 * newest messages (ListMessages), older pages on demand, and live messages from the Subscribe
 * server stream, which resumes after the last seq seen so nothing is lost or doubled.
 */
import { useCallback, useEffect, useId, useLayoutEffect, useReducer, useRef, useState, type FormEvent, type KeyboardEvent, type ReactNode } from "react";
import { Link, useLocation } from "wouter";
import { useMutation, useQuery, createConnectQueryKey } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { ChatService, type Message } from "@crm/gen/crm/chat/v1/chat_pb";
import { refresh, transport } from "../session";
import { UnreadBadge } from "./UnreadBadge";
import { useI18n } from "../i18n";
import { describeError } from "../errors";
import { chatListInput, messagesPageSize, takeEarlyMessages } from "../prefetch";
import { ChatRecordLink, useChatRecordNames } from "./ChatRecord";

const chats = createClient(ChatService, transport);


export function Chats({ chatId, me }: { chatId: string | undefined; me: string }) {
  const i18n = useI18n();
  const { t } = i18n;
  const list = useQuery(ChatService.method.listChats, chatListInput, { refetchInterval: 15_000 });
  const queryClient = useQueryClient();
  const [, navigate] = useLocation();
  const [name, setName] = useState("");
  const nameId = useId();
  const create = useMutation(ChatService.method.createChat, {
    onSuccess: async (r) => {
      setName("");
      await queryClient.invalidateQueries({ queryKey: createConnectQueryKey({ schema: ChatService.method.listChats, cardinality: undefined }) });
      if (r.chat) navigate(`/chats/${r.chat.chatId}`);
    },
  });
  const onCreate = (e: FormEvent) => {
    e.preventDefault();
    if (name.trim()) create.mutate({ name: name.trim() });
  };
  const current = list.data?.chats.find((c) => c.chatId === chatId);
  const recordNames = useChatRecordNames(list.data?.chats ?? []);

  return (
    <div className="chats">
      <section className="chat-list" aria-labelledby="chats-title">
        <h1 id="chats-title">{t("chats.title")}</h1>
        <form onSubmit={onCreate} className="inline-form">
          <label htmlFor={nameId}>{t("chats.newName")}</label>
          <input id={nameId} name="chatName" maxLength={200} required value={name} onChange={(e) => setName(e.target.value)} />
          <button type="submit" disabled={create.isPending}>
            {t("chats.create")}
          </button>
        </form>
        {create.error && (
          <p role="alert" className="error">
            {describeError(create.error, i18n)}
          </p>
        )}
        {list.isPending ? (
          <p aria-busy="true">{t("app.loading")}</p>
        ) : list.error ? (
          <p role="alert" className="error">
            {describeError(list.error, i18n)}
          </p>
        ) : list.data.chats.length === 0 ? (
          <p>{t("chats.empty")}</p>
        ) : (
          <ul aria-label={t("chats.list")}>
            {list.data.chats.map((c) => {
              const unread = c.chatId === chatId ? 0 : Number(c.unreadCount);
              return (
                <li key={c.chatId}>
                  <Link href={`/chats/${c.chatId}`} aria-current={c.chatId === chatId ? "page" : undefined}>
                    <span className="chat-name">{c.name}</span>
                    {unread > 0 && <UnreadBadge count={unread} />}
                  </Link>
                  <ChatRecordLink chat={c} names={recordNames} className="chat-record" />
                </li>
              );
            })}
          </ul>
        )}
      </section>
      <section className="chat-room" aria-label={current?.name ?? t("chat.messages")}>
        {chatId ? (
          <ChatRoom key={chatId} chatId={chatId} name={current?.name} me={me} record={<ChatRecordLink chat={current} names={recordNames} className="chat-record room-record" />} />
        ) : (
          <p className="pick">{t("chats.pick")}</p>
        )}
      </section>
    </div>
  );
}

interface RoomState {
  /** Ascending seq, no duplicates. */
  messages: Message[];
  /** Set when older messages exist: the before_seq of the previous page. */
  olderBefore: bigint | undefined;
}

type RoomAction = { type: "newest"; messages: Message[]; olderBefore: bigint | undefined } | { type: "older"; messages: Message[]; olderBefore: bigint | undefined } | { type: "add"; message: Message };

/** Merges by seq: a message from the stream and the same one from SendMessage's answer count once. */
function room(state: RoomState, a: RoomAction): RoomState {
  const bySeq = new Map(state.messages.map((m) => [m.seq, m]));
  if (a.type === "add") {
    if (bySeq.has(a.message.seq)) return state;
    bySeq.set(a.message.seq, a.message);
  } else for (const m of a.messages) bySeq.set(m.seq, m);
  const messages = [...bySeq.values()].sort((x, y) => (x.seq < y.seq ? -1 : x.seq > y.seq ? 1 : 0));
  return { messages, olderBefore: a.type === "add" ? state.olderBefore : a.olderBefore };
}

function newId(): string {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

const wait = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const id = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => (clearTimeout(id), resolve()), { once: true });
  });

/** How close to the bottom (px) counts as "at the newest message": new ones then scroll into view. */
const nearBottom = 48;

function ChatRoom({ chatId, name, me, record }: { chatId: string; name: string | undefined; me: string; record: ReactNode }) {
  const i18n = useI18n();
  const { t } = i18n;
  const queryClient = useQueryClient();
  const [state, dispatch] = useReducer(room, { messages: [], olderBefore: undefined });
  const [phase, setPhase] = useState<"loading" | "live" | "reconnecting" | "gone">("loading");
  const [error, setError] = useState<string>();
  const [draft, setDraft] = useState("");
  const [sending, setSending] = useState(false);
  const [loadingOlder, setLoadingOlder] = useState(false);
  const inputId = useId();
  const logRef = useRef<HTMLDivElement>(null);
  const topRef = useRef<HTMLLIElement>(null);
  const lastRead = useRef(0n);
  /** Whether the view was at the newest message before the last change (else the reader is scrolled up, reading). */
  const atBottom = useRef(true);
  /** Set just before older messages go in above: where the view was, so it stays on the same message. */
  const anchor = useRef<{ height: number; top: number } | undefined>(undefined);
  /** Set when this browser sent the newest message: it scrolls into view wherever the reader was. */
  const sentByMe = useRef(false);

  // History, then the live stream from the last seq read; reconnects with backoff.
  useEffect(() => {
    const ac = new AbortController();
    const { signal } = ac;
    (async () => {
      let after: bigint | undefined;
      for (let backoff = 500; !signal.aborted; backoff = Math.min(backoff * 2, 10_000)) {
        try {
          if (after === undefined) {
            const page = await (takeEarlyMessages(chatId) ?? chats.listMessages({ chatId, limit: messagesPageSize }, { signal }));
            dispatch({ type: "newest", messages: page.messages, olderBefore: page.nextBeforeSeq });
            after = page.lastSeq;
          }
          for await (const ev of chats.subscribe({ chatId, afterSeq: after }, { signal })) {
            setPhase("live");
            backoff = 500;
            if (ev.event.case === "message") {
              dispatch({ type: "add", message: ev.event.value });
              if (ev.event.value.seq > after) after = ev.event.value.seq;
            }
          }
        } catch (e) {
          if (signal.aborted) return;
          const err = ConnectError.from(e);
          if (err.code === Code.NotFound) {
            setPhase("gone");
            return;
          }
          if (err.code === Code.Unauthenticated && !(await refresh())) return;
        }
        if (signal.aborted) return;
        setPhase("reconnecting");
        await wait(backoff, signal);
      }
    })();
    return () => ac.abort();
  }, [chatId]);

  // Moves the read marker to the newest message once it has been in view (unread badges follow).
  const newest = state.messages.at(-1)?.seq ?? 0n;
  const newestRef = useRef(newest);
  newestRef.current = newest;
  const readTimer = useRef<ReturnType<typeof setTimeout>>(undefined);
  const markRead = useCallback(() => {
    const seq = newestRef.current;
    if (seq <= lastRead.current || !atBottom.current || document.visibilityState !== "visible") return;
    clearTimeout(readTimer.current);
    readTimer.current = setTimeout(() => {
      if (seq <= lastRead.current) return;
      lastRead.current = seq;
      chats
        .markRead({ chatId, seq })
        .then(() => queryClient.invalidateQueries({ queryKey: createConnectQueryKey({ schema: ChatService.method.listChats, cardinality: undefined }) }))
        .catch(() => (lastRead.current = 0n)); // tried again on the next scroll or message
    }, 300);
  }, [chatId, queryClient]);
  useEffect(() => () => clearTimeout(readTimer.current), []);
  useEffect(() => {
    const onVisible = () => markRead();
    document.addEventListener("visibilitychange", onVisible);
    return () => document.removeEventListener("visibilitychange", onVisible);
  }, [markRead]);

  // Before the browser paints the new messages: older ones keep the view on the message it showed
  // (the content above grew by their height); new ones scroll into view when the reader was at the
  // bottom (or sent it), and otherwise leave the reader where they are.
  useLayoutEffect(() => {
    const log = logRef.current;
    if (!log) return;
    const a = anchor.current;
    if (a) {
      anchor.current = undefined;
      log.scrollTop = a.top + (log.scrollHeight - a.height);
      return;
    }
    if (atBottom.current || sentByMe.current) {
      sentByMe.current = false;
      log.scrollTop = log.scrollHeight;
      atBottom.current = true;
    }
    markRead();
  }, [state.messages, markRead]);

  const olderBefore = state.olderBefore;
  const loadingOlderRef = useRef(false);
  const loadOlder = useCallback(async () => {
    if (olderBefore === undefined || loadingOlderRef.current) return;
    loadingOlderRef.current = true;
    setLoadingOlder(true);
    try {
      const page = await chats.listMessages({ chatId, beforeSeq: olderBefore, limit: messagesPageSize });
      const log = logRef.current;
      if (log) anchor.current = { height: log.scrollHeight, top: log.scrollTop };
      dispatch({ type: "older", messages: page.messages, olderBefore: page.nextBeforeSeq });
    } catch (e) {
      setError(describeError(e, i18n));
    } finally {
      loadingOlderRef.current = false;
      setLoadingOlder(false);
    }
  }, [chatId, olderBefore, i18n]);

  // Scrolling up to the top of the history (or close to it) loads the page before it.
  useEffect(() => {
    const log = logRef.current;
    const top = topRef.current;
    if (!log || !top || olderBefore === undefined || typeof IntersectionObserver !== "function") return;
    const io = new IntersectionObserver((entries) => entries.some((e) => e.isIntersecting) && void loadOlder(), { root: log, rootMargin: "300px 0px 0px 0px" });
    io.observe(top);
    return () => io.disconnect();
  }, [loadOlder, olderBefore]);

  const onScroll = () => {
    const log = logRef.current;
    if (!log) return;
    atBottom.current = log.scrollHeight - log.scrollTop - log.clientHeight <= nearBottom;
    if (atBottom.current) markRead();
  };

  const send = async (e?: FormEvent) => {
    e?.preventDefault();
    const content = draft.trim();
    if (!content || sending) return;
    setSending(true);
    setError(undefined);
    try {
      const r = await chats.sendMessage({ chatId, content, clientMessageId: newId() });
      sentByMe.current = true;
      if (r.message) dispatch({ type: "add", message: r.message });
      setDraft("");
    } catch (err) {
      setError(describeError(err, i18n));
    } finally {
      setSending(false);
    }
  };
  const onKey = (e: KeyboardEvent<HTMLTextAreaElement>) => {
    if (e.key === "Enter" && !e.shiftKey && !e.nativeEvent.isComposing) void send(e);
  };

  if (phase === "gone") {
    return (
      <p role="alert" className="error">
        {t("chat.notFound")}
      </p>
    );
  }
  return (
    <>
      <header className="room-top">
        <div className="room-title">
          <h2>{name ?? ""}</h2>
          {record}
        </div>
        <span className={`conn ${phase}`} role="status">
          {phase === "live" ? t("chat.live") : phase === "reconnecting" ? t("chat.reconnecting") : t("app.loading")}
        </span>
      </header>
      <div className="messages" ref={logRef} onScroll={onScroll} role="log" aria-label={t("chat.messages")} aria-busy={loadingOlder} tabIndex={0}>
        <ol>
          {/* Always there (empty while loading), so that its arrival never moves the view. */}
          <li ref={topRef} className="history-top">
            {olderBefore !== undefined ? (
              // Scrolling up loads it too; the button is for the keyboard and for screen readers.
              <button type="button" className="secondary older" onClick={() => void loadOlder()} disabled={loadingOlder}>
                {loadingOlder ? t("app.loading") : t("chat.older")}
              </button>
            ) : (
              state.messages.length > 0 && <span className="hint">{t("chat.beginning")}</span>
            )}
          </li>
          {state.messages.length === 0 && phase !== "loading" && <li className="empty">{t("chat.noMessages")}</li>}
          {state.messages.map((m) => {
            const at = m.createdAt ? timestampDate(m.createdAt) : undefined;
            return (
              <li key={String(m.seq)} className={m.senderId === me ? "mine" : undefined} data-seq={String(m.seq)}>
                <span className="who">{m.senderId === me ? t("chat.you") : t("chat.member", { id: m.senderId.slice(-4) })}</span>
                {at && (
                  <time dateTime={at.toISOString()} title={i18n.dateTime(at)}>
                    {i18n.time(at)}
                  </time>
                )}
                <p className="text">{m.content}</p>
              </li>
            );
          })}
        </ol>
      </div>
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      <form className="composer" onSubmit={(e) => void send(e)}>
        <label htmlFor={inputId}>{t("chat.message")}</label>
        <textarea id={inputId} name="message" rows={2} maxLength={4000} value={draft} onChange={(e) => setDraft(e.target.value)} onKeyDown={onKey} />
        <button type="submit" disabled={sending || !draft.trim()}>
          {t("chat.send")}
        </button>
      </form>
    </>
  );
}
