/**
 * Request checks of the admin RPCs that only the service makes. Pure functions: they return
 * normalised values or throw `invalid`. The rules the store applies again (rows, user ids, roles,
 * page size) are in rules.ts.
 */
import { invalid, type Violation } from "@crm/kit";
import { UserStatus } from "@crm/gen/crm/admin/v1/admin_pb";
import { limits, pageSizeFits } from "./rules.js";

export interface ListInput {
  query: string;
  pageSize: number;
  pageToken: string;
  status: UserStatus;
}

export function validateList(req: ListInput): ListInput {
  const v: Violation[] = [];
  const query = req.query.trim();
  if ([...query].length > 200) v.push({ field: "query", description: "must be at most 200 characters" });
  const pageSize = req.pageSize === 0 ? limits.defaultPageSize : req.pageSize;
  if (!pageSizeFits(pageSize)) v.push({ field: "pageSize", description: `must be 1..${limits.pageSize} (0 means ${limits.defaultPageSize})` });
  if (!(req.status in UserStatus)) v.push({ field: "status", description: "is not a known user status" });
  if (req.pageToken.length > 2048) v.push({ field: "pageToken", description: "is not a token from a previous ListUsers answer" });
  if (v.length) throw invalid(v);
  return { query, pageSize, pageToken: req.pageToken, status: req.status };
}
