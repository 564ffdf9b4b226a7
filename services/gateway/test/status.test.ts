/**
 * The gateway's connection counters (issue 20 item 5): nginx's stub_status on a unix socket in its
 * runtime folder, for the nginx-prometheus-exporter sidecar the chart runs beside it
 * (gateway.metrics). Not reachable on any TCP port.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { request as httpRequest } from "node:http";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { needNone, until } from "@crm/testkit";
import { nginxProblem } from "../run.mjs";
import { startGatewayFixture, type GatewayFixture } from "./fixture.ts";
import { request } from "./helpers.ts";

const skip = needNone(nginxProblem());

function overSocket(socketPath: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((ok, fail) => {
    const req = httpRequest({ socketPath, path, agent: false }, (res) => {
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

  it("keeps its counters through a reload (a renewed certificate reloads nginx)", async () => {
    const socket = join(gw.dir, "gateway", "status.sock");
    const served = async () => Number(/\n \d+ \d+ (\d+) \n/.exec((await overSocket(socket, "/stub_status")).body)![1]);
    const workers = () => execFileSync("ps", ["-o", "pid=,args=", "--ppid", String(gw.nginx.pid)], { encoding: "utf8" }).split("\n").filter((l) => /worker process/.test(l)).map((l) => l.trim().split(/\s+/)[0]).sort().join(" ");
    const before = await served();
    const oldWorkers = workers();
    gw.nginx.reload();
    await until("nginx to replace its workers", () => workers() !== oldWorkers && !workers().split(" ").some((p) => oldWorkers.split(" ").includes(p)), 15_000);
    const after = await served();
    assert.ok(after > before, `requests served: ${before} before the reload, ${after} after`);
  });

  it("is not served on the public ports", async () => {
    const res = await request({ port: gw.port, ca: gw.ca, path: "/stub_status", method: "GET" });
    assert.doesNotMatch(res.body, /Active connections/);
    assert.notEqual(res.status, 200);
  });
});
