/**
 * The file of `crm users add`: CSV with a header row (`,` `;` or tab, detected from the header;
 * UTF-8, BOM or not) and the columns email (required), name, phone, role. Rows are numbered as a
 * spreadsheet shows them (the header is row 1). Pure: the text is passed in.
 */
import Papa from "papaparse";
import { Role } from "@crm/gen/crm/auth/v1/auth_pb";
import { CliError } from "./errors.js";

export interface UserRow {
  /** The spreadsheet row (header = 1). */
  row: number;
  email: string;
  phone: string;
  name: string;
  role: Role;
}

export interface RowProblem {
  row: number;
  email: string;
  reason: string;
}

const aliases: Record<string, keyof Omit<UserRow, "row">> = {
  email: "email",
  "e-mail": "email",
  mail: "email",
  login: "email",
  "почта": "email",
  "эл. почта": "email",
  "электронная почта": "email",
  name: "name",
  "full name": "name",
  "имя": "name",
  "фио": "name",
  phone: "phone",
  telephone: "phone",
  mobile: "phone",
  "телефон": "phone",
  role: "role",
  "роль": "role",
};

export function parseRole(text: string): Role | undefined {
  const t = text.trim().toLowerCase().replace(/^role_/, "");
  if (t === "") return Role.UNSPECIFIED;
  return ({ owner: Role.OWNER, admin: Role.ADMIN, member: Role.MEMBER } as Record<string, Role>)[t];
}

/** `,`, `;` or tab: whichever the header line holds most of (`,` when none). */
export function detectDelimiter(text: string): string {
  const header = text.slice(0, text.search(/\r?\n|$/));
  const count = (c: string) => header.split(c).length - 1;
  return [",", ";", "\t"].reduce((best, c) => (count(c) > count(best) ? c : best), ",");
}

export function parseUsersCsv(text: string, defaultRole: Role, source: string): { rows: UserRow[]; problems: RowProblem[] } {
  const body = text.replace(/^\uFEFF/, "");
  const parsed = Papa.parse<string[]>(body, { delimiter: detectDelimiter(body), skipEmptyLines: false });
  const [header, ...data] = parsed.data;
  if (!header || header.every((h) => !h.trim())) throw new CliError(`${source} is empty: expected a header row such as "email,name,role"`);
  const columns = header.map((h) => aliases[h.trim().toLowerCase()]);
  if (!columns.includes("email")) throw new CliError(`${source} has no email column (its columns: ${header.map((h) => JSON.stringify(h.trim())).join(", ")}); expected email, name, phone, role`);
  const rows: UserRow[] = [];
  const problems: RowProblem[] = [];
  // papaparse's row: the index in parsed.data, the header being 0
  const broken = new Map(parsed.errors.filter((e) => e.row !== undefined).map((e) => [e.row! + 1, e.message]));
  data.forEach((cells, i) => {
    const row = i + 2;
    if (cells.every((c) => !c.trim())) return; // a blank line
    const csvError = broken.get(row);
    if (csvError) return void problems.push({ row, email: "", reason: `not read as CSV: ${csvError}` });
    const v = { email: "", phone: "", name: "", role: "" };
    columns.forEach((col, j) => {
      if (col) v[col] = (cells[j] ?? "").trim();
    });
    const role = parseRole(v.role);
    if (role === undefined) problems.push({ row, email: v.email, reason: `role: ${JSON.stringify(v.role)} is not a role; use owner, admin or member` });
    else rows.push({ row, email: v.email, phone: v.phone, name: v.name, role: role === Role.UNSPECIFIED ? defaultRole : role });
  });
  return { rows, problems };
}
