/**
 * Pipeline settings (owners and admins; the server refuses anyone else): a new pipeline with its
 * first stages (the usual ones filled in), and for each pipeline its name and stages: add one,
 * change one's name, probability and kind, put them in a new order (ReorderStages), remove one
 * (its deals moved to another stage). Every change carries the pipeline's etag, so a change made
 * meanwhile by another admin is refused and the latest version shown.
 */
import { useEffect, useId, useState, type FormEvent } from "react";
import { Link, useLocation } from "wouter";
import { StageKind, type Pipeline, type Stage } from "@crm/gen/crm/records/v1/pipeline_pb";
import { DealService } from "@crm/gen/crm/records/v1/deal_pb";
import { PipelineService } from "@crm/gen/crm/records/v1/pipeline_pb";
import { isAdmin, type Session } from "../../session";
import { prefetch as prefetchQuery } from "../../query";
import { fieldErrors } from "../../errors";
import { InlineField, Notice, api, pipelinesInput, recordError, splitErrors, timelineOf, useInvalidate, usePipelines, useSearchState } from "./common";
import { useWords, type Words } from "./words";

export function prefetch(): void {
  prefetchQuery(PipelineService.method.listPipelines, pipelinesInput);
}

interface Row {
  key: number;
  name: string;
  probability: string;
  kind: StageKind;
}

const kinds = (w: Words["w"]) => [
  { value: String(StageKind.OPEN), label: w("status.open") },
  { value: String(StageKind.WON), label: w("status.won") },
  { value: String(StageKind.LOST), label: w("status.lost") },
];

let rowKey = 0;
function defaultRows(w: Words["w"]): Row[] {
  const names = w("defaultStages").split("|");
  const probs = [10, 30, 60, 100, 0];
  const k = [StageKind.OPEN, StageKind.OPEN, StageKind.OPEN, StageKind.WON, StageKind.LOST];
  return names.map((name, i) => ({ key: rowKey++, name, probability: String(probs[i] ?? 0), kind: k[i] ?? StageKind.OPEN }));
}

/** "pipeline.stages[2].name" → { row: 2, field: "name" }. */
function stageViolation(field: string): { row: number; field: string } | undefined {
  const m = /stages\[(\d+)\]\.(\w+)$/.exec(field);
  return m ? { row: Number(m[1]), field: m[2]! } : undefined;
}

export function Pipelines({ session }: { session: Session }) {
  const words = useWords();
  const { w, t } = words;
  const { q, pipelines } = usePipelines();
  const [params, set] = useSearchState();
  const admin = isAdmin(session);
  const current = pipelines.find((p) => p.id === params.get("pipeline")) ?? pipelines[0];
  if (q.isPending) return <p aria-busy="true">{t("app.loading")}</p>;
  return (
    <section aria-labelledby="pipelines-title">
      <div className="list-head">
        <h1 id="pipelines-title">{w("pipelines")}</h1>
        {current && <Link href={`/deals?pipeline=${current.id}`}>{w("openBoard")}</Link>}
      </div>
      {!admin && <p>{w("adminsOnly")}</p>}
      {q.error && (
        <p role="alert" className="error">
          {recordError(q.error, words, "")}
        </p>
      )}
      {pipelines.length > 1 && (
        <nav aria-label={w("pipeline")} className="subnav">
          <ul>
            {pipelines.map((p) => (
              <li key={p.id}>
                <a
                  href={`/pipelines?pipeline=${p.id}`}
                  aria-current={p.id === current?.id ? "page" : undefined}
                  onClick={(e) => {
                    e.preventDefault();
                    set({ pipeline: p.id });
                  }}
                >
                  {p.name}
                </a>
              </li>
            ))}
          </ul>
        </nav>
      )}
      {current && <PipelineEditor key={current.id} pipeline={current} admin={admin} />}
      {admin && <NewPipeline first={pipelines.length === 0} />}
    </section>
  );
}

function NewPipeline({ first }: { first: boolean }) {
  const words = useWords();
  const { w } = words;
  const id = useId();
  const [, navigate] = useLocation();
  const invalidate = useInvalidate();
  const [name, setName] = useState(first ? w("defaultPipeline") : "");
  const [rows, setRows] = useState<Row[]>(() => defaultRows(w));
  const [busy, setBusy] = useState(false);
  const [errors, setErrors] = useState<{ form?: string; name?: string; rows: Record<string, string> }>({ rows: {} });
  const update = (key: number, patch: Partial<Row>) => setRows(rows.map((r) => (r.key === key ? { ...r, ...patch } : r)));
  const swap = (i: number, j: number) => {
    const next = rows.slice();
    [next[i], next[j]] = [next[j]!, next[i]!];
    setRows(next);
  };
  const onSubmit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setErrors({ rows: {} });
    try {
      const r = await api.pipelines.createPipeline({ pipeline: { name: name.trim(), stages: rows.map((s) => ({ name: s.name.trim(), probability: Number(s.probability) || 0, kind: s.kind })) } });
      await invalidate(PipelineService.method.listPipelines);
      navigate(`/deals?pipeline=${r.pipeline!.id}`);
    } catch (err) {
      const next: { form?: string; name?: string; rows: Record<string, string> } = { rows: {} };
      const rest: string[] = [];
      for (const [f, text] of Object.entries(fieldErrors(err))) {
        const v = stageViolation(f);
        if (v) next.rows[`${v.row}.${v.field}`] = text;
        else if (f === "pipeline.name") next.name = text;
        else rest.push(`${f}: ${text}`);
      }
      next.form = rest.length ? rest.join("; ") : next.name || Object.keys(next.rows).length ? words.t("form.fixFields") : recordError(err, words, name);
      setErrors(next);
      setBusy(false);
    }
  };
  return (
    <section aria-labelledby={`${id}-title`} className="new-pipeline">
      <h2 id={`${id}-title`}>{w("newPipeline")}</h2>
      <form onSubmit={(e) => void onSubmit(e)} noValidate>
        <div className="field">
          <label htmlFor={`${id}-name`}>{w("pipelineName")}</label>
          <input id={`${id}-name`} value={name} maxLength={100} onChange={(e) => setName(e.target.value)} aria-invalid={errors.name ? true : undefined} aria-describedby={errors.name ? `${id}-name-error` : undefined} />
          {errors.name && (
            <small id={`${id}-name-error`} className="field-error">
              {errors.name}
            </small>
          )}
        </div>
        <h3>{w("stages")}</h3>
        <ol className="stage-rows">
          {rows.map((r, i) => (
            <li key={r.key}>
              <StageInputs
                legend={w("stageN", { n: i + 1 })}
                row={r}
                errors={{ name: errors.rows[`${i}.name`], probability: errors.rows[`${i}.probability`], kind: errors.rows[`${i}.kind`] }}
                onChange={(patch) => update(r.key, patch)}
              />
              <span className="row-buttons">
                <button type="button" className="secondary tiny" disabled={i === 0} onClick={() => swap(i, i - 1)} aria-label={w("moveStageUp", { stage: r.name || String(i + 1) })}>
                  <span aria-hidden="true">↑</span>
                </button>
                <button type="button" className="secondary tiny" disabled={i === rows.length - 1} onClick={() => swap(i, i + 1)} aria-label={w("moveStageDown", { stage: r.name || String(i + 1) })}>
                  <span aria-hidden="true">↓</span>
                </button>
                <button type="button" className="secondary tiny danger" onClick={() => setRows(rows.filter((x) => x.key !== r.key))} aria-label={w("removeStage", { stage: r.name || String(i + 1) })}>
                  <span aria-hidden="true">×</span>
                </button>
              </span>
            </li>
          ))}
        </ol>
        <p>
          <button type="button" className="secondary" onClick={() => setRows([...rows, { key: rowKey++, name: "", probability: "50", kind: StageKind.OPEN }])}>
            {w("addStageRow")}
          </button>
        </p>
        {errors.form && (
          <p role="alert" className="error">
            {errors.form}
          </p>
        )}
        <button type="submit" disabled={busy}>
          {w("createPipeline")}
        </button>
      </form>
    </section>
  );
}

function StageInputs({ legend, row, errors, onChange }: { legend: string; row: Pick<Row, "name" | "probability" | "kind">; errors: { name?: string | undefined; probability?: string | undefined; kind?: string | undefined }; onChange(p: Partial<Row>): void }) {
  const { w } = useWords();
  const id = useId();
  const input = (field: "name" | "probability", label: string, extra: Record<string, unknown>) => (
    <div className="field">
      <label htmlFor={`${id}-${field}`}>{label}</label>
      <input
        id={`${id}-${field}`}
        value={row[field]}
        onChange={(e) => onChange({ [field]: e.target.value })}
        aria-invalid={errors[field] ? true : undefined}
        aria-describedby={errors[field] ? `${id}-${field}-error` : undefined}
        {...extra}
      />
      {errors[field] && (
        <small id={`${id}-${field}-error`} className="field-error">
          {errors[field]}
        </small>
      )}
    </div>
  );
  return (
    <fieldset className="stage-inputs">
      <legend>{legend}</legend>
      {input("name", w("stageName"), { maxLength: 100 })}
      {input("probability", w("probability"), { type: "number", min: 0, max: 100, inputMode: "numeric" })}
      <div className="field">
        <label htmlFor={`${id}-kind`}>{w("kind")}</label>
        <select id={`${id}-kind`} value={String(row.kind || StageKind.OPEN)} onChange={(e) => onChange({ kind: Number(e.target.value) as StageKind })}>
          {kinds(w).map((k) => (
            <option key={k.value} value={k.value}>
              {k.label}
            </option>
          ))}
        </select>
      </div>
    </fieldset>
  );
}

/** One pipeline's name and stages, changed one call at a time with the pipeline's etag. */
function PipelineEditor({ pipeline: p, admin }: { pipeline: Pipeline; admin: boolean }) {
  const words = useWords();
  const { w } = words;
  const invalidate = useInvalidate();
  const [order, setOrder] = useState<Stage[]>(p.stages);
  const [notice, setNotice] = useState<{ text: string; error?: boolean }>();
  const [adding, setAdding] = useState<Row>({ key: -1, name: "", probability: "50", kind: StageKind.OPEN });
  const [addErrors, setAddErrors] = useState<Record<string, string>>({});
  useEffect(() => setOrder(p.stages), [p]);
  const changedOrder = order.some((s, i) => s.id !== p.stages[i]?.id);
  const refresh = () => invalidate(PipelineService.method.listPipelines, DealService.method.listDeals, DealService.method.getDeal, timelineOf);
  const run = async (action: () => Promise<string>) => {
    setNotice(undefined);
    try {
      setNotice({ text: await action() });
    } catch (e) {
      setNotice({ text: recordError(e, words, p.name), error: true });
    }
    await refresh();
  };
  const move = (i: number, j: number) => {
    const next = order.slice();
    [next[i], next[j]] = [next[j]!, next[i]!];
    setOrder(next);
  };
  const add = async (e: FormEvent) => {
    e.preventDefault();
    setAddErrors({});
    try {
      const r = await api.pipelines.createStage({ pipelineId: p.id, etag: p.etag, stage: { name: adding.name.trim(), probability: Number(adding.probability) || 0, kind: adding.kind } });
      setNotice({ text: w("stageAdded", { stage: r.stage?.name ?? "" }) });
      setAdding({ key: -1, name: "", probability: "50", kind: StageKind.OPEN });
      await refresh();
    } catch (err) {
      const split = splitErrors(err, words, "stage", ["name", "probability", "kind"], p.name);
      setAddErrors(split.fields);
      if (split.form) setNotice({ text: split.form, error: true });
      if (!Object.keys(split.fields).length) await refresh();
    }
  };
  return (
    <section aria-labelledby="editor-title" className="pipeline-editor">
      <h2 id="editor-title">{w("editPipeline", { pipeline: p.name })}</h2>
      <InlineField
        label={w("pipelineName")}
        field="name"
        display={p.name}
        initial={p.name}
        editor={{ kind: "text", maxLength: 100 }}
        canEdit={admin}
        errorsOf={(e) => splitErrors(e, words, "pipeline", ["name"], p.name)}
        save={async (name) => {
          await api.pipelines.updatePipeline({ pipeline: { id: p.id, name: name.trim(), etag: p.etag }, updateMask: { paths: ["name"] } });
          await refresh();
        }}
      />
      <Notice notice={notice} />
      <h3>{w("stages")}</h3>
      <ol className="stage-list">
        {order.map((s, i) => (
          <StageRow key={s.id} stage={s} pipeline={p} index={i} count={order.length} admin={admin} onMove={move} run={run} />
        ))}
      </ol>
      {admin && changedOrder && (
        <button type="button" onClick={() => void run(async () => (await api.pipelines.reorderStages({ pipelineId: p.id, stageIds: order.map((s) => s.id), etag: p.etag }), w("orderSaved")))}>
          {w("saveOrder")}
        </button>
      )}
      {admin && (
        <form onSubmit={(e) => void add(e)} className="add-stage" noValidate>
          <StageInputs legend={w("addStage")} row={adding} errors={addErrors} onChange={(patch) => setAdding({ ...adding, ...patch })} />
          <button type="submit">{w("addStage")}</button>
        </form>
      )}
    </section>
  );
}

function StageRow({ stage: s, pipeline: p, index: i, count, admin, onMove, run }: { stage: Stage; pipeline: Pipeline; index: number; count: number; admin: boolean; onMove(i: number, j: number): void; run(a: () => Promise<string>): Promise<void> }) {
  const words = useWords();
  const { w } = words;
  const id = useId();
  const [row, setRow] = useState<Omit<Row, "key">>({ name: s.name, probability: String(s.probability), kind: s.kind || StageKind.OPEN });
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [target, setTarget] = useState("");
  useEffect(() => setRow({ name: s.name, probability: String(s.probability), kind: s.kind || StageKind.OPEN }), [s]);
  const changed = row.name !== s.name || row.probability !== String(s.probability) || row.kind !== (s.kind || StageKind.OPEN);
  const save = async (e: FormEvent) => {
    e.preventDefault();
    setErrors({});
    const mask = [row.name !== s.name && "name", row.probability !== String(s.probability) && "probability", row.kind !== (s.kind || StageKind.OPEN) && "kind"].filter((x): x is string => Boolean(x));
    await run(async () => {
      try {
        await api.pipelines.updateStage({ stage: { id: s.id, name: row.name.trim(), probability: Number(row.probability) || 0, kind: row.kind }, updateMask: { paths: mask }, etag: p.etag });
        return w("stageSaved", { stage: row.name.trim() });
      } catch (err) {
        const split = splitErrors(err, words, "stage", ["name", "probability", "kind"], p.name);
        setErrors(split.fields);
        throw err;
      }
    });
  };
  if (!admin)
    return (
      <li>
        {s.name} · {words.number(s.probability)} % · {kinds(w).find((k) => k.value === String(s.kind || StageKind.OPEN))?.label}
      </li>
    );
  return (
    <li className="stage-row" data-stage={s.name}>
      <form onSubmit={(e) => void save(e)} noValidate>
        <StageInputs legend={w("stageN", { n: i + 1 })} row={row} errors={errors} onChange={(patch) => setRow({ ...row, ...patch })} />
        <span className="row-buttons">
          <button type="button" className="secondary tiny" disabled={i === 0} onClick={() => onMove(i, i - 1)} aria-label={w("moveStageUp", { stage: s.name })}>
            <span aria-hidden="true">↑</span>
          </button>
          <button type="button" className="secondary tiny" disabled={i === count - 1} onClick={() => onMove(i, i + 1)} aria-label={w("moveStageDown", { stage: s.name })}>
            <span aria-hidden="true">↓</span>
          </button>
          {changed && (
            <button type="submit" aria-label={w("saveOf", { field: s.name })}>
              {w("save")}
            </button>
          )}
        </span>
      </form>
      <form
        className="delete-stage"
        onSubmit={(e) => {
          e.preventDefault();
          void run(async () => {
            const r = await api.pipelines.deleteStage({ id: s.id, moveDealsToStageId: target, etag: p.etag });
            return w("stageDeleted", { stage: s.name, count: r.movedDeals });
          });
        }}
      >
        <label htmlFor={`${id}-to`}>{w("moveDealsTo")}</label>
        <select id={`${id}-to`} value={target} onChange={(e) => setTarget(e.target.value)}>
          <option value="">{w("keepDeals")}</option>
          {p.stages
            .filter((x) => x.id !== s.id)
            .map((x) => (
              <option key={x.id} value={x.id}>
                {x.name}
              </option>
            ))}
        </select>
        <button type="submit" className="secondary small danger" aria-label={w("removeStage", { stage: s.name })}>
          {w("deleteStage")}
        </button>
      </form>
    </li>
  );
}
