/**
 * grpcurl / buf curl through the gateway (issue 20 item 4): server reflection (grpc.reflection.v1
 * and v1alpha) is routed to auth for callers with an ops client certificate (a CN listed in
 * CRM_GW_OPS_CLIENTS), and auth's kit server describes every API the gateway routes
 * (packages/kit/src/public-api.ts). Real nginx, real `buf curl`, a kit server as auth.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { DescService } from "@bufbuild/protobuf";
import { AppError, createLogger, startServer, type RunningServer, type TokenVerifier } from "@crm/kit";
import { publicApi, reflectedBy } from "@crm/kit/public-api";
import { needNone } from "@crm/testkit";
import { ensureCert } from "../../../scripts/certs.mjs";
import { nginxProblem } from "../run.mjs";
import { startGatewayFixture, type GatewayFixture } from "./fixture.ts";
import { repoRoot } from "./helpers.ts";

const skip = needNone(nginxProblem());
const buf = join(repoRoot, "node_modules/.bin/buf");
const nobody: TokenVerifier = { verify: async () => { throw new AppError("token_invalid", "no tokens in this test"); } };

describe("server reflection through the gateway", { skip, timeout: 180_000 }, () => {
  let gw: GatewayFixture;
  let auth: RunningServer | undefined;
  before(async () => {
    gw = await startGatewayFixture({
      vars: { CRM_GW_OPS_CLIENTS: "ops, platform-ops" },
      upstreams: async (pki) => {
        ensureCert(pki.dir, "ops"); // an operator's certificate from the client CA
        // auth as the cluster runs it: a kit server describing the public API (runtime.ts: reflectedBy)
        auth = await startServer({
          modules: [],
          port: 0,
          host: "127.0.0.1",
          log: createLogger("auth", "silent"),
          verifier: nobody,
          tls: { cert: readFileSync(pki.cert("stub")), key: readFileSync(pki.key("stub")), ca: readFileSync(pki.ca), clientAuth: "require", serviceIdentities: new Set(["gateway"]) },
          reflect: reflectedBy("auth"),
          readMaxBytes: 1 << 20,
          shutdownTimeoutMs: 1_000,
        });
        return { auth: auth.port };
      },
    });
  });
  after(async () => {
    await gw?.close();
    await auth?.close();
  });

  /** `buf curl` through the gateway, with the client certificate `cert` (none: undefined). Not spawnSync: auth answers from this process. */
  const bufCurl = (cert: string | undefined, ...args: string[]) => {
    const tls = ["--cacert", gw.pki.ca, ...(cert ? ["--cert", gw.pki.cert(cert), "--key", gw.pki.key(cert)] : [])];
    return new Promise<{ status: number; out: string; err: string }>((resolve) => {
      execFile(buf, ["curl", "--protocol", "grpc", ...tls, ...args], { encoding: "utf8", timeout: 60_000 }, (err, out, stderr) =>
        resolve({ status: err ? Number((err as { code?: unknown }).code ?? 1) || 1 : 0, out, err: stderr }),
      );
    });
  };
  const base = () => `https://localhost:${gw.port}`;

  it("an ops certificate lists every public service (v1), and none of the internal crm.db.v1", async () => {
    const res = await bufCurl("ops", "--list-services", base());
    assert.equal(res.status, 0, res.err);
    const listed = res.out.trim().split("\n").sort();
    assert.deepEqual(listed, [...publicApi.map((s) => s.typeName), "grpc.health.v1.Health"].sort());
  });

  it("v1alpha reflection lists the methods too (older grpcurl asks it first)", async () => {
    const res = await bufCurl("ops", "--reflect-protocol", "grpc-v1alpha", "--list-methods", base());
    assert.equal(res.status, 0, res.err);
    for (const m of ["crm.chat.v1.ChatService/SendMessage", "crm.auth.v1.AuthService/Login", "crm.records.v1.DealService/CreateDeal"]) assert.ok(res.out.split("\n").includes(m), `${m} in:\n${res.out}`);
  });

  it("with the schema from reflection, a call goes through to its service", async () => {
    const res = await bufCurl("ops", `${base()}/grpc.health.v1.Health/Check`);
    assert.equal(res.status, 0, res.err);
    assert.deepEqual(JSON.parse(res.out), { status: "SERVING" });
  });

  it("any other certificate, or none, is refused with permission_denied and what to do", async () => {
    for (const cert of ["client", undefined]) {
      const res = await bufCurl(cert, "--list-services", base());
      assert.notEqual(res.status, 0);
      assert.match(res.err, /permission_denied/);
      assert.match(res.err, /ops client certificate/);
    }
  });

  it("the gateway routes exactly the services auth describes (checked against packages/gen)", async () => {
    const template = readFileSync(join(repoRoot, "services/gateway/nginx.conf.template"), "utf8");
    const prefixes = [...template.matchAll(/location \^~ (\S+) \{/g)].map((m) => m[1]!).filter((p) => !p.startsWith("/crm.db."));
    const routed = (s: DescService) => prefixes.some((p) => `/${s.typeName}/`.startsWith(p));
    const gen = join(repoRoot, "packages/gen/src/crm");
    const services: DescService[] = [];
    for (const file of readdirSync(gen, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith("_pb.ts"))) {
      const mod = (await import(join(gen, file))) as Record<string, unknown>;
      for (const v of Object.values(mod)) if ((v as DescService | undefined)?.kind === "service") services.push(v as DescService);
    }
    for (const s of services) {
      if (s.typeName.startsWith("crm.db.")) continue;
      assert.equal(publicApi.includes(s), routed(s), `${s.typeName}: routed by the gateway ⇔ in packages/kit/src/public-api.ts`);
    }
    for (const s of publicApi) assert.ok(routed(s), `${s.typeName} is routed`);
  });
});
