/**
 * DbRecordsService's RPCs of FieldService, TaskService and NoteService, and the trash's 30-day
 * purge (the records service's periodic job). Each RPC carries the public request and answers the
 * public response, and runs in ONE transaction as the caller (acting.ts), as the rest of the store.
 */
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { invalid, requirePeer, type Violation } from "@crm/kit";
import type { DbRecordsService } from "@crm/gen/crm/db/v1/db_records_pb";
import { ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import type { Db, Sql } from "@crm/dbservice/db";
import { parseMask, type CustomKind } from "../src/rules.js";
import type { Acting } from "./acting.js";
import { archiveField, createField, getField, listFields, toField, updateField } from "./fields.js";
import { runList } from "./lists.js";
import { createNote, getNote, noteList, toNote, trashNote, updateNote, type NoteRow } from "./notes.js";
import { etagArg, idOf, purge } from "./shared.js";
import { retrySafeCreate } from "./request-ids.js";
import { recordReaders } from "./readers.js";
import { purgeTrash } from "./trash-purge.js";
import { createTask, getTask, taskList, toTask, trashTask, updateTask, type TaskRow } from "./tasks.js";

type Tx = <T>(ctx: HandlerContext, fn: (sql: Sql, a: Acting) => Promise<T>) => Promise<T>;

type ActivityRpcs = Pick<
  ServiceImpl<typeof DbRecordsService>,
  | "createFieldDB" | "getFieldDB" | "listFieldsDB" | "updateFieldDB" | "archiveFieldDB" | "unarchiveFieldDB"
  | "createTaskDB" | "getTaskDB" | "listTasksDB" | "updateTaskDB" | "deleteTaskDB" | "undeleteTaskDB" | "purgeTaskDB"
  | "createNoteDB" | "getNoteDB" | "listNotesDB" | "updateNoteDB" | "deleteNoteDB" | "undeleteNoteDB" | "purgeNoteDB"
  | "purgeTrashDB"
>;

const fieldKinds: Partial<Record<ObjectType, CustomKind>> = { [ObjectType.COMPANY]: "company", [ObjectType.PERSON]: "person", [ObjectType.DEAL]: "deal" };

function need<T>(value: T | undefined, field: string): T {
  if (value === undefined) throw invalid([{ field, description: "is required" }]);
  return value;
}

function mask(kind: "task" | "note" | "field", paths: readonly string[] | undefined): string[] {
  const v: Violation[] = [];
  const p = parseMask(kind, paths ?? [], v);
  if (v.length) throw invalid(v);
  return p;
}

export function activityStore(db: Db, tx: Tx, afterOutbox?: () => void): ActivityRpcs {
  const task = (row: TaskRow) => ({ task: toTask(row) });
  const note = (row: NoteRow) => ({ note: toNote(row) });
  const once = retrySafeCreate(db, tx);
  return {
    // Custom field definitions
    async createFieldDB({ request: r }, ctx) {
      const f = need(r?.field, "field");
      const kind = fieldKinds[f.objectType];
      if (!kind) throw invalid([{ field: "field.objectType", description: "must be OBJECT_TYPE_COMPANY, OBJECT_TYPE_PERSON or OBJECT_TYPE_DEAL" }]);
      return { response: { field: toField(await tx(ctx, (sql, a) => createField(sql, a, kind, f))) } };
    },
    async getFieldDB({ request: r }, ctx) {
      const id = idOf(r?.id ?? "");
      return { response: { field: toField(await tx(ctx, (sql) => getField(sql, id))) } };
    },
    async listFieldsDB({ request: r }, ctx) {
      const type = r?.objectType ?? ObjectType.UNSPECIFIED;
      const kind = fieldKinds[type];
      if (type !== ObjectType.UNSPECIFIED && !kind) throw invalid([{ field: "objectType", description: "must be OBJECT_TYPE_COMPANY, OBJECT_TYPE_PERSON or OBJECT_TYPE_DEAL, or unset for all" }]);
      const rows = await tx(ctx, (sql) => listFields(sql, kind, r?.showArchived ?? false));
      return { response: { fields: rows.map(toField) } };
    },
    async updateFieldDB({ request: r }, ctx) {
      const f = need(r?.field, "field");
      const id = idOf(f.id, "field.id");
      const etag = etagArg(f.etag, "field.etag");
      const paths = mask("field", r?.updateMask?.paths);
      return { response: { field: toField(await tx(ctx, (sql, a) => updateField(sql, a, id, f, paths, etag))) } };
    },
    async archiveFieldDB({ request: r }, ctx) {
      const id = idOf(r?.id ?? "");
      const etag = etagArg(r?.etag ?? "");
      return { response: { field: toField(await tx(ctx, (sql, a) => archiveField(sql, a, id, true, etag))) } };
    },
    async unarchiveFieldDB({ request: r }, ctx) {
      const id = idOf(r?.id ?? "");
      return { response: { field: toField(await tx(ctx, (sql, a) => archiveField(sql, a, id, false))) } };
    },

    // Tasks
    async createTaskDB({ request: r }, ctx) {
      const t = need(r?.task, "task");
      return { response: task(await once(ctx, "task", r?.requestId, (sql, a) => createTask(sql, a, t), getTask)) };
    },
    async getTaskDB({ request: r }, ctx) {
      const id = idOf(r?.id ?? "");
      return { response: task(await tx(ctx, (sql) => getTask(sql, id))) };
    },
    async listTasksDB({ request: r }, ctx) {
      const req = need(r, "request");
      const res = await tx(ctx, (sql) => runList<TaskRow & Record<string, unknown>>(sql, taskList, req));
      return { response: { tasks: res.rows.map(toTask), nextPageToken: res.nextPageToken, totalSize: res.totalSize, totalIsExact: res.totalIsExact } };
    },
    async updateTaskDB({ request: r }, ctx) {
      const t = need(r?.task, "task");
      const id = idOf(t.id, "task.id");
      const etag = etagArg(t.etag, "task.etag");
      const paths = mask("task", r?.updateMask?.paths);
      return { response: task(await tx(ctx, (sql, a) => updateTask(sql, a, id, t, paths, etag))) };
    },
    async deleteTaskDB({ request: r }, ctx) {
      const id = idOf(r?.id ?? "");
      const etag = etagArg(r?.etag ?? "");
      return { response: task(await tx(ctx, (sql, a) => trashTask(sql, a, id, true, etag))) };
    },
    async undeleteTaskDB({ request: r }, ctx) {
      const id = idOf(r?.id ?? "");
      return { response: task(await tx(ctx, (sql, a) => trashTask(sql, a, id, false))) };
    },
    async purgeTaskDB({ request: r }, ctx) {
      const id = idOf(r?.id ?? "");
      await tx(ctx, (sql, a) => purge(sql, a, "task", id));
      return { response: {} };
    },

    // Notes
    async createNoteDB({ request: r }, ctx) {
      const n = need(r?.note, "note");
      return { response: note(await once(ctx, "note", r?.requestId, (sql, a) => createNote(sql, a, n), getNote)) };
    },
    async getNoteDB({ request: r }, ctx) {
      const id = idOf(r?.id ?? "");
      return { response: note(await tx(ctx, (sql) => getNote(sql, id))) };
    },
    async listNotesDB({ request: r }, ctx) {
      const req = need(r, "request");
      const res = await tx(ctx, (sql) => runList<NoteRow & Record<string, unknown>>(sql, noteList, req));
      return { response: { notes: res.rows.map(toNote), nextPageToken: res.nextPageToken, totalSize: res.totalSize, totalIsExact: res.totalIsExact } };
    },
    async updateNoteDB({ request: r }, ctx) {
      const n = need(r?.note, "note");
      const id = idOf(n.id, "note.id");
      const etag = etagArg(n.etag, "note.etag");
      const paths = mask("note", r?.updateMask?.paths);
      return { response: note(await tx(ctx, (sql, a) => updateNote(sql, a, id, n, paths, etag))) };
    },
    async deleteNoteDB({ request: r }, ctx) {
      const id = idOf(r?.id ?? "");
      const etag = etagArg(r?.etag ?? "");
      return { response: note(await tx(ctx, (sql, a) => trashNote(sql, a, id, true, etag))) };
    },
    async undeleteNoteDB({ request: r }, ctx) {
      const id = idOf(r?.id ?? "");
      return { response: note(await tx(ctx, (sql, a) => trashNote(sql, a, id, false))) };
    },
    async purgeNoteDB({ request: r }, ctx) {
      const id = idOf(r?.id ?? "");
      await tx(ctx, (sql, a) => purge(sql, a, "note", id));
      return { response: {} };
    },

    // The trash's 30-day purge: only the records service's own identity; no tenant.
    async purgeTrashDB(req, ctx) {
      requirePeer(ctx, "records");
      const limit = req.limit === 0 ? 1000 : req.limit;
      if (limit < 1 || limit > 10_000) throw invalid([{ field: "limit", description: "must be 1..10000 (0 means 1000)" }]);
      // With a version and an event for every record it erased or changed (trash-purge.ts).
      return purgeTrash(db, recordReaders, limit, afterOutbox);
    },
  };
}

