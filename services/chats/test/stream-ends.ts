/**
 * What ends a live Subscribe stream, as a table both the all-in-one and the replica tests run: each
 * way a session or a membership ends, with the chat idle or busy (messages flowing), against streams
 * on every replica (and protocol) the setup offers. A stream must end with the right code within
 * 1 s of the answer of the call that ended it; the heartbeat is a minute, so only the pushed
 * events (revocation list, chat.events) can end it in time.
 */
import assert from "node:assert/strict";
import { Code, type Client } from "@connectrpc/connect";
import { AdminService } from "@crm/gen/crm/admin/v1/admin_pb";
import { AuthService } from "@crm/gen/crm/auth/v1/auth_pb";
import type { ChatService } from "@crm/gen/crm/chat/v1/chat_pb";
import { until, type TestApp } from "@crm/testkit";
import { PASSWORD, company, watch, type User } from "./helpers.js";

export interface StreamSetup {
  app: TestApp;
  dbUrl: string;
  /** Where streams are opened: one ChatService client per replica/protocol for a token. */
  places: { name: string; chat(token: string): Client<typeof ChatService> }[];
}

interface Case {
  name: string;
  code: Code;
  reason?: string;
  /** Ends the subscriber's right to the stream; resolves with the answer of the call that did it. */
  act(s: StreamSetup, c: { owner: User; ann: User; chatId: string }): Promise<unknown>;
}

const sessionOf = (token: string): string => (JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString("utf8")) as { sid: string }).sid;

/** A second session of the same user (a new login). */
async function loginAgain(app: TestApp, email: string): Promise<string> {
  return (await app.client(AuthService).login({ email, password: PASSWORD })).accessToken;
}

export const endings: Case[] = [
  { name: "Logout", code: Code.Unauthenticated, reason: "session_ended", act: (s, c) => s.app.client(AuthService, { token: c.ann.token }).logout({}) },
  {
    name: "RevokeSession (from another session of the same user)",
    code: Code.Unauthenticated,
    reason: "session_ended",
    act: async (s, c) => s.app.client(AuthService, { token: await loginAgain(s.app, c.ann.email) }).revokeSession({ sessionId: sessionOf(c.ann.token) }),
  },
  {
    name: "LogoutAll (from another session of the same user)",
    code: Code.Unauthenticated,
    reason: "session_ended",
    act: async (s, c) => s.app.client(AuthService, { token: await loginAgain(s.app, c.ann.email) }).logoutAll({}),
  },
  {
    name: "DeactivateUser (by the owner)",
    code: Code.Unauthenticated,
    reason: "session_ended",
    act: (s, c) => s.app.client(AdminService, { token: c.owner.token }).deactivateUser({ userId: c.ann.userId }),
  },
  {
    name: "RevokeUserSession (by the owner, the account stays active)",
    code: Code.Unauthenticated,
    reason: "session_ended",
    act: (s, c) => s.app.client(AdminService, { token: c.owner.token }).revokeUserSession({ userId: c.ann.userId, sessionId: sessionOf(c.ann.token) }),
  },
  {
    name: "RevokeUserSessions (by the owner, the account stays active)",
    code: Code.Unauthenticated,
    reason: "session_ended",
    act: (s, c) => s.app.client(AdminService, { token: c.owner.token }).revokeUserSessions({ userId: c.ann.userId }),
  },
  {
    name: "RemoveMember (by the owner)",
    code: Code.NotFound,
    act: (s, c) => c.owner.chat.removeMember({ chatId: c.chatId, userId: c.ann.userId }),
  },
];

/** Runs one ending, idle or busy, and asserts every stream ended in time with the right code. */
export async function runEnding(s: StreamSetup, ending: Case, busy: boolean) {
  const label = `${ending.name}, ${busy ? "busy" : "idle"} chat`;
  const { owner, users } = await company(s.app, s.dbUrl, 1);
  const ann = users[0]!;
  const { chat } = await owner.chat.createChat({ name: label, memberIds: [ann.userId] });
  const chatId = chat!.chatId;
  const streams = s.places.map((p) => ({ place: p.name, w: watch(p.chat(ann.token), chatId) }));
  for (const { w } of streams) await w.live();

  let sending = busy;
  let sent = 0;
  const sender = (async () => {
    while (sending) {
      await owner.chat.sendMessage({ chatId, content: `busy ${++sent}` });
    }
  })();
  try {
    if (busy) for (const { w } of streams) await w.count(3);
    await ending.act(s, { owner, ann, chatId });
    const answered = performance.now();
    await until(`${label}: every stream to end`, () => streams.every(({ w }) => w.ended), 10_000);
    for (const { place, w } of streams) {
      const ms = w.endedAt - answered;
      assert.ok(ms < 1_000, `${label} on ${place}: ended ${ms.toFixed(0)} ms after the answer (must be < 1 s)`);
      assert.equal(Code[w.error?.code ?? Code.Unknown], Code[ending.code], `${label} on ${place}: ${w.error ? `${Code[w.error.code]}: ${w.error.rawMessage}` : "ended with OK"}`);
      if (ending.reason) assert.equal(w.error?.metadata.get("crm-error"), ending.reason, `${label} on ${place}`);
      if (busy) assert.ok(w.messages.length >= 3, `${label} on ${place}: messages were flowing`);
    }
  } finally {
    sending = false;
    await sender;
    for (const { w } of streams) await w.close();
  }
}
