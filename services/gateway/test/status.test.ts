/**
 * The gateway's connection counters (issue 20 item 5): nginx's stub_status on a unix socket in its
 * runtime folder, for the nginx-prometheus-exporter sidecar the chart runs beside it
 * (gateway.metrics). Not reachable on any TCP port.
 */
import assert from "node:assert/strict";
import { request as httpRequest } from "node:http";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { needNone } from "@crm/testkit";
import { nginxProblem } from "../run.mjs";
import { startGatewayFixture, type GatewayFixture } from "./fixture.ts";
import { request } from "./helpers.ts";

const skip = needNone(nginxProblem());

function overSocket(socketPath: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((ok, fail) => {
    const req = httpRequest({ socketPath, path }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => ok({ status: res.statusCode!, body }));
    });
    req.on("error", fail);
    req.end();
  });
}

describe("gateway status socket", { skip, timeout: 120_000 }, () => {
  let gw: GatewayFixture;
  before(async () => {
    gw = await startGatewayFixture();
  });
  after(async () => {
    await gw?.close();
  });

  it("answers stub_status on the runtime folder's status.sock, counting the requests served", async () => {
    const socket = join(gw.dir, "gateway", "status.sock");
    const first = await overSocket(socket, "/stub_status");
    assert.equal(first.status, 200);
    assert.match(first.body, /^Active connections: \d+ \nserver accepts handled requests\n \d+ \d+ \d+ \nReading: \d+ Writing: \d+ Waiting: \d+ \n$/);
    const served = (body: string) => Number(/\n \d+ \d+ (\d+) \n/.exec(body)![1]);
    await request({ port: gw.port, ca: gw.ca, path: "/healthz", method: "GET" });
    const second = await overSocket(socket, "/stub_status");
    assert.ok(served(second.body) >= served(first.body) + 2, `${served(first.body)} -> ${served(second.body)}`);
    assert.equal((await overSocket(socket, "/")).status, 404);
  });

  it("is not served on the public ports", async () => {
    const res = await request({ port: gw.port, ca: gw.ca, path: "/stub_status", method: "GET" });
    assert.doesNotMatch(res.body, /Active connections/);
    assert.notEqual(res.status, 200);
  });
});
