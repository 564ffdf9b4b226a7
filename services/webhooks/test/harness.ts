/**
 * Test support for webhooks: the store on a fresh database of the machine's PostgreSQL, the
 * webhooks module in memory in front of it (the store reached as dbservice would be: the caller's
 * token forwarded, the service named "webhooks"), the in-memory event bus for records.events, a
 * clock the test moves, and receivers on 127.0.0.1 the test owns.
 */
import http from "node:http";
import { randomUUID } from "node:crypto";
import type { AddressInfo, Socket } from "node:net";
import type { Client } from "@connectrpc/connect";
import { createClient } from "@connectrpc/connect";
import { memoryBus, type EventBus, type Principal } from "@crm/kit";
import { DbWebhooksService } from "@crm/gen/crm/db/v1/db_webhooks_pb";
import { WebhookService } from "@crm/gen/crm/webhooks/v1/webhooks_pb";
import { RECORD_EVENTS_EXCHANGE, RECORD_EVENTS_EXCHANGE_TYPE } from "@crm/contracts";
import { recordChangeEvent } from "@crm/contracts/events";
import { ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import { ChangeAction } from "@crm/gen/crm/records/v1/stream_pb";
import { inMemory, type InMemory } from "@crm/testkit";
import { auditLog } from "@crm/admin/store";
import { queueEmails } from "@crm/email/store";
import { migratedDatabase, type MigratedDatabase } from "../../dbservice/test/helpers.js";
import { webhooksStore } from "../store/index.js";
import { webhooksEnv, type WebhooksConfig } from "../src/config.js";
import { createWebhooksModule } from "../src/module.js";

export const storePublic = ["EnqueueEventDB", "EnqueueEventsDB", "ClaimDeliveriesDB", "CompleteDeliveryDB", "CompleteDeliveriesDB", "PurgeDeliveriesDB"].map((m) => `/${DbWebhooksService.typeName}/${m}`);

/** Record change `version` of the tenant: a company named `name` was created. */
export const companyCreated = (companyId: string, version: bigint, name = `Company ${version}`) =>
  recordChangeEvent({ version, tenantId: companyId, objectType: ObjectType.COMPANY, recordId: randomUUID(), action: ChangeAction.CREATED, record: { record: { case: "company", value: { name } } } });

export interface Harness {
  m: MigratedDatabase;
  mem: InMemory;
  bus: EventBus;
  /** The store as the webhooks service reaches it. */
  store: Client<typeof DbWebhooksService>;
  /** Moves the service's clock. */
  advance(ms: number): void;
  clock: () => number;
  module: Awaited<ReturnType<typeof createWebhooksModule>>;
  /** A company with an owner (and a member); `api` calls WebhookService as the owner. */
  tenant(): Promise<{ companyId: string; owner: Principal; member: Principal; api: Client<typeof WebhookService>; memberApi: Client<typeof WebhookService> }>;
  /** Publishes a record change of the tenant to records.events, as the outbox relay does. */
  publish(companyId: string, version: bigint, name?: string): Promise<string>;
  close(): Promise<void>;
}

export async function harness(cfg: Partial<WebhooksConfig> = {}, o: { workers?: boolean; m?: MigratedDatabase } = {}): Promise<Harness> {
  const m = o.m ?? (await migratedDatabase(16));
  const mem = inMemory();
  const bus = memoryBus(mem.log);
  await bus.declareExchange(RECORD_EVENTS_EXCHANGE, RECORD_EVENTS_EXCHANGE_TYPE);
  const storeImpl = webhooksStore(m.db, {
    audit: auditLog(m.db),
    emails: { queue: (sql, companyId, emails) => queueEmails(m.db, sql, { queue: "email_tasks" }, companyId, emails), afterOutbox: () => {} },
  });
  const store = createClient(DbWebhooksService, mem.serve((r) => void r.service(DbWebhooksService, storeImpl), { from: "webhooks", publicMethods: storePublic }));
  let offset = 0;
  const clock = () => Date.now() + offset;
  const config: WebhooksConfig = { ...webhooksEnv.parse({}), WEBHOOKS_ALLOW_CIDRS: "127.0.0.0/8,::1/128", WEBHOOKS_TIMEOUT_MS: 1000, WEBHOOKS_POLL_MS: 50, WEBHOOKS_QUEUE: `webhooks.test.${randomUUID()}`, WEBHOOKS_USERS_QUEUE: `webhooks.test.users.${randomUUID()}`, WEBHOOKS_CHAT_QUEUE: `webhooks.test.chat.${randomUUID()}`, ...cfg };
  const module = await createWebhooksModule({ cfg: config, db: store, log: mem.log, bus, clock, workers: o.workers });
  const api = mem.serve((r) => module.routes(r));
  return {
    m,
    mem,
    bus,
    store,
    clock,
    module,
    advance(ms) {
      offset += ms;
      module.wake();
    },
    async tenant() {
      const companyId = randomUUID();
      await m.pool.query("INSERT INTO companies (id, name) VALUES ($1, 'Webhooks test')", [companyId]);
      const add = async (role: "owner" | "member") => {
        const { rows } = await m.pool.query<{ id: string }>("INSERT INTO users (company_id, email, name, role) VALUES ($1, $2, $3, $4) RETURNING id", [companyId, `${role}-${randomUUID()}@example.com`, `A ${role}`, role]);
        return mem.user({ userId: rows[0]!.id, companyId, role });
      };
      const owner = await add("owner");
      const member = await add("member");
      return { companyId, owner, member, api: mem.client(WebhookService, api, owner), memberApi: mem.client(WebhookService, api, member) };
    },
    async publish(companyId, version, name) {
      const e = companyCreated(companyId, version, name);
      await bus.publish(e.exchange, e.routingKey, e.payload, { messageId: e.messageId });
      return e.messageId;
    },
    async close() {
      await module.close?.();
      await bus.close();
      await m.drop();
    },
  };
}

export interface Received {
  headers: Record<string, string>;
  body: string;
  at: number;
}

export type Behaviour = (req: http.IncomingMessage, res: http.ServerResponse, n: number) => void;

/** A receiver on 127.0.0.1 the test owns: `behave` decides each answer (n counts requests from 1); it can be taken down and brought back on the same port. */
export async function receiver(behave: Behaviour) {
  const got: Received[] = [];
  const sockets = new Set<Socket>();
  let n = 0;
  let port = 0;
  let server: http.Server | undefined;
  const r = {
    got,
    behave,
    get url() {
      return `http://127.0.0.1:${port}/hook`;
    },
    async up() {
      server = http.createServer((req, res) => {
        let body = "";
        req.on("data", (c: Buffer) => (body += c));
        req.on("end", () => {
          got.push({ headers: req.headers as Record<string, string>, body, at: Date.now() });
          r.behave(req, res, ++n);
        });
      });
      server.on("connection", (s) => {
        sockets.add(s);
        s.on("close", () => sockets.delete(s));
      });
      await new Promise<void>((ok) => server!.listen(port, "127.0.0.1", ok));
      port = (server.address() as AddressInfo).port;
    },
    async down() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((ok) => (server ? server.close(() => ok()) : ok()));
      server = undefined;
    },
  };
  await r.up();
  return r;
}
