/**
 * Imports and exports as plain HTTP through the gateway (services/records/src/import-http.ts):
 * POST /imports/<id>/file, GET /imports/<id>/errors.csv, POST /exports and
 * GET /exports/<companies|people|deals>.csv go to records with the token checked as for RPCs.
 * Only the upload (and its RPC, UploadImport) takes a large body, and it is streamed to records as it arrives (records sees
 * the request before the client has sent all of it), not spooled by nginx first.
 */
import assert from "node:assert/strict";
import https from "node:https";
import { after, before, describe, it } from "node:test";
import { needNone } from "@crm/testkit";
import { nginxProblem } from "../run.mjs";
import { startGatewayFixture, type GatewayFixture } from "./fixture.ts";
import { request } from "./helpers.ts";

const skip = needNone(nginxProblem());
const ID = "0b6c4a52-3c1e-4a43-9d5e-7f2f3a1b9c01";

describe("imports and exports through the gateway", { skip, timeout: 120_000 }, () => {
  let gw: GatewayFixture;
  let token: string;
  before(async () => {
    gw = await startGatewayFixture();
    token = await gw.tokens.sign({});
  });
  after(async () => {
    await gw?.close();
  });
  const call = (path: string, method: string, body?: Buffer | string, auth = true) =>
    request({ port: gw.port, ca: gw.ca, path, method, headers: { "content-type": "text/csv", ...(auth ? { authorization: `Bearer ${token}` } : {}) }, ...(body === undefined ? {} : { body }), timeoutMs: 60_000 });

  it("routes the four endpoints to records with the caller's identity", async () => {
    for (const [path, method, body] of [
      [`/imports/${ID}/file`, "POST", "email\na@x.example\n"],
      [`/imports/${ID}/errors.csv`, "GET", undefined],
      ["/exports", "POST", '{"objectType":"OBJECT_TYPE_PERSON"}'],
      ["/exports/people.csv?orderBy=last_name", "GET", undefined],
    ] as const) {
      const res = await call(path, method, body);
      assert.equal(res.status, 200, `${path}: ${res.body}`);
      assert.equal(res.json().host, "records", path);
      assert.equal(res.json().path, path.split("?")[0]);
      assert.ok(res.json().userId, `${path}: the verified identity went along`);
      assert.equal(gw.stub.seen.at(-1)!.authorization, `Bearer ${token}`);
    }
  });

  it("without a token: 401 JSON, records never asked; other paths under /imports/ are 404", async () => {
    const before = gw.stub.seen.length;
    for (const [path, method] of [[`/imports/${ID}/file`, "POST"], ["/exports/deals.csv", "GET"], ["/exports", "POST"]] as const) {
      const res = await call(path, method, method === "POST" ? "x" : undefined, false);
      assert.equal(res.status, 401, path);
      assert.equal(res.json().code, "unauthenticated");
    }
    for (const path of ["/imports/not-an-id/file", `/imports/${ID}/other`, "/exports/secrets.csv"]) {
      assert.equal((await call(path, "GET")).status, 404, path);
    }
    assert.equal(gw.stub.seen.length, before);
  });

  it("the upload alone (HTTP or UploadImport) takes a body over the gateway's 4 MiB limit; exports and other RPCs keep theirs", async () => {
    const big = Buffer.alloc(6 << 20, "a,b\n");
    const up = await call(`/imports/${ID}/file`, "POST", big);
    assert.equal(up.status, 200, up.body.slice(0, 200));
    assert.equal(up.json().body.length, big.length, "every byte reached records");
    assert.equal((await call("/exports", "POST", Buffer.alloc(300 << 10, " "))).status, 413);
    const rpc = await call("/crm.records.v1.ImportService/UploadImport", "POST", big);
    assert.equal(rpc.status, 200, "UploadImport, the same upload as RPC chunks, takes it too");
    assert.equal(rpc.json().host, "records");
    assert.equal((await call("/crm.records.v1.CompanyService/CreateCompany", "POST", big)).status, 413);
  });

  it("the upload is streamed: records has the request before the client sent the whole body", async () => {
    const path = `/imports/${ID}/file`;
    const seen = () => gw.stub.seen.some((s) => s.path === path && s.method === "PUT");
    const req = https.request({ host: "127.0.0.1", port: gw.port, path, method: "PUT", ca: gw.ca, servername: "localhost", agent: false, headers: { authorization: `Bearer ${token}`, "content-type": "text/csv", "transfer-encoding": "chunked" } });
    const answer = new Promise<number>((resolve, reject) => {
      req.on("response", (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      });
      req.on("error", reject);
    });
    req.write("email\n" + "a@x.example\n".repeat(10_000));
    const deadline = Date.now() + 30_000;
    while (!seen() && Date.now() < deadline) await new Promise((r) => setImmediate(r));
    assert.ok(seen(), "records got the request while the body was still coming");
    req.end("b@x.example\n");
    assert.equal(await answer, 200);
  });
});
