/**
 * Tasks and notes: a record page's tasks (add one with a due time and an assignee, tick it done,
 * move it to the trash) and notes (Markdown rendered without raw HTML, added and edited in
 * place), and the "my open tasks" screen. Every change names the record in `links`, so it also
 * lands on the record's timeline.
 */
import { useEffect, useId, useMemo, useState, type FormEvent, type ReactNode } from "react";
import { Link } from "wouter";
import { createInfiniteQueryOptions, useInfiniteQuery, useQuery } from "@connectrpc/connect-query";
import { createClient } from "@connectrpc/connect";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import MarkdownIt from "markdown-it";
import { TaskService, type Task } from "@crm/gen/crm/records/v1/task_pb";
import { NoteService, type Note } from "@crm/gen/crm/records/v1/note_pb";
import { ObjectType, Operator, type RecordRef } from "@crm/gen/crm/records/v1/common_pb";
import { isAdmin, transport, type Session } from "../../session";
import { queryClient as pageQueryClient } from "../../query";
import { Field, FormError, LocalInvalid, useRequestId, useSubmit } from "../../forms";
import { allOf } from "./format";
import { CompanyLink, DealLink, LoadMore, Notice, PersonLink, recordError, splitErrors, timelineOf, useDirectory, useInvalidate, useMayEdit, type Directory } from "./common";
import { useWords, type Words } from "./words";
import { useWatch } from "./live";

const tasks = createClient(TaskService, transport);
const notes = createClient(NoteService, transport);

/**
 * Markdown without raw HTML (markdown-it escapes it; its link check refuses javascript:, vbscript:,
 * file: and data: URLs) and without images (the page's CSP allows none from elsewhere).
 */
const md = new MarkdownIt({ html: false, linkify: true, breaks: true }).disable(["image"]);
const defaultLink = md.renderer.rules.link_open ?? ((tokens, idx, options, _env, self) => self.renderToken(tokens, idx, options));
md.renderer.rules.link_open = (tokens, idx, options, env, self) => {
  tokens[idx]!.attrSet("rel", "noopener noreferrer nofollow");
  tokens[idx]!.attrSet("target", "_blank");
  return defaultLink(tokens, idx, options, env, self);
};

/** A note's Markdown as HTML: safe to insert (no HTML of the note's own survives). */
export function renderMarkdown(text: string): string {
  return md.render(text);
}

function Markdown({ text }: { text: string }) {
  const html = useMemo(() => renderMarkdown(text), [text]);
  return <div className="markdown" dangerouslySetInnerHTML={{ __html: html }} />;
}

const when = (t: Task["dueTime"]) => (t ? timestampDate(t) : undefined);

/** "in 2 days"-free: the due time per locale, marked when it has passed on an open task. */
function Due({ task, words }: { task: Task; words: Words }) {
  const d = when(task.dueTime);
  if (!d) return <span className="hint">{words.w("noDue")}</span>;
  const late = !task.done && d.getTime() < Date.now();
  return (
    <span className={late ? "overdue" : undefined}>
      <time dateTime={d.toISOString()}>{words.dateTime(d)}</time>
      {late && ` (${words.w("overdue")})`}
    </span>
  );
}

function RecordRefLink({ r }: { r: RecordRef }) {
  if (r.objectType === ObjectType.COMPANY) return <CompanyLink id={r.id} />;
  if (r.objectType === ObjectType.PERSON) return <PersonLink id={r.id} />;
  if (r.objectType === ObjectType.DEAL) return <DealLink id={r.id} />;
  return null;
}

/** One task: "done" as a labelled checkbox, the title, due, assignee, links; move to the trash. */
function TaskItem({ task, dir, showLinks, canChange, onChanged, setNotice }: { task: Task; dir: Directory; showLinks: boolean; canChange: boolean; onChanged(): Promise<unknown>; setNotice(n: { text: string; error?: boolean }): void }) {
  const words = useWords();
  const { w } = words;
  const [busy, setBusy] = useState(false);
  // The box shows the new state at once (and again the server's after the reread).
  const [done, setDone] = useState(task.done);
  useEffect(() => setDone(task.done), [task.done]);
  const id = useId();
  const run = async (f: () => Promise<unknown>, ok: string) => {
    setBusy(true);
    try {
      await f();
      setNotice({ text: ok });
    } catch (e) {
      setNotice({ text: recordError(e, words, task.title), error: true });
      setDone(task.done);
    } finally {
      setBusy(false);
      await onChanged();
    }
  };
  const toggle = () => {
    setDone(!task.done);
    return run(() => tasks.updateTask({ task: { id: task.id, etag: task.etag, done: !task.done }, updateMask: { paths: ["done"] } }), w(task.done ? "taskReopened" : "taskDone", { title: task.title }));
  };
  const remove = () => run(() => tasks.deleteTask({ id: task.id, etag: task.etag }), w("taskDeleted", { title: task.title }));
  return (
    <li className={done ? "task done" : "task"} data-task={task.id}>
      <input id={id} type="checkbox" checked={done} disabled={busy || !canChange} onChange={() => void toggle()} aria-label={w("doneOf", { title: task.title })} />
      <span className="task-main">
        <label htmlFor={id} className="task-title">
          {task.title}
        </label>
        <span className="task-meta">
          <Due task={task} words={words} /> · {w("assignee")}: {dir.name(task.assigneeId)}
          {showLinks && task.links.length > 0 && (
            <>
              {" · "}
              {w("linkedTo")}:{" "}
              {task.links.map((l, i) => (
                <span key={l.id}>
                  {i > 0 && ", "}
                  <RecordRefLink r={l} />
                </span>
              ))}
            </>
          )}
        </span>
      </span>
      {canChange && (
        <button type="button" className="secondary small danger" disabled={busy} onClick={() => void remove()} aria-label={w("deleteTaskOf", { title: task.title })}>
          ×
        </button>
      )}
    </li>
  );
}

/** Tasks may be changed by owners and admins, their owner and their assignee, or every member where an admin allows it (the server decides; this hides what it would refuse). */
const mayChange = (t: Task, session: Session, all: boolean) => all || isAdmin(session) || t.ownerId === session.userId || t.assigneeId === session.userId;

/** The form adding a task to a record: title, due (date and time, optional), assignee. */
function NewTask({ link, dir, onAdded }: { link: RecordRef | { objectType: ObjectType; id: string }; dir: Directory; onAdded(title: string): Promise<unknown> }) {
  const words = useWords();
  const { w } = words;
  const id = useId();
  const [title, setTitle] = useState("");
  const [due, setDue] = useState("");
  const [assignee, setAssignee] = useState("");
  const requestId = useRequestId();
  const submit = useSubmit(async () => {
    try {
      const d = due ? new Date(due) : undefined;
      await tasks.createTask({ requestId: requestId.current, task: { title: title.trim(), dueTime: d && !Number.isNaN(d.getTime()) ? timestampFromDate(d) : undefined, assigneeId: assignee, links: [{ objectType: link.objectType, id: link.id }] } });
      requestId.renew();
      const t = title.trim();
      setTitle("");
      setDue("");
      await onAdded(t);
    } catch (e) {
      const split = splitErrors(e, words, "task", ["title", "dueTime", "assigneeId"], title);
      throw new LocalInvalid(split.fields, split.form);
    }
  });
  const users = [{ id: dir.me, name: w("you") }, ...dir.users.filter((u) => u.id !== dir.me)];
  return (
    <form className="new-task" onSubmit={submit.onSubmit} noValidate aria-label={w("newTask")}>
      <Field label={w("taskTitle")} name="title" autoComplete="off" value={title} onChange={setTitle} error={submit.fieldError.title} />
      <div className="field">
        <label htmlFor={`${id}-due`}>{w("due")}</label>
        <input id={`${id}-due`} type="datetime-local" value={due} onChange={(e) => setDue(e.target.value)} aria-invalid={submit.fieldError.dueTime ? true : undefined} />
        {submit.fieldError.dueTime && <small className="field-error">{submit.fieldError.dueTime}</small>}
      </div>
      <div className="field">
        <label htmlFor={`${id}-who`}>{w("assignee")}</label>
        <select id={`${id}-who`} value={assignee || dir.me} onChange={(e) => setAssignee(e.target.value)}>
          {users.map((u) => (
            <option key={u.id} value={u.id}>
              {u.name}
            </option>
          ))}
        </select>
      </div>
      <FormError text={submit.error} />
      <button type="submit" disabled={submit.busy}>
        {w("addTask")}
      </button>
    </form>
  );
}

const recordFilter = (recordId: string, done: boolean) => allOf({ field: "record_ids", op: Operator.EQUALS, values: [recordId] }, done ? undefined : { field: "done", op: Operator.EQUALS, values: ["false"] });

/** A record page's tasks and notes. */
export function RecordActivity({ objectType, recordId, dir, session }: { objectType: ObjectType; recordId: string; name: string; dir: Directory; session: Session }) {
  const words = useWords();
  const { w } = words;
  const [showDone, setShowDone] = useState(false);
  const [notice, setNotice] = useState<{ text: string; error?: boolean }>();
  const invalidate = useInvalidate();
  const list = useQuery(TaskService.method.listTasks, { filter: recordFilter(recordId, showDone), orderBy: "due_time", pageSize: 100 });
  const tasksAll = useMayEdit(session, ObjectType.TASK).all;
  const changed = () => invalidate(TaskService.method.listTasks, timelineOf);
  const rows = list.data?.tasks ?? [];
  const doneId = useId();
  return (
    <div className="activity">
      <section aria-labelledby="tasks-title" className="tasks-box">
        <h2 id="tasks-title">{w("tasks")}</h2>
        <p className="inline-label">
          <input id={doneId} type="checkbox" checked={showDone} onChange={(e) => setShowDone(e.target.checked)} />
          <label htmlFor={doneId}>{w("showDone")}</label>
        </p>
        <Notice notice={notice} />
        {rows.length === 0 ? (
          <p>{list.isPending ? "…" : w("noTasksHere")}</p>
        ) : (
          <ul className="task-list">
            {rows.map((t) => (
              <TaskItem key={t.id} task={t} dir={dir} showLinks={false} canChange={mayChange(t, session, tasksAll)} onChanged={changed} setNotice={setNotice} />
            ))}
          </ul>
        )}
        <NewTask
          link={{ objectType, id: recordId }}
          dir={dir}
          onAdded={async (title) => {
            setNotice({ text: w("taskAdded", { title }) });
            await changed();
          }}
        />
      </section>
      <Notes objectType={objectType} recordId={recordId} dir={dir} session={session} />
    </div>
  );
}

function Notes({ objectType, recordId, dir, session }: { objectType: ObjectType; recordId: string; dir: Directory; session: Session }) {
  const words = useWords();
  const { w } = words;
  const id = useId();
  const invalidate = useInvalidate();
  const [notice, setNotice] = useState<{ text: string; error?: boolean }>();
  const notesAll = useMayEdit(session, ObjectType.NOTE).all;
  const list = useQuery(NoteService.method.listNotes, { filter: allOf({ field: "record_ids", op: Operator.EQUALS, values: [recordId] }), orderBy: "create_time desc", pageSize: 50 });
  const changed = () => invalidate(NoteService.method.listNotes, timelineOf);
  const [text, setText] = useState("");
  const requestId = useRequestId();
  const submit = useSubmit(async () => {
    try {
      await notes.createNote({ requestId: requestId.current, note: { text, links: [{ objectType, id: recordId }] } });
      requestId.renew();
      setText("");
      setNotice({ text: w("noteAdded") });
      await changed();
    } catch (e) {
      const split = splitErrors(e, words, "note", ["text"]);
      throw new LocalInvalid(split.fields, split.form);
    }
  });
  const rows = list.data?.notes ?? [];
  return (
    <section aria-labelledby="notes-title" className="notes-box">
      <h2 id="notes-title">{w("notes")}</h2>
      <Notice notice={notice} />
      <form onSubmit={submit.onSubmit} noValidate className="new-note">
        <div className="field">
          <label htmlFor={`${id}-text`}>{w("noteText")}</label>
          <textarea id={`${id}-text`} rows={3} maxLength={20_000} value={text} onChange={(e) => setText(e.target.value)} aria-describedby={`${id}-hint${submit.fieldError.text ? ` ${id}-error` : ""}`} aria-invalid={submit.fieldError.text ? true : undefined} />
          <small id={`${id}-hint`} className="hint">
            {w("markdownHint")}
          </small>
          {submit.fieldError.text && (
            <small id={`${id}-error`} className="field-error">
              {submit.fieldError.text}
            </small>
          )}
        </div>
        <FormError text={submit.error} />
        <button type="submit" disabled={submit.busy || !text.trim()}>
          {w("addNote")}
        </button>
      </form>
      {rows.length === 0 ? (
        <p>{list.isPending ? "…" : w("noNotes")}</p>
      ) : (
        <ol className="note-list">
          {rows.map((n) => (
            <NoteItem key={n.id} note={n} dir={dir} canChange={notesAll || n.authorId === session.userId} onChanged={changed} setNotice={setNotice} />
          ))}
        </ol>
      )}
    </section>
  );
}

function NoteItem({ note, dir, canChange, onChanged, setNotice }: { note: Note; dir: Directory; canChange: boolean; onChanged(): Promise<unknown>; setNotice(n: { text: string; error?: boolean }): void }) {
  const words = useWords();
  const { w } = words;
  const id = useId();
  const [editing, setEditing] = useState(false);
  const [text, setText] = useState(note.text);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const created = note.createTime ? timestampDate(note.createTime) : undefined;
  const at = created ? words.dateTime(created) : "";
  const save = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await notes.updateNote({ note: { id: note.id, etag: note.etag, text }, updateMask: { paths: ["text"] } });
      setEditing(false);
      setNotice({ text: w("noteSaved") });
    } catch (err) {
      setError(recordError(err, words, ""));
    } finally {
      setBusy(false);
      await onChanged();
    }
  };
  const remove = async () => {
    try {
      await notes.deleteNote({ id: note.id, etag: note.etag });
      setNotice({ text: w("noteDeleted") });
    } catch (err) {
      setNotice({ text: recordError(err, words, ""), error: true });
    }
    await onChanged();
  };
  let body: ReactNode;
  if (editing)
    body = (
      <form onSubmit={(e) => void save(e)} onKeyDown={(e) => e.key === "Escape" && setEditing(false)}>
        <label htmlFor={`${id}-edit`} className="visually-hidden">
          {w("noteEdit")}
        </label>
        <textarea id={`${id}-edit`} rows={5} maxLength={20_000} value={text} onChange={(e) => setText(e.target.value)} autoFocus />
        {error && (
          <p role="alert" className="error">
            {error}
          </p>
        )}
        <span className="inline-edit-buttons">
          <button type="submit" disabled={busy}>
            {w("save")}
          </button>
          <button type="button" className="secondary" onClick={() => setEditing(false)}>
            {w("cancel")}
          </button>
        </span>
      </form>
    );
  else body = <Markdown text={note.text} />;
  return (
    <li className="note" data-note={note.id}>
      <p className="note-meta">
        {w("noteBy", { author: dir.name(note.authorId), when: at })}
        {canChange && !editing && (
          <>
            {" "}
            <button
              type="button"
              className="secondary small"
              onClick={() => {
                setText(note.text);
                setEditing(true);
              }}
              aria-label={w("editNoteOf", { when: at })}
            >
              {w("edit")}
            </button>{" "}
            <button type="button" className="secondary small danger" onClick={() => void remove()} aria-label={w("deleteNoteOf", { when: at })}>
              ×
            </button>
          </>
        )}
      </p>
      {body}
    </li>
  );
}

const paging = { pageParamKey: "pageToken", getNextPageParam: (last: { nextPageToken: string }) => last.nextPageToken || undefined } as const;

/** My open tasks, soonest due first (none last). */
export const myTasksInput = { filter: allOf({ field: "assignee_id", op: Operator.EQUALS, values: ["me"] }, { field: "done", op: Operator.EQUALS, values: ["false"] }), orderBy: "due_time", pageSize: 50, pageToken: "" };

export function prefetch(path: string): void {
  if (path === "/tasks") void pageQueryClient.prefetchInfiniteQuery(createInfiniteQueryOptions(TaskService.method.listTasks, myTasksInput, { transport, ...paging }));
}

export function MyTasks({ session }: { session: Session }) {
  const words = useWords();
  const { w, t } = words;
  const dir = useDirectory(session);
  const invalidate = useInvalidate();
  const tasksAll = useMayEdit(session, ObjectType.TASK).all;
  const [notice, setNotice] = useState<{ text: string; error?: boolean }>();
  const list = useInfiniteQuery(TaskService.method.listTasks, myTasksInput, { ...paging, placeholderData: (p) => p });
  const rows = list.data?.pages.flatMap((p) => p.tasks) ?? [];
  // Live: a task handed to me, done, changed or trashed anywhere (another tab, a colleague, the
  // API) updates the list; the stream's filter is the list's, so others' tasks wake nothing.
  useWatch(
    { objectType: ObjectType.TASK, filter: myTasksInput.filter },
    "my-open-tasks",
    () => invalidate(TaskService.method.listTasks),
    (startedAt) => {
      // A list read before the stream went live may have missed a change made in between.
      if (list.dataUpdatedAt < startedAt) invalidate(TaskService.method.listTasks);
    },
  );
  return (
    <section aria-labelledby="my-tasks-title">
      <div className="list-head">
        <h1 id="my-tasks-title">{w("myTasks")}</h1>
      </div>
      <Notice notice={notice} />
      {list.error && (
        <p role="alert" className="error">
          {recordError(list.error, words, "")}
        </p>
      )}
      {list.isPending ? (
        <p aria-busy="true">{t("app.loading")}</p>
      ) : rows.length === 0 ? (
        <p>{w("noTasks")}</p>
      ) : (
        <ul className="task-list" aria-labelledby="my-tasks-title">
          {rows.map((task) => (
            <TaskItem key={task.id} task={task} dir={dir} showLinks canChange={mayChange(task, session, tasksAll)} onChanged={() => invalidate(TaskService.method.listTasks)} setNotice={setNotice} />
          ))}
        </ul>
      )}
      <LoadMore hasNext={Boolean(list.hasNextPage)} busy={list.isFetchingNextPage} onMore={() => void list.fetchNextPage()} label={w("loadMore")} />
      <p className="hint">
        <Link href="/companies">{w("companies")}</Link> · <Link href="/people">{w("people")}</Link> · <Link href="/deals">{w("deals")}</Link>
      </p>
    </section>
  );
}
