/**
 * crm.webhooks.v1.WebhookService handlers (owners and admins): validation, secrets, the address
 * guard at registration; the store does the rest in one transaction per call. Dependencies come
 * in; no wiring here.
 */
import { randomBytes, randomUUID } from "node:crypto";
import type { Client, HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { invalid, principalOf, requireRole, type Violation } from "@crm/kit";
import type { DbWebhooksService } from "@crm/gen/crm/db/v1/db_webhooks_pb";
import type { WebhookService } from "@crm/gen/crm/webhooks/v1/webhooks_pb";
import { RefusedAddressError, type Guard } from "./guard.js";
import { chatTypeViolations, descriptionViolations, eventTypeViolations, limits, testPayload, urlViolations } from "./rules.js";

export interface WebhookServiceDeps {
  db: Client<typeof DbWebhooksService>;
  guard: Pick<Guard, "check">;
  clock: () => number;
  /** Called after something was queued (SendTest, Redeliver, ReplayEvents): the workers look at once. */
  queued?: () => void;
  /** Whether chat.message events are carried (WEBHOOKS_CHAT_EVENTS); endpoints naming them are refused when not. */
  chatEvents: boolean;
  /** Called after an endpoint of the company was created or changed (the intake looks at its chat messages again). */
  endpointsChanged?: (companyId: string) => void;
}

/** A new signing secret: whsec_ and 32 random bytes in base64 (the Standard Webhooks format). */
export const newSecret = () => `whsec_${randomBytes(32).toString("base64")}`;

const opts = (ctx: HandlerContext) => ({ signal: ctx.signal });

export function webhookService(d: WebhookServiceDeps): ServiceImpl<typeof WebhookService> {
  const now = () => timestampFromDate(new Date(d.clock()));

  /** The URL's syntax, then where it points (after DNS): one violation naming the field. */
  async function checkUrl(url: string, field: string, v: Violation[]) {
    const bad = urlViolations(url, field);
    if (bad.length) return void v.push(...bad);
    try {
      await d.guard.check(new URL(url).hostname);
    } catch (err) {
      v.push({ field, description: err instanceof RefusedAddressError ? err.message : `does not resolve (${(err as Error).message})` });
    }
  }

  return {
    async createEndpoint(req, ctx) {
      requireRole(ctx, "owner", "admin");
      const v: Violation[] = [];
      await checkUrl(req.url, "url", v);
      v.push(...eventTypeViolations(req.eventTypes), ...chatTypeViolations(req.eventTypes, d.chatEvents), ...descriptionViolations(req.description));
      if (v.length) throw invalid(v);
      const secret = newSecret();
      const res = await d.db.createEndpointDB({ url: req.url, eventTypes: [...new Set(req.eventTypes)], description: req.description, ordered: req.ordered, secret }, opts(ctx));
      d.endpointsChanged?.(principalOf(ctx).companyId);
      return { endpoint: res.endpoint, secret };
    },

    async listEndpoints(_req, ctx) {
      requireRole(ctx, "owner", "admin");
      return { endpoints: (await d.db.listEndpointsDB({}, opts(ctx))).endpoints };
    },

    async updateEndpoint(req, ctx) {
      requireRole(ctx, "owner", "admin");
      const v: Violation[] = [];
      if (req.url !== undefined) await checkUrl(req.url, "url", v);
      if (req.eventTypes) v.push(...eventTypeViolations(req.eventTypes.values, "eventTypes.values"), ...chatTypeViolations(req.eventTypes.values, d.chatEvents, "eventTypes.values"));
      if (req.description !== undefined) v.push(...descriptionViolations(req.description));
      if (v.length) throw invalid(v);
      const update = { endpointId: req.endpointId, url: req.url, active: req.active, description: req.description, ordered: req.ordered, eventTypes: req.eventTypes ? { values: [...new Set(req.eventTypes.values)] } : undefined };
      const res = await d.db.updateEndpointDB({ update }, opts(ctx));
      d.endpointsChanged?.(principalOf(ctx).companyId);
      d.queued?.();
      return { endpoint: res.endpoint };
    },

    async deleteEndpoint(req, ctx) {
      requireRole(ctx, "owner", "admin");
      await d.db.deleteEndpointDB({ endpointId: req.endpointId }, opts(ctx));
      return {};
    },

    async rotateSecret(req, ctx) {
      requireRole(ctx, "owner", "admin");
      if (req.overlapSeconds < 0 || req.overlapSeconds > limits.maxOverlapSeconds) throw invalid([{ field: "overlapSeconds", description: `must be 0..${limits.maxOverlapSeconds} (0 means ${limits.defaultOverlapSeconds})` }]);
      const overlap = req.overlapSeconds || limits.defaultOverlapSeconds;
      const secret = newSecret();
      const until = timestampFromDate(new Date(d.clock() + overlap * 1000));
      await d.db.rotateSecretDB({ endpointId: req.endpointId, secret, previousSecretExpireTime: until }, opts(ctx));
      return { secret, previousSecretExpireTime: until };
    },

    async sendTest(req, ctx) {
      requireRole(ctx, "owner", "admin");
      const eventId = `evt_test_${randomUUID().replaceAll("-", "")}`;
      const res = await d.db.sendTestDB({ endpointId: req.endpointId, eventId, body: testPayload(eventId, req.endpointId, new Date(d.clock())), now: now() }, opts(ctx));
      d.queued?.();
      return { delivery: res.delivery };
    },

    async listDeliveries(req, ctx) {
      requireRole(ctx, "owner", "admin");
      const pageSize = req.pageSize === 0 ? limits.defaultPageSize : req.pageSize;
      if (pageSize < 1 || pageSize > limits.pageSize) throw invalid([{ field: "pageSize", description: `must be 1..${limits.pageSize} (0 means ${limits.defaultPageSize})` }]);
      const res = await d.db.listDeliveriesDB({ endpointId: req.endpointId, pageSize, pageToken: req.pageToken }, opts(ctx));
      return { deliveries: res.deliveries, nextPageToken: res.nextPageToken };
    },

    async redeliver(req, ctx) {
      requireRole(ctx, "owner", "admin");
      const res = await d.db.redeliverDB({ endpointId: req.endpointId, deliveryId: req.deliveryId, now: now() }, opts(ctx));
      d.queued?.();
      return { delivery: res.delivery };
    },

    async replayEvents(req, ctx) {
      requireRole(ctx, "owner", "admin");
      if (req.sinceVersion < 0n) throw invalid([{ field: "sinceVersion", description: "must be 0 or more" }]);
      const res = await d.db.replayEventsDB({ endpointId: req.endpointId, sinceVersion: req.sinceVersion, now: now() }, opts(ctx));
      d.queued?.();
      return { queued: res.queued };
    },
  };
}
