/**
 * All-in-one (memory revocation list, in-memory event bus, PostgreSQL): a live Subscribe stream
 * ends within 1 s of Logout, RevokeSession, LogoutAll, DeactivateUser (unauthenticated,
 * session_ended) and RemoveMember (not_found), idle or busy, over gRPC (the kit's fast path) and
 * Connect on HTTP/1.1 (connect-node). Closing the app (what SIGTERM does) ends open streams with
 * unavailable. Table and assertions: stream-ends.ts.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Code } from "@connectrpc/connect";
import { ChatService } from "@crm/gen/crm/chat/v1/chat_pb";
import { freshDatabase, installHint, need, postgresUp, startTestApp, type TestApp, type TestDatabase } from "@crm/testkit";
import { company, watch } from "./helpers.js";
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
