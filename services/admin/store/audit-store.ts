/**
 * The audit log's store (the admin domain's): the append-only `audit_events` table
 * (migrations/1700000000130_audit.sql), mounted by dbservice as DbAuditService, and `auditLog`,
 * which every store that makes an auditable change uses inside its own transaction (dbservice's
 * mounting hands it in: a store imports no other store).
 *
 * Each event is written twice in that transaction: the row, and an outbox message (a
 * crm.admin.v1.AuditEvent to the audit queue) that the admin service ships to Loki through the
 * logs service. Both commit with the action or neither does.
 */
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import type pg from "pg";
import { AppError, invalid, isUuid, principalOf, requirePeer, type Actor, type Principal } from "@crm/kit";
import { ActorType, type AuditEvent } from "@crm/gen/crm/admin/v1/audit_pb";
import type { DbAuditService } from "@crm/gen/crm/db/v1/db_audit_pb";
import { auditEvent } from "@crm/contracts/events";
import type { Db, OutboxMessage, Sql } from "@crm/dbservice/db";
import { auditLimits, checkAuditFilter, decodeAuditPageToken, encodeAuditPageToken } from "../src/rules.js";

/** One thing that happened, as a store records it. */
export interface AuditInput {
  /** "<domain>.<verb>", e.g. "auth.login". */
  action: string;
  /** Who: a user or an API key (kit actorOf), the system, or nobody known. */
  actor: Actor | { type: "system" | "anonymous"; id?: string; name?: string; userId?: string };
  target?: { type: string; id: string } | undefined;
  ip?: string | undefined;
  details?: Record<string, string> | undefined;
}

export interface AuditLog {
  /** Appends events of the tenant of `sql`'s transaction (crm_company()), with their outbox messages. */
  record(sql: Sql, events: AuditInput[]): Promise<void>;
  /**
   * `record` for a store's one-round-trip script (Db.tenantScript): the INSERT of `events` as SQL
   * text with literal values, writing nothing unless the SQL condition `onlyIf` holds, and the
   * outbox messages of the rows it returns (for Script.outbox, which sends them with COMMIT).
   */
  script(sql: Sql, events: AuditInput[], onlyIf?: string): { text: string; outbox: (rows: unknown[]) => OutboxMessage[] };
  /** Call after a transaction that recorded events committed: wakes the outbox relay. */
  afterCommit(): void;
}

const actorTypes: Record<string, ActorType> = { user: ActorType.USER, api_key: ActorType.API_KEY, system: ActorType.SYSTEM, anonymous: ActorType.ANONYMOUS };
const actorTypeNames: Record<number, string> = { [ActorType.USER]: "user", [ActorType.API_KEY]: "api_key", [ActorType.SYSTEM]: "system", [ActorType.ANONYMOUS]: "anonymous" };

interface Row {
  seq: string;
  id: string;
  company_id: string;
  occurred_at: Date;
  action: string;
  actor_type: string;
  actor_id: string;
  actor_name: string;
  user_id: string | null;
  target_type: string;
  target_id: string;
  ip: string;
  details: Record<string, string>;
}
const columns = "seq, id, company_id, occurred_at, action, actor_type, actor_id, actor_name, user_id, target_type, target_id, ip, details";

function toEvent(r: Row): Omit<AuditEvent, "$typeName" | "$unknown"> {
  return {
    eventId: r.id,
    occurredAt: timestampFromDate(r.occurred_at),
    action: r.action,
    actorType: actorTypes[r.actor_type] ?? ActorType.UNSPECIFIED,
    actorId: r.actor_id,
    actorName: r.actor_name,
    targetType: r.target_type,
    targetId: r.target_id,
    ip: r.ip,
    details: r.details,
    companyId: r.company_id,
    userId: r.user_id ?? "",
  };
}

/** The nine arrays the INSERT unnests, in order, with their SQL types. */
const arrayTypes = ["text", "text", "text", "text", "text", "text", "text", "text", "jsonb"] as const;
function eventColumns(events: AuditInput[]): string[][] {
  const col = (f: (e: AuditInput) => string) => events.map(f);
  return [
    col((e) => e.action),
    col((e) => e.actor.type),
    col((e) => (e.actor.id ?? "").slice(0, 64)),
    col((e) => (e.actor.name ?? "").slice(0, 300)),
    col((e) => (e.actor.userId && isUuid(e.actor.userId) ? e.actor.userId : "")),
    col((e) => (e.target?.type ?? "").slice(0, 64)),
    col((e) => (e.target?.id ?? "").slice(0, 64)),
    col((e) => (e.ip ?? "").slice(0, 64)),
    col((e) => JSON.stringify(e.details ?? {})),
  ];
}

/** The INSERT of the rows of `arrays` (SQL expressions, parameters or literals), with a user actor's name looked up in the same statement. */
const insertText = (arrays: string[], onlyIf = "true") =>
  `INSERT INTO audit_events (company_id, action, actor_type, actor_id, actor_name, user_id, target_type, target_id, ip, details)
   SELECT crm_company(), t.action, t.actor_type, t.actor_id,
          coalesce(nullif(t.actor_name, ''), (SELECT u.name FROM users u WHERE t.actor_type = 'user' AND u.id::text = t.actor_id), ''),
          nullif(t.user_id, '')::uuid, t.target_type, t.target_id, t.ip, t.details
   FROM unnest(${arrays.join(", ")})
        WITH ORDINALITY AS t(action, actor_type, actor_id, actor_name, user_id, target_type, target_id, ip, details, n)
   WHERE ${onlyIf}
   ORDER BY t.n
   RETURNING ${columns}`;

/** The rows to insert, column by column (unnest). */
async function insertEvents(sql: Sql, events: AuditInput[]): Promise<Row[]> {
  if (events.length === 0) return [];
  const { rows } = await sql.query<Row>(insertText(arrayTypes.map((t, i) => `$${i + 1}::${t}[]`)), eventColumns(events));
  return rows;
}

/** The audit log as stores use it; `db` writes the outbox, `afterOutbox` wakes the relay, `queue` is AUDIT_QUEUE. */
export function auditLog(db: Pick<Db, "enqueueMany">, afterOutbox: () => void = () => {}, queue?: string): AuditLog {
  const messages = (rows: Row[]): OutboxMessage[] => rows.map((r) => ({ ...auditEvent(toEvent(r) as Parameters<typeof auditEvent>[0], queue), companyId: r.company_id }));
  return {
    async record(sql, events) {
      await db.enqueueMany(sql, messages(await insertEvents(sql, events)));
    },
    script(sql, events, onlyIf) {
      if (events.length === 0) throw new Error("an audit script needs at least one event");
      const arrays = eventColumns(events).map((values, i) => `ARRAY[${values.map((v) => sql.escapeLiteral(v)).join(", ")}]::${arrayTypes[i]}[]`);
      return { text: insertText(arrays, onlyIf), outbox: (rows) => messages(rows as Row[]) };
    },
    afterCommit: afterOutbox,
  };
}

/** The acting user as the database knows them now: an active owner or admin, or permission_denied. */
async function actingAdmin(sql: Sql, p: Principal): Promise<void> {
  const { rows } = await sql.query<{ role: string; status: string }>("SELECT role, status FROM users WHERE id = $1", [p.userId]);
  const u = rows[0];
  if (!u || u.status !== "active" || (u.role !== "owner" && u.role !== "admin")) {
    throw new AppError("permission_denied", `the audit log is for owners and admins; you are ${u?.status === "active" ? u.role : "not an active user"}`);
  }
}

export function auditStore(db: Db, audit: AuditLog): ServiceImpl<typeof DbAuditService> {
  return {
    async listAuditEventsDB(req, ctx) {
      const p = principalOf(ctx);
      if (!(req.pageSize >= 1 && req.pageSize <= auditLimits.storePageSize)) throw invalid([{ field: "pageSize", description: `must be 1..${auditLimits.storePageSize}` }]);
      const f = checkAuditFilter({ actorId: req.actorId, actions: req.actions, startMs: req.startTime ? timestampDate(req.startTime).getTime() : undefined, endMs: req.endTime ? timestampDate(req.endTime).getTime() : undefined });
      const after = req.pageToken ? decodeAuditPageToken(req.pageToken) : undefined;
      return db.tenant(p.companyId, async (sql) => {
        await actingAdmin(sql, p);
        const { rows } = await sql.query<Row>(
          `SELECT ${columns} FROM audit_events
           WHERE ($1 = '' OR actor_id = $1)
             AND (cardinality($2::text[]) = 0 OR action = ANY ($2))
             AND ($3::timestamptz IS NULL OR occurred_at >= $3)
             AND ($4::timestamptz IS NULL OR occurred_at < $4)
             AND ($5::bigint IS NULL OR seq < $5)
           ORDER BY seq DESC
           LIMIT $6`,
          [f.actorId, f.actions, f.startMs === undefined ? null : new Date(f.startMs), f.endMs === undefined ? null : new Date(f.endMs), after ?? null, req.pageSize + 1],
        );
        const page = rows.slice(0, req.pageSize);
        const last = page[page.length - 1];
        return { events: page.map(toEvent), nextPageToken: rows.length > req.pageSize && last ? encodeAuditPageToken(last.seq) : "" };
      });
    },

    async recordAuditEventsDB(req, ctx) {
      requirePeer(ctx, "auth", "admin", "records", "webhooks", "chats", "timers", "email");
      if (req.events.length < 1 || req.events.length > 1000) throw invalid([{ field: "events", description: "must hold 1..1000 events" }]);
      const problems = req.events.flatMap((e, i) => {
        const out: { field: string; description: string }[] = [];
        if (!isUuid(e.companyId)) out.push({ field: `events[${i}].companyId`, description: "must be a company id (UUID)" });
        if (!/^[a-z][a-z_]*\.[a-z][a-z_]*$/.test(e.action) || e.action.length > 64) out.push({ field: `events[${i}].action`, description: "must be <domain>.<verb> in lower case" });
        if (!actorTypeNames[e.actorType]) out.push({ field: `events[${i}].actorType`, description: "must be set" });
        return out;
      });
      if (problems.length) throw invalid(problems);
      const byCompany = new Map<string, AuditEvent[]>();
      for (const e of req.events) byCompany.set(e.companyId, [...(byCompany.get(e.companyId) ?? []), e]);
      for (const [companyId, events] of byCompany) {
        await db.tenant(companyId, (sql) =>
          audit.record(
            sql,
            events.map((e) => ({
              action: e.action,
              actor: { type: actorTypeNames[e.actorType] as "user", id: e.actorId, name: e.actorName, userId: e.userId },
              target: { type: e.targetType, id: e.targetId },
              ip: e.ip,
              details: e.details,
            })),
          ),
        );
      }
      audit.afterCommit();
      return { recorded: req.events.length };
    },
  };
}

/**
 * The retention job's one pass: deletes events older than `days` days, in batches, as
 * crm_retention on the database owner's connection (never as crm_app, which may not delete).
 * Returns how many rows went.
 */
export async function purgeAuditEvents(pool: pg.Pool, days: number, batch = 10_000): Promise<number> {
  let total = 0;
  for (;;) {
    const client = await pool.connect();
    let n: number;
    try {
      await client.query("BEGIN");
      await client.query("SET LOCAL ROLE crm_retention");
      const res = await client.query(
        `DELETE FROM audit_events WHERE seq IN (
           SELECT seq FROM audit_events WHERE occurred_at < now() - make_interval(days => $1) LIMIT $2)`,
        [days, batch],
      );
      await client.query("COMMIT");
      n = res.rowCount ?? 0;
    } catch (err) {
      await client.query("ROLLBACK").catch(() => {});
      throw err;
    } finally {
      client.release();
    }
    total += n;
    if (n < batch) return total;
  }
}
