/**
 * The record a chat is attached to, named: ListChats gives each chat's `record` (its type and id,
 * set on a record page: RecordChats.tsx); the names come from the records' own List RPCs, one
 * call per type for every chat on screen (`id` IN the ids, 100 at a time, the trash included), so
 * the chats list and the open chat's header show "Deal · Globex rollout" as a link to its page.
 * A purged record detaches its chats (the foreign key), so an unnamed one is one the reader
 * cannot read or still loading: the type alone is shown, still a link.
 */
import { Link } from "wouter";
import { useQueries } from "@tanstack/react-query";
import { createQueryOptions } from "@connectrpc/connect-query";
import type { Chat } from "@crm/gen/crm/chat/v1/chat_pb";
import { ObjectType, Operator } from "@crm/gen/crm/records/v1/common_pb";
import { CompanyService } from "@crm/gen/crm/records/v1/company_pb";
import { PersonService } from "@crm/gen/crm/records/v1/person_pb";
import { DealService } from "@crm/gen/crm/records/v1/deal_pb";
import { transport } from "../session";
import { useI18n, type MessageKey } from "../i18n";

type Kind = "company" | "person" | "deal";
const kinds: Partial<Record<ObjectType, Kind>> = { [ObjectType.COMPANY]: "company", [ObjectType.PERSON]: "person", [ObjectType.DEAL]: "deal" };
const paths: Record<Kind, string> = { company: "/companies", person: "/people", deal: "/deals" };
const typeWord: Record<Kind, MessageKey> = { company: "chat.record.company", person: "chat.record.person", deal: "chat.record.deal" };
/** The records' List RPCs take at most 100 values in an IN condition. */
const perCall = 100;

export interface RecordName {
  name: string;
  trashed: boolean;
}

const idsIn = (ids: string[]) => ({
  filter: { node: { case: "condition" as const, value: { field: "id", operator: Operator.IN, values: ids } } },
  showDeleted: true,
  pageSize: ids.length,
});

function chunks(ids: Iterable<string>): string[][] {
  // Sorted: the same records in another order ask the same queries (one cache entry).
  const all = [...ids].sort();
  const out: string[][] = [];
  for (let i = 0; i < all.length; i += perCall) out.push(all.slice(i, i + perCall));
  return out;
}

type Named = [string, RecordName][];
const named = (rows: { id: string; deleteTime?: unknown }[], name: (r: never) => string): Named => rows.map((r) => [r.id, { name: name(r as never), trashed: Boolean(r.deleteTime) }]);
const cached = { staleTime: 60_000, retry: false } as const;

function combine(results: { data?: Named | undefined }[]): ReadonlyMap<string, RecordName> {
  return new Map(results.flatMap((r) => r.data ?? []));
}

/** The names of the records `chats` are attached to, by record id (absent while loading or when unreadable). */
export function useChatRecordNames(chats: readonly Chat[]): ReadonlyMap<string, RecordName> {
  const ids: Record<Kind, Set<string>> = { company: new Set(), person: new Set(), deal: new Set() };
  for (const c of chats) {
    const kind = c.record ? kinds[c.record.objectType] : undefined;
    if (kind && c.record!.id) ids[kind].add(c.record!.id);
  }
  const options = { transport };
  return useQueries({
    queries: [
      ...chunks(ids.company).map((batch) => ({
        ...createQueryOptions(CompanyService.method.listCompanies, idsIn(batch), options),
        select: (r: { companies: { id: string; name: string }[] }) => named(r.companies, (c: { name: string }) => c.name),
        ...cached,
      })),
      ...chunks(ids.person).map((batch) => ({
        ...createQueryOptions(PersonService.method.listPeople, idsIn(batch), options),
        select: (r: { people: { id: string; firstName: string; lastName: string }[] }) => named(r.people, (p: { firstName: string; lastName: string }) => [p.firstName, p.lastName].filter(Boolean).join(" ")),
        ...cached,
      })),
      ...chunks(ids.deal).map((batch) => ({
        ...createQueryOptions(DealService.method.listDeals, idsIn(batch), options),
        select: (r: { deals: { id: string; name: string }[] }) => named(r.deals, (d: { name: string }) => d.name),
        ...cached,
      })),
    ],
    combine,
  });
}

/** "Deal · Globex rollout" as a link to the record's page; nothing when the chat is attached to none. */
export function ChatRecordLink({ chat, names, className }: { chat: Chat | undefined; names: ReadonlyMap<string, RecordName>; className: string }) {
  const { t } = useI18n();
  const kind = chat?.record ? kinds[chat.record.objectType] : undefined;
  if (!chat?.record || !kind || !chat.record.id) return null;
  const id = chat.record.id;
  const found = names.get(id);
  const type = t(typeWord[kind]);
  return (
    <Link href={`${paths[kind]}/${id}`} className={className}>
      <span className="chat-record-type">{type}</span>
      {found?.name ? <span className="chat-record-name"> · {found.name}</span> : null}
      {found?.trashed ? <span className="chat-record-trash"> ({t("chat.record.trash")})</span> : null}
    </Link>
  );
}
