import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { Webhook } from "standardwebhooks";
import { MULTILINE_FIELDS, textProblem } from "@crm/kit";
import { createGuard, RefusedAddressError } from "./guard.js";
import { createSender } from "./sender.js";

test("refused: loopback, private, link-local, metadata, CGNAT, mapped and ULA IPv6; public addresses pass", () => {
  const g = createGuard();
  for (const a of ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "::1", "::ffff:127.0.0.1", "::ffff:7f00:1", "fd00:ec2::254", "fe80::1", "64:ff9b::a00:1"]) {
    assert.ok(g.refusal(a), a);
  }
  for (const a of ["93.184.216.34", "2606:4700::1111", "8.8.8.8"]) assert.equal(g.refusal(a), undefined, a);
  assert.equal(createGuard({ allowCidrs: ["127.0.0.0/8"] }).refusal("127.0.0.1"), undefined, "the operator's allow-list");
  assert.ok(createGuard({ allowCidrs: ["127.0.0.0/8"] }).refusal("10.0.0.1"));
  assert.equal(createGuard({ allowPrivate: true }).refusal("10.0.0.1"), undefined);
});

test("check: a name resolving to loopback is refused", async () => {
  await assert.rejects(createGuard().check("localhost"), RefusedAddressError);
  await assert.rejects(createGuard().check("[::ffff:127.0.0.1]"), RefusedAddressError);
  await createGuard({ allowCidrs: ["127.0.0.0/8", "::1/128"] }).check("localhost");
});

/** A receiver on 127.0.0.1: answers with `reply`, records what came. */
async function receiver(reply: (req: http.IncomingMessage, res: http.ServerResponse) => void) {
  const got: { headers: http.IncomingHttpHeaders; body: string }[] = [];
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c));
    req.on("end", () => {
      got.push({ headers: req.headers, body });
      reply(req, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { got, port: (server.address() as AddressInfo).port, close: () => new Promise<void>((r) => server.close(() => r())) };
}

const secret = `whsec_${Buffer.from("0123456789abcdef0123456789abcdef").toString("base64")}`;
const secret2 = `whsec_${Buffer.from("fedcba9876543210fedcba9876543210").toString("base64")}`;

test("sender: signed per Standard Webhooks (both secrets during a rotation), the answer's first bytes kept", async () => {
  const r = await receiver((_q, s) => s.writeHead(200).end("x".repeat(5000)));
  try {
    const send = createSender({ guard: createGuard({ allowCidrs: ["127.0.0.0/8"] }), timeoutMs: 2000, maxBytes: 1024 });
    const res = await send({ url: `http://127.0.0.1:${r.port}/hook`, eventId: "evt_1", body: '{"a":1}', secrets: [secret, secret2], timestamp: new Date() });
    assert.equal(res.status, 200);
    assert.equal(res.responsePrefix.length, 1024);
    const h = r.got[0]!.headers as Record<string, string>;
    assert.equal(h["webhook-id"], "evt_1");
    assert.equal(h["webhook-signature"]!.split(" ").length, 2);
    for (const s of [secret, secret2]) assert.deepEqual(new Webhook(s).verify(r.got[0]!.body, h), { a: 1 });
  } finally {
    await r.close();
  }
});

test("sender: an answer's line breaks are kept and its other control characters replaced, so the log (and its settle) takes it", async () => {
  const r = await receiver((_q, s) => s.writeHead(200).end("line 1\r\nline 2\u0000\u001b[0m"));
  try {
    const send = createSender({ guard: createGuard({ allowCidrs: ["127.0.0.0/8"] }), timeoutMs: 2000, maxBytes: 1024 });
    const res = await send({ url: `http://127.0.0.1:${r.port}/hook`, eventId: "evt_1", body: "{}", secrets: [secret], timestamp: new Date() });
    assert.equal(res.responsePrefix, "line 1\r\nline 2\uFFFD\uFFFD[0m");
    assert.equal(textProblem(res.responsePrefix, MULTILINE_FIELDS.has("response_prefix")), undefined);
  } finally {
    await r.close();
  }
});

test("sender: refuses 127.0.0.1 and a name resolving to loopback when not allowed; redirects are not followed", async () => {
  const r = await receiver((_q, s) => s.writeHead(302, { location: "http://169.254.169.254/latest/meta-data/" }).end());
  try {
    const strict = createSender({ guard: createGuard(), timeoutMs: 2000, maxBytes: 64 });
    const one = { eventId: "e", body: "{}", secrets: [secret], timestamp: new Date() };
    for (const url of [`http://127.0.0.1:${r.port}/`, `http://localhost:${r.port}/`, `http://[::ffff:127.0.0.1]:${r.port}/`, "http://10.0.0.1/", "http://169.254.169.254/latest/meta-data/"]) {
      const res = await strict({ ...one, url });
      assert.equal(res.status, 0, url);
      assert.match(res.error, /^refused/, url);
    }
    assert.equal(r.got.length, 0, "nothing reached the receiver");
    const allowed = createSender({ guard: createGuard({ allowCidrs: ["127.0.0.0/8"] }), timeoutMs: 2000, maxBytes: 64 });
    const res = await allowed({ ...one, url: `http://127.0.0.1:${r.port}/` });
    assert.equal(res.status, 302, "a redirect is an answer that failed, not followed");
    assert.equal(r.got.length, 1);
  } finally {
    await r.close();
  }
});

test("sender: a receiver that hangs is given up at the deadline", async () => {
  const r = await receiver(() => {});
  try {
    const send = createSender({ guard: createGuard({ allowCidrs: ["127.0.0.0/8"] }), timeoutMs: 300, maxBytes: 64 });
    const res = await send({ url: `http://127.0.0.1:${r.port}/`, eventId: "e", body: "{}", secrets: [secret], timestamp: new Date() });
    assert.equal(res.status, 0);
    assert.match(res.error, /no answer within 300 ms/);
  } finally {
    await r.close();
  }
});
