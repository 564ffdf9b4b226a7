/**
 * Tasks: rec_tasks and their links (links.ts). Members change the tasks they own or are assigned
 * (crm_may_edit_task in the policies; the same rule here to name it); only owners and admins hand
 * a task to another owner. Every change goes to the task's timeline and, with the task as subject,
 * to its linked records' timelines, in the same transaction.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { AppError, invalid, type Violation } from "@crm/kit";
import type { Task, TaskSchema } from "@crm/gen/crm/records/v1/task_pb";
import type { Sql } from "@crm/dbservice/db";
import { checkTask, linkKindToProto, linksJson, withoutLinks, type LinkInput, type TaskInput } from "../src/rules.js";
import { diff, etagOf, updatable, type Snapshot } from "../src/rules.js";
import { isAdmin, type Acting, type ConstraintInfo } from "./acting.js";
import { linksExist, linksSql, writeLinkedTimelines, writeLinks } from "./links.js";
import type { ListSpec } from "./lists.js";
import { iso, lockForChange, notFound, ownerFor, purgeTime, ts, writeTimeline } from "./shared.js";

export interface TaskRow {
  id: string;
  title: string;
  due_at: Date | null;
  assignee_id: string | null;
  done: boolean;
  done_at: Date | null;
  owner_id: string;
  links: LinkInput[];
  version: string;
  created_at: Date;
  updated_at: Date;
  deleted_at: Date | null;
}

const COLS = `t.id, t.title, t.due_at, t.assignee_id, t.done, t.done_at, t.owner_id, t.version, t.created_at, t.updated_at, t.deleted_at, ${linksSql("task", "t")}`;
const SELECT = `SELECT ${COLS} FROM rec_tasks t`;
const RULE = "members change the tasks they own or are assigned";

export const taskConstraints: Record<string, ConstraintInfo> = {
  rec_tasks_title_check: { field: "task.title", reason: "invalid_argument", message: "must be 1..500 characters" },
  rec_tasks_company_id_assignee_id_fkey: { field: "task.assigneeId", reason: "not_found", message: "names no user of your company" },
  rec_tasks_company_id_owner_id_fkey: { field: "task.ownerId", reason: "not_found", message: "names no user of your company" },
  rec_task_links_pkey: { field: "task.links", reason: "invalid_argument", message: "links the same record twice" },
};

export function toTask(r: TaskRow): MessageInitShape<typeof TaskSchema> {
  return {
    id: r.id,
    title: r.title,
    dueTime: ts(r.due_at),
    assigneeId: r.assignee_id ?? "",
    done: r.done,
    doneTime: ts(r.done_at),
    links: r.links.map((l) => ({ objectType: linkKindToProto[l.object_type], id: l.id })),
    ownerId: r.owner_id,
    etag: etagOf(r.version),
    createTime: ts(r.created_at),
    updateTime: ts(r.updated_at),
    deleteTime: ts(r.deleted_at),
    purgeTime: purgeTime(r.deleted_at),
  };
}

function snapshot(r: Pick<TaskRow, "title" | "due_at" | "assignee_id" | "done" | "owner_id" | "links">): Snapshot {
  return { title: r.title, due_time: iso(r.due_at), assignee_id: r.assignee_id, done: r.done, owner_id: r.owner_id, links: linksJson(r.links) };
}

export const taskList: ListSpec = {
  kind: "task",
  from: "rec_tasks t",
  alias: "t",
  select: COLS,
  columns: {
    id: { expr: "t.id", notNull: true },
    owner_id: { expr: "t.owner_id" },
    create_time: { expr: "t.created_at", notNull: true },
    update_time: { expr: "t.updated_at", notNull: true },
    delete_time: { expr: "t.deleted_at" },
    title: { expr: "t.title" },
    due_time: { expr: "t.due_at" },
    assignee_id: { expr: "t.assignee_id" },
    done: { expr: "t.done" },
    done_time: { expr: "t.done_at" },
    record_ids: { links: { from: "rec_task_links l", join: "l.task_id = t.id", elem: "l.record_id" } },
  },
};

export async function getTask(sql: Sql, id: string): Promise<TaskRow> {
  const { rows } = await sql.query<TaskRow>(`${SELECT} WHERE t.id = $1`, [id]);
  if (!rows[0]) throw notFound("task", id);
  return rows[0];
}

async function activeUser(sql: Sql, id: string | null | undefined, field: string): Promise<void> {
  if (!id) return;
  const { rowCount } = await sql.query("SELECT 1 FROM users WHERE id = $1 AND status = 'active'", [id]);
  if (!rowCount) throw new AppError("not_found", `no active user ${id} in your company`, [{ field, description: "names no active user of your company" }]);
}

function checked(t: Task, paths: readonly string[]): TaskInput {
  const v: Violation[] = [];
  const input = checkTask(t, paths, v);
  if (v.length) throw invalid(v);
  return input;
}

export async function createTask(sql: Sql, a: Acting, t: Task): Promise<TaskRow> {
  const input = checked(t, updatable.task.filter((p) => p !== "owner_id"));
  const assignee = input.assignee_id ?? a.userId;
  await activeUser(sql, assignee, "task.assigneeId");
  await linksExist(sql, input.links, "task.links");
  const { rows } = await sql.query<{ id: string }>(
    `INSERT INTO rec_tasks (company_id, title, due_at, assignee_id, done, done_at, owner_id)
     VALUES ($1, $2, $3, $4, $5, CASE WHEN $5 THEN now() END, $6) RETURNING id`,
    [a.companyId, input.title, input.due_at, assignee, input.done, a.userId],
  );
  const id = rows[0]!.id;
  await writeLinks(sql, a, "task", id, input.links ?? [], true);
  const row = await getTask(sql, id);
  const changes = diff({}, snapshot(row));
  await writeTimeline(sql, a, "task", id, "created", changes);
  const summary = diff({}, withoutLinks(snapshot(row)));
  await writeLinkedTimelines(sql, a, { kind: "task", id }, [], row.links, "created", summary, summary);
  return row;
}

const mayChange = (a: Acting) => (row: TaskRow) => isAdmin(a) || row.owner_id === a.userId || row.assignee_id === a.userId;

export async function updateTask(sql: Sql, a: Acting, id: string, t: Task, paths: string[], etag: bigint | undefined): Promise<TaskRow> {
  const input = checked(t, paths);
  const before = await lockForChange<TaskRow>(sql, a, "task", SELECT, id, { etag, may: mayChange(a), rule: RULE });
  const next: TaskRow = { ...before };
  if (input.title !== undefined) next.title = input.title;
  if (input.due_at !== undefined) next.due_at = input.due_at === null ? null : new Date(input.due_at);
  if (input.assignee_id !== undefined) next.assignee_id = input.assignee_id;
  if (input.done !== undefined) next.done = input.done;
  if (input.links !== undefined) next.links = input.links;
  if (paths.includes("owner_id")) {
    const owner = input.owner_id ?? a.userId;
    if (owner !== before.owner_id && !isAdmin(a)) throw new AppError("permission_denied", "only owners and admins hand a task to another owner", [{ field: "task.ownerId", description: "may not be changed by a member" }]);
    next.owner_id = await ownerFor(sql, a, owner, "task.ownerId");
  }
  const changes = diff(snapshot(before), snapshot(next));
  if (changes.length === 0) return before;
  const touched = new Set(changes.map((c) => c.field));
  if (touched.has("assignee_id")) await activeUser(sql, next.assignee_id, "task.assigneeId");
  if (touched.has("links")) await linksExist(sql, next.links, "task.links");
  await sql.query(
    `UPDATE rec_tasks SET title = $2, due_at = $3, assignee_id = $4, done = $5, done_at = CASE WHEN $5 THEN coalesce(done_at, now()) END, owner_id = $6,
            version = version + 1, updated_at = now() WHERE id = $1`,
    [id, next.title, next.due_at, next.assignee_id, next.done, next.owner_id],
  );
  if (touched.has("links")) await writeLinks(sql, a, "task", id, next.links, false);
  await writeTimeline(sql, a, "task", id, "updated", changes);
  const after = await getTask(sql, id);
  await writeLinkedTimelines(sql, a, { kind: "task", id }, before.links, after.links, "updated", changes.filter((c) => c.field !== "links"), diff({}, withoutLinks(snapshot(after))));
  return after;
}

/** Moves to the trash (already there: unchanged) or back. */
export async function trashTask(sql: Sql, a: Acting, id: string, trash: boolean, etag?: bigint): Promise<TaskRow> {
  const before = await lockForChange<TaskRow>(sql, a, "task", SELECT, id, { etag, trash: "allow", may: mayChange(a), rule: RULE });
  if (Boolean(before.deleted_at) === trash) return before;
  await sql.query(`UPDATE rec_tasks SET deleted_at = ${trash ? "now()" : "NULL"}, version = version + 1, updated_at = now() WHERE id = $1`, [id]);
  const after = await getTask(sql, id);
  const changes = [{ field: "delete_time", before: iso(before.deleted_at), after: iso(after.deleted_at) }];
  const action = trash ? "deleted" : "restored";
  await writeTimeline(sql, a, "task", id, action, changes);
  await writeLinkedTimelines(sql, a, { kind: "task", id }, before.links, after.links, action, changes, []);
  return after;
}

