/**
 * Tasks and notes (issue 16): their input checked and normalised field by field (violations name
 * `${at}.<jsonName>`), the links to records they carry, and what their entries on linked records'
 * timelines show. Pure, shared by the service's request checks and the store.
 */
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import type { Violation } from "@crm/kit";
import { ObjectType, type RecordRef } from "@crm/gen/crm/records/v1/common_pb";
import { isId, normalId, textLength, textViolation, type CustomKind, type Json, type Snapshot } from "./rules.js";

export const ACTIVITY_LIMITS = {
  title: 500,
  noteText: 20_000,
  links: 20,
  /** A note's text in timeline diffs. */
  excerpt: 500,
} as const;

export interface LinkInput {
  object_type: CustomKind;
  id: string;
}

const linkKinds: Partial<Record<ObjectType, CustomKind>> = { [ObjectType.COMPANY]: "company", [ObjectType.PERSON]: "person", [ObjectType.DEAL]: "deal" };
export const linkKindToProto: Record<CustomKind, ObjectType> = { company: ObjectType.COMPANY, person: ObjectType.PERSON, deal: ObjectType.DEAL };

/** Links to companies, people and deals: each once, up to ACTIVITY_LIMITS.links. */
export function checkLinks(out: Violation[], path: string, links: readonly Pick<RecordRef, "objectType" | "id">[]): LinkInput[] {
  if (links.length > ACTIVITY_LIMITS.links) out.push({ field: path, description: `may hold at most ${ACTIVITY_LIMITS.links} links (got ${links.length})` });
  const seen = new Set<string>();
  const r: LinkInput[] = [];
  links.slice(0, ACTIVITY_LIMITS.links).forEach((l, i) => {
    const kind = linkKinds[l.objectType];
    const id = normalId(l.id);
    if (!kind) out.push({ field: `${path}[${i}].objectType`, description: "must be OBJECT_TYPE_COMPANY, OBJECT_TYPE_PERSON or OBJECT_TYPE_DEAL" });
    if (!isId(id)) out.push({ field: `${path}[${i}].id`, description: id === "" ? "is required: the record's id" : `must be an id (UUID), got ${JSON.stringify(l.id.slice(0, 80))}` });
    else if (seen.has(id)) out.push({ field: `${path}[${i}].id`, description: "links the same record twice" });
    else if (kind) {
      seen.add(id);
      r.push({ object_type: kind, id });
    }
  });
  return r;
}

/** A time from a request: years 1900..9999, as an ISO string. */
function time(out: Violation[], path: string, t: Timestamp | undefined): string | null {
  if (!t) return null;
  const d = timestampDate(t);
  const y = d.getUTCFullYear();
  if (!Number.isFinite(d.getTime()) || y < 1900 || y > 9999) {
    out.push({ field: path, description: "must be a time in the years 1900..9999" });
    return null;
  }
  return d.toISOString();
}

export interface TaskInput {
  title?: string;
  due_at?: string | null;
  /** null: unassigned (on create: the caller). */
  assignee_id?: string | null;
  done?: boolean;
  links?: LinkInput[];
  /** null: the caller. */
  owner_id?: string | null;
}

export function checkTask(
  t: { title: string; dueTime?: Timestamp | undefined; assigneeId: string; done: boolean; links: RecordRef[]; ownerId: string },
  paths: readonly string[],
  out: Violation[],
  at = "task",
): TaskInput {
  const r: TaskInput = {};
  const ref = (field: string, raw: string) => {
    const id = normalId(raw);
    if (id === "") return null;
    if (!isId(id)) out.push({ field: `${at}.${field}`, description: `must be a user's id (UUID), got ${JSON.stringify(raw.slice(0, 80))}` });
    return id;
  };
  for (const p of paths) {
    switch (p) {
      case "title": {
        r.title = t.title.trim();
        const bad = textViolation(r.title, `${at}.title`, ACTIVITY_LIMITS.title, true);
        if (bad) out.push(bad);
        break;
      }
      case "due_time":
        r.due_at = time(out, `${at}.dueTime`, t.dueTime);
        break;
      case "assignee_id":
        r.assignee_id = ref("assigneeId", t.assigneeId);
        break;
      case "done":
        r.done = t.done;
        break;
      case "links":
        r.links = checkLinks(out, `${at}.links`, t.links);
        break;
      case "owner_id":
        r.owner_id = ref("ownerId", t.ownerId);
        break;
    }
  }
  return r;
}

export interface NoteInput {
  text?: string;
  links?: LinkInput[];
}

export function checkNote(n: { text: string; links: RecordRef[] }, paths: readonly string[], out: Violation[], at = "note"): NoteInput {
  const r: NoteInput = {};
  for (const p of paths) {
    switch (p) {
      case "text": {
        // Markdown is kept as written: only blank text is refused.
        r.text = n.text;
        if (n.text.trim() === "") out.push({ field: `${at}.text`, description: "is required" });
        else if (textLength(n.text) > ACTIVITY_LIMITS.noteText) out.push({ field: `${at}.text`, description: `must be at most ${ACTIVITY_LIMITS.noteText} characters (got ${textLength(n.text)})` });
        break;
      }
      case "links":
        r.links = checkLinks(out, `${at}.links`, n.links);
        break;
    }
  }
  return r;
}

/** A note's text as timeline diffs keep it: its first ACTIVITY_LIMITS.excerpt characters. */
export function excerpt(text: string): string {
  const chars = [...text];
  return chars.length > ACTIVITY_LIMITS.excerpt ? `${chars.slice(0, ACTIVITY_LIMITS.excerpt).join("")}…` : text;
}

/** Links in a snapshot: [{object_type, id}] in their order. */
export const linksJson = (links: readonly LinkInput[]): Json => links.map((l) => ({ object_type: l.object_type, id: l.id }));

/** The snapshot without its links: what entries on linked records show. */
export function withoutLinks(s: Snapshot): Snapshot {
  const { links: _links, ...rest } = s;
  return rest;
}
