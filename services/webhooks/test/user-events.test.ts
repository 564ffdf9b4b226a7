/**
 * The user events webhooks did not get, on a fresh database: RegisterCompany (the auth store)
 * writes the first owner's UserEvent (added, active) and ConsumeInviteToken (the admin store) the
 * invited user's (activated) to the outbox in their transactions; the webhooks store makes them
 * user.added and user.activated. ReplayEvents replays user, import and chat events from the
 * company's delivery log, same ids and bodies.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { createClient } from "@connectrpc/connect";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { installHint, need, postgresUp } from "@crm/testkit";
import { USER_EVENTS_EXCHANGE } from "@crm/contracts";
import { decodeUserEvent, userEvent } from "@crm/contracts/tenant-events";
import { UserChange, UserStatus } from "@crm/gen/crm/admin/v1/admin_pb";
import { Role } from "@crm/gen/crm/auth/v1/auth_pb";
import { DbAuthService } from "@crm/gen/crm/db/v1/db_auth_pb";
import { DbAdminService } from "@crm/gen/crm/db/v1/db_admin_pb";
import { authStore, roleToProto, statusToProto } from "@crm/auth/store";
import { adminStore, auditLog } from "@crm/admin/store";
import { harness, type Harness } from "./harness.js";

const skip = need("PostgreSQL", await postgresUp(), installHint.postgres);

let h: Harness;
before(async () => {
  if (skip) return;
  h = await harness({}, { workers: false });
});
after(async () => {
  await h?.close();
});

/** The UserEvents of the company on the outbox (no relay runs here), oldest first. */
async function outboxUserEvents(companyId: string) {
  const { rows } = await h.m.pool.query<{ payload: Buffer }>("SELECT payload FROM outbox WHERE exchange = $1 AND company_id = $2 ORDER BY id", [USER_EVENTS_EXCHANGE, companyId]);
  return rows.map((r) => ({ bytes: new Uint8Array(r.payload), event: decodeUserEvent(new Uint8Array(r.payload)) }));
}

const session = () => ({ refreshHash: randomBytes(32), expiresAt: timestampFromDate(new Date(Date.now() + 3600_000)), userAgent: "test", ip: "192.0.2.1" });
const argon = "$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";

test("the first owner at registration is a user added; an accepted invitation a user activated", { skip }, async () => {
  const audit = auditLog(h.m.db);
  const auth = createClient(DbAuthService, h.mem.serve((r) => void r.service(DbAuthService, authStore(h.m.db, { audit })), { from: "auth", publicMethods: [`/${DbAuthService.typeName}/RegisterCompany`] }));
  const t = randomBytes(4).toString("hex");
  const reg = await auth.registerCompany({ companyName: `Events ${t}`, ownerEmail: `olga-${t}@example.com`, ownerName: "Olga", passwordHash: argon, session: session() });
  const [owner, ...more] = await outboxUserEvents(reg.companyId);
  assert.equal(more.length, 0);
  assert.equal(owner!.event.change, UserChange.ADDED);
  assert.deepEqual([owner!.event.user?.userId, owner!.event.user?.email, owner!.event.user?.role, owner!.event.user?.status], [reg.userId, `olga-${t}@example.com`, Role.OWNER, UserStatus.ACTIVE]);
  assert.deepEqual([owner!.event.actorId, owner!.event.actorName], [reg.userId, "Olga"]);

  // An invited user accepts: activated, in the transaction that spent the token.
  const { rows } = await h.m.pool.query<{ id: string }>("INSERT INTO users (company_id, email, name, role, status) VALUES ($1, $2, 'Ann', 'member', 'invited') RETURNING id", [reg.companyId, `ann-${t}@example.com`]);
  const annId = rows[0]!.id;
  const token = randomBytes(32);
  await h.m.pool.query("INSERT INTO invite_tokens (hash, company_id, user_id, expires_at) VALUES ($1, $2, $3, now() + interval '1 day')", [createHash("sha256").update(token).digest(), reg.companyId, annId]);
  const admin = createClient(
    DbAdminService,
    h.mem.serve((r) => void r.service(DbAdminService, adminStore(h.m.db, { emails: { problem: () => undefined, queue: async () => [] }, roleToProto, statusToProto, audit })), { from: "auth", publicMethods: [`/${DbAdminService.typeName}/ConsumeInviteToken`] }),
  );
  const consumed = await admin.consumeInviteToken({ tokenHash: createHash("sha256").update(token).digest(), passwordHash: argon });
  assert.equal(consumed.userId, annId);
  const activated = (await outboxUserEvents(reg.companyId))[1]!;
  assert.equal(activated.event.change, UserChange.ACTIVATED);
  assert.deepEqual([activated.event.user?.userId, activated.event.user?.status, activated.event.actorId], [annId, UserStatus.ACTIVE, annId]);
  // A second use of the token changes nothing, and sends nothing.
  await admin.consumeInviteToken({ tokenHash: createHash("sha256").update(token).digest(), passwordHash: argon });
  assert.equal((await outboxUserEvents(reg.companyId)).length, 2);

  // The webhooks store makes them user.added and user.activated for an endpoint that asks for users.
  const tenant = await h.tenant();
  const { endpoint } = await tenant.api.createEndpoint({ url: "http://127.0.0.1:9/users", eventTypes: ["user.*"] });
  for (const e of [owner!, activated]) {
    const again = userEvent({ ...e.event, companyId: tenant.companyId });
    assert.equal((await h.store.enqueueEventDB({ userEvent: again.payload, now: timestampFromDate(new Date()) })).queued, 1);
  }
  const types = (await tenant.api.listDeliveries({ endpointId: endpoint!.endpointId, pageSize: 10 })).deliveries.map((d) => d.eventType).sort();
  assert.deepEqual(types, ["user.activated", "user.added"]);
});

test("ReplayEvents replays user, import and chat events from the delivery log too, same ids and bodies", { skip }, async () => {
  const t = await h.tenant();
  const { endpoint: early } = await t.api.createEndpoint({ url: "http://127.0.0.1:9/early", eventTypes: ["user.*", "company.*"] });
  const now = timestampFromDate(new Date());
  // A user added while the company had no record change (stamped version 0), then a record change.
  const added = userEvent({ eventId: randomUUID(), companyId: t.companyId, change: UserChange.ADDED, user: { userId: randomUUID(), email: "bo@example.com", name: "Bo" } });
  assert.equal((await h.store.enqueueEventDB({ userEvent: added.payload, now })).queued, 1);
  const kept = await h.m.pool.query<{ event_id: string; body: string; version: string }>("SELECT event_id, body, version FROM wh_deliveries WHERE endpoint_id = $1", [early!.endpointId]);
  assert.equal(kept.rows[0]!.version, "0");

  const { endpoint: late } = await t.api.createEndpoint({ url: "http://127.0.0.1:9/late", eventTypes: ["*"] });
  const { endpoint: companies } = await t.api.createEndpoint({ url: "http://127.0.0.1:9/companies", eventTypes: ["company.*"] });
  assert.equal((await t.api.replayEvents({ endpointId: late!.endpointId, sinceVersion: 0n })).queued, 1, "the user event, stamped 0, is after version 0");
  const replayed = await h.m.pool.query<{ event_id: string; body: string; status: string }>("SELECT event_id, body, status FROM wh_deliveries WHERE endpoint_id = $1", [late!.endpointId]);
  assert.deepEqual(replayed.rows, [{ event_id: kept.rows[0]!.event_id, body: kept.rows[0]!.body, status: "pending" }]);
  assert.equal((await t.api.replayEvents({ endpointId: companies!.endpointId, sinceVersion: 0n })).queued, 0, "an endpoint that does not ask for users gets none");
  assert.equal((await t.api.replayEvents({ endpointId: late!.endpointId, sinceVersion: 1n })).queued, 0, "stamped before the version asked for");
  // Another company's log is not this one's.
  const other = await h.tenant();
  const { endpoint: theirs } = await other.api.createEndpoint({ url: "http://127.0.0.1:9/theirs", eventTypes: ["*"] });
  assert.equal((await other.api.replayEvents({ endpointId: theirs!.endpointId, sinceVersion: 0n })).queued, 0);
});
