/**
 * All-in-one (memory revocation list, in-memory event bus, PostgreSQL): a live Subscribe stream
 * ends within 1 s of Logout, RevokeSession, LogoutAll, DeactivateUser, an admin's
 * RevokeUserSession and RevokeUserSessions (unauthenticated, session_ended) and RemoveMember (not_found), idle or busy, over gRPC (the kit's fast path) and
 * Connect on HTTP/1.1 (connect-node). Closing the app (what SIGTERM does) ends open streams with
 * unavailable. Table and assertions: stream-ends.ts.
 */
import assert from "node:assert/strict";
import http2 from "node:http2";
import { after, before, test } from "node:test";
import { Code } from "@connectrpc/connect";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { ChatService, SubscribeRequestSchema, SubscribeResponseSchema } from "@crm/gen/crm/chat/v1/chat_pb";
import { freshDatabase, installHint, need, postgresUp, until, type TestApp, type TestDatabase } from "@crm/testkit";
import { startTestApp } from "@crm/all/test-app";
import { company, sql, watch } from "./helpers.js";
import { endings, runEnding, type StreamSetup } from "./stream-ends.js";

const skip = need("PostgreSQL", await postgresUp(), installHint.postgres);

let db: TestDatabase;
let app: TestApp;
let setup: StreamSetup;
before(async () => {
  if (skip) return;
  db = await freshDatabase();
  app = await startTestApp({ DATABASE_URL: db.url, AMQP_URL: "", REDIS_URL: "", CHAT_HEARTBEAT_MS: "60000" });
  setup = {
    app,
    dbUrl: db.url,
    places: [
      { name: "gRPC", chat: (token) => app.client(ChatService, { token, protocol: "grpc" }) },
      { name: "Connect HTTP/1.1", chat: (token) => app.client(ChatService, { token }) },
    ],
  };
});
after(async () => {
  await app?.close();
  await db?.drop();
});

for (const ending of endings) {
  for (const busy of [false, true]) {
    test(`all-in-one: ${ending.name} ends a live stream (${busy ? "busy" : "idle"} chat) within 1 s with ${Code[ending.code]}`, { skip, timeout: 60_000 }, () => runEnding(setup, ending, busy));
  }
}

test("all-in-one: a removed member's stream ends without delivering the live messages still queued for a client that stopped reading", { skip, timeout: 60_000 }, async () => {
  const { owner, users } = await company(app, db.url, 1);
  const ann = users[0]!;
  const { chat } = await owner.chat.createChat({ name: "Slow reader", memberIds: [ann.userId] });
  const chatId = chat!.chatId;
  // A gRPC Subscribe on bare HTTP/2 whose reading the test pauses: the server soon waits for the
  // client's flow-control window, and the live messages after that wait in the stream's queue.
  const session = http2.connect(app.baseUrl);
  try {
    const req = session.request({ ":method": "POST", ":path": `/${ChatService.typeName}/Subscribe`, "content-type": "application/grpc", te: "trailers", authorization: `Bearer ${ann.token}` });
    const body = toBinary(SubscribeRequestSchema, create(SubscribeRequestSchema, { chatId }));
    const head = Buffer.alloc(5);
    head.writeUInt32BE(body.length, 1);
    req.end(Buffer.concat([head, body]));
    let buffered = Buffer.alloc(0);
    let heartbeats = 0;
    let messages = 0;
    let status: string | undefined;
    req.on("trailers", (t) => (status = String(t["grpc-status"])));
    req.on("response", (h) => h["grpc-status"] !== undefined && (status = String(h["grpc-status"])));
    req.on("data", (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 5 && buffered.length >= 5 + buffered.readUInt32BE(1)) {
        const ev = fromBinary(SubscribeResponseSchema, buffered.subarray(5, 5 + buffered.readUInt32BE(1)));
        buffered = buffered.subarray(5 + buffered.readUInt32BE(1));
        if (ev.event.case === "heartbeat") heartbeats++;
        else messages++;
      }
    });
    const ended = new Promise<void>((resolve) => req.once("close", resolve));
    await until("the stream to go live", () => heartbeats > 0);
    req.pause();
    const sent = 300;
    const content = "x".repeat(3_000);
    for (let i = 0; i < sent; i++) await owner.chat.sendMessage({ chatId, content });
    await owner.chat.removeMember({ chatId, userId: ann.userId });
    // The relay deletes an outbox row after publishing it, and this process's bus hands it to the
    // hub before the next poll can answer: the replica has heard of the removal before reading resumes.
    await until("the removal's event to be published", async () => (await sql<{ n: string }>(db.url, "SELECT count(*) AS n FROM outbox"))[0]!.n === "0");
    req.resume();
    await ended;
    assert.equal(status, String(Code.NotFound), "ends with not_found");
    assert.ok(messages < sent, `${messages} of the ${sent} messages queued before the removal were delivered after it; the stream must end ahead of them`);
  } finally {
    session.destroy();
  }
});

test("all-in-one: closing the app (SIGTERM's drain) ends open streams with unavailable, not OK", { skip, timeout: 60_000 }, async () => {
  const own = await startTestApp({ DATABASE_URL: db.url, AMQP_URL: "", REDIS_URL: "", CHAT_HEARTBEAT_MS: "60000" });
  try {
    const { owner } = await company(own, db.url, 0);
    const { chat } = await owner.chat.createChat({ name: "Drained" });
    const streams = [watch(own.client(ChatService, { token: owner.token, protocol: "grpc" }), chat!.chatId), watch(own.client(ChatService, { token: owner.token }), chat!.chatId)];
    for (const w of streams) await w.live();
    await own.close();
    for (const w of streams) {
      assert.ok(w.ended);
      assert.equal(Code[w.error?.code ?? Code.Unknown], Code[Code.Unavailable], w.error?.rawMessage ?? "ended with OK");
      assert.equal(w.error?.rawMessage, "server is shutting down; reconnect");
    }
  } finally {
    await own.close().catch(() => {});
  }
});
