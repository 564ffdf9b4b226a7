/**
 * Renewed certificates at the gateway without a restart (entrypoint/40-crm-reload-on-change.sh,
 * issue 20 item 1): the loop notices the renewed files and reloads nginx; requests running through
 * the real nginx meanwhile do not fail, and new connections show the new certificate to clients and
 * to the services behind it.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import tls from "node:tls";
import { after, before, describe, it } from "node:test";
import { needNone, until } from "@crm/testkit";
import { ensureCert } from "../../../scripts/certs.mjs";
import { nginxProblem } from "../run.mjs";
import { startGatewayFixture, type GatewayFixture } from "./fixture.ts";
import { repoRoot, request } from "./helpers.ts";

const skip = needNone(nginxProblem());
const script = join(repoRoot, "services/gateway/entrypoint/40-crm-reload-on-change.sh");

/** The serial number of the certificate the gateway shows on a new connection. */
function shownSerial(gw: GatewayFixture): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: "127.0.0.1", port: gw.port, servername: "localhost", ca: gw.ca });
    socket.once("secureConnect", () => {
      resolve(socket.getPeerCertificate().serialNumber);
      socket.destroy();
    });
    socket.once("error", reject);
  });
}

describe("certificate renewal at the gateway", { skip, timeout: 120_000 }, () => {
  let gw: GatewayFixture;
  before(async () => {
    gw = await startGatewayFixture();
  });
  after(async () => {
    await gw?.close();
  });

  it("the reload loop picks up renewed certificates: 0 failed requests, new connections show them both ways", async () => {
    const certFile = gw.pki.cert("gateway");
    const serialOf = () => new X509Certificate(readFileSync(certFile)).serialNumber;
    const old = serialOf();
    assert.equal(await shownSerial(gw), old);

    const loop = spawn("sh", [script, "--loop"], {
      env: { PATH: process.env.PATH ?? "", CRM_GW_RELOAD_FILES: `${certFile} ${gw.pki.key("gateway")} ${gw.pki.ca}`, CRM_GW_RELOAD_INTERVAL: "0.1", CRM_GW_RUNTIME_DIR: gw.nginx.dir },
      stdio: ["ignore", "ignore", "pipe"],
    });
    const said: string[] = [];
    loop.stderr.on("data", (d: Buffer) => said.push(d.toString()));
    try {
      // Load: 6 callers, each request on a new TLS connection, through nginx to the stub (auth).
      let ok = 0;
      const failures: string[] = [];
      let stop = false;
      const callers = Array.from({ length: 6 }, async () => {
        while (!stop) {
          try {
            const res = await request({ port: gw.port, ca: gw.ca, path: "/crm.auth.v1.AuthService/GetJwks", method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
            if (res.status === 200) ok++;
            else failures.push(`${res.status} ${res.body}`);
          } catch (err) {
            failures.push(String(err));
          }
        }
      });
      await until("requests before the renewal", () => ok >= 30 || failures.length > 0, 30_000);

      ensureCert(gw.pki.dir, "gateway", { force: true }); // key, then certificate: as a renewal writes them
      const renewed = serialOf();
      assert.notEqual(renewed, old);
      await until("new connections to show the renewed certificate", async () => (await shownSerial(gw)) === renewed, 30_000);
      const seenBefore = gw.stub.seen.length;
      const okBefore = ok;
      await until("requests after the renewal", () => ok >= okBefore + 30 || failures.length > 0, 30_000);
      stop = true;
      await Promise.all(callers);
      assert.deepEqual(failures, [], "no request failed while nginx reloaded");
      assert.match(said.join(""), /nginx reloads/);
      const upstream = gw.stub.seen.slice(seenBefore).map((s) => s.peerSerial);
      assert.ok(upstream.includes(renewed), "nginx's new upstream connections show the renewed client certificate to the service");
      assert.ok(gw.nginx.running, "nginx kept running");
    } finally {
      loop.kill();
    }
  });
});
