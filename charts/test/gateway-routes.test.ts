/**
 * A controller in front of the gateway (issue 20 item 5): a Gateway API TLSRoute (gateway.route)
 * or an Ingress (gateway.ingress), both passing TLS through to the gateway's https port, so TLS,
 * client certificates, HTTP/2 and gRPC still end at the gateway. Off by default.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { needNone } from "@crm/testkit";
import { goProblem, render, validateObject, type K8sObject } from "./lib.ts";

const skip = needNone(goProblem());
const JWT = { jwt: { existingSecret: "crm-jwt" } };
const HOSTS = ["crm.example.com", "api.crm.example.com"];
const PARENT = { name: "edge", namespace: "gateways", sectionName: "tls-passthrough" };
const find = (objects: K8sObject[], kind: string) => objects.filter((o) => o.kind === kind);

describe("gateway routes from a controller in front", { skip }, () => {
  it("none by default", () => {
    const r = render([], { values: JWT });
    assert.equal(find(r.objects, "TLSRoute").length + find(r.objects, "Ingress").length, 0);
  });

  it("a TLSRoute from the Gateway's passthrough listener to the gateway's https port, for gateway.hosts", () => {
    const r = render([], { values: { ...JWT, gateway: { hosts: HOSTS, route: { enabled: true, parentRefs: [PARENT] } } } });
    const [route] = find(r.objects, "TLSRoute");
    assert.ok(route);
    assert.deepEqual(validateObject(route!), []);
    assert.equal(route!.apiVersion, "gateway.networking.k8s.io/v1alpha2");
    assert.deepEqual(route!.spec.parentRefs, [PARENT]);
    assert.deepEqual(route!.spec.hostnames, HOSTS);
    const svc = find(r.objects, "Service").find((s) => s.metadata.labels?.["app.kubernetes.io/component"] === "gateway")!;
    const https = svc.spec.ports.find((p: any) => p.name === "https");
    assert.deepEqual(route!.spec.rules, [{ backendRefs: [{ name: svc.metadata.name, port: https.port }] }]);
  });

  it("an Ingress with TLS passthrough to the gateway's https port, one rule per host", () => {
    const r = render([], { values: { ...JWT, gateway: { hosts: HOSTS, ingress: { enabled: true } } } });
    const [ing] = find(r.objects, "Ingress");
    assert.ok(ing);
    assert.deepEqual(validateObject(ing!), []);
    assert.equal(ing!.spec.ingressClassName, "nginx");
    assert.equal(ing!.metadata.annotations?.["nginx.ingress.kubernetes.io/ssl-passthrough"], "true");
    assert.deepEqual(ing!.spec.rules.map((x: any) => x.host), HOSTS);
    for (const rule of ing!.spec.rules) assert.deepEqual(rule.http.paths[0].backend.service, { name: "crm-gateway", port: { name: "https" } });
  });

  it("says what is missing instead of rendering a route to nowhere", () => {
    assert.throws(() => render([], { values: { ...JWT, gateway: { route: { enabled: true, parentRefs: [PARENT] } } } }), /gateway\.route\.enabled needs gateway\.hosts/);
    assert.throws(() => render([], { values: { ...JWT, gateway: { hosts: HOSTS, route: { enabled: true } } } }), /gateway\.route\.enabled needs gateway\.route\.parentRefs/);
    assert.throws(() => render([], { values: { ...JWT, gateway: { ingress: { enabled: true } } } }), /gateway\.ingress\.enabled needs gateway\.hosts/);
  });
});
