/**
 * Operators' server reflection through the gateway (issue 20 item 4) in the chart:
 * gateway.opsClients reaches the gateway as CRM_GW_OPS_CLIENTS, and the chart refuses it while the
 * gateway never asks for a client certificate (gateway.clientCertificates off).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { needNone } from "@crm/testkit";
import { goProblem, render } from "./lib.ts";

const skip = needNone(goProblem());
const JWT = { jwt: { existingSecret: "crm-jwt" } };

const gatewayEnv = (values: Record<string, unknown>) => {
  const d = render([], { values: { ...JWT, ...values } }).objects.find((o) => o.kind === "Deployment" && o.metadata.labels?.["app.kubernetes.io/component"] === "gateway")!;
  return new Map<string, string>(d.spec.template.spec.containers[0].env.map((e: { name: string; value: string }) => [e.name, e.value]));
};

describe("gateway.opsClients", { skip }, () => {
  it("is empty by default: nobody may use server reflection", () => {
    assert.equal(gatewayEnv({}).get("CRM_GW_OPS_CLIENTS"), "");
  });

  it("names the operators' client certificates, with client certificates asked for", () => {
    const env = gatewayEnv({ gateway: { clientCertificates: "optional", opsClients: ["ops", "platform-ops"] } });
    assert.equal(env.get("CRM_GW_OPS_CLIENTS"), "ops platform-ops");
    assert.equal(env.get("CRM_GW_CLIENT_VERIFY"), "optional");
  });

  it("is refused while the gateway asks for no client certificate", () => {
    assert.throws(() => render([], { values: { ...JWT, gateway: { opsClients: ["ops"] } } }), /gateway\.opsClients .* gateway\.clientCertificates is off/);
  });
});
