/**
 * SaveLogs through the all-in-one app into a stand-in Loki, and every service's error reports
 * reaching Loki through the logs service in the background.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { createLogger, reportError } from "@crm/kit";
import { LogLevel, LogsService } from "@crm/gen/crm/logs/v1/logs_pb";
import type { TestApp } from "@crm/testkit";
import { newCompany, startApp } from "./app.js";
import { startLokiReceiver, type LokiReceiver } from "./loki-receiver.js";

let loki: LokiReceiver;
let app: TestApp;
let owner: Awaited<ReturnType<typeof newCompany>>;
before(async () => {
  loki = await startLokiReceiver();
  app = await startApp({ LOKI_URL: loki.url, LOKI_FLUSH_MS: "20", LOKI_RETRY_FIRST_MS: "10", LOKI_RETRY_MAX_MS: "50" });
  owner = await newCompany(app);
});
after(async () => {
  await app?.close();
  await loki?.close();
});

const expectCode = async (p: Promise<unknown>, code: Code, re?: RegExp) => {
  await assert.rejects(p, (err) => {
    assert.ok(err instanceof ConnectError, String(err));
    assert.equal(err.code, code, err.message);
    if (re) assert.match(err.message, re);
    return true;
  });
};

test("SaveLogs ships entries to Loki; company and user come from the token", async () => {
  const logs = app.client(LogsService, { token: owner.token });
  const marker = `m-${Date.now()}`;
  const res = await logs.saveLogs({
    entries: [
      { name: "web", level: LogLevel.WARN, message: `${marker} one`, traceId: "4bf92f3577b34da6a3ce929d0e0e4736", attributes: { page: "/chats" } },
      { name: "web", level: LogLevel.ERROR, message: `${marker} two`, companyId: "11111111-1111-4111-8111-111111111111" },
    ],
  });
  assert.equal(res.accepted, 2);
  await loki.waitFor((r) => r.entries.filter((e) => String(e.parsed.msg).startsWith(marker)).length === 2);
  const mine = loki.entries.filter((e) => String(e.parsed.msg).startsWith(marker));
  assert.deepEqual(loki.violations, []);
  for (const e of mine) {
    assert.equal(e.parsed.company_id, owner.companyId, "the token's company, not the request's");
    assert.equal(e.parsed.user_id, owner.userId);
  }
  assert.deepEqual(mine[0]!.labels, { service: "other", level: "warn" });
  assert.equal(mine[0]!.parsed.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
});

test("bad entries: invalid_argument naming each field, and nothing of the batch is shipped", async () => {
  const logs = app.client(LogsService, { token: owner.token });
  const marker = `bad-${Date.now()}`;
  await expectCode(
    logs.saveLogs({ entries: [{ name: "web", message: `${marker} fine` }, { name: "", level: 9 as LogLevel, message: "" }, { name: "web", message: `${marker} x`, traceId: "nope" }] }),
    Code.InvalidArgument,
    /entries\[1\]\.name: .*entries\[1\]\.level: .*entries\[1\]\.message: .*entries\[2\]\.traceId: /,
  );
  await expectCode(logs.saveLogs({ entries: [] }), Code.InvalidArgument, /entries: /);
  await expectCode(logs.saveLogs({ entries: Array.from({ length: 1001 }, () => ({ name: "web", message: "m" })) }), Code.ResourceExhausted, /at most 1000/);
  await expectCode(app.client(LogsService).saveLogs({ entries: [{ name: "web", message: "m" }] }), Code.Unauthenticated);
  // A later good entry arrives; the rejected batch's never does.
  await logs.saveLogs({ entries: [{ name: "web", message: `${marker} after` }] });
  await loki.waitFor((r) => r.entries.some((e) => e.parsed.msg === `${marker} after`));
  assert.deepEqual(loki.entries.filter((e) => String(e.parsed.msg).startsWith(marker)).map((e) => e.parsed.msg), [`${marker} after`]);
});

test("SaveLogs answers at once while Loki hangs; the entries follow when it recovers", async () => {
  loki.mode = "hang";
  try {
    const logs = app.client(LogsService, { token: owner.token });
    const marker = `hang-${Date.now()}`;
    const pushesBefore = loki.pushes.length;
    for (let i = 0; i < 3; i++) assert.equal((await logs.saveLogs({ entries: [{ name: "web", message: `${marker} ${i}` }] })).accepted, 1);
    assert.equal(loki.pushes.length, pushesBefore, "Loki has answered nothing yet, SaveLogs did not wait for it");
    loki.release();
    await loki.waitFor((r) => r.entries.filter((e) => String(e.parsed.msg).startsWith(marker)).length === 3);
  } finally {
    loki.release();
  }
});

test("a service's error log reaches Loki through the logs service, with its trace id and request fields", async () => {
  const marker = `err-${Date.now()}`;
  // What the kit's error interceptor does for an unhandled error (an `internal` answer) — any log.error takes this path.
  createLogger("chats").error({ err: new Error(`${marker} database exploded`), rpc: "/crm.chat.v1.ChatService/SendMessage" }, "unhandled error");
  reportError({ service: "timers", level: "fatal", message: `${marker} direct`, time: new Date(), traceId: "0af7651916cd43dd8448eb211c80319c", attributes: {} });
  await loki.waitFor((r) => r.entries.filter((e) => String(e.parsed.msg).includes(marker) || JSON.stringify(e.parsed.attrs ?? {}).includes(marker)).length === 2);
  const err = loki.entries.find((e) => e.parsed.msg === "unhandled error" && JSON.stringify(e.parsed.attrs).includes(marker))!;
  assert.deepEqual(err.labels, { service: "chats", level: "error" });
  const attrs = err.parsed.attrs as Record<string, string>;
  assert.equal(attrs.rpc, "/crm.chat.v1.ChatService/SendMessage");
  assert.match(attrs.error!, /database exploded/);
  assert.match(attrs.stack!, /logs-service\.test\.ts/);
  const direct = loki.entries.find((e) => e.parsed.msg === `${marker} direct`)!;
  assert.deepEqual(direct.labels, { service: "timers", level: "fatal" });
  assert.equal(direct.parsed.trace_id, "0af7651916cd43dd8448eb211c80319c");
});
