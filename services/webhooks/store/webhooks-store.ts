/**
 * The webhooks store, mounted by dbservice as DbWebhooksService: endpoints, and the delivery
 * queue with its log (migrations/1700000000180_webhooks.sql, 1700000000230: the tenant version
 * of events that are not record changes). The endpoint RPCs act on the
 * caller's forwarded token (an active owner or admin now) in ONE tenant transaction, and write
 * the audit log in it. The queue's RPCs run for the webhooks service only: EnqueueEventDB (and EnqueueEventsDB, a batch: one transaction per tenant) in the
 * tenant of the event, ClaimDeliveriesDB across tenants through crm_wh_claim (SECURITY DEFINER,
 * SKIP LOCKED, leases; migration 240 counts rows, 260 reads per-endpoint queue heads by index), CompleteDeliveriesDB (and CompleteDeliveryDB,
 * one) in one transaction per company of the deliveries, one set-based statement. A claim, and a
 * company's settle that gives nothing up, are ONE round trip each (the transaction's start, the
 * statement and COMMIT). Giving a delivery up
 * disables its endpoint and e-mails the company's owners through the outbox, in one transaction.
 */
import type { ServiceImpl } from "@connectrpc/connect";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { AppError, actorOf, invalid, isUuid, principalOf, requirePeer, type Actor, type Principal } from "@crm/kit";
import type { CompleteDeliveryDBRequest, DbWebhooksService, EnqueueEventDBRequest } from "@crm/gen/crm/db/v1/db_webhooks_pb";
import { OutgoingEmailSchema, type OutgoingEmail } from "@crm/gen/crm/db/v1/db_email_pb";
import { EmailKind } from "@crm/gen/crm/email/v1/email_pb";
import { DeliveryStatus, type DeliverySchema, type EndpointSchema } from "@crm/gen/crm/webhooks/v1/webhooks_pb";
import { decodeChatEvent, decodeRecordChange } from "@crm/contracts/events";
import { decodeImportFinished, decodeUserEvent } from "@crm/contracts/tenant-events";
import type { Db, Sql } from "@crm/dbservice/db";
import { CHAT_MESSAGE, IMPORT_FINISHED, chatMessagePayload, endpointViolations, importFinishedPayload, limits, patternsFor, payloadOf, userEventPayload, userEventType } from "../src/rules.js";

/** The audit log (the admin store's auditLog, handed in by dbservice's mounting: a store imports no other store). */
export interface AuditLog {
  record(sql: Sql, events: { action: string; actor: Actor | { type: "system"; name?: string }; target?: { type: string; id: string }; details?: Record<string, string> | undefined }[]): Promise<void>;
  afterCommit(): void;
}

export interface WebhooksStoreDeps {
  audit: AuditLog;
  /** Queues e-mails in the caller's transaction (the e-mail store's queueEmails). */
  emails: { queue(sql: Sql, companyId: string, emails: { email: OutgoingEmail; idempotencyKey?: string }[]): Promise<unknown>; afterOutbox: () => void };
}

interface EndpointRow {
  id: string;
  url: string;
  event_types: string[];
  description: string;
  ordered: boolean;
  active: boolean;
  disabled_reason: string;
  created_at: Date;
  updated_at: Date;
}
const ENDPOINT_COLS = "id, url, event_types, description, ordered, active, disabled_reason, created_at, updated_at";

interface DeliveryRow {
  id: string;
  endpoint_id: string;
  event_id: string;
  event_type: string;
  version: string;
  status: "pending" | "succeeded" | "failed";
  next_at: Date;
  created_at: Date;
  attempts_log: { at: string; status: number; latency: number; error: string; prefix: string }[] | null;
}

const DELIVERY_SELECT = `SELECT d.id, d.endpoint_id, d.event_id, d.event_type, d.version, d.status, d.next_at, d.created_at,
  (SELECT json_agg(json_build_object('at', a.attempted_at, 'status', a.http_status, 'latency', a.latency_ms, 'error', a.error, 'prefix', a.response_prefix) ORDER BY a.id)
     FROM wh_attempts a WHERE a.delivery_id = d.id) AS attempts_log
  FROM wh_deliveries d`;

const statuses = { pending: DeliveryStatus.PENDING, succeeded: DeliveryStatus.SUCCEEDED, failed: DeliveryStatus.FAILED } as const;

function toEndpoint(r: EndpointRow): MessageInitShape<typeof EndpointSchema> {
  return {
    endpointId: r.id,
    url: r.url,
    eventTypes: r.event_types,
    description: r.description,
    ordered: r.ordered,
    active: r.active,
    disabledReason: r.disabled_reason,
    createTime: timestampFromDate(r.created_at),
    updateTime: timestampFromDate(r.updated_at),
  };
}

function toDelivery(r: DeliveryRow): MessageInitShape<typeof DeliverySchema> {
  return {
    deliveryId: r.id,
    endpointId: r.endpoint_id,
    eventId: r.event_id,
    eventType: r.event_type,
    version: BigInt(r.version),
    status: statuses[r.status],
    createTime: timestampFromDate(r.created_at),
    nextAttemptTime: r.status === "pending" ? timestampFromDate(r.next_at) : undefined,
    attempts: (r.attempts_log ?? []).map((a) => ({
      attemptTime: timestampFromDate(new Date(a.at)),
      httpStatus: a.status,
      latencyMs: a.latency,
      error: a.error,
      responsePrefix: a.prefix,
    })),
  };
}

const dateOf = (t: Timestamp | undefined) => (t ? timestampDate(t) : new Date());

function requireId(id: string, field: string) {
  if (!isUuid(id)) throw invalid([{ field, description: "must be an id (UUID)" }]);
}

async function actingAdmin(sql: Sql, p: Principal): Promise<void> {
  const { rows } = await sql.query<{ role: string; status: string }>("SELECT role, status FROM users WHERE id = $1", [p.userId]);
  const u = rows[0];
  if (!u || u.status !== "active" || (u.role !== "owner" && u.role !== "admin")) {
    throw new AppError("permission_denied", `webhooks are for owners and admins; you are ${u?.status === "active" ? u.role : "not an active user"}`);
  }
}

async function endpointRow(sql: Sql, id: string, lock = false): Promise<EndpointRow & { ordered: boolean }> {
  const { rows } = await sql.query<EndpointRow>(`SELECT ${ENDPOINT_COLS} FROM wh_endpoints WHERE id = $1${lock ? " FOR UPDATE" : ""}`, [id]);
  if (!rows[0]) throw new AppError("not_found", `no webhook endpoint ${id}`);
  return rows[0];
}

async function deliveryById(sql: Sql, id: string): Promise<DeliveryRow> {
  const { rows } = await sql.query<DeliveryRow>(`${DELIVERY_SELECT} WHERE d.id = $1`, [id]);
  return rows[0]!;
}

const pageToken = {
  encode: (r: DeliveryRow) => Buffer.from(JSON.stringify([r.created_at.toISOString(), r.id])).toString("base64url"),
  decode(t: string): [string, string] {
    try {
      const v = JSON.parse(Buffer.from(t, "base64url").toString()) as unknown;
      if (Array.isArray(v) && v.length === 2 && typeof v[0] === "string" && !Number.isNaN(Date.parse(v[0])) && isUuid(String(v[1]))) return [v[0], String(v[1])];
    } catch {
      /* below */
    }
    throw invalid([{ field: "pageToken", description: "is not a page token of this list" }]);
  },
};

/**
 * The one event of an EnqueueEventDB request, decoded and checked: its tenant, type and how its
 * payload is made (`version` set for a record change, which has its own). Undefined for an event
 * nothing is delivered for (a chat event that is not a message).
 */
function incomingEvent(req: EnqueueEventDBRequest): { tenantId: string; type: string; version?: bigint; payload: (version: bigint) => ReturnType<typeof payloadOf> } | undefined {
  const set = [req.recordChange, req.importFinished, req.userEvent, req.chatEvent].filter((b) => b.length > 0).length;
  if (set !== 1) throw invalid([{ field: "recordChange", description: "exactly one of recordChange, importFinished, userEvent and chatEvent must be set" }]);
  const decode = <T>(field: string, type: string, fn: () => T): T => {
    try {
      return fn();
    } catch {
      throw invalid([{ field, description: `is not a ${type}` }]);
    }
  };
  const tenant = (field: string, id: string) => {
    if (!isUuid(id)) throw invalid([{ field, description: "must name its tenant" }]);
    return id;
  };
  if (req.recordChange.length) {
    const change = decode("recordChange", "crm.records.v1.RecordChange", () => decodeRecordChange(req.recordChange));
    if (!isUuid(change.tenantId) || change.version < 1n) throw invalid([{ field: "recordChange", description: "must name its tenant and version" }]);
    const pl = payloadOf(change);
    return { tenantId: change.tenantId, type: pl.type, version: change.version, payload: () => pl };
  }
  if (req.importFinished.length) {
    const e = decode("importFinished", "crm.records.v1.ImportFinished", () => decodeImportFinished(req.importFinished));
    if (!isUuid(e.eventId)) throw invalid([{ field: "importFinished", description: "must carry its event id (a UUID)" }]);
    return { tenantId: tenant("importFinished", e.tenantId), type: IMPORT_FINISHED, payload: (v) => importFinishedPayload(e, v) };
  }
  if (req.userEvent.length) {
    const e = decode("userEvent", "crm.admin.v1.UserEvent", () => decodeUserEvent(req.userEvent));
    if (!isUuid(e.eventId) || !e.user) throw invalid([{ field: "userEvent", description: "must carry its event id (a UUID) and the user" }]);
    return { tenantId: tenant("userEvent", e.companyId), type: userEventType(e), payload: (v) => userEventPayload(e, v) };
  }
  const e = decode("chatEvent", "crm.chat.v1.ChatEvent", () => decodeChatEvent(req.chatEvent, undefined));
  if (e.event.case !== "message") return undefined;
  const m = e.event.value;
  if (!isUuid(m.messageId)) throw invalid([{ field: "chatEvent", description: "must carry the message's id (a UUID)" }]);
  return { tenantId: tenant("chatEvent", e.companyId), type: CHAT_MESSAGE, payload: (v) => chatMessagePayload(e.companyId, m, v) };
}

export function webhooksStore(db: Db, deps: WebhooksStoreDeps): ServiceImpl<typeof DbWebhooksService> {
  /** A tenant transaction of an active owner or admin; audit events recorded wake the relay after commit. */
  async function asAdmin<T>(ctx: Parameters<typeof principalOf>[0], fn: (sql: Sql, p: Principal) => Promise<T>, audited = false): Promise<T> {
    const p = principalOf(ctx);
    const out = await db.tenant(p.companyId, async (sql) => {
      await actingAdmin(sql, p);
      return fn(sql, p);
    });
    if (audited) deps.audit.afterCommit();
    return out;
  }
  const audit = (sql: Sql, p: Principal, action: string, id: string, details?: Record<string, string>) =>
    deps.audit.record(sql, [{ action, actor: actorOf(p), target: { type: "webhook_endpoint", id }, details }]);

  /**
   * The settle statement of one company's deliveries: `v` holds the company id and the nine
   * arrays (ids, leases, statuses, next attempt times, attempt times, HTTP statuses, latencies,
   * errors, answer prefixes), as parameters ($1…$10) or as literals.
   */
  const settleStatement = (v: string[]) => `WITH t AS (
       SELECT * FROM unnest(${v[1]}::uuid[], ${v[2]}::uuid[], ${v[3]}::text[], ${v[4]}::timestamptz[], ${v[5]}::timestamptz[], ${v[6]}::integer[], ${v[7]}::integer[], ${v[8]}::text[], ${v[9]}::text[])
         AS t(id, lease, status, next_at, attempted_at, http_status, latency_ms, error, prefix)
     ), u AS (
       UPDATE wh_deliveries d SET status = t.status, attempts = d.attempts + 1, next_at = coalesce(t.next_at, d.next_at), lease = NULL, lease_until = NULL
         FROM t WHERE d.id = t.id AND d.lease = t.lease AND d.status = 'pending'
       RETURNING d.id, d.endpoint_id, d.status
     ), a AS (
       INSERT INTO wh_attempts (company_id, delivery_id, attempted_at, http_status, latency_ms, error, response_prefix)
       SELECT ${v[0]}::uuid, t.id, t.attempted_at, t.http_status, t.latency_ms, t.error, t.prefix FROM t JOIN u ON u.id = t.id
     )
     SELECT id, endpoint_id, status FROM u`;

  /**
   * Settles leased deliveries (CompleteDeliveryDB, CompleteDeliveriesDB): per company ONE
   * transaction whose one statement settles every delivery whose lease still holds and logs its
   * attempt; then, for the deliveries given up on, their endpoints are disabled and the owners
   * e-mailed in the same transaction. Returns, in order, whether each was settled.
   */
  async function complete(reqs: CompleteDeliveryDBRequest[], field: string): Promise<boolean[]> {
    const at = (i: number, f: string) => (field ? `${field}[${i}].${f}` : f);
    const seen = new Set<string>();
    reqs.forEach((r, i) => {
      requireId(r.companyId, at(i, "companyId"));
      requireId(r.deliveryId, at(i, "deliveryId"));
      requireId(r.lease, at(i, "lease"));
      if (seen.has(r.deliveryId)) throw invalid([{ field: at(i, "deliveryId"), description: "names a delivery already in the list" }]);
      seen.add(r.deliveryId);
    });
    const byCompany = new Map<string, CompleteDeliveryDBRequest[]>();
    for (const r of reqs) byCompany.set(r.companyId, [...(byCompany.get(r.companyId) ?? []), r]);
    const settled = new Set<string>();
    let emailed = false;
    const outcome = (r: CompleteDeliveryDBRequest) => (r.succeeded ? "succeeded" : r.nextAttemptTime ? "pending" : "failed");
    const attemptedAt = (r: CompleteDeliveryDBRequest) => (r.attempt?.attemptTime ? timestampDate(r.attempt.attemptTime) : dateOf(r.now));
    reqs.forEach((r, i) => {
      if (Number.isNaN(attemptedAt(r).getTime())) throw invalid([{ field: at(i, r.attempt?.attemptTime ? "attempt.attemptTime" : "now"), description: "must be a valid time" }]);
      if (r.nextAttemptTime && Number.isNaN(timestampDate(r.nextAttemptTime).getTime())) throw invalid([{ field: at(i, "nextAttemptTime"), description: "must be a valid time" }]);
    });
    /** The columns of `rs`, in the order of settleStatement's arrays. */
    const columns = (rs: CompleteDeliveryDBRequest[]) => ({
      ids: rs.map((r) => r.deliveryId),
      leases: rs.map((r) => r.lease),
      statuses: rs.map(outcome),
      nextAt: rs.map((r) => (r.nextAttemptTime && !r.succeeded ? timestampDate(r.nextAttemptTime) : null)),
      attemptedAt: rs.map(attemptedAt),
      httpStatus: rs.map((r) => r.attempt?.httpStatus ?? 0),
      latencyMs: rs.map((r) => r.attempt?.latencyMs ?? 0),
      errors: rs.map((r) => (r.attempt?.error ?? "").slice(0, 500)),
      prefixes: rs.map((r) => (r.attempt?.responsePrefix ?? "").slice(0, limits.responsePrefixBytes)),
    });
    await Promise.all(
      [...byCompany].map(async ([companyId, rs]) => {
        const c = columns(rs);
        if (!rs.some((r) => outcome(r) === "failed")) {
          // Nothing given up (the usual batch): BEGIN, role, tenant, the statement and COMMIT in
          // ONE round trip (db.tenantScript), its arrays written as literals.
          const { rows } = await db.tenantScript(companyId, (sql) => {
            const text = (xs: string[]) => `ARRAY[${xs.map((x) => sql.escapeLiteral(x)).join(",")}]`;
            const time = (xs: (Date | null)[]) => `ARRAY[${xs.map((x) => (x ? `'${x.toISOString()}'` : "NULL")).join(",")}]`;
            const int = (xs: number[]) => `ARRAY[${xs.map((x) => String(Math.trunc(Number(x)) || 0)).join(",")}]`;
            // Ids and leases were checked to be UUIDs above.
            const ids = (xs: string[]) => `ARRAY[${xs.map((x) => `'${x}'`).join(",")}]`;
            return { text: settleStatement([`'${companyId}'`, ids(c.ids), ids(c.leases), text(c.statuses), time(c.nextAt), time(c.attemptedAt), int(c.httpStatus), int(c.latencyMs), text(c.errors), text(c.prefixes)]) };
          });
          for (const d of rows as { id: string }[]) settled.add(d.id);
          return;
        }
        await db.tenant(companyId, async (sql) => {
          const { rows } = await sql.query<{ id: string; endpoint_id: string; status: string }>(
            settleStatement(["$1", "$2", "$3", "$4", "$5", "$6", "$7", "$8", "$9", "$10"]),
            [companyId, c.ids, c.leases, c.statuses, c.nextAt, c.attemptedAt, c.httpStatus, c.latencyMs, c.errors, c.prefixes],
          );
          for (const d of rows) settled.add(d.id);
          const failed = new Map(rows.filter((d) => d.status === "failed").map((d) => [d.endpoint_id, rs.find((r) => r.deliveryId === d.id)!]));
          for (const [endpointId, r] of failed) if (await giveUp(sql, companyId, endpointId, r)) emailed = true;
        });
      }),
    );
    if (emailed) {
      deps.emails.afterOutbox();
      deps.audit.afterCommit();
    }
    return reqs.map((r) => settled.has(r.deliveryId));
  }

  /**
   * 24 hours of failures: the endpoint is disabled (its other pending deliveries wait for it to be
   * activated again), and the owners are told. False when it was no longer active.
   */
  async function giveUp(sql: Sql, companyId: string, endpointId: string, r: CompleteDeliveryDBRequest): Promise<boolean> {
    const a = r.attempt;
    const now = dateOf(r.now);
    const { rows: eps } = await sql.query<{ url: string; active: boolean }>("SELECT url, active FROM wh_endpoints WHERE id = $1 FOR UPDATE", [endpointId]);
    const ep = eps[0];
    if (!ep?.active) return false;
    const reason = `deliveries failed for 24 hours (last: ${a?.httpStatus ? `HTTP ${a.httpStatus}` : a?.error || "no answer"})`;
    await sql.query("UPDATE wh_endpoints SET active = false, disabled_reason = $2, updated_at = now() WHERE id = $1", [endpointId, reason]);
    await sql.query("UPDATE wh_deliveries SET status = 'failed', lease = NULL, lease_until = NULL WHERE endpoint_id = $1 AND status = 'pending'", [endpointId]);
    await deps.audit.record(sql, [{ action: "webhook.endpoint_disabled", actor: { type: "system", name: "webhooks" }, target: { type: "webhook_endpoint", id: endpointId }, details: { reason } }]);
    const { rows: owners } = await sql.query<{ email: string }>("SELECT email FROM users WHERE role = 'owner' AND status = 'active' ORDER BY created_at LIMIT 20");
    await deps.emails.queue(
      sql,
      companyId,
      owners.map((o) => ({
        email: create(OutgoingEmailSchema, {
          to: o.email,
          subject: "A webhook endpoint was disabled",
          text: `The webhook endpoint ${ep.url} (${endpointId}) was disabled: ${reason}.\n\nFix the receiver, then activate the endpoint again: the failed deliveries are sent again then.\n`,
          locale: "en",
          kind: EmailKind.CUSTOM,
        }),
        idempotencyKey: `webhook-disabled:${endpointId}:${now.getTime()}`,
      })),
    );
    return true;
  }

  /**
   * Queues events (EnqueueEventDB, EnqueueEventsDB): per tenant ONE transaction that reads its
   * active endpoints (and, for events that are not record changes, its version), matches each
   * event's type here, and inserts every delivery with one statement (each body sent once,
   * idempotent by (endpoint, event id)). An invalid event is answered with its error and the
   * others are queued. `tenants` gets each tenant's endpoints' event types.
   */
  async function enqueue(reqs: EnqueueEventDBRequest[], now: Date, tenants?: Map<string, string[]>): Promise<{ queued: number; wanted: boolean; error?: AppError }[]> {
    const out = reqs.map(() => ({ queued: 0, wanted: false }) as { queued: number; wanted: boolean; error?: AppError });
    const byTenant = new Map<string, { i: number; ev: NonNullable<ReturnType<typeof incomingEvent>> }[]>();
    reqs.forEach((req, i) => {
      try {
        const ev = incomingEvent(req);
        if (ev) byTenant.set(ev.tenantId, [...(byTenant.get(ev.tenantId) ?? []), { i, ev }]);
      } catch (err) {
        if (!(err instanceof AppError)) throw err;
        out[i]!.error = err;
      }
    });
    await Promise.all(
      [...byTenant].map(([tenantId, evs]) =>
        db.tenant(tenantId, async (sql) => {
          const { rows } = await sql.query<{ version: string; eps: { id: string; types: string[] }[] }>(
            `SELECT ${evs.some((e) => e.ev.version === undefined) ? "crm_wh_tenant_version()" : "0"} AS version,
                    coalesce((SELECT json_agg(json_build_object('id', e.id, 'types', e.event_types)) FROM wh_endpoints e WHERE e.active), '[]') AS eps`,
          );
          const eps = rows[0]!.eps;
          tenants?.set(tenantId, [...new Set(eps.flatMap((e) => e.types))]);
          const tenantVersion = BigInt(rows[0]!.version);
          const events: { eventId: string; type: string; version: string; body: string }[] = [];
          const pairs: { at: number; endpointId: string }[] = [];
          const at = new Map<string, number>();
          const slot = new Map<number, number>();
          for (const { i, ev } of evs) {
            const patterns = patternsFor(ev.type);
            const to = eps.filter((e) => e.types.some((t) => patterns.includes(t)));
            if (to.length === 0) continue;
            out[i]!.wanted = true;
            // Not a record change: stamped with the tenant's version now (every record change up
            // to it was made before), which orders it among them for an ordered endpoint.
            const version = ev.version ?? tenantVersion;
            const pl = ev.payload(version);
            let k = at.get(pl.eventId);
            if (k === undefined) {
              at.set(pl.eventId, (k = events.length));
              events.push({ eventId: pl.eventId, type: pl.type, version: version.toString(), body: pl.body });
              for (const e of to) pairs.push({ at: k + 1, endpointId: e.id });
            }
            slot.set(i, k);
          }
          if (pairs.length === 0) return;
          // created_at keeps the batch's order (an ordered endpoint's tie-break after the version).
          const res = await sql.query<{ event_id: string }>(
            `INSERT INTO wh_deliveries (company_id, endpoint_id, event_id, event_type, version, body, next_at, queued_at, created_at)
             SELECT $1, p.endpoint_id, e.event_id, e.type, e.version, e.body, $2, $2, $2::timestamptz + (e.n - 1) * interval '1 microsecond'
               FROM unnest($3::int[], $4::uuid[]) AS p(n, endpoint_id)
               JOIN unnest($5::text[], $6::text[], $7::bigint[], $8::text[]) WITH ORDINALITY AS e(event_id, type, version, body, n) ON e.n = p.n
             ON CONFLICT (endpoint_id, event_id) DO NOTHING
             RETURNING event_id`,
            [tenantId, now, pairs.map((p) => p.at), pairs.map((p) => p.endpointId), events.map((e) => e.eventId), events.map((e) => e.type), events.map((e) => e.version), events.map((e) => e.body)],
          );
          const queued = new Map<string, number>();
          for (const r of res.rows) queued.set(r.event_id, (queued.get(r.event_id) ?? 0) + 1);
          // An event twice in the batch: its deliveries are counted once, for the first.
          const counted = new Set<number>();
          for (const [i, k] of slot) {
            if (counted.has(k)) continue;
            counted.add(k);
            out[i]!.queued = queued.get(events[k]!.eventId) ?? 0;
          }
        }),
      ),
    );
    return out;
  }

  return {
    async createEndpointDB(req, ctx) {
      const bad = endpointViolations(req);
      if (bad.length) throw invalid(bad);
      return asAdmin(
        ctx,
        async (sql, p) => {
          const { rows } = await sql.query<EndpointRow>(
            `INSERT INTO wh_endpoints (company_id, url, event_types, description, ordered, secret) VALUES ($1, $2, $3, $4, $5, $6) RETURNING ${ENDPOINT_COLS}`,
            [p.companyId, req.url, req.eventTypes, req.description, req.ordered, req.secret],
          );
          const r = rows[0]!;
          await audit(sql, p, "webhook.endpoint_created", r.id, { url: r.url, event_types: r.event_types.join(",") });
          return { endpoint: toEndpoint(r) };
        },
        true,
      );
    },

    async listEndpointsDB(_req, ctx) {
      return asAdmin(ctx, async (sql) => {
        const { rows } = await sql.query<EndpointRow>(`SELECT ${ENDPOINT_COLS} FROM wh_endpoints ORDER BY created_at, id`);
        return { endpoints: rows.map(toEndpoint) };
      });
    },

    async updateEndpointDB(req, ctx) {
      const u = req.update;
      if (!u) throw invalid([{ field: "update", description: "is required" }]);
      requireId(u.endpointId, "endpointId");
      const bad = endpointViolations({ url: u.url, eventTypes: u.eventTypes?.values, description: u.description }, "update.");
      if (bad.length) throw invalid(bad);
      return asAdmin(
        ctx,
        async (sql, p) => {
          const before = await endpointRow(sql, u.endpointId, true);
          const { rows } = await sql.query<EndpointRow>(
            `UPDATE wh_endpoints SET url = coalesce($2, url), event_types = coalesce($3, event_types), active = coalesce($4, active),
               description = coalesce($5, description), ordered = coalesce($6, ordered),
               disabled_reason = CASE WHEN $4 IS TRUE THEN '' ELSE disabled_reason END, updated_at = now()
             WHERE id = $1 RETURNING ${ENDPOINT_COLS}`,
            [u.endpointId, u.url ?? null, u.eventTypes ? u.eventTypes.values : null, u.active ?? null, u.description ?? null, u.ordered ?? null],
          );
          const r = rows[0]!;
          const details: Record<string, string> = {};
          if (before.url !== r.url) details.url = r.url;
          if (before.event_types.join(",") !== r.event_types.join(",")) details.event_types = r.event_types.join(",");
          if (before.active !== r.active) details.active = String(r.active);
          if (before.ordered !== r.ordered) details.ordered = String(r.ordered);
          if (before.description !== r.description) details.description = r.description;
          // Reactivated: what failed while it was disabled is tried again.
          if (!before.active && r.active) await sql.query(`UPDATE wh_deliveries SET status = 'pending', next_at = now(), queued_at = now() WHERE endpoint_id = $1 AND status = 'failed' AND queued_at > now() - interval '30 days'`, [r.id]);
          await audit(sql, p, "webhook.endpoint_changed", r.id, details);
          return { endpoint: toEndpoint(r) };
        },
        true,
      );
    },

    async deleteEndpointDB(req, ctx) {
      requireId(req.endpointId, "endpointId");
      return asAdmin(
        ctx,
        async (sql, p) => {
          const r = await endpointRow(sql, req.endpointId, true);
          await sql.query("DELETE FROM wh_endpoints WHERE id = $1", [r.id]);
          await audit(sql, p, "webhook.endpoint_deleted", r.id, { url: r.url });
          return {};
        },
        true,
      );
    },

    async rotateSecretDB(req, ctx) {
      requireId(req.endpointId, "endpointId");
      const bad = endpointViolations({ secret: req.secret });
      if (bad.length) throw invalid(bad);
      return asAdmin(
        ctx,
        async (sql, p) => {
          const r = await endpointRow(sql, req.endpointId, true);
          await sql.query("UPDATE wh_endpoints SET prev_secret = secret, prev_until = $2, secret = $3, updated_at = now() WHERE id = $1", [r.id, dateOf(req.previousSecretExpireTime), req.secret]);
          await audit(sql, p, "webhook.secret_rotated", r.id);
          return {};
        },
        true,
      );
    },

    async sendTestDB(req, ctx) {
      requireId(req.endpointId, "endpointId");
      return asAdmin(ctx, async (sql, p) => {
        const r = await endpointRow(sql, req.endpointId);
        const now = dateOf(req.now);
        const { rows } = await sql.query<{ id: string }>(
          `INSERT INTO wh_deliveries (company_id, endpoint_id, event_id, event_type, version, body, next_at, queued_at, created_at)
           VALUES ($1, $2, $3, 'webhook.test', 0, $4, $5, $5, $5) RETURNING id`,
          [p.companyId, r.id, req.eventId, req.body, now],
        );
        return { delivery: toDelivery(await deliveryById(sql, rows[0]!.id)) };
      });
    },

    async listDeliveriesDB(req, ctx) {
      requireId(req.endpointId, "endpointId");
      if (!(req.pageSize >= 1 && req.pageSize <= limits.pageSize)) throw invalid([{ field: "pageSize", description: `must be 1..${limits.pageSize}` }]);
      const after = req.pageToken ? pageToken.decode(req.pageToken) : undefined;
      return asAdmin(ctx, async (sql) => {
        await endpointRow(sql, req.endpointId);
        const { rows } = await sql.query<DeliveryRow>(
          `${DELIVERY_SELECT} WHERE d.endpoint_id = $1 AND ($2::timestamptz IS NULL OR (d.created_at, d.id) < ($2, $3::uuid))
           ORDER BY d.created_at DESC, d.id DESC LIMIT $4`,
          [req.endpointId, after?.[0] ?? null, after?.[1] ?? null, req.pageSize + 1],
        );
        const page = rows.slice(0, req.pageSize);
        const last = page[page.length - 1];
        return { deliveries: page.map(toDelivery), nextPageToken: rows.length > req.pageSize && last ? pageToken.encode(last) : "" };
      });
    },

    async redeliverDB(req, ctx) {
      requireId(req.endpointId, "endpointId");
      requireId(req.deliveryId, "deliveryId");
      return asAdmin(ctx, async (sql) => {
        await endpointRow(sql, req.endpointId);
        const now = dateOf(req.now);
        const { rowCount } = await sql.query(
          `UPDATE wh_deliveries SET status = 'pending', next_at = $3, queued_at = $3 WHERE id = $1 AND endpoint_id = $2 AND status <> 'pending'`,
          [req.deliveryId, req.endpointId, now],
        );
        if (!rowCount) {
          const { rows } = await sql.query("SELECT 1 FROM wh_deliveries WHERE id = $1 AND endpoint_id = $2", [req.deliveryId, req.endpointId]);
          if (!rows[0]) throw new AppError("not_found", `no delivery ${req.deliveryId} of endpoint ${req.endpointId}`);
        }
        return { delivery: toDelivery(await deliveryById(sql, req.deliveryId)) };
      });
    },

    async replayEventsDB(req, ctx) {
      requireId(req.endpointId, "endpointId");
      if (req.sinceVersion < 0n) throw invalid([{ field: "sinceVersion", description: "must be 0 or more" }]);
      const p = principalOf(ctx);
      const now = dateOf(req.now);
      return db.tenant(
        p.companyId,
        async (sql) => {
          await actingAdmin(sql, p);
          const ep = await endpointRow(sql, req.endpointId);
          let queued = 0;
          let since = req.sinceVersion;
          // In pages, so memory stays flat however many changes there are.
          for (;;) {
            const { rows } = await sql.query<{ version: string; event: Buffer }>("SELECT version, event FROM rec_changes WHERE version > $1 ORDER BY version LIMIT 1000", [since.toString()]);
            if (rows.length === 0) break;
            const out = rows
              .map((r) => payloadOf(decodeRecordChange(r.event)))
              .map((pl, i) => ({ ...pl, version: rows[i]!.version }))
              .filter((pl) => patternsFor(pl.type).some((t) => ep.event_types.includes(t)));
            if (out.length) {
              const res = await sql.query(
                `INSERT INTO wh_deliveries (company_id, endpoint_id, event_id, event_type, version, body, next_at, queued_at, created_at)
                 SELECT $1, $2, t.event_id, t.type, t.version, t.body, $3, $3, $3 FROM unnest($4::text[], $5::text[], $6::bigint[], $7::text[]) AS t(event_id, type, version, body)
                 ON CONFLICT (endpoint_id, event_id) DO UPDATE SET status = 'pending', next_at = excluded.next_at, queued_at = excluded.queued_at
                   WHERE wh_deliveries.status <> 'pending'`,
                [p.companyId, ep.id, now, out.map((o) => o.eventId), out.map((o) => o.type), out.map((o) => o.version), out.map((o) => o.body)],
              );
              queued += res.rowCount ?? 0;
            }
            since = BigInt(rows[rows.length - 1]!.version);
          }
          // The other events (users, imports, chat messages) are not kept as events by their
          // sources: they are replayed from this company's delivery log (30 days), where any of
          // its endpoints had them queued, with the same id and body. Stamped with the tenant's
          // version when queued, so one stamped sinceVersion came after that change: included.
          const res = await sql.query(
            `INSERT INTO wh_deliveries (company_id, endpoint_id, event_id, event_type, version, body, next_at, queued_at, created_at)
             SELECT DISTINCT ON (d.event_id) $1::uuid, $2::uuid, d.event_id, d.event_type, d.version, d.body, $3::timestamptz, $3::timestamptz, $3::timestamptz
               FROM wh_deliveries d
              WHERE d.version >= $4 AND split_part(d.event_type, '.', 1) IN ('user', 'import', 'chat')
                AND (d.event_type = ANY ($5::text[]) OR split_part(d.event_type, '.', 1) || '.*' = ANY ($5::text[]) OR ('*' = ANY ($5::text[]) AND d.event_type <> $6))
              ORDER BY d.event_id, d.created_at
             ON CONFLICT (endpoint_id, event_id) DO UPDATE SET status = 'pending', next_at = excluded.next_at, queued_at = excluded.queued_at
               WHERE wh_deliveries.status <> 'pending'`,
            [p.companyId, ep.id, now, req.sinceVersion.toString(), ep.event_types, CHAT_MESSAGE],
          );
          queued += res.rowCount ?? 0;
          return { queued };
        },
        { actingUser: p.userId },
      );
    },

    async enqueueEventDB(req, ctx) {
      requirePeer(ctx, "webhooks");
      const [r] = await enqueue([req], dateOf(req.now));
      if (r!.error) throw r!.error;
      return { queued: r!.queued, wanted: r!.wanted };
    },

    async enqueueEventsDB(req, ctx) {
      requirePeer(ctx, "webhooks");
      const n = req.events.length;
      if (n < 1 || n > limits.enqueueBatch) throw invalid([{ field: "events", description: `must hold 1..${limits.enqueueBatch} events` }]);
      const tenants = new Map<string, string[]>();
      const results = await enqueue(req.events, dateOf(req.now), tenants);
      return {
        results: results.map((r, i) => ({ queued: r.queued, error: r.error ? `events[${i}]: ${r.error.message}` : "" })),
        tenants: [...tenants].map(([tenantId, eventTypes]) => ({ tenantId, eventTypes })),
      };
    },

    async claimDeliveriesDB(req, ctx) {
      requirePeer(ctx, "webhooks");
      const limit = Math.max(1, Math.min(1000, req.limit));
      const per = Math.max(1, Math.min(100, req.perEndpoint));
      const now = dateOf(req.now);
      if (Number.isNaN(now.getTime())) throw invalid([{ field: "now", description: "must be a valid time" }]);
      const leaseMs = Math.max(1000, Math.trunc(req.leaseMs) || 0);
      // BEGIN, role, the claim and COMMIT in ONE round trip (db.systemScript): every value a
      // number or a time written here.
      const { rows } = (await db.systemScript(() => ({
        text: `SELECT * FROM crm_wh_claim(${limit}, ${per}, make_interval(secs => ${leaseMs}::double precision / 1000), '${now.toISOString()}'::timestamptz)`,
      }))) as { rows: { id: string; company_id: string; endpoint_id: string; url: string; secrets: string[]; event_id: string; body: string; attempts: number; queued_at: Date; lease: string }[] };
      return {
        deliveries: rows.map((r) => ({
          companyId: r.company_id,
          deliveryId: r.id,
          endpointId: r.endpoint_id,
          url: r.url,
          secrets: r.secrets,
          eventId: r.event_id,
          body: r.body,
          attempts: r.attempts,
          createTime: timestampFromDate(r.queued_at),
          lease: r.lease,
        })),
      };
    },

    async completeDeliveryDB(req, ctx) {
      requirePeer(ctx, "webhooks");
      const [settled] = await complete([req], "");
      return { settled: settled! };
    },

    async completeDeliveriesDB(req, ctx) {
      requirePeer(ctx, "webhooks");
      const n = req.deliveries.length;
      if (n < 1 || n > limits.settleBatch) throw invalid([{ field: "deliveries", description: `must hold 1..${limits.settleBatch} deliveries` }]);
      return { settled: await complete(req.deliveries, "deliveries") };
    },

    async purgeDeliveriesDB(req, ctx) {
      requirePeer(ctx, "webhooks");
      const before = dateOf(req.olderThan);
      const deleted = await db.system(async (sql) => (await sql.query<{ n: number }>("SELECT crm_wh_purge($1) AS n", [before])).rows[0]!.n);
      return { deleted };
    },
  };
}
