/** The records as they are now, by id, for their change events (changes.ts): one query per object type. */
import type { Sql } from "@crm/dbservice/db";
import { snapshotOf, type RecordReader, type RecordReaders } from "./changes.js";
import { companyList, toCompany, type CompanyRow } from "./companies.js";
import { dealList, toDeal, type DealRow } from "./deals.js";
import type { ListSpec } from "./lists.js";
import { noteList, toNote, type NoteRow } from "./notes.js";
import { personList, toPerson, type PersonRow } from "./people.js";
import { taskList, toTask, type TaskRow } from "./tasks.js";

function reader<R extends { id: string }>(spec: ListSpec, snapshot: (row: R) => ReturnType<typeof snapshotOf>): RecordReader {
  return async (sql: Sql, ids: string[]) => {
    const { rows } = await sql.query<R>(`SELECT ${spec.select} FROM ${spec.from} WHERE ${spec.alias}.id = ANY($1::uuid[])`, [ids]);
    return new Map(rows.map((r) => [r.id, snapshot(r)]));
  };
}

export const recordReaders: RecordReaders = {
  company: reader<CompanyRow>(companyList, (r) => snapshotOf("company", toCompany(r))),
  person: reader<PersonRow>(personList, (r) => snapshotOf("person", toPerson(r))),
  deal: reader<DealRow>(dealList, (r) => snapshotOf("deal", toDeal(r))),
  task: reader<TaskRow>(taskList, (r) => snapshotOf("task", toTask(r))),
  note: reader<NoteRow>(noteList, (r) => snapshotOf("note", toNote(r))),
};
