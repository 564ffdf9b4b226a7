/**
 * The --filter language of `crm … list` and `crm export`: each --filter is one condition (or
 * several joined by " | ", any of which may hold); several --filter options must all hold.
 *
 *   name~acme              contains (text, case-insensitive)      name^=Ac   starts with
 *   status=won             equals          stage_id!=…   not equals
 *   amount_minor>=100000   >, >=, <, <=    owner_id=me   the caller
 *   tags in vip,partner    any of (comma-separated)
 *   expected_close_date between 2026-01-01,2026-03-31   (inclusive; "a..b" too)
 *   domain empty           no value        domain notempty
 *   custom.tier=gold       a custom field
 *
 * Field names are the API's (proto) names; values are read as the field's type by the server,
 * which names a bad field or value (invalid_argument). Pure: no I/O.
 */
import { create } from "@bufbuild/protobuf";
import { FilterSchema, Operator, type Filter } from "@crm/gen/crm/records/v1/common_pb";
import { usageError } from "./errors.js";

const symbols: [string, Operator][] = [
  ["!=", Operator.NOT_EQUALS],
  [">=", Operator.GREATER_OR_EQUAL],
  ["<=", Operator.LESS_OR_EQUAL],
  ["^=", Operator.STARTS_WITH],
  ["=", Operator.EQUALS],
  ["~", Operator.CONTAINS],
  [">", Operator.GREATER_THAN],
  ["<", Operator.LESS_THAN],
];

const words: Record<string, Operator> = {
  in: Operator.IN,
  between: Operator.BETWEEN,
  empty: Operator.IS_EMPTY,
  notempty: Operator.IS_NOT_EMPTY,
};

const FIELD = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_-]+)?$/;

function unquote(v: string): string {
  const t = v.trim();
  return t.length >= 2 && (t[0] === '"' || t[0] === "'") && t.at(-1) === t[0] ? t.slice(1, -1) : t;
}

/** One condition, e.g. "amount_minor>=1000" or "tags in a,b". */
export function parseCondition(text: string): Filter {
  const t = text.trim();
  const found = /^([^\s]+)\s+(in|between|empty|notempty)(?:\s+(.*))?$/i.exec(t);
  const word = found && FIELD.test(found[1]!) ? found : null; // else e.g. "name~Made in Italy"
  let field: string;
  let op: Operator;
  let values: string[];
  if (word) {
    field = word[1]!;
    op = words[word[2]!.toLowerCase()]!;
    const rest = word[3]?.trim() ?? "";
    if (op === Operator.IS_EMPTY || op === Operator.IS_NOT_EMPTY) {
      if (rest) throw usageError(`--filter ${JSON.stringify(text)}: "${word[2]}" takes no value`);
      values = [];
    } else if (op === Operator.BETWEEN) {
      values = (rest.includes("..") ? rest.split("..") : rest.split(",")).map(unquote);
      if (values.length !== 2 || values.some((v) => !v)) throw usageError(`--filter ${JSON.stringify(text)}: between takes two values, e.g. "amount_minor between 100,500"`);
    } else {
      values = rest.split(",").map(unquote).filter(Boolean);
      if (values.length === 0) throw usageError(`--filter ${JSON.stringify(text)}: in takes a comma-separated list, e.g. "tags in vip,partner"`);
    }
  } else {
    const hit = symbols.map(([s, o]) => [t.indexOf(s), s, o] as const).filter(([i]) => i > 0);
    // the leftmost operator wins; of two at the same place the longer ("!=" before "=")
    const first = hit.sort((a, b) => a[0] - b[0] || b[1].length - a[1].length)[0];
    if (!first) throw usageError(`--filter ${JSON.stringify(text)}: expected field, operator and value, e.g. "name~acme" or "amount_minor>=1000" (crm help filters)`);
    const [at, sym, o] = first;
    field = t.slice(0, at).trim();
    op = o;
    const value = unquote(t.slice(at + sym.length));
    if (!value) throw usageError(`--filter ${JSON.stringify(text)}: no value after "${sym}" (for a field without a value: "${field} empty")`);
    values = [value];
  }
  if (!FIELD.test(field)) throw usageError(`--filter ${JSON.stringify(text)}: ${JSON.stringify(field)} is not a field name (e.g. name, amount_minor, custom.tier)`);
  return create(FilterSchema, { node: { case: "condition", value: { field, operator: op, values } } });
}

/** One --filter: conditions joined by " | " (any of them). */
export function parseAlternatives(text: string): Filter {
  const parts = text.split(/\s+\|\s+/).filter((p) => p.trim());
  if (parts.length === 0) throw usageError("--filter is empty");
  if (parts.length === 1) return parseCondition(parts[0]!);
  return create(FilterSchema, { node: { case: "or", value: { filters: parts.map(parseCondition) } } });
}

/** Every --filter given (all must hold); undefined for none (every record). */
export function parseFilters(texts: string[]): Filter | undefined {
  if (texts.length === 0) return undefined;
  if (texts.length === 1) return parseAlternatives(texts[0]!);
  return create(FilterSchema, { node: { case: "and", value: { filters: texts.map(parseAlternatives) } } });
}

export const FILTER_HELP = `--filter "FIELD OP VALUE" (repeat it: every one must hold; "A | B": either)

  name~acme                 contains (text, ignores case)
  name^=Ac                  starts with
  status=won                equals            stage_id!=<id>   not equals
  amount_minor>=100000      >  >=  <  <=      owner_id=me      the caller
  tags in vip,partner       any of
  expected_close_date between 2026-01-01,2026-03-31     (both inclusive)
  domain empty              no value          domain notempty
  custom.tier=gold          a custom field (FieldService key)

Fields are the API's names (crm companies list --json shows them); values are read as the field's
type: numbers in decimal, dates YYYY-MM-DD, times RFC 3339, enums by name ("won").
`;
