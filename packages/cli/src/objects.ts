/** The record objects the CLI lists, exports and imports, by the names people type. */
import { ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import { usageError } from "./errors.js";

export type ObjectName = "companies" | "people" | "deals";

const names: Record<string, ObjectName> = {
  companies: "companies",
  company: "companies",
  people: "people",
  person: "people",
  persons: "people",
  contacts: "people",
  deals: "deals",
  deal: "deals",
};

export const objectTypes: Record<ObjectName, ObjectType> = {
  companies: ObjectType.COMPANY,
  people: ObjectType.PERSON,
  deals: ObjectType.DEAL,
};

/** Columns a list shows unless --columns says otherwise (proto field names; for deals also `amount` and `stage`, records.ts). */
export const defaultColumns: Record<ObjectName, string[]> = {
  companies: ["id", "name", "domain", "industry", "size", "tags"],
  people: ["id", "first_name", "last_name", "emails", "phones", "job_title"],
  deals: ["id", "name", "stage", "status", "amount", "expected_close_date"],
};

export function objectName(text: string, allowed: ObjectName[] = ["companies", "people", "deals"]): ObjectName {
  const n = names[text.toLowerCase()];
  if (!n || !allowed.includes(n)) throw usageError(`${JSON.stringify(text)} is not one of: ${allowed.join(", ")}`);
  return n;
}
