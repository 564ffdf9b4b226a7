/**
 * RecordStreamService.WatchRecords: a tenant's record changes of one object type that concern a
 * filter, replayed from the database after `after_version`, then live from the event bus (hub.ts),
 * with no gap and no duplicate where the two meet, on any replica. The chats stream's design:
 *
 * - bind first (the hub), then read: a change committed after the read is published after the
 *   binding exists, so it arrives live;
 * - the stream knows the last version it considered (of any object type: versions are per tenant)
 *   and takes a live change only when it is the next one; an older one is a duplicate or already
 *   replayed, a newer one means something was missed or came out of order, and the database
 *   (ListChangesDB: every version up to the one seen is committed) fills the gap;
 * - when idle for the heartbeat interval it asks the database for the tenant's version and catches
 *   up if it moved (a lost event costs at most one interval), else sends a heartbeat. Every change
 *   of a tenant wakes all its watchers at once, so their idle timers also run out together: the
 *   streams of one tenant whose timers run out in the same turn share ONE query (sent after that
 *   turn, so it sees whatever any of them could have missed), not one each;
 * - a slow client's buffer overflowing, or the broker reconnecting, also means: catch up.
 *
 * A change is sent when its record matched the filter before it or matches after it (in_view),
 * evaluated in memory (watch-filter.ts) with the watcher as "me". The kit's stream registry ends
 * the stream with unauthenticated when its session is revoked; the token's expiry ends it here.
 */
import { create, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { Client, HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { AppError, Inbox, invalid, principalOf, type Violation } from "@crm/kit";
import type { DbRecordsService } from "@crm/gen/crm/db/v1/db_records_pb";
import { ObjectType, type Filter } from "@crm/gen/crm/records/v1/common_pb";
import {
  ChangeAction, WatchRecordsResponseSchema, type RecordChange, type RecordStreamService, type WatchRecordsRequest,
} from "@crm/gen/crm/records/v1/stream_pb";
import type { Hub, LiveEvent } from "./hub.js";
import { catalogOf, defFromField, hasCustom, parseFilter, type FilterNode, type ObjectKind } from "./rules.js";
import { inView } from "./watch-filter.js";

export interface WatchDeps {
  db: Client<typeof DbRecordsService>;
  hub: Hub;
  /** A heartbeat goes out when a stream has been idle this long. */
  heartbeatMs: number;
  /** Live changes buffered per stream before it falls back to reading the database. */
  maxBuffered?: number;
  now?: () => number;
}

type Response = MessageInitShape<typeof WatchRecordsResponseSchema>;

const kinds: Partial<Record<ObjectType, ObjectKind>> = {
  [ObjectType.COMPANY]: "company",
  [ObjectType.PERSON]: "person",
  [ObjectType.DEAL]: "deal",
  [ObjectType.TASK]: "task",
  [ObjectType.NOTE]: "note",
};

interface WatchInput {
  objectType: ObjectType;
  kind: ObjectKind;
  filter: FilterNode | undefined;
  /** The filter names custom fields: parsed again with the tenant's definitions once the stream starts. */
  custom: boolean;
  rawFilter: Filter | undefined;
  afterVersion: bigint | undefined;
  showDeleted: boolean;
}

/** The request checked (every bad field named); custom fields are checked against the definitions later. */
export function checkWatch(req: WatchRecordsRequest): WatchInput {
  const v: Violation[] = [];
  const kind = kinds[req.objectType];
  if (!kind) v.push({ field: "objectType", description: "must be OBJECT_TYPE_COMPANY, OBJECT_TYPE_PERSON, OBJECT_TYPE_DEAL, OBJECT_TYPE_TASK or OBJECT_TYPE_NOTE" });
  const deferred = { custom: false };
  const filter = kind ? parseFilter(kind, req.filter, req.showDeleted, v, "filter", undefined, deferred) : undefined;
  if (req.afterVersion !== undefined && req.afterVersion < 0n) v.push({ field: "afterVersion", description: "must be 0 or more (a version a heartbeat or change named)" });
  if (v.length) throw invalid(v);
  return { objectType: req.objectType, kind: kind!, filter, custom: deferred.custom, rawFilter: req.filter, afterVersion: req.afterVersion, showDeleted: req.showDeleted };
}

/**
 * The stream events of one change, made once per change and visibility and shared by every stream
 * of this replica that sends it (the hub hands them all the same object), so it is encoded once.
 */
const responses = new WeakMap<RecordChange, [MessageShape<typeof WatchRecordsResponseSchema>?, MessageShape<typeof WatchRecordsResponseSchema>?]>();
function changeEvent(change: RecordChange, visible: boolean): Response {
  let pair = responses.get(change);
  if (!pair) responses.set(change, (pair = []));
  const i = visible ? 1 : 0;
  return (pair[i] ??= create(WatchRecordsResponseSchema, { event: { case: "change", value: { change, inView: visible } } }));
}

export function recordStream(deps: WatchDeps): ServiceImpl<typeof RecordStreamService> {
  const { db, hub } = deps;
  const now = deps.now ?? Date.now;

  /**
   * Idle checks by tenant: every stream of a tenant that asks before the next turn of the event
   * loop joins one GetRecordVersionDB, sent in that turn (as the first asker's caller: the version
   * is the tenant's, the same for each of its watchers). When it fails, each stream asks as itself,
   * so one caller's expired token or cancelled stream decides nothing for the others.
   */
  const idleChecks = new Map<string, Promise<bigint>>();
  const versionOf = (signal: AbortSignal) => db.getRecordVersionDB({}, { signal }).then((r) => r.version);
  function idleVersion(tenantId: string, signal: AbortSignal): Promise<bigint> {
    let shared = idleChecks.get(tenantId);
    if (!shared) {
      shared = new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
        idleChecks.delete(tenantId);
        return db.getRecordVersionDB({}).then((r) => r.version);
      });
      idleChecks.set(tenantId, shared);
    }
    return shared.catch(() => versionOf(signal));
  }
  const heartbeat = (lastVersion: bigint): Response => ({ event: { case: "heartbeat", value: { serverTime: timestampFromDate(new Date(now())), lastVersion } } });

  async function* stream(ctx: HandlerContext, input: WatchInput): AsyncGenerator<Response> {
    const p = principalOf(ctx);
    const signal = ctx.signal;
    const inbox = new Inbox<LiveEvent>(deps.maxBuffered ?? 10_000);
    // Bind first, then read: a change committed after the read is published after the binding exists.
    const unwatch = await hub.watch(p.companyId, (e) => inbox.push(e));
    try {
      let filter = input.filter;
      if (input.custom && hasCustom(input.kind)) {
        const fields = (await db.listFieldsDB({ request: { objectType: input.objectType } }, { signal })).response?.fields ?? [];
        const v: Violation[] = [];
        filter = parseFilter(input.kind, input.rawFilter, input.showDeleted, v, "filter", catalogOf(fields.map(defFromField)));
        if (v.length) throw invalid(v);
      }
      const current = (await db.getRecordVersionDB({}, { signal })).version;
      if (input.afterVersion !== undefined && input.afterVersion > current) {
        throw new AppError("failed_precondition", `afterVersion ${input.afterVersion} is ahead of your company's version ${current}: watch again without it, or with the last version a heartbeat named`);
      }
      let last = input.afterVersion ?? current;

      /** The stream event of a change, when it concerns this watch. */
      const event = (c: RecordChange): Response | undefined => {
        if (c.objectType !== input.objectType) return undefined;
        if (c.action === ChangeAction.PURGED) return changeEvent(c, false);
        const after = inView(filter, c.record, p.userId, input.showDeleted);
        if (!after && !inView(filter, c.previous, p.userId, input.showDeleted)) return undefined;
        return changeEvent(c, after);
      };

      /** Everything stored after `last`, in order (the replay, and gap filling). */
      async function* catchUp(): AsyncGenerator<Response> {
        for (;;) {
          const page = await db.listChangesDB({ objectType: input.objectType, afterVersion: last, limit: 500 }, { signal });
          for (const c of page.changes) {
            if (c.version <= last) continue;
            last = c.version;
            const e = event(c);
            if (e) yield e;
          }
          if (page.throughVersion > last) last = page.throughVersion;
          if (!page.more) return;
        }
      }

      if (input.afterVersion !== undefined) yield* catchUp();
      // One heartbeat when the stream goes live: the client knows it is watching, and from where.
      yield heartbeat(last);
      const expiresAtMs = p.expiresAt * 1000;
      for (;;) {
        const left = expiresAtMs - now();
        if (left <= 0) throw new AppError("unauthenticated", "access token expired: refresh it and watch again with afterVersion = the last version you received (nothing is missed)");
        const next = await inbox.next(Math.min(deps.heartbeatMs, left), signal);
        if (next === "aborted") return;
        if (next === "timeout") {
          if (expiresAtMs - now() <= 0) continue;
          // Idle: make sure nothing was missed, then say we are alive.
          const version = await idleVersion(p.companyId, signal);
          if (version > last) yield* catchUp();
          else yield heartbeat(last);
          continue;
        }
        if (next === "overflow" || next.kind === "resync") {
          yield* catchUp();
          continue;
        }
        const v = next.change.version;
        if (v <= last) continue; // replayed already, or a duplicate delivery
        if (v === last + 1n) {
          last = v;
          const e = event(next.change);
          if (e) yield e;
        } else {
          yield* catchUp(); // changes missed or out of order: the database has them all
        }
      }
    } finally {
      unwatch();
    }
  }

  return {
    watchRecords(req, ctx) {
      const input = checkWatch(req);
      return stream(ctx, input);
    },
  };
}
