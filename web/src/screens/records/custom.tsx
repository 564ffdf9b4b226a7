/**
 * Custom fields (FieldService definitions) on the records screens: their values shown per type,
 * a list's columns (sortable like standard fields, except multi-select, which the server cannot
 * sort), a list's custom-field filter (the condition kept in the address, so a reload or a shared
 * link shows the same list), and the record page's rows, each edited in place with the mask path
 * `custom.<key>` and the record's etag.
 */
import { useId } from "react";
import { useQuery } from "@connectrpc/connect-query";
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { FieldService, FieldType, type Field } from "@crm/gen/crm/records/v1/field_pb";
import { Operator, type ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import { fieldErrors } from "../../errors";
import { LocalInvalid } from "../../forms";
import { FilterSelect, FilterText, InlineField, type Directory, type Editor } from "./common";
import type { Column } from "./views";
import { formatDate, formatMoney, parseAmount, type Cond } from "./format";
import { useWords, type Words } from "./words";

/** The object type's active custom fields, in their defined order (one call, shared by the page). */
export function useFields(objectType: ObjectType): Field[] {
  const q = useQuery(FieldService.method.listFields, { objectType }, { staleTime: 60_000 });
  return q.data?.fields ?? [];
}

const textual = new Set([FieldType.TEXT, FieldType.LONG_TEXT, FieldType.URL, FieldType.EMAIL, FieldType.PHONE]);

/** Whether the server sorts by the field (every type but multi-select). */
export const sortable = (f: Field) => f.type !== FieldType.MULTI_SELECT;

/** The operator a list's filter uses for a field's typed value: "contains" for text, "equals" otherwise (for a multi-select: holds it). */
export function filterOperator(f: Field): Operator {
  return textual.has(f.type) ? Operator.CONTAINS : Operator.EQUALS;
}

/** The list's custom-field condition from the address: `cf` the key, `cop` the operator (a number), `cv` the value. */
export function customCondition(p: URLSearchParams): Cond | undefined {
  const key = p.get("cf");
  const value = (p.get("cv") ?? "").trim();
  if (!key || !value) return undefined;
  const op = Number(p.get("cop")) || Operator.EQUALS;
  return { field: `custom.${key}`, op, values: [value] };
}

function optionLabel(f: Field, value: string): string {
  return f.options.find((o) => o.value.toLowerCase() === value.toLowerCase())?.label || value;
}

/** A value as text for a reader (a list's cell, a record's row); "" when unset. */
export function customText(f: Field, v: JsonValue | undefined, words: Words, dir: Directory): string {
  if (v === undefined || v === null || v === "") return "";
  switch (f.type) {
    case FieldType.NUMBER:
      return typeof v === "number" || (typeof v === "string" && v !== "" && !Number.isNaN(Number(v))) ? words.number(Number(v)) : String(v);
    case FieldType.MONEY:
      try {
        return formatMoney(BigInt(typeof v === "number" ? Math.trunc(v) : String(v)), f.currencyCode, words.locale);
      } catch {
        return String(v);
      }
    case FieldType.DATE:
      return formatDate(String(v), words.locale);
    case FieldType.DATETIME: {
      const d = new Date(String(v));
      return Number.isNaN(d.getTime()) ? String(v) : words.dateTime(d);
    }
    case FieldType.BOOLEAN:
      return v === true || v === "true" ? words.w("yes") : words.w("no");
    case FieldType.SELECT:
      return optionLabel(f, String(v));
    case FieldType.MULTI_SELECT:
      return (Array.isArray(v) ? v : [v]).map((x) => optionLabel(f, String(x))).join(", ");
    case FieldType.USER:
      return dir.name(String(v));
    default:
      return typeof v === "object" ? JSON.stringify(v) : String(v);
  }
}

/** A value for a reader, with links for URLs, e-mail addresses and phones. */
export function CustomValue({ field: f, value, dir }: { field: Field; value: JsonValue | undefined; dir: Directory }) {
  const words = useWords();
  const text = customText(f, value, words, dir);
  if (!text) return null;
  if (f.type === FieldType.URL && /^https?:\/\//i.test(text))
    return (
      <a href={text} rel="noopener noreferrer nofollow" target="_blank">
        {text}
      </a>
    );
  if (f.type === FieldType.EMAIL) return <a href={`mailto:${text}`}>{text}</a>;
  if (f.type === FieldType.PHONE) return <a href={`tel:${text}`}>{text}</a>;
  return <>{text}</>;
}

const numeric = new Set([FieldType.NUMBER, FieldType.MONEY]);

/** A list's columns for the custom fields (`custom.<key>`, sortable but for multi-select). */
export function customColumns<R extends { custom?: JsonObject | undefined }>(fields: Field[], dir: Directory): Column<R>[] {
  return fields.map((f) => ({ key: `custom.${f.key}`, label: f.label, sort: sortable(f) ? `custom.${f.key}` : undefined, num: numeric.has(f.type), cell: (r: R) => <CustomValue field={f} value={r.custom?.[f.key]} dir={dir} /> }));
}

/** The list's custom-field filter: which field, and the value it has (contains for text). */
export function CustomFilter({ fields, params, set, dir }: { fields: Field[]; params: URLSearchParams; set(c: Record<string, string | undefined>): void; dir: Directory }) {
  const { w } = useWords();
  const id = useId();
  if (fields.length === 0) return null;
  const key = params.get("cf") ?? "";
  const f = fields.find((x) => x.key === key);
  const value = params.get("cv") ?? "";
  const choose = (k: string) => {
    const nf = fields.find((x) => x.key === k);
    set({ cf: k || undefined, cop: nf ? String(filterOperator(nf)) : undefined, cv: undefined });
  };
  const choices = f ? valueChoices(f, dir, w) : undefined;
  const label = f ? w(filterOperator(f) === Operator.CONTAINS ? "customContains" : "customIs", { field: f.label }) : "";
  return (
    <>
      <div className="field">
        <label htmlFor={`${id}-f`}>{w("customField")}</label>
        <select id={`${id}-f`} value={key} onChange={(e) => choose(e.target.value)}>
          <option value="">{w("none")}</option>
          {fields.map((x) => (
            <option key={x.key} value={x.key}>
              {x.label}
            </option>
          ))}
        </select>
      </div>
      {f &&
        (choices ? (
          <FilterSelect label={label} value={value} onChange={(v) => set({ cv: v || undefined })} options={[{ value: "", label: w("anyValue") }, ...choices]} />
        ) : (
          <FilterText label={label} type={f.type === FieldType.DATE ? "date" : "search"} value={value} onChange={(v) => set({ cv: v || undefined })} />
        ))}
    </>
  );
}

/** The fixed choices of a field (select, multi-select, boolean, user), for a select; undefined for typed values. */
function valueChoices(f: Field, dir: Directory, w: Words["w"]): { value: string; label: string }[] | undefined {
  switch (f.type) {
    case FieldType.SELECT:
    case FieldType.MULTI_SELECT:
      return f.options.filter((o) => !o.archived).map((o) => ({ value: o.value, label: o.label || o.value }));
    case FieldType.BOOLEAN:
      return [
        { value: "true", label: w("yes") },
        { value: "false", label: w("no") },
      ];
    case FieldType.USER:
      return [{ value: dir.me, label: w("you") }, ...dir.users.filter((u) => u.id !== dir.me).map((u) => ({ value: u.id, label: u.name }))];
    default:
      return undefined;
  }
}

/** The editor of a field's value and its initial text. */
function editorOf(f: Field, v: JsonValue | undefined, words: Words, dir: Directory): { editor: Editor; initial: string } {
  const { w } = words;
  const s = v === undefined || v === null ? "" : v;
  switch (f.type) {
    case FieldType.LONG_TEXT:
      return { editor: { kind: "textarea", maxLength: 10_000 }, initial: String(s) };
    case FieldType.NUMBER:
      return { editor: { kind: "text", hint: w("numberHint") }, initial: s === "" ? "" : String(s) };
    case FieldType.MONEY: {
      let initial = "";
      try {
        initial = s === "" ? "" : customText(f, s, words, dir).replace(/[^\d\s\u00a0\u202f.,-]/g, "").trim();
      } catch {
        initial = String(s);
      }
      return { editor: { kind: "text", hint: w("moneyHint", { currency: f.currencyCode }) }, initial };
    }
    case FieldType.DATE:
      return { editor: { kind: "text", type: "date" }, initial: String(s) };
    case FieldType.DATETIME: {
      const d = s === "" ? undefined : new Date(String(s));
      const local = d && !Number.isNaN(d.getTime()) ? new Date(d.getTime() - d.getTimezoneOffset() * 60_000).toISOString().slice(0, 16) : "";
      return { editor: { kind: "text", type: "datetime-local" }, initial: local };
    }
    case FieldType.URL:
      return { editor: { kind: "text", type: "url", maxLength: 1000 }, initial: String(s) };
    case FieldType.EMAIL:
      return { editor: { kind: "text", type: "email", maxLength: 320 }, initial: String(s) };
    case FieldType.PHONE:
      return { editor: { kind: "text", type: "tel", hint: w("phonesHint") }, initial: String(s) };
    case FieldType.MULTI_SELECT:
      return { editor: { kind: "text", hint: w("optionsHint", { options: f.options.filter((o) => !o.archived).map((o) => o.label || o.value).join(", ") }) }, initial: (Array.isArray(s) ? s : s === "" ? [] : [s]).map((x) => optionLabel(f, String(x))).join(", ") };
    case FieldType.SELECT:
    case FieldType.BOOLEAN:
    case FieldType.USER: {
      const options = valueChoices(f, dir, w) ?? [];
      const initial = s === "" ? "" : String(s);
      if (initial && !options.some((o) => o.value === initial)) options.unshift({ value: initial, label: customText(f, s, words, dir) });
      return { editor: { kind: "select", options: [{ value: "", label: w("none") }, ...options] }, initial };
    }
    default:
      return { editor: { kind: "text", maxLength: 1000 }, initial: String(s) };
  }
}

/** What a person typed → the JSON value to send (null unsets); a number or an amount the console cannot read is refused beside the field. */
export function parseCustom(f: Field, text: string, words: Words): JsonValue {
  const t = text.trim();
  if (!t) return null;
  const field = `custom.${f.key}`;
  switch (f.type) {
    case FieldType.NUMBER: {
      const s = t.replace(/[\s\u00a0\u202f]/g, "").replace(",", ".");
      if (!/^-?\d+(\.\d+)?$/.test(s)) throw new LocalInvalid({ [field]: words.w("amountFormat", { example: words.number(12.5) }) });
      return s;
    }
    case FieldType.MONEY: {
      const r = parseAmount(t, f.currencyCode, words.locale);
      if (!r.ok) throw new LocalInvalid({ [field]: words.w("amountFormat", { example: words.number(12500.5) }) });
      return Number(r.minor);
    }
    case FieldType.BOOLEAN:
      return t === "true";
    case FieldType.DATETIME:
      return new Date(t).toISOString();
    case FieldType.MULTI_SELECT:
      return t
        .split(",")
        .map((x) => x.trim())
        .filter(Boolean)
        .map((x) => f.options.find((o) => o.label.toLowerCase() === x.toLowerCase())?.value ?? x);
    default:
      return t;
  }
}

/**
 * A record page's custom fields, each a row edited in place; `save` sends `{custom: {key: value}}`
 * with the mask `custom.<key>`. The server's violation (`company.custom.tier`) goes beside it.
 */
export function CustomDetails(props: { objectType: ObjectType; prefix: string; custom: JsonObject | undefined; dir: Directory; canEdit: boolean; save(key: string, value: JsonValue): Promise<void>; errorsOf(e: unknown): { form?: string; fields: Record<string, string> } }) {
  const words = useWords();
  const fields = useFields(props.objectType);
  const errorsOf = (e: unknown) => {
    if (e instanceof LocalInvalid) return { fields: e.fields };
    const fields: Record<string, string> = {};
    for (const [server, text] of Object.entries(fieldErrors(e))) {
      const m = new RegExp(`^${props.prefix}\\.custom\\.([a-z0-9_]+)`).exec(server);
      if (m) fields[`custom.${m[1]}`] = text;
    }
    return Object.keys(fields).length ? { fields, form: undefined } : props.errorsOf(e);
  };
  return (
    <>
      {fields.map((f) => {
        const value = props.custom?.[f.key];
        const { editor, initial } = editorOf(f, value, words, props.dir);
        const shown = customText(f, value, words, props.dir);
        return (
          <InlineField
            key={f.key}
            label={f.label}
            field={`custom.${f.key}`}
            display={shown ? <CustomValue field={f} value={value} dir={props.dir} /> : words.w("empty")}
            initial={initial}
            editor={editor}
            canEdit={props.canEdit}
            errorsOf={errorsOf}
            save={(v) => props.save(f.key, parseCustom(f, v, words))}
          />
        );
      })}
    </>
  );
}
