/**
 * An import's rows in TypeScript, pure: a row's cells through the mapping into a record's values
 * in their stored form (the same normal forms as the API: ../src/rules.ts), the row's match key,
 * and rows with the same key merged (later non-empty values win; e-mails, phones and tags are
 * united). No I/O: the batch (import-store.ts) does the SQL, set-based.
 */
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import type { Violation } from "@crm/kit";
import { emailKey, normalizeCurrency, normalizeCustomValue, normalizeDate, normalizeDomain, normalizeEmail, normalizePhone, type CustomDef, type CustomPatch } from "../src/rules.js";

export type ImportKind = "person" | "company" | "deal";

/** The standard fields an import fills, per object type (proto names). */
export const importFields: Record<ImportKind, readonly string[]> = {
  person: ["first_name", "last_name", "full_name", "emails", "phones", "job_title"],
  company: ["name", "domain", "address", "industry", "size", "tags"],
  // A deal's pipeline and stage by name (or id), its amount in the currency's units ("1 250,50"),
  // and its company by domain; resolved against the tenant's records by the batch (import-deals.ts).
  deal: ["name", "pipeline", "stage", "amount", "currency_code", "expected_close_date", "company_domain"],
};
/** Fields several columns may fill. */
export const multiFields = new Set(["emails", "phones", "tags"]);

export interface Mapped {
  column: number;
  field: string;
}

/** A row's values in stored form; only what the row gave (empty cells are absent). */
export interface RowValues {
  first_name?: string;
  last_name?: string;
  job_title?: string;
  emails?: string[];
  phones?: string[];
  name?: string;
  domain?: string;
  address?: string;
  industry?: string;
  size?: number;
  tags?: string[];
  /** Deals: as written in the file (pipeline, stage: a name or an id; amount: a decimal in the currency's units). */
  pipeline?: string;
  stage?: string;
  amount?: string;
  currency_code?: string;
  expected_close_date?: string;
  company_domain?: string;
  /** Deals: in stored form (import-deals.ts resolves them). */
  pipeline_id?: string;
  stage_id?: string;
  status?: string;
  amount_minor?: string;
  company_id?: string;
  custom: JsonObject;
}

export interface ParsedRow {
  rowNo: number;
  values: RowValues;
  /** The match value ("" when the row has none). */
  key: string;
}

const lengths: Record<string, number> = { first_name: 100, last_name: 100, job_title: 200, name: 200, address: 500, industry: 100, pipeline: 200, stage: 200 };

/**
 * An amount as a plain decimal ("1250.5"): spaces (thousands) dropped; with both "," and "." the
 * later one is the decimal point; a lone "," is one too (Russian Excel). Undefined when it is none.
 */
export function parseAmount(raw: string): string | undefined {
  let t = raw.replace(/[\s\u00a0\u202f']/g, "");
  const comma = t.lastIndexOf(",");
  const dot = t.lastIndexOf(".");
  if (comma >= 0 && dot >= 0) t = comma > dot ? t.replace(/\./g, "").replace(",", ".") : t.replace(/,/g, "");
  else if (comma >= 0) t = (t.match(/,/g)!.length === 1 ? t.replace(",", ".") : t.replace(/,/g, ""));
  return /^\d{1,15}(\.\d{1,6})?$/.test(t) ? t.replace(/^0+(?=\d)/, "") : undefined;
}

/** A date as YYYY-MM-DD, also from DD.MM.YYYY (Russian Excel); undefined when it is none. */
export function parseDate(raw: string): string | undefined {
  const ru = /^(\d{1,2})\.(\d{1,2})\.(\d{4})$/.exec(raw.trim());
  return normalizeDate(ru ? `${ru[3]}-${ru[2]!.padStart(2, "0")}-${ru[1]!.padStart(2, "0")}` : raw);
}
const splitList = (s: string) => s.split(/[;,]/).map((x) => x.trim()).filter(Boolean);
const uniqueBy = (xs: string[], key: (s: string) => string) => {
  const seen = new Set<string>();
  return xs.filter((x) => (seen.has(key(x)) ? false : (seen.add(key(x)), true)));
};

/** The row's values, or the reason it fails ("field: what is wrong"). */
export function parseRow(kind: ImportKind, mapping: readonly Mapped[], cells: readonly string[], defs: ReadonlyMap<string, CustomDef>, matchBy: string): { values: RowValues; key: string } | { reason: string } {
  const v: RowValues = { custom: {} };
  const bad: string[] = [];
  for (const m of mapping) {
    const raw = (cells[m.column] ?? "").trim();
    if (raw === "") continue;
    const f = m.field;
    if (f.startsWith("custom.")) {
      const key = f.slice(7);
      const def = defs.get(key);
      if (!def || def.archived) {
        bad.push(`${f}: no such custom field`);
        continue;
      }
      const out: Violation[] = [];
      const users: CustomPatch["users"] = [];
      const value: JsonValue = def.type === "multi_select" ? splitList(raw) : def.type === "boolean" ? /^(true|yes|1|да|y)$/i.test(raw) : raw;
      const n = normalizeCustomValue(def, value, f, out, users);
      if (out.length || n === undefined) bad.push(`${f}: ${out[0]?.description ?? "bad value"}`);
      else v.custom[key] = n;
      continue;
    }
    switch (f) {
      case "first_name":
      case "last_name":
      case "job_title":
      case "name":
      case "address":
      case "industry":
      case "pipeline":
      case "stage": {
        // One line but the address (a cell's line breaks and tabs become spaces).
        const text = f === "address" ? raw : raw.replace(/\s+/g, " ");
        if (text.length > lengths[f]!) bad.push(`${f}: must be at most ${lengths[f]} characters`);
        else v[f] = text;
        break;
      }
      case "full_name": {
        const at = raw.lastIndexOf(" ");
        const first = at > 0 ? raw.slice(0, at).trim() : raw;
        const last = at > 0 ? raw.slice(at + 1).trim() : "";
        if (first.length > 100 || last.length > 100) bad.push("full_name: must be at most 100 characters per part");
        else {
          v.first_name = first;
          if (last) v.last_name = last;
        }
        break;
      }
      case "emails":
        for (const e of splitList(raw)) {
          const n = normalizeEmail(e);
          if (n === undefined) bad.push(`emails: must be an e-mail address (got ${JSON.stringify(e.slice(0, 80))})`);
          else (v.emails ??= []).push(n);
        }
        break;
      case "phones":
        for (const p of raw.split(/[;,]/).map((x) => x.trim()).filter(Boolean)) {
          const n = normalizePhone(p);
          if (n === undefined) bad.push(`phones: must be a phone number in E.164, e.g. +14155550100 (got ${JSON.stringify(p.slice(0, 40))})`);
          else (v.phones ??= []).push(n);
        }
        break;
      case "domain": {
        const d = normalizeDomain(raw);
        if (!d) bad.push(`domain: must be a web domain such as "example.com" (got ${JSON.stringify(raw.slice(0, 80))})`);
        else v.domain = d;
        break;
      }
      case "size": {
        const n = Number(raw.replace(/[\s ]/g, ""));
        if (!Number.isInteger(n) || n < 0 || n > 10_000_000) bad.push(`size: must be a whole number 0..10000000 (got ${JSON.stringify(raw.slice(0, 40))})`);
        else v.size = n;
        break;
      }
      case "tags":
        (v.tags ??= []).push(...splitList(raw).map((t) => t.slice(0, 50)));
        break;
      case "amount": {
        const a = parseAmount(raw);
        if (a === undefined) bad.push(`amount: must be a number such as 1250.50 or "1 250,50" (got ${JSON.stringify(raw.slice(0, 40))})`);
        else v.amount = a;
        break;
      }
      case "currency_code": {
        const c = normalizeCurrency(raw);
        if (!c) bad.push(`currency_code: must be an ISO 4217 code such as "EUR" (got ${JSON.stringify(raw.slice(0, 20))})`);
        else v.currency_code = c;
        break;
      }
      case "expected_close_date": {
        const d = parseDate(raw);
        if (!d) bad.push(`expected_close_date: must be a date, YYYY-MM-DD or DD.MM.YYYY (got ${JSON.stringify(raw.slice(0, 40))})`);
        else v.expected_close_date = d;
        break;
      }
      case "company_domain": {
        const d = normalizeDomain(raw);
        if (!d) bad.push(`company_domain: must be a web domain such as "example.com" (got ${JSON.stringify(raw.slice(0, 80))})`);
        else v.company_domain = d;
        break;
      }
      default:
        bad.push(`${f}: not a field an import fills`);
    }
  }
  if (v.emails) v.emails = uniqueBy(v.emails, emailKey);
  if (v.phones) v.phones = [...new Set(v.phones)];
  if (v.tags) v.tags = [...new Set(v.tags)];
  if (bad.length) return { reason: bad.join("; ") };
  return { values: v, key: matchKey(v, matchBy) };
}

/** The value a row is matched on: the primary e-mail (lower case), the domain, or a custom value. */
export function matchKey(v: RowValues, matchBy: string): string {
  if (matchBy === "emails") return v.emails?.[0] ? emailKey(v.emails[0]) : "";
  if (matchBy === "domain") return v.domain ?? "";
  if (matchBy.startsWith("custom.")) {
    const c = v.custom[matchBy.slice(7)];
    return c === undefined || c === null ? "" : String(c);
  }
  return "";
}

/** `later` merged onto `earlier`: non-empty values win, lists are united. */
export function mergeValues(earlier: RowValues, later: RowValues): RowValues {
  const out: RowValues = { ...earlier, ...stripLists(later), custom: { ...earlier.custom, ...later.custom } };
  if (earlier.emails || later.emails) out.emails = uniqueBy([...(earlier.emails ?? []), ...(later.emails ?? [])], emailKey).slice(0, 20);
  if (earlier.phones || later.phones) out.phones = [...new Set([...(earlier.phones ?? []), ...(later.phones ?? [])])].slice(0, 20);
  if (earlier.tags || later.tags) out.tags = [...new Set([...(earlier.tags ?? []), ...(later.tags ?? [])])].slice(0, 50);
  return out;
}

function stripLists(v: RowValues): Partial<RowValues> {
  const { emails: _e, phones: _p, tags: _t, custom: _c, ...rest } = v;
  return rest;
}

/** What a record must have: a name (people: a first or last name; companies: a name). */
export function missingForCreate(kind: ImportKind, v: RowValues): string | undefined {
  if (kind === "person" && !v.first_name && !v.last_name) return "first_name: give a first name, a last name or both";
  if ((kind === "company" || kind === "deal") && !v.name) return "name: is required";
  return undefined;
}

/** A suggested field for a header (English and Russian names), given the custom fields. */
const synonyms: Record<ImportKind, Record<string, string[]>> = {
  person: {
    first_name: ["first name", "firstname", "given name", "first", "имя"],
    last_name: ["last name", "lastname", "surname", "family name", "last", "фамилия"],
    full_name: ["name", "full name", "fullname", "contact", "contact name", "фио", "полное имя", "контакт", "имя фамилия"],
    emails: ["email", "e-mail", "email address", "e-mail address", "mail", "work email", "почта", "эл. почта", "электронная почта", "емейл", "e-mail адрес"],
    phones: ["phone", "phone number", "mobile", "tel", "telephone", "cell", "телефон", "мобильный", "тел", "номер телефона"],
    job_title: ["job title", "title", "position", "role", "должность", "позиция"],
  },
  company: {
    name: ["name", "company", "company name", "organization", "organisation", "account", "название", "компания", "организация", "наименование"],
    domain: ["domain", "website", "web site", "site", "url", "web", "домен", "сайт", "веб-сайт"],
    address: ["address", "адрес"],
    industry: ["industry", "sector", "отрасль", "сфера"],
    size: ["size", "employees", "headcount", "number of employees", "размер", "сотрудники", "число сотрудников", "количество сотрудников"],
    tags: ["tags", "labels", "теги", "метки"],
  },
  deal: {
    name: ["name", "deal", "deal name", "title", "opportunity", "название", "сделка", "название сделки"],
    pipeline: ["pipeline", "funnel", "воронка", "воронка продаж"],
    stage: ["stage", "deal stage", "status", "этап", "стадия", "статус"],
    amount: ["amount", "value", "deal value", "sum", "price", "сумма", "бюджет", "стоимость"],
    currency_code: ["currency", "currency code", "валюта"],
    expected_close_date: ["expected close date", "close date", "closing date", "дата закрытия", "ожидаемая дата закрытия"],
    company_domain: ["company domain", "company website", "domain", "website", "домен компании", "сайт компании", "сайт"],
  },
};
const norm = (s: string) => s.trim().toLowerCase().replace(/ё/g, "е").replace(/[_\s]+/g, " ").replace(/[*:]+$/, "").trim();

export function suggestMapping(kind: ImportKind, header: readonly string[], custom: readonly { key: string; label: string }[]): Mapped[] {
  const used = new Set<string>();
  const out: Mapped[] = [];
  header.forEach((h, column) => {
    const n = norm(h);
    let field = "";
    for (const [f, names] of Object.entries(synonyms[kind])) {
      if (names.includes(n) || n === f.replace(/_/g, " ")) {
        field = f;
        break;
      }
    }
    if (!field) {
      const c = custom.find((d) => norm(d.label) === n || d.key === n.replace(/ /g, "_") || `custom.${d.key}` === n);
      if (c) field = `custom.${c.key}`;
    }
    if (field && used.has(field) && !multiFields.has(field)) field = "";
    if (field) used.add(field);
    out.push({ column, field });
  });
  // A full name beside a first and last name is not needed.
  if (used.has("full_name") && (used.has("first_name") || used.has("last_name"))) for (const m of out) if (m.field === "full_name") m.field = "";
  return out;
}
