/**
 * The events that are not record changes, end to end on the real path: the all-in-one on the
 * machine's PostgreSQL and RabbitMQ (the outbox relay publishing to users.events, records.events
 * and chat.events, the webhooks service's durable queues on them), a receiver this test owns.
 * A user added and deactivated (AdminService), an import that finished (ImportService) and a chat
 * message (ChatService) each reach the endpoints that asked for them with a valid Standard
 * Webhooks signature; the chat message only the endpoint that named chat.message, not "*".
 */
import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { after, before, test } from "node:test";
import { Webhook } from "standardwebhooks";
import { AdminService } from "@crm/gen/crm/admin/v1/admin_pb";
import { AuthService } from "@crm/gen/crm/auth/v1/auth_pb";
import { ChatService } from "@crm/gen/crm/chat/v1/chat_pb";
import { ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import { ImportService } from "@crm/gen/crm/records/v1/import_pb";
import { WebhookService } from "@crm/gen/crm/webhooks/v1/webhooks_pb";
import { TEST_AMQP_URL, freshDatabase, installHint, need, postgresUp, rabbitUp, removeRabbitObjects, until, type TestApp, type TestDatabase } from "@crm/testkit";
import { startTestApp } from "@crm/all/test-app";
import pg from "pg";
import { receiver, type Received } from "./harness.js";

const skip = need("PostgreSQL", await postgresUp(), installHint.postgres) || need("RabbitMQ", await rabbitUp(), installHint.rabbitmq);

// Queues of this test alone: another app on the same broker must not take its events.
const run = randomUUID();
const queues = { WEBHOOKS_QUEUE: `webhooks.test.records.${run}`, WEBHOOKS_USERS_QUEUE: `webhooks.test.users.${run}`, WEBHOOKS_CHAT_QUEUE: `webhooks.test.chat.${run}` };

let db: TestDatabase;
let app: TestApp;
before(async () => {
  if (skip) return;
  db = await freshDatabase();
  app = await startTestApp({ DATABASE_URL: db.url, AMQP_URL: TEST_AMQP_URL, WEBHOOKS_ALLOW_CIDRS: "127.0.0.0/8", WEBHOOKS_POLL_MS: "50", RECORDS_IMPORT_POLL_MS: "100", WEBHOOKS_CHAT_EVENTS: "true", ...queues });
});
after(async () => {
  await app?.close();
  await db?.drop();
  if (!skip) await removeRabbitObjects({ queues: Object.values(queues).flatMap((q) => [q, `${q}.retry`, `${q}.dead`]) });
});

interface Body {
  type: string;
  data: Record<string, unknown> & { event_id: string; tenant_version: string };
}
const bodyOf = (r: Received) => JSON.parse(r.body) as Body;

test("user added and deactivated, import finished and a chat message arrive signed, each where it was asked for", { skip, timeout: 120_000 }, async () => {
  const t = randomBytes(4).toString("hex");
  const me = await app.client(AuthService).registerCompany({ companyName: `Hooks ${t}`, email: `owner-${t}@example.com`, password: "correct horse battery staple", ownerName: "Olga" });
  const as = { token: me.accessToken };
  const hooks = app.client(WebhookService, as);
  const named = await receiver((_q, res) => res.writeHead(204).end());
  const everything = await receiver((_q, res) => res.writeHead(200).end("ok"));
  try {
    const a = await hooks.createEndpoint({ url: named.url, eventTypes: ["user.*", "import.finished", "chat.message"], description: "named" });
    const b = await hooks.createEndpoint({ url: everything.url, eventTypes: ["*"], description: "everything" });

    // A user added, then deactivated.
    const email = `ann-${t}@example.com`;
    const added = await app.client(AdminService, as).addUsers({ users: [{ email, name: "Ann" }] });
    const annId = added.results[0]!.userId;
    assert.ok(annId);
    await app.client(AdminService, as).deactivateUser({ userId: annId });

    // An import that runs to the end.
    const imports = app.client(ImportService, as);
    const job = (await imports.createImport({ import: { objectType: ObjectType.PERSON, fileName: "people.csv" } })).import!;
    const up = await fetch(`${app.baseUrl}/imports/${job.id}/file`, { method: "POST", headers: { authorization: `Bearer ${me.accessToken}` }, body: `first name,email\nBob,bob-${t}@example.com\nCid,cid-${t}@example.com\n` });
    assert.equal(up.status, 200, await up.clone().text());
    await imports.startImport({ id: job.id });

    // A chat message.
    const chats = app.client(ChatService, as);
    const { chat } = await chats.createChat({ name: "Deals" });
    const { message } = await chats.sendMessage({ chatId: chat!.chatId, content: "the Globex deal is won" });

    const types = (r: { got: Received[] }) => r.got.map((g) => bodyOf(g).type);
    // The owner's own user.added (the company's first user) may reach the intake after the endpoints
    // were made, and then goes to them too: wait for Ann's.
    const addedUsers = (r: { got: Received[] }) => r.got.map(bodyOf).filter((x) => x.type === "user.added").map((x) => x.data.user as { user_id: string; email: string; status: string });
    await until("the named endpoint got the four, Ann's user.added among them", () => ["user.added", "user.deactivated", "import.finished", "chat.message"].every((x) => types(named).includes(x)) && addedUsers(named).some((u) => u.user_id === annId), 60_000);
    // records.events and the other events reach the intake on queues of their own, in no set order:
    // wait for the imported people's events too.
    await until("the \"*\" endpoint got the users, the import and its people", () => ["user.added", "user.deactivated", "import.finished", "person.created"].every((x) => types(everything).includes(x)), 60_000);

    // Every delivery verifies with its endpoint's secret; the body's event_id is the webhook-id.
    for (const [r, secret] of [[named, a.secret], [everything, b.secret]] as const) {
      const wh = new Webhook(secret);
      for (const g of r.got) {
        const v = wh.verify(g.body, g.headers) as Body;
        assert.equal(v.data.event_id, g.headers["webhook-id"]);
      }
    }
    const one = (type: string) => named.got.map(bodyOf).find((x) => x.type === type)!.data;
    const addedUser = addedUsers(named).find((u) => u.user_id === annId)!;
    assert.deepEqual([addedUser.user_id, addedUser.email, addedUser.status], [annId, email, "USER_STATUS_INVITED"]);
    assert.equal((one("user.deactivated").user as { status: string }).status, "USER_STATUS_DEACTIVATED");
    assert.equal(one("user.deactivated").actor_name, "Olga");
    const imp = one("import.finished").import as { id: string; state: string; created_count: string };
    assert.deepEqual([imp.id, imp.state, imp.created_count], [job.id, "IMPORT_STATE_SUCCEEDED", "2"]);
    assert.ok(Number(one("import.finished").tenant_version) >= 2, "stamped after the import's two record changes");
    const msg = one("chat.message") as unknown as { chat_id: string; message: { message_id: string; content: string } };
    assert.deepEqual([msg.chat_id, msg.message.message_id, msg.message.content], [chat!.chatId, message!.messageId, "the Globex deal is won"]);

    // "*" is every event but chat messages: the message was queued for the named endpoint only
    // (one statement queues an event for every endpoint that wants it), and "*" got the records.
    assert.ok(!types(everything).includes("chat.message"));
    assert.ok(!(await hooks.listDeliveries({ endpointId: b.endpoint!.endpointId, pageSize: 200 })).deliveries.some((d) => d.eventType === "chat.message"));
    assert.ok(types(everything).includes("person.created"));
    assert.equal(named.got.filter((g) => bodyOf(g).type === "chat.message").length, 1);

    // The audit log holds the users and the import.
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    try {
      const { rows } = await c.query<{ action: string }>("SELECT action FROM audit_events WHERE company_id = $1 AND action IN ('admin.user_added', 'admin.user_deactivated', 'records.import_started') ORDER BY seq", [me.companyId]);
      assert.deepEqual(rows.map((r) => r.action), ["admin.user_added", "admin.user_deactivated", "records.import_started"]);
    } finally {
      await c.end();
    }
  } finally {
    await named.down();
    await everything.down();
  }
});
