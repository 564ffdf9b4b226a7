/** crm.admin.v1.AuditService handlers: the audit log, listed and exported as CSV. Dependencies come in; no wiring here. */
import type { Client, ServiceImpl } from "@connectrpc/connect";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import Papa from "papaparse";
import { invalid, requireRole } from "@crm/kit";
import { ActorType, type AuditEvent, type AuditService } from "@crm/gen/crm/admin/v1/audit_pb";
import type { DbAuditService } from "@crm/gen/crm/db/v1/db_audit_pb";
import { auditLimits, checkAuditFilter } from "./rules.js";

export interface AuditDeps {
  db: Client<typeof DbAuditService>;
}

const ms = (t: Timestamp | undefined) => (t ? timestampDate(t).getTime() : undefined);

function filterOf(req: { actorId: string; actions: string[]; startTime?: Timestamp | undefined; endTime?: Timestamp | undefined }) {
  const f = checkAuditFilter({ actorId: req.actorId.trim(), actions: req.actions, startMs: ms(req.startTime), endMs: ms(req.endTime) });
  return { actorId: f.actorId, actions: f.actions, startTime: req.startTime, endTime: req.endTime };
}

const actorTypeNames: Record<number, string> = { [ActorType.USER]: "user", [ActorType.API_KEY]: "api_key", [ActorType.SYSTEM]: "system", [ActorType.ANONYMOUS]: "anonymous" };

/** The CSV columns, in order. */
export const csvColumns = ["occurred_at", "action", "actor_type", "actor_id", "actor_name", "user_id", "target_type", "target_id", "ip", "details", "event_id"] as const;

/** Events as CSV lines (RFC 4180, CRLF), with the header line when `header`; cells a spreadsheet would run as formulas are escaped. */
export function auditCsv(events: AuditEvent[], header: boolean): string {
  const rows = events.map((e) => [
    e.occurredAt ? timestampDate(e.occurredAt).toISOString() : "",
    e.action,
    actorTypeNames[e.actorType] ?? "",
    e.actorId,
    e.actorName,
    e.userId,
    e.targetType,
    e.targetId,
    e.ip,
    Object.keys(e.details).length ? JSON.stringify(e.details) : "",
    e.eventId,
  ]);
  if (rows.length === 0 && !header) return "";
  const text = Papa.unparse({ fields: [...csvColumns], data: rows }, { header, newline: "\r\n", escapeFormulae: true, quotes: false });
  return `${text}\r\n`;
}

export function auditService(deps: AuditDeps): ServiceImpl<typeof AuditService> {
  return {
    async listAuditEvents(req, ctx) {
      requireRole(ctx, "owner", "admin");
      const f = filterOf(req);
      const pageSize = req.pageSize === 0 ? auditLimits.defaultPageSize : req.pageSize;
      if (pageSize < 1 || pageSize > auditLimits.pageSize) throw invalid([{ field: "pageSize", description: `must be 1..${auditLimits.pageSize} (0 means ${auditLimits.defaultPageSize})` }]);
      const res = await deps.db.listAuditEventsDB({ ...f, pageSize, pageToken: req.pageToken });
      return { events: res.events, nextPageToken: res.nextPageToken };
    },

    async *exportAuditEvents(req, ctx) {
      requireRole(ctx, "owner", "admin");
      const f = filterOf(req);
      // Page by page (the store's largest page), each a chunk of whole lines: memory stays flat
      // however long the log is, and a slow reader slows the reads (the stream's backpressure).
      let pageToken = "";
      let first = true;
      do {
        const res = await deps.db.listAuditEventsDB({ ...f, pageSize: auditLimits.storePageSize, pageToken }, { signal: ctx.signal });
        const csv = auditCsv(res.events, first);
        first = false;
        if (csv) yield { csv };
        pageToken = res.nextPageToken;
      } while (pageToken);
    },
  };
}
