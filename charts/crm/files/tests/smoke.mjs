// helm test: register a throwaway company through the front door, then call one RPC of every
// service with its access token (Connect JSON), and check that internal crm.db.v1 is NOT exposed.
// Runs in the CRM image (node, no dependencies). Settings from the environment:
//   CRM_TEST_URL      https://<release>-crm-gateway:443 (or the all-in-one http URL)
//   CRM_TEST_CA / CRM_TEST_CERT / CRM_TEST_KEY   CA to trust, and a client certificate if the
//                     gateway asks for one (files; optional)
//   CRM_TEST_CHECK_DB "1" to check that /crm.db.v1.* answers 404
import { randomBytes, randomInt, randomUUID } from "node:crypto";
import { readFileSync, existsSync } from "node:fs";
import http from "node:http";
import https from "node:https";

const base = new URL(process.env.CRM_TEST_URL ?? "http://127.0.0.1:8080");
const file = (name) => (process.env[name] && existsSync(process.env[name]) ? readFileSync(process.env[name]) : undefined);
const tls = { ca: file("CRM_TEST_CA"), cert: file("CRM_TEST_CERT"), key: file("CRM_TEST_KEY") };

function call(path, body, token) {
  const url = new URL(path, base);
  const payload = Buffer.from(JSON.stringify(body ?? {}));
  const headers = { "content-type": "application/json", "connect-protocol-version": "1", "content-length": payload.length };
  if (token) headers.authorization = `Bearer ${token}`;
  const mod = url.protocol === "https:" ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(url, { method: "POST", headers, timeout: 15000, ...(url.protocol === "https:" ? tls : {}) }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString();
        let json;
        try { json = JSON.parse(text); } catch { json = { raw: text }; }
        resolve({ status: res.statusCode, body: json });
      });
    });
    req.on("timeout", () => req.destroy(new Error(`timeout calling ${path}`)));
    req.on("error", reject);
    req.end(payload);
  });
}

let failed = 0;
function check(name, ok, detail) {
  console.log(`${ok ? "ok  " : "FAIL"} ${name}${ok ? "" : ` -> ${JSON.stringify(detail)}`}`);
  if (!ok) failed++;
}

const suffix = randomBytes(6).toString("hex");
const reg = await call("/crm.auth.v1.AuthService/RegisterCompany", {
  companyName: `helm-test-${suffix}`,
  address: "1 Test Street",
  email: `helm-test-${suffix}@example.com`,
  phone: `+1555${String(randomInt(0, 10_000_000)).padStart(7, "0")}`,
  password: `${randomBytes(12).toString("base64url")}-Aa1`,
  ownerName: "Helm Test",
  locale: "en",
});
check("auth RegisterCompany", reg.status === 200 && typeof reg.body.accessToken === "string", reg);
const token = reg.body.accessToken;
if (!token) process.exit(1);

// "reached the service": a 200, or an error the service itself gave (not the gateway's 404/502)
const fromService = (r) => r.status === 200 || (r.status < 500 && r.body.code && r.body.message !== "no such route" && r.status !== 401);

const rpcs = [
  ["auth Check", "/crm.auth.v1.AuthService/Check", {}, (r) => r.status === 200 && r.body.companyId === reg.body.companyId],
  ["chats ListChats", "/crm.chat.v1.ChatService/ListChats", { pageSize: 1 }, (r) => r.status === 200],
  ["timers GetWorkingTimer", "/crm.timer.v1.TimerService/GetWorkingTimer", {}, (r) => r.status === 200],
  ["admin ListUsers", "/crm.admin.v1.AdminService/ListUsers", { pageSize: 1 }, (r) => r.status === 200],
  ["email GetEmailStatus", "/crm.email.v1.EmailService/GetEmailStatus", { emailId: randomUUID() }, (r) => fromService(r) && (r.status === 200 || r.body.code === "not_found")],
  ["logs SaveLogs", "/crm.logs.v1.LogsService/SaveLogs", { entries: [{ name: "helm-test", level: "LOG_LEVEL_INFO", message: `helm test ${suffix}` }] }, (r) => r.status === 200],
  ["cache Save", "/crm.cache.v1.CacheService/Save", { key: `helm-test-${suffix}`, value: Buffer.from("ok").toString("base64"), ttlSeconds: 60 }, (r) => r.status === 200],
  ["cache Get", "/crm.cache.v1.CacheService/Get", { key: `helm-test-${suffix}` }, (r) => r.status === 200 && Buffer.from(r.body.value ?? "", "base64").toString() === "ok"],
];
for (const [name, path, body, ok] of rpcs) {
  const r = await call(path, body, token);
  check(name, ok(r), r);
}
if (process.env.CRM_TEST_CHECK_DB === "1") {
  const r = await call("/crm.db.v1.DbAuthService/LoginDB", { email: "x@example.com" }, token);
  check("crm.db.v1 is not reachable from outside", r.status === 404, r);
}
console.log(failed ? `${failed} check(s) failed` : "all checks passed");
process.exit(failed ? 1 : 0);
