/**
 * Every image the chart can render, checked against a maintained list (issue 20 item 2): the
 * project's own image, and official images of maintained projects, never Bitnami's (whose free
 * images moved away in 2025) nor a floating `latest`. Rendered in every configuration of the
 * chart checks, each ci/*.yaml on its own, and with every optional part on.
 */
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { needNone } from "@crm/testkit";
import { chartDir, goProblem, render, type K8sObject } from "./lib.ts";

const skip = needNone(goProblem());

/** Image names (registry/repository) the chart may run, and why each is maintained. */
const MAINTAINED: Record<string, string> = {
  crm: "the project's own image, built from the repository's Dockerfile (image.repository)",
  "registry.example.com/crm/crm": "the same, from a private registry (ci/production-values.yaml)",
  "docker.io/library/nginx": "the gateway: NGINX's official image, -otel variant (it ships the njs module and ngx_otel_module)",
  "docker.io/nginx/nginx-prometheus-exporter": "the gateway's metrics: NGINX's official Prometheus exporter",
  "docker.io/library/postgres": "development PostgreSQL: the PostgreSQL Docker community's official image",
  "docker.io/valkey/valkey": "development Redis: Valkey's official image (Linux Foundation)",
  "docker.io/library/rabbitmq": "development RabbitMQ: the official image, maintained with the RabbitMQ team",
  "docker.io/otel/opentelemetry-collector-contrib": "observability profile: the OpenTelemetry project's collector (CNCF), also the pod-log agent (DaemonSet)",
  "docker.io/grafana/loki": "observability profile: Grafana Labs' Loki",
  "docker.io/grafana/tempo": "observability profile: Grafana Labs' Tempo",
  "docker.io/prom/prometheus": "observability profile: the Prometheus project's image (CNCF)",
  "docker.io/grafana/grafana": "observability profile: Grafana Labs' Grafana",
};

const JWT = { jwt: { existingSecret: "crm-jwt" } };
const CONFIGS: [string, string[], Record<string, unknown>][] = [
  ["defaults", [], JWT],
  ["allInOne", [], { mode: "allInOne" }],
  ["everything on", [], { ...JWT, tests: { enabled: true }, observability: { enabled: true }, gateway: { clientCertificates: "optional", opsClients: ["ops"] } }],
  ["production-like", ["charts/crm/ci/production-values.yaml"], {}],
  ...readdirSync(join(chartDir, "ci"))
    .filter((f) => f.endsWith(".yaml"))
    .map((f): [string, string[], Record<string, unknown>] => [`ci/${f} alone`, [`charts/crm/ci/${f}`], {}]),
];

/** Every container image of every pod template and Pod. */
function images(objects: K8sObject[]): string[] {
  const out: string[] = [];
  for (const o of objects) {
    const spec = o.kind === "Pod" ? o.spec : o.spec?.template?.spec;
    if (!spec) continue;
    for (const c of [...(spec.initContainers ?? []), ...spec.containers]) out.push(c.image);
  }
  return out;
}

/** "docker.io/library/nginx:1.28.0-bookworm" → name and reference (tag or digest). */
function split(image: string): { name: string; ref: string } {
  const at = image.indexOf("@");
  if (at > 0) return { name: image.slice(0, at), ref: image.slice(at + 1) };
  const colon = image.lastIndexOf(":");
  return colon > image.lastIndexOf("/") ? { name: image.slice(0, colon), ref: image.slice(colon + 1) } : { name: image, ref: "" };
}

describe("images the chart renders", { skip }, () => {
  const seen = new Set<string>();
  for (const [name, files, values] of CONFIGS) {
    it(`${name}: every image is on the maintained list, pinned`, () => {
      const all = images(render(files, { values }).objects);
      assert.ok(all.length > 0);
      for (const image of all) {
        const { name: n, ref } = split(image);
        seen.add(n);
        assert.ok(n in MAINTAINED, `${image} is not on the maintained list (charts/test/images.test.ts)`);
        assert.doesNotMatch(n, /bitnami/i);
        assert.ok(ref && ref !== "latest", `${image}: a tag or digest, never latest`);
      }
    });
  }
  it("every kind of workload is read: the pod-log agent's DaemonSet too", () => {
    const r = render([], { values: { ...JWT, observability: { enabled: true } } });
    const [ds, ...more] = r.objects.filter((o) => o.kind === "DaemonSet");
    assert.ok(ds && more.length === 0);
    const image = ds.spec.template.spec.containers[0].image as string;
    assert.ok(images(r.objects).includes(image));
    assert.ok(split(image).name in MAINTAINED, `${image} is on the maintained list`);
  });
  it("the list has no stale entries", () => {
    for (const n of Object.keys(MAINTAINED)) assert.ok(seen.has(n), `${n} is listed but no configuration renders it`);
  });
});
