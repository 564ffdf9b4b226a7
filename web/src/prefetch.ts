/**
 * What each screen asks for first, started by App's boot the moment the main chunk runs — in
 * parallel with Check and with the screen's own chunk, never after them — and used by the screens
 * with the same inputs (so TanStack Query finds the answer in its cache). A signed-in screen thus
 * waits for one API round trip (docs/console.md, "Round trips"). At most six requests at once: the
 * all-in-one speaks HTTP/1.1 to browsers, six connections per host.
 */
import { createClient } from "@connectrpc/connect";
import { createInfiniteQueryOptions } from "@connectrpc/connect-query";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ChatService, type ListMessagesResponse } from "@crm/gen/crm/chat/v1/chat_pb";
import { GroupBy, TimerService } from "@crm/gen/crm/timer/v1/timer_pb";
import { AuthService } from "@crm/gen/crm/auth/v1/auth_pb";
import { AdminService, UserStatus } from "@crm/gen/crm/admin/v1/admin_pb";
import { prefetch, queryClient } from "./query";
import { transport } from "./session";

// Chats
export const chatListInput = { pageSize: 200 };
export const messagesPageSize = 50;
const chats = createClient(ChatService, transport);
let early: { chatId: string; page: Promise<ListMessagesResponse> } | undefined;

/** The newest page of `chatId` when boot already asked for it (once); else undefined. */
export function takeEarlyMessages(chatId: string): Promise<ListMessagesResponse> | undefined {
  const e = early?.chatId === chatId ? early.page : undefined;
  early = undefined;
  return e;
}

// Timers: a week is Monday 00:00 to the next Monday 00:00, local time.
/** Local Monday 00:00 of the week containing `d`. */
export function weekStart(d: Date): Date {
  const s = new Date(d.getFullYear(), d.getMonth(), d.getDate());
  s.setDate(s.getDate() - ((s.getDay() + 6) % 7));
  return s;
}

/** The week `?week=YYYY-MM-DD` names (any day of it), else this week. */
export function weekOf(param: string | null): Date {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(param ?? "");
  const d = m ? new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3])) : new Date();
  return weekStart(Number.isNaN(d.getTime()) ? new Date() : d);
}

export function addDays(d: Date, days: number): Date {
  const x = new Date(d);
  x.setDate(x.getDate() + days);
  return x;
}

export const timeZone = Intl.DateTimeFormat().resolvedOptions().timeZone;

/** The timesheet's two calls for the week starting `monday`: its entries and its per-day totals. */
export function weekInputs(monday: Date) {
  const from = timestampFromDate(monday);
  const to = timestampFromDate(addDays(monday, 7));
  return {
    list: { from, to, pageSize: 500 },
    report: { from, to, timeZone, groupBy: GroupBy.DAY },
  };
}

// Admin
export const membersInput = (query: string, status: UserStatus) => ({ query, status, pageSize: 100, pageToken: "" });
export const membersPaging = { pageParamKey: "pageToken", getNextPageParam: (last: { nextPageToken: string }) => last.nextPageToken || undefined } as const;

/**
 * The calls the screen at `path` makes first, and the shell's (the menu's unread count, the
 * header's clock): with Check and the screen's chunk, at most six at once.
 */
export function prefetchFor(path: string, search: URLSearchParams): void {
  prefetch(TimerService.method.getWorkingTimer, {});
  prefetch(ChatService.method.listChats, chatListInput);
  if (path === "/" || path.startsWith("/chats")) {
    const id = /^\/chats\/([^/]+)$/.exec(path)?.[1];
    if (id) {
      const chatId = decodeURIComponent(id);
      const page = chats.listMessages({ chatId, limit: messagesPageSize });
      page.catch(() => {}); // the room asks again
      early = { chatId, page };
    }
  } else if (path.startsWith("/timers")) {
    const w = weekInputs(weekOf(search.get("week")));
    prefetch(TimerService.method.listTimers, w.list);
    prefetch(TimerService.method.getReport, w.report);
  } else if (path.startsWith("/account")) {
    prefetch(AuthService.method.listSessions, {});
  } else if (path === "/admin" || path.startsWith("/admin/members")) {
    // A member who opens this address gets permission_denied, as the screen would.
    void queryClient.prefetchInfiniteQuery(createInfiniteQueryOptions(AdminService.method.listUsers, membersInput("", UserStatus.UNSPECIFIED), { transport, ...membersPaging }));
  }
}
