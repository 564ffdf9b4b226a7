/**
 * An in-memory DbAuditService for fast handler tests, on the audit log of the auth store's fake
 * directory (services/auth/test/fake-store.ts), following the store's documented semantics
 * (proto/crm/db/v1/db_audit.proto, ../store/audit-store.ts): only an active owner or admin lists
 * (permission_denied otherwise), newest first, filtered by actor, actions and a half-open time
 * range, keyset-paged; RecordAuditEventsDB is for our services only and appends each event to the
 * company it names. Test code only.
 */
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { AppError, invalid, principalOf, requirePeer } from "@crm/kit";
import { ActorType } from "@crm/gen/crm/admin/v1/audit_pb";
import type { DbAuditService } from "@crm/gen/crm/db/v1/db_audit_pb";
import type { Directory, StoredAuditEvent } from "../../auth/test/fake-store.js";
import { auditLimits, checkAuditFilter, decodeAuditPageToken, encodeAuditPageToken } from "../src/rules.js";

const actorTypes: Record<string, ActorType> = { user: ActorType.USER, api_key: ActorType.API_KEY, system: ActorType.SYSTEM, anonymous: ActorType.ANONYMOUS };
const actorNames: Record<number, "user" | "api_key" | "system" | "anonymous"> = { [ActorType.USER]: "user", [ActorType.API_KEY]: "api_key", [ActorType.SYSTEM]: "system", [ActorType.ANONYMOUS]: "anonymous" };

export const toAuditEvent = (e: StoredAuditEvent) => ({
  eventId: e.id,
  occurredAt: timestampFromMs(e.occurredAt),
  action: e.action,
  actorType: actorTypes[e.actor.type] ?? ActorType.UNSPECIFIED,
  actorId: e.actor.id,
  actorName: e.actor.name,
  targetType: e.target.type,
  targetId: e.target.id,
  ip: e.ip,
  details: e.details,
  companyId: e.companyId,
  userId: e.actor.userId,
});

export function fakeAuditStore(dir: Directory): ServiceImpl<typeof DbAuditService> {
  return {
    async listAuditEventsDB(req, ctx) {
      const p = principalOf(ctx);
      if (!(req.pageSize >= 1 && req.pageSize <= auditLimits.storePageSize)) throw invalid([{ field: "pageSize", description: `must be 1..${auditLimits.storePageSize}` }]);
      const f = checkAuditFilter({ actorId: req.actorId, actions: req.actions, startMs: req.startTime ? timestampMs(req.startTime) : undefined, endMs: req.endTime ? timestampMs(req.endTime) : undefined });
      const after = req.pageToken ? Number(decodeAuditPageToken(req.pageToken)) : Infinity;
      const u = dir.users.get(p.userId);
      if (!u || u.companyId !== p.companyId || u.status !== "active" || (u.role !== "owner" && u.role !== "admin")) {
        throw new AppError("permission_denied", `the audit log is for owners and admins; you are ${u?.status === "active" ? u.role : "not an active user"}`);
      }
      const rows = dir.audit
        .filter((e) => e.companyId === p.companyId && e.seq < after)
        .filter((e) => (!f.actorId || e.actor.id === f.actorId) && (f.actions.length === 0 || f.actions.includes(e.action)))
        .filter((e) => (f.startMs === undefined || e.occurredAt >= f.startMs) && (f.endMs === undefined || e.occurredAt < f.endMs))
        .sort((a, b) => b.seq - a.seq);
      const page = rows.slice(0, req.pageSize);
      return { events: page.map(toAuditEvent), nextPageToken: rows.length > req.pageSize ? encodeAuditPageToken(String(page[page.length - 1]!.seq)) : "" };
    },

    async recordAuditEventsDB(req, ctx) {
      requirePeer(ctx, "auth", "admin", "records", "webhooks", "chats", "timers", "email");
      if (req.events.length < 1 || req.events.length > 1000) throw invalid([{ field: "events", description: "must hold 1..1000 events" }]);
      for (const e of req.events) {
        dir.record(e.companyId, { action: e.action, actor: { type: actorNames[e.actorType] ?? "anonymous", id: e.actorId, name: e.actorName, userId: e.userId }, target: { type: e.targetType, id: e.targetId }, ip: e.ip, details: e.details });
      }
      return { recorded: req.events.length };
    },
  };
}
