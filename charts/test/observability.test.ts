/**
 * The observability profile (issue 20 item 3, observability.yaml): the OpenTelemetry Collector,
 * Loki, Tempo, Prometheus and Grafana, one hardened pod each from the official images, wired to the
 * services (OTLP endpoint, LOKI_URL), to each other (collector pipelines, Grafana datasources with
 * traces linked to logs), reachable only along those flows, and on for skaffold dev. Prometheus's
 * rendered configuration is checked by Prometheus's own promtool (Debian: prometheus). The pod-log
 * agent (observability-pod-logs.yaml): a DaemonSet of the same collector image shipping the
 * release namespace's pod log files to that Loki, as tight as a hostPath reader can be.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parse, stringify } from "yaml";
import { needNone } from "@crm/testkit";
import { Ajv } from "ajv";
import { chartDir, goProblem, render, repo, validateObject, type K8sObject, type Rendered } from "./lib.ts";

const promtool = spawnSync("promtool", ["--version"], { stdio: "ignore" }).status === 0 ? undefined : "promtool is not installed; install it with: apt-get install -y prometheus";
const skip = needNone(goProblem(), promtool);
const JWT = { jwt: { existingSecret: "crm-jwt" } };
const PARTS = ["otel-collector", "loki", "tempo", "prometheus", "grafana"];
const component = (o: K8sObject) => o.metadata.labels?.["app.kubernetes.io/component"] ?? "";
const of = (r: Rendered, kind: string, c?: string) => r.objects.filter((o) => o.kind === kind && (c === undefined || component(o) === c));
const envOf = (c: any) => new Map<string, string>((c.env ?? []).map((e: any) => [e.name, e.value]));
const config = (r: Rendered, c: string, key: string) => of(r, "ConfigMap", c)[0]!.data![key]!;
const matches = (sel: Record<string, string> | undefined, labels: Record<string, string>) => Object.entries(sel ?? {}).every(([k, v]) => labels[k] === v);

/** host and port of a Service of the release, from a URL or host:port. */
function service(r: Rendered, address: string): { svc: K8sObject; port: number } {
  const m = /^(?:\w+:\/\/)?([^.:/]+)(?:\.[^:/]*)?:(\d+)/.exec(address);
  assert.ok(m, `an address with a port: ${address}`);
  const svc = of(r, "Service").find((s) => s.metadata.name === m![1]);
  assert.ok(svc, `Service ${m![1]} exists (${address})`);
  assert.ok(svc!.spec.ports.some((p: any) => p.port === Number(m![2])), `${m![1]} serves port ${m![2]}`);
  return { svc: svc!, port: Number(m![2]) };
}

describe("observability profile", { skip }, () => {
  const r = render([], { values: { ...JWT, observability: { enabled: true } } });

  it("is off by default, on for skaffold dev", () => {
    assert.equal(of(render([], { values: JWT }), "Deployment").filter((d) => PARTS.includes(component(d))).length, 0);
    const dev = render(["charts/crm/ci/kind-values.yaml", "charts/crm/ci/kind-dev-values.yaml"]);
    assert.deepEqual(of(dev, "Deployment").map(component).filter((c) => PARTS.includes(c)).sort(), [...PARTS].sort());
    assert.equal(of(dev, "DaemonSet", "pod-logs").length, 1, "skaffold dev ships the pods' logs too");
    assert.equal(of(render([], { values: JWT }), "DaemonSet").length, 0);
    // skaffold dev forwards the gateway and Grafana: Services these values render, on their ports
    const sk = parse(readFileSync(join(repo, "skaffold.yaml"), "utf8"));
    const added = sk.profiles.find((p: any) => p.name === "dev").patches.filter((p: any) => p.path === "/portForward/-").map((p: any) => p.value);
    const forwards = [...sk.portForward, ...added];
    assert.deepEqual(forwards.map((f: any) => f.resourceName).sort(), ["crm-gateway", "crm-grafana"]);
    for (const f of forwards) {
      assert.equal(f.resourceType, "service");
      service(dev, `${f.resourceName}:${f.port}`);
    }
  });

  it("one hardened pod each, from the official image, with probes and limits", () => {
    for (const part of PARTS) {
      const [d] = of(r, "Deployment", part);
      assert.ok(d, `${part} Deployment`);
      assert.equal(d.spec.replicas, 1);
      const pod = d.spec.template.spec;
      const c = pod.containers[0];
      assert.doesNotMatch(c.image, /:latest$|bitnami/);
      assert.equal(pod.securityContext.runAsNonRoot, true);
      assert.equal(pod.securityContext.seccompProfile.type, "RuntimeDefault");
      assert.equal(c.securityContext.readOnlyRootFilesystem, true);
      assert.equal(c.securityContext.allowPrivilegeEscalation, false);
      assert.deepEqual(c.securityContext.capabilities.drop, ["ALL"]);
      assert.ok(c.readinessProbe && c.livenessProbe && c.resources?.limits?.memory, part);
      assert.equal(pod.automountServiceAccountToken, part === "prometheus", `${part}: only Prometheus talks to the Kubernetes API`);
    }
  });

  it("every service sends traces to the collector and its lines from info up to the logs service, which pushes to this Loki", () => {
    const crm = of(r, "Deployment").filter((d) => !PARTS.includes(component(d)) && component(d) !== "gateway");
    assert.ok(crm.length >= 9);
    for (const d of crm) {
      const env = envOf(d.spec.template.spec.containers[0]);
      const { svc, port } = service(r, env.get("OTEL_EXPORTER_OTLP_ENDPOINT")!);
      assert.equal(component(svc), "otel-collector");
      assert.equal(port, 4318, "OTLP over HTTP (the kit's exporter)");
    }
    const logs = envOf(of(r, "Deployment", "logs")[0]!.spec.template.spec.containers[0]);
    assert.equal(component(service(r, logs.get("LOKI_URL")!).svc), "loki");
    // the services' lines from info up reach that Loki through the logs service (LOGS_REPORT_LEVEL)
    for (const d of crm) assert.equal(envOf(d.spec.template.spec.containers[0]).get("LOGS_REPORT_LEVEL"), component(d) === "logs" ? undefined : "info", component(d));
    const quiet = render([], { values: { ...JWT, observability: { enabled: true }, lokiLogLevel: "warn" } });
    assert.equal(envOf(of(quiet, "Deployment", "auth")[0]!.spec.template.spec.containers[0]).get("LOGS_REPORT_LEVEL"), "warn");
    const noLoki = render([], { values: JWT });
    for (const d of of(noLoki, "Deployment")) assert.equal(envOf(d.spec.template.spec.containers[0]).get("LOGS_REPORT_LEVEL"), undefined, "no Loki: only errors go to the logs service");
    // an endpoint of the platform's own wins
    const own = render([], { values: { ...JWT, observability: { enabled: true }, otel: { endpoint: "http://otel.monitoring:4318" } } });
    assert.equal(envOf(of(own, "Deployment", "auth")[0]!.spec.template.spec.containers[0]).get("OTEL_EXPORTER_OTLP_ENDPOINT"), "http://otel.monitoring:4318");
  });

  it("the collector's pipelines use only what it defines, and export to Tempo and Loki of this release", () => {
    const cfg = parse(config(r, "otel-collector", "config.yaml"));
    for (const [name, p] of Object.entries<any>(cfg.service.pipelines)) {
      for (const x of p.receivers) assert.ok(x in cfg.receivers, `${name}: receiver ${x}`);
      for (const x of p.processors ?? []) assert.ok(x in cfg.processors, `${name}: processor ${x}`);
      for (const x of p.exporters) assert.ok(x in cfg.exporters, `${name}: exporter ${x}`);
    }
    for (const e of cfg.service.extensions) assert.ok(e in cfg.extensions);
    assert.deepEqual(Object.keys(cfg.service.pipelines).sort(), ["logs", "traces"]);
    assert.equal(component(service(r, cfg.exporters["otlp/tempo"].endpoint).svc), "tempo");
    assert.equal(component(service(r, cfg.exporters["otlphttp/loki"].endpoint).svc), "loki");
    assert.equal(cfg.receivers.otlp.protocols.http.endpoint, "0.0.0.0:4318");
    const tempo = parse(config(r, "tempo", "config.yaml"));
    assert.equal(tempo.distributor.receivers.otlp.protocols.grpc.endpoint, "0.0.0.0:4317");
    const loki = parse(config(r, "loki", "config.yaml"));
    assert.equal(loki.limits_config.allow_structured_metadata, true, "OTLP logs need structured metadata");
    assert.equal(loki.limits_config.retention_period, "168h");
  });

  it("Prometheus's configuration passes promtool and scrapes every CRM pod's ops port", () => {
    const dir = mkdtempSync(join(tmpdir(), "crm-prom-"));
    try {
      const file = join(dir, "prometheus.yml");
      // Debian's Prometheus is built without Kubernetes service discovery, so its promtool cannot
      // parse kubernetes_sd_configs: that block (checked field by field below) is swapped for
      // static targets; everything else (relabelling, jobs, globals) is promtool's to judge.
      const rendered = parse(config(r, "prometheus", "prometheus.yml"));
      for (const job of rendered.scrape_configs) {
        if (job.kubernetes_sd_configs) {
          delete job.kubernetes_sd_configs;
          job.static_configs = [{ targets: ["10.0.0.1:9090"] }];
        }
      }
      writeFileSync(file, stringify(rendered));
      const check = spawnSync("promtool", ["check", "config", "--syntax-only", file], { encoding: "utf8" });
      assert.equal(check.status, 0, `${check.stdout}${check.stderr}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const prom = parse(config(r, "prometheus", "prometheus.yml"));
    const crm = prom.scrape_configs.find((s: any) => s.job_name === "crm");
    assert.deepEqual(crm.kubernetes_sd_configs, [{ role: "pod", namespaces: { names: ["crm"] }, selectors: [{ role: "pod", label: "app.kubernetes.io/instance=crm" }] }]);
    for (const x of crm.relabel_configs) for (const l of x.source_labels ?? []) assert.match(l, /^__meta_kubernetes_pod_(container_port_name|label_app_kubernetes_io_component|name)$/, `a pod role meta label: ${l}`);
    const keep = crm.relabel_configs.find((x: any) => x.action === "keep");
    const re = new RegExp(`^(?:${keep.regex})$`);
    assert.ok(re.test("auth;ops") && re.test("all;http") && re.test("gateway;metrics"), "services' ops ports, the all-in-one's port, the gateway's exporter");
    assert.ok(!re.test("grafana;http") && !re.test("gateway;http"), "not other pods' http ports");
    for (const d of of(r, "Deployment").filter((x) => !PARTS.includes(component(x)) && component(x) !== "gateway")) {
      assert.ok(d.spec.template.spec.containers[0].ports.some((p: any) => p.name === "ops"), `${component(d)} names its ops port`);
    }
    const role = of(r, "Role", "prometheus")[0]!;
    assert.deepEqual(role.rules, [{ apiGroups: [""], resources: ["pods"], verbs: ["get", "list", "watch"] }], "read-only, pods only");
    const binding = of(r, "RoleBinding", "prometheus")[0]!;
    assert.equal(binding.subjects[0].name, of(r, "Deployment", "prometheus")[0]!.spec.template.spec.serviceAccountName);
  });

  it("Grafana has the three datasources, traces and logs linked both ways, and the CRM dashboard", () => {
    const ds = parse(config(r, "grafana", "datasources.yaml")).datasources as any[];
    const byUid = new Map(ds.map((d) => [d.uid, d]));
    for (const [uid, part, port] of [["prometheus", "prometheus", 9090], ["loki", "loki", 3100], ["tempo", "tempo", 3200]] as const) {
      const { svc, port: p } = service(r, byUid.get(uid).url);
      assert.equal(component(svc), part);
      assert.equal(p, port);
    }
    const derived = byUid.get("loki").jsonData.derivedFields[0];
    assert.equal(derived.datasourceUid, "tempo", "a log line's trace_id opens Tempo");
    assert.ok(new RegExp(derived.matcherRegex).test('{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}'));
    assert.equal(byUid.get("tempo").jsonData.tracesToLogsV2.datasourceUid, "loki", "a span opens its logs in Loki");
    const dashboard = JSON.parse(config(r, "grafana", "crm-overview.json"));
    assert.ok(dashboard.panels?.length, "the CRM dashboard");
    const grafana = of(r, "Deployment", "grafana")[0]!.spec.template.spec.containers[0];
    const mounts = grafana.volumeMounts.map((m: any) => m.mountPath);
    for (const m of ["/etc/grafana/provisioning/datasources/datasources.yaml", "/etc/grafana/provisioning/dashboards/dashboards.yaml", "/var/lib/grafana/dashboards/crm-overview.json"]) assert.ok(mounts.includes(m), m);
    const secret = of(r, "Secret", "grafana")[0]!;
    assert.match(Buffer.from(secret.data!["admin-password"]!, "base64").toString(), /^[A-Za-z0-9]{32}$/, "a generated admin password");
  });

  it("a PodMonitor for a Prometheus Operator, when asked: every service's ops port and the gateway's exporter, nothing else", () => {
    assert.equal(of(render([], { values: JWT }), "PodMonitor").length, 0);
    const m = render([], { values: { ...JWT, podMonitor: { enabled: true, labels: { release: "kube-prometheus-stack" } } } });
    const [pm, ...more] = of(m, "PodMonitor");
    assert.ok(pm && more.length === 0);
    assert.equal(pm.apiVersion, "monitoring.coreos.com/v1");
    assert.equal(pm.metadata.labels!.release, "kube-prometheus-stack");
    const sel = pm.spec.selector;
    const selects = (labels: Record<string, string>) => matches(sel.matchLabels, labels) && sel.matchExpressions.every((e: any) => e.operator === "In" && e.values.includes(labels[e.key]));
    const workloads = m.objects.filter((o) => o.kind === "Deployment" || o.kind === "StatefulSet");
    const picked = workloads.filter((w) => selects(w.spec.template.metadata.labels));
    assert.deepEqual(picked.map(component).sort(), of(m, "Deployment").map(component).sort(), "every CRM Deployment and the gateway, no data service");
    assert.ok(picked.length >= 11);
    for (const w of picked) {
      const ports: string[] = w.spec.template.spec.containers.flatMap((c: any) => (c.ports ?? []).map((p: any) => p.name));
      const scraped: { port: string; path: string }[] = pm.spec.podMetricsEndpoints.filter((e: any) => ports.includes(e.port));
      assert.deepEqual(scraped.map((e: any) => e.port), [component(w) === "gateway" ? "metrics" : "ops"], `${component(w)}: one endpoint, on a port it has`);
      assert.equal(scraped[0]!.path, "/metrics");
    }
  });

  it("the gateway exports its own spans over OTLP/gRPC to the collector (ngx_otel_module of the -otel image)", () => {
    const gw = of(r, "Deployment", "gateway")[0]!;
    const c = gw.spec.template.spec.containers.find((x: any) => x.name === "nginx");
    assert.match(c.image, /^docker\.io\/library\/nginx:\d+\.\d+\.\d+-bookworm-otel$/, "the official image's -otel variant has ngx_otel_module (and njs)");
    const cm = of(r, "ConfigMap", "gateway")[0]!.data!;
    // the template includes both folders, modules.d/ in the main context and http.d/ inside http {}
    const template = cm["nginx.conf.template"]!;
    const httpAt = template.indexOf("\nhttp {");
    assert.ok(template.indexOf("include modules.d/*.conf;") > 0 && template.indexOf("include modules.d/*.conf;") < httpAt);
    assert.ok(template.indexOf("include http.d/*.conf;") > httpAt);
    // mounted where those includes look (nginx -p /etc/nginx/crm -c /etc/nginx/crm/nginx.conf)
    assert.ok(c.args.join(" ").includes("-c /etc/nginx/crm/nginx.conf"));
    for (const [dir, key] of [["modules.d", "modules.d.otel.conf"], ["http.d", "http.d.otel.conf"]] as const) {
      const m = c.volumeMounts.find((x: any) => x.mountPath === `/etc/nginx/crm/${dir}`);
      assert.ok(m?.readOnly, `${dir} is mounted read-only`);
      const v = gw.spec.template.spec.volumes.find((x: any) => x.name === m.name);
      assert.deepEqual(v.configMap.items, [{ key, path: "otel.conf" }]);
    }
    assert.equal(cm["modules.d.otel.conf"]!.trim(), "load_module /usr/lib/nginx/modules/ngx_otel_module.so;", "the module's path in the official Debian image");
    // only the module's own directives (https://nginx.org/en/docs/ngx_otel_module.html) and a map
    const http = cm["http.d.otel.conf"]!;
    const known = new Set(["otel_exporter", "otel_service_name", "otel_resource_attr", "otel_trace", "otel_trace_context", "otel_span_name", "otel_span_attr", "map"]);
    const depth0: string[] = [];
    let depth = 0;
    for (const line of http.split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"))) {
      if (depth === 0) depth0.push(line.split(/\s+/)[0]!);
      depth += (line.match(/\{/g) ?? []).length - (line.match(/\}/g) ?? []).length;
    }
    assert.equal(depth, 0, "balanced braces");
    for (const d of depth0) assert.ok(known.has(d), `${d} is a directive of ngx_otel_module`);
    assert.match(http, /^otel_trace_context extract;$/m, "the client's trace is kept (its traceparent read), not sent on by the module: njs/trace.js sends the gateway's span");
    assert.match(http, /^otel_service_name gateway;$/m);
    assert.match(http, /\/healthz off;/, "probes make no spans");
    const endpoint = /endpoint ([^;\s]+);/.exec(http)![1]!;
    const { svc, port } = service(r, endpoint);
    assert.equal(component(svc), "otel-collector");
    assert.equal(port, 4317, "OTLP over gRPC: the only protocol the module exports");
    assert.equal(parse(config(r, "otel-collector", "config.yaml")).receivers.otlp.protocols.grpc.endpoint, "0.0.0.0:4317");

    // the platform's own collector (gateway.tracing.endpoint), or none
    const own = render([], { values: { ...JWT, gateway: { tracing: { endpoint: "otel.monitoring:4317" } } } });
    assert.match(of(own, "ConfigMap", "gateway")[0]!.data!["http.d.otel.conf"]!, /endpoint otel\.monitoring:4317;/);
    const egress = of(own, "NetworkPolicy", "gateway")[0]!.spec.egress.filter((e: any) => e.ports?.some((p: any) => p.port === 4317));
    assert.equal(egress.length, 1, "egress to that port");
    for (const values of [JWT, { ...JWT, observability: { enabled: true }, gateway: { tracing: { enabled: false } } }, { ...JWT, otel: { endpoint: "http://otel.monitoring:4318" } }]) {
      const none = render([], { values });
      const data = of(none, "ConfigMap", "gateway")[0]!.data!;
      assert.equal(data["http.d.otel.conf"], undefined, JSON.stringify(values));
      assert.equal(data["modules.d.otel.conf"], undefined);
      assert.ok(!of(none, "Deployment", "gateway")[0]!.spec.template.spec.volumes.some((v: any) => v.name === "http-d"));
    }
    assert.throws(() => render([], { values: { ...JWT, observability: { enabled: true }, gateway: { image: { tag: "1.28.0-bookworm" } } } }), /gateway\.tracing needs ngx_otel_module.*-otel variant/);
  });

  it("NetworkPolicies let through exactly the profile's flows", () => {
    const pods = [...of(r, "Deployment"), ...of(r, "DaemonSet")].map((d) => ({ name: component(d), labels: d.spec.template.metadata.labels as Record<string, string> }));
    const pod = (n: string) => pods.find((p) => p.name === n)!;
    const policies = (labels: Record<string, string>, type: string) => of(r, "NetworkPolicy").filter((p) => matches(p.spec.podSelector.matchLabels, labels) && p.spec.policyTypes.includes(type));
    const peerOk = (peers: any[] | undefined, labels: Record<string, string>) => !peers?.length || peers.some((p) => p.podSelector && matches(p.podSelector.matchLabels, labels));
    const open = (rules: any[], port: number, labels: Record<string, string>, side: "from" | "to") => rules.some((x) => (!x.ports || x.ports.some((p: any) => p.port === port)) && peerOk(x[side], labels));
    const allowed = (a: string, b: string, port: number) =>
      policies(pod(a).labels, "Egress").some((p) => open(p.spec.egress ?? [], port, pod(b).labels, "to")) &&
      policies(pod(b).labels, "Ingress").some((p) => open(p.spec.ingress ?? [], port, pod(a).labels, "from"));
    for (const [a, b, port] of [["auth", "otel-collector", 4318], ["logs", "loki", 3100], ["otel-collector", "tempo", 4317], ["otel-collector", "loki", 3100],
      ["prometheus", "auth", 9090], ["prometheus", "otel-collector", 8888], ["prometheus", "gateway", 9113], ["gateway", "otel-collector", 4317], ["grafana", "prometheus", 9090], ["grafana", "loki", 3100], ["grafana", "tempo", 3200],
      ["pod-logs", "loki", 3100]] as const) {
      assert.ok(allowed(a, b, port), `${a} -> ${b}:${port}`);
    }
    for (const [a, b, port] of [["auth", "tempo", 4317], ["auth", "grafana", 3000], ["grafana", "auth", 9090], ["otel-collector", "prometheus", 9090], ["auth", "prometheus", 9090],
      ["pod-logs", "tempo", 4317], ["pod-logs", "otel-collector", 4318], ["pod-logs", "grafana", 3000], ["pod-logs", "auth", 9090], ["auth", "pod-logs", 13133], ["prometheus", "pod-logs", 13133]] as const) {
      assert.ok(!allowed(a, b, port), `${a} -/-> ${b}:${port}`);
    }
    // the agent: covered by the default deny, out only to DNS and Loki, in from nowhere
    const deny = of(r, "NetworkPolicy").find((p) => !p.spec.ingress && !p.spec.egress && p.spec.policyTypes.length === 2)!;
    assert.ok(matches(deny.spec.podSelector.matchLabels, pod("pod-logs").labels), "the default deny covers the agent");
    const own = policies(pod("pod-logs").labels, "Egress");
    assert.deepEqual(own.map((p) => p.metadata.name), ["crm-default-deny", "crm-pod-logs"]);
    const agent = own[1]!;
    assert.deepEqual(agent.spec.ingress, []);
    assert.deepEqual(agent.spec.egress.map((e: any) => e.ports.map((p: any) => p.port)), [[53, 53], [3100]]);
  });

  it("an agent in a namespace of its own: its policy there, Loki lets it in across namespaces, nothing else does", () => {
    const x = render([], { values: { ...JWT, observability: { enabled: true, podLogs: { namespace: "crm-logs" } } } });
    const agentLabels = of(x, "DaemonSet", "pod-logs")[0]!.spec.template.metadata.labels;
    for (const o of [...of(x, "DaemonSet", "pod-logs"), ...of(x, "ConfigMap", "pod-logs"), ...of(x, "NetworkPolicy", "pod-logs")]) assert.equal(o.metadata.namespace, "crm-logs", `${o.kind} ${o.metadata.name}`);
    const agent = of(x, "NetworkPolicy", "pod-logs")[0]!;
    assert.ok(matches(agent.spec.podSelector.matchLabels, agentLabels));
    assert.deepEqual(agent.spec.policyTypes, ["Ingress", "Egress"], "deny by default there too: the chart's default deny covers only its own namespace");
    assert.deepEqual(agent.spec.ingress, []);
    const toLoki = agent.spec.egress.filter((e: any) => e.ports.some((p: any) => p.port === 3100));
    assert.equal(toLoki.length, 1);
    assert.deepEqual(toLoki[0].to, [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "crm" } }, podSelector: { matchLabels: of(x, "Deployment", "loki")[0]!.spec.selector.matchLabels } }]);
    const lokiIn = of(x, "NetworkPolicy", "loki")[0]!.spec.ingress as any[];
    const cross = lokiIn.filter((rule) => rule.from.some((p: any) => p.namespaceSelector));
    assert.equal(cross.length, 1);
    assert.deepEqual(cross[0].ports, [{ port: 3100, protocol: "TCP" }]);
    assert.deepEqual(cross[0].from, [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "crm-logs" } }, podSelector: { matchLabels: agent.spec.podSelector.matchLabels } }], "that namespace's agent pods, not the whole namespace");
    // in the release's namespace, Loki's rule for the release's pods covers the agent: no cross-namespace rule
    assert.ok(!(of(r, "NetworkPolicy", "loki")[0]!.spec.ingress as any[]).some((rule) => rule.from.some((p: any) => p.namespaceSelector)));
    // without the agent, no policy for it
    const off = render([], { values: { ...JWT, observability: { enabled: true, podLogs: { enabled: false, namespace: "crm-logs" } } } });
    assert.equal(of(off, "NetworkPolicy", "pod-logs").length, 0);
    assert.ok(!(of(off, "NetworkPolicy", "loki")[0]!.spec.ingress as any[]).some((rule) => rule.from.some((p: any) => p.namespaceSelector)));
  });

  it("the platform's own Loki (externalLoki.url) wins over this one, and the NetworkPolicy follows it", () => {
    const own = render([], { values: { ...JWT, observability: { enabled: true }, externalLoki: { url: "http://loki.monitoring:3100" } } });
    const logs = of(own, "Deployment", "logs")[0]!;
    assert.equal(envOf(logs.spec.template.spec.containers[0]).get("LOKI_URL"), "http://loki.monitoring:3100");
    const rules = of(own, "NetworkPolicy").filter((p) => matches(p.spec.podSelector.matchLabels, logs.spec.template.metadata.labels)).flatMap((p) => p.spec.egress ?? []);
    const loki = rules.filter((rule: any) => (rule.ports ?? []).some((x: any) => x.port === 3100));
    assert.equal(loki.length, 1);
    assert.equal(loki[0].to, undefined, "an external Loki without egressTo: the port, anywhere (not this release's Loki pod)");
  });
});

/** A filelog include/exclude glob as a RegExp: `*` is any run of characters but `/`. */
const glob = (pattern: string) => new RegExp(`^${pattern.split("*").map((x) => x.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join("[^/]*")}$`);

describe("the pod-log agent (observability.podLogs)", { skip }, () => {
  const r = render([], { values: { ...JWT, observability: { enabled: true } } });
  const ds = (x: Rendered) => of(x, "DaemonSet", "pod-logs");
  const agentConfig = (x: Rendered) => parse(config(x, "pod-logs", "config.yaml"));
  const [d] = ds(r);
  const pod = d!.spec.template.spec;
  const c = pod.containers[0];
  const volume = (name: string) => pod.volumes.find((v: any) => v.name === name);
  const mount = (path: string) => c.volumeMounts.find((m: any) => m.mountPath === path);

  it("is on with the profile and off with podLogs.enabled=false or without the profile; every object it adds is valid", () => {
    assert.equal(ds(r).length, 1);
    assert.deepEqual([...ds(r), ...of(r, "ConfigMap", "pod-logs"), ...of(r, "NetworkPolicy", "pod-logs")].flatMap(validateObject), []);
    for (const values of [{ ...JWT, observability: { enabled: true, podLogs: { enabled: false } } }, { ...JWT, observability: { enabled: false, podLogs: { enabled: true } } }]) {
      const off = render([], { values });
      assert.deepEqual(off.objects.filter((o) => component(o) === "pod-logs").map((o) => o.kind), [], JSON.stringify(values));
    }
    const cross = render([], { values: { ...JWT, observability: { enabled: true, podLogs: { namespace: "crm-logs", checkpoint: "emptyDir", namespaces: ["crm", "crm-jobs"], tolerations: [{ key: "dedicated", operator: "Exists", effect: "NoSchedule" }], nodeSelector: { "kubernetes.io/os": "linux" } } } } });
    assert.deepEqual(cross.objects.filter((o) => component(o) === "pod-logs" || o.kind === "NetworkPolicy").flatMap(validateObject), []);
  });

  it("runs the profile's collector image with /var/log/pods read-only and its checkpoint on the node", () => {
    assert.equal(c.image, of(r, "Deployment", "otel-collector")[0]!.spec.template.spec.containers[0].image, "the same pinned collector (contrib) image");
    assert.match(c.image, /^docker\.io\/otel\/opentelemetry-collector-contrib:\d+\.\d+\.\d+$/);
    assert.deepEqual(volume("pods").hostPath, { path: "/var/log/pods", type: "Directory" });
    assert.deepEqual(mount("/var/log/pods"), { name: "pods", mountPath: "/var/log/pods", readOnly: true });
    assert.deepEqual(mount("/etc/otelcol"), { name: "config", mountPath: "/etc/otelcol", readOnly: true });
    assert.deepEqual(volume("config").configMap, { name: of(r, "ConfigMap", "pod-logs")[0]!.metadata.name });
    // the checkpoint: a directory of its own on the node (release and namespace in its name), where file_storage writes
    assert.deepEqual(volume("checkpoint").hostPath, { path: "/var/lib/crm-otel/crm", type: "DirectoryOrCreate" });
    const dir = agentConfig(r).extensions.file_storage.directory;
    assert.equal(mount(dir)?.name, "checkpoint", "file_storage writes on the checkpoint volume");
    assert.notEqual(mount(dir).readOnly, true);
    assert.deepEqual(pod.volumes.filter((v: any) => v.hostPath).map((v: any) => v.name).sort(), ["checkpoint", "pods"], "no other host path");
    const other = render([], { release: "shop", namespace: "sales", values: { ...JWT, observability: { enabled: true } } });
    assert.equal(ds(other)[0]!.spec.template.spec.volumes.find((v: any) => v.name === "checkpoint").hostPath.path, "/var/lib/shop-otel/sales");
    // emptyDir: no writable host path at all
    const empty = ds(render([], { values: { ...JWT, observability: { enabled: true, podLogs: { checkpoint: "emptyDir" } } } }))[0]!.spec.template.spec;
    assert.deepEqual(empty.volumes.find((v: any) => v.name === "checkpoint"), { name: "checkpoint", emptyDir: {} });
    assert.deepEqual(empty.volumes.filter((v: any) => v.hostPath).map((v: any) => v.hostPath.path), ["/var/log/pods"]);
  });

  it("is as tight as a root reader of host files can be: no capabilities, no escalation, read-only root, RuntimeDefault seccomp, no token", () => {
    assert.equal(pod.securityContext.runAsUser, 0, "the runtime's log files are root's, mode 0640");
    assert.equal(pod.securityContext.runAsNonRoot, false);
    assert.equal(pod.securityContext.seccompProfile.type, "RuntimeDefault");
    const sc = c.securityContext;
    assert.equal(sc.runAsUser, 0);
    assert.equal(sc.allowPrivilegeEscalation, false);
    assert.equal(sc.readOnlyRootFilesystem, true);
    assert.equal(sc.privileged, false);
    assert.deepEqual(sc.capabilities, { drop: ["ALL"] }, "root without CAP_DAC_OVERRIDE reads only what root owns");
    assert.equal(sc.seccompProfile.type, "RuntimeDefault");
    assert.equal(pod.automountServiceAccountToken, false, "no Kubernetes API: metadata comes from the file path");
    assert.ok(!pod.hostNetwork && !pod.hostPID && !pod.hostIPC);
    assert.equal(pod.initContainers, undefined);
    assert.ok(c.resources.requests.cpu && c.resources.requests.memory && c.resources.limits.memory);
    assert.equal(c.readinessProbe.httpGet.port, 13133);
    assert.equal(agentConfig(r).extensions.health_check.endpoint, "0.0.0.0:13133", "the probes' port is health_check's");
    assert.match(d!.spec.template.metadata.annotations["checksum/config"], /^[0-9a-f]{16}$/);
    const changed = ds(render([], { values: { ...JWT, observability: { enabled: true, podLogs: { namespaces: ["crm", "jobs"] } } } }))[0]!;
    assert.notEqual(changed.spec.template.metadata.annotations["checksum/config"], d!.spec.template.metadata.annotations["checksum/config"], "a new configuration rolls the agents");
    const placed = ds(render([], { values: { ...JWT, observability: { enabled: true, podLogs: { tolerations: [{ operator: "Exists" }], nodeSelector: { pool: "crm" } } } } }))[0]!.spec.template.spec;
    assert.deepEqual(placed.tolerations, [{ operator: "Exists" }]);
    assert.deepEqual(placed.nodeSelector, { pool: "crm" });
  });

  it("its configuration parses; filelog reads only the release's namespace, with checkpoints; the logs pipeline goes to this Loki", () => {
    const cfg = agentConfig(r);
    assert.deepEqual(Object.keys(cfg.service.pipelines), ["logs"]);
    const logs = cfg.service.pipelines.logs;
    assert.deepEqual(logs.receivers, ["filelog"]);
    assert.deepEqual(logs.exporters, ["otlphttp/loki"]);
    assert.equal(logs.processors[0], "memory_limiter", "the memory limiter first");
    assert.equal(logs.processors.at(-1), "batch", "batches last");
    for (const x of logs.processors) assert.ok(x in cfg.processors, `processor ${x}`);
    for (const e of cfg.service.extensions) assert.ok(e in cfg.extensions, `extension ${e}`);
    const f = cfg.receivers.filelog;
    assert.deepEqual(f.include, ["/var/log/pods/crm_*/*/*.log"]);
    assert.equal(f.include_file_path, true, "the container operator reads k8s.* from the path");
    assert.equal(f.start_at, "beginning");
    assert.deepEqual(f.operators.map((o: any) => o.type), ["container"]);
    assert.equal(f.storage, "file_storage");
    assert.ok(cfg.service.extensions.includes("file_storage"));
    const reads = (p: string) => f.include.some((g: string) => glob(g).test(p)) && !f.exclude.some((g: string) => glob(g).test(p));
    assert.ok(reads("/var/log/pods/crm_crm-gateway-7d9f8c6b5-x2x9z_0f6a2c1e-5b1d-4c7e-9a3b-2d8e4f6a1b3c/nginx/0.log"));
    assert.ok(reads("/var/log/pods/crm_crm-postgresql-0_0f6a2c1e-5b1d-4c7e-9a3b-2d8e4f6a1b3c/postgresql/3.log"));
    assert.ok(!reads("/var/log/pods/kube-system_coredns-7db6d8ff4d-x2x9z_0f6a2c1e-5b1d-4c7e-9a3b-2d8e4f6a1b3c/coredns/0.log"), "other namespaces");
    assert.ok(!reads("/var/log/pods/crm-jobs_importer-x2x9z_0f6a2c1e-5b1d-4c7e-9a3b-2d8e4f6a1b3c/importer/0.log"), "a namespace that only starts with the release's");
    assert.ok(!reads("/var/log/pods/crm_crm-gateway-7d9f8c6b5-x2x9z_0f6a2c1e-5b1d-4c7e-9a3b-2d8e4f6a1b3c/nginx/0.log.20250101-101010.gz"), "rotated files");
    assert.ok(!reads("/var/log/pods/crm_crm-pod-logs-x2x9z_0f6a2c1e-5b1d-4c7e-9a3b-2d8e4f6a1b3c/otel-collector/0.log"), "not its own lines");
    const more = agentConfig(render([], { values: { ...JWT, observability: { enabled: true, podLogs: { namespaces: ["crm", "crm-jobs"] } } } })).receivers.filelog;
    assert.deepEqual(more.include, ["/var/log/pods/crm_*/*/*.log", "/var/log/pods/crm-jobs_*/*/*.log"]);
    const exporter = cfg.exporters["otlphttp/loki"];
    assert.equal(component(service(r, exporter.endpoint).svc), "loki");
    assert.match(exporter.endpoint, /^http:\/\/[^/]+:3100\/otlp$/, "Loki's OTLP endpoint (the exporter adds /v1/logs)");
    assert.equal(exporter.endpoint, parse(config(r, "otel-collector", "config.yaml")).exporters["otlphttp/loki"].endpoint, "as the collector sends");
    assert.equal(exporter.sending_queue.storage, "file_storage", "what Loki has not taken survives a restart");
    assert.deepEqual(cfg.processors.memory_limiter, parse(config(r, "otel-collector", "config.yaml")).processors.memory_limiter);
    // no ${...} the collector would expand; each $ is the regex's end or the escaped $1 ($$1)
    const text = config(r, "pod-logs", "config.yaml");
    assert.ok(!text.includes("${"));
    assert.equal(text.replace(/\$\$1|\)\$"/g, "").includes("$"), false);
  });

  it("service.name: the pod's component for the release's pods (from the pod's name), else the container's name", () => {
    const cfg = agentConfig(r);
    const t = cfg.processors["transform/pod-logs"];
    assert.equal(t.error_mode, "ignore", "a line that fits no statement still ships");
    const statements: string[] = t.log_statements.find((x: any) => x.context === "resource").statements;
    assert.equal(statements.length, 3);
    assert.equal(statements[0], 'set(attributes["service.name"], attributes["k8s.container.name"])');
    const when = /^set\(attributes\["service\.name"\], attributes\["k8s\.pod\.name"\]\) where IsMatch\(attributes\["k8s\.pod\.name"\], "([^"\\]+)"\)$/.exec(statements[1]!);
    const replace = /^replace_pattern\(attributes\["service\.name"\], "([^"\\]+)", "\$\$1"\)$/.exec(statements[2]!);
    assert.ok(when && replace, statements.join("\n"));
    assert.equal(when![1], replace![1], "one pattern for both");
    // what the three statements do (RE2 and JavaScript agree on this pattern: classes, a lazy +?, bounded repeats)
    const re = new RegExp(when![1]!);
    const serviceName = (podName: string, container: string) => (re.test(podName) ? podName : container).replace(re, "$1");
    const podNames = (w: K8sObject) =>
      w.kind === "StatefulSet" ? [`${w.metadata.name}-0`, `${w.metadata.name}-12`] : w.kind === "DaemonSet" ? [`${w.metadata.name}-x2x9z`] : [`${w.metadata.name}-7d9f8c6b5-x2x9z`, `${w.metadata.name}-5f4d8c7b9d-bq6wz`, `${w.metadata.name}-6c4d-zz2kw`];
    let checked = 0;
    for (const x of [r, render([], { values: { mode: "allInOne", observability: { enabled: true } } }), render(["charts/crm/ci/kind-values.yaml", "charts/crm/ci/kind-dev-values.yaml"])]) {
      for (const w of x.objects.filter((o) => ["Deployment", "StatefulSet", "DaemonSet"].includes(o.kind))) {
        const spec = w.spec.template.spec;
        for (const ctr of [...(spec.initContainers ?? []), ...spec.containers]) for (const name of podNames(w)) {
          assert.equal(serviceName(name, ctr.name), component(w), `${name}/${ctr.name}`);
          checked++;
        }
      }
    }
    assert.ok(checked > 60);
    assert.equal(serviceName("crm-gateway-7d9f8c6b5-x2x9z", "nginx"), "gateway", "{service_name=\"gateway\"} finds the access log");
    assert.equal(serviceName("coredns-7db6d8ff4d-x2x9z", "coredns"), "coredns", "another release's or the system's pods: the container's name");
    assert.equal(serviceName("crm-tests", "tests"), "tests", "a bare pod");
    assert.equal(serviceName("shop-gateway-7d9f8c6b5-x2x9z", "nginx"), "nginx", "another release's gateway keeps its container's name");
    // a release name with a dot: matched literally
    const dotted = parse(config(render([], { release: "eu.crm", values: { ...JWT, observability: { enabled: true } } }), "pod-logs", "config.yaml"));
    const dre = new RegExp(/"(\^[^"]+)"\)$/.exec(dotted.processors["transform/pod-logs"].log_statements[0].statements[1])![1]!);
    assert.ok(dre.test("eu.crm-auth-7d9f8c6b5-x2x9z") && !dre.test("euxcrm-auth-7d9f8c6b5-x2x9z"));
    // the log record: the path and the CRI tag go, stdout/stderr (log.iostream) stays
    const logStatements: string[] = t.log_statements.find((x: any) => x.context === "log").statements;
    assert.deepEqual(logStatements, ['delete_key(attributes, "log.file.path")', 'delete_key(attributes, "logtag")']);
  });

  it("Grafana: the gateway's access line opens its trace in Tempo, a span opens every pod's lines of its trace; Loki keeps service_name to OTLP", () => {
    // a line in the gateway's own access log format (services/gateway/nginx.conf.template, log_format crm)
    const template = readFileSync(join(repo, "services/gateway/nginx.conf.template"), "utf8");
    const at = template.indexOf("log_format crm escape=json");
    assert.ok(at > 0, "the gateway's log_format crm");
    const format = [...template.slice(at, template.indexOf("';", at) + 1).matchAll(/'([^']*)'/g)].map((m) => m[1]).join("");
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const line = format.replace(/"\$(\w+)"/g, (_, v: string) => JSON.stringify(v === "crm_trace_id" ? traceId : `sample-${v}`)).replace(/\$\w+/g, "0");
    assert.equal(JSON.parse(line).trace_id, traceId, "the access log is JSON with trace_id");
    const ds = parse(config(r, "grafana", "datasources.yaml")).datasources as any[];
    const derived = ds.find((x) => x.uid === "loki").jsonData.derivedFields as any[];
    const toTempo = derived.filter((f) => f.datasourceUid === "tempo");
    assert.ok(toTempo.some((f) => new RegExp(f.matcherRegex).exec(line)?.[1] === traceId), `a derived field finds the trace id in ${line}`);
    // the services' own stdout (pino) and the logs service's lines carry it the same way
    assert.ok(toTempo.some((f) => new RegExp(f.matcherRegex).exec(`{"level":"info","time":1,"service":"auth","trace_id":"${traceId}","msg":"x"}`)?.[1] === traceId));
    const query = (x: Rendered) => parse(config(x, "grafana", "datasources.yaml")).datasources.find((y: any) => y.uid === "tempo").jsonData.tracesToLogsV2.query;
    assert.equal(query(r), '{service_name=~".+"} |= "$${__trace.traceId}"', "the pods' own lines of the trace, the gateway's access line among them");
    assert.equal(query(render([], { values: { ...JWT, observability: { enabled: true, podLogs: { enabled: false } } } })), '{service=~".+"} |= "$${__trace.traceId}"', "without the agent: the logs service's lines");
    // the logs service's streams (service, level) get no service_name: {service_name=...} is the agent's only
    assert.deepEqual(parse(config(r, "loki", "config.yaml")).limits_config.discover_service_name, []);
  });

  it("values.schema.json refuses unknown keys and bad types under podLogs", () => {
    const validate = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true }).compile(JSON.parse(readFileSync(join(chartDir, "values.schema.json"), "utf8")));
    const ok = (podLogs: unknown) => validate({ observability: { enabled: true, podLogs } });
    assert.ok(ok({ enabled: false, namespace: "crm-logs", namespaces: ["crm", "crm-jobs"], checkpoint: "emptyDir", tolerations: [], nodeSelector: {}, resources: {} }), JSON.stringify(validate.errors));
    assert.ok(ok({ namespace: "" }), "empty: the release's namespace");
    for (const bad of [{ enable: true }, { enabled: "yes" }, { namespace: "Crm_Logs" }, { namespace: "-crm" }, { namespaces: "crm" }, { namespaces: ["crm", "crm"] }, { namespaces: ["kube_system"] }, { checkpoint: "pvc" }, { tolerations: {} }, { resources: [] }, { image: { tag: "x" } }]) {
      assert.equal(ok(bad), false, JSON.stringify(bad));
    }
  });
});

describe("the CRM dashboard for a Grafana of the platform's own (dashboard sidecar)", { skip: needNone(goProblem()) }, () => {
  const dashboards = (r: Rendered) => of(r, "ConfigMap").filter((c) => c.metadata.labels?.grafana_dashboard === "1");
  const file = JSON.parse(readFileSync(join(repo, "charts/crm/files/dashboards/crm-overview.json"), "utf8"));

  it("is off by default, and the profile's Grafana needs no such ConfigMap", () => {
    assert.deepEqual(dashboards(render([], { values: JWT })), []);
    const profile = render([], { values: { ...JWT, observability: { enabled: true } } });
    assert.deepEqual(dashboards(profile), []);
    assert.deepEqual(JSON.parse(config(profile, "grafana", "crm-overview.json")), file, "the profile's Grafana provisions the same file itself");
  });

  it("grafanaDashboards.enabled: one ConfigMap with the sidecar's label, the dashboard file, and its own labels and annotations", () => {
    const r = render([], { values: { ...JWT, grafanaDashboards: { enabled: true, labels: { team: "crm" }, annotations: { grafana_folder: "CRM" } } } });
    const [cm, ...more] = dashboards(r);
    assert.ok(cm && more.length === 0);
    assert.equal(cm.metadata.name, "crm-dashboards");
    assert.equal(cm.metadata.labels!.team, "crm");
    assert.equal(cm.metadata.annotations?.grafana_folder, "CRM");
    assert.deepEqual(Object.keys(cm.data!), ["crm-overview.json"]);
    assert.deepEqual(JSON.parse(cm.data!["crm-overview.json"]!), file);
    // beside the profile too (names do not collide)
    const both = render([], { values: { ...JWT, observability: { enabled: true }, grafanaDashboards: { enabled: true } } });
    const ids = both.objects.map((o) => `${o.kind}/${o.metadata.name}`);
    assert.equal(new Set(ids).size, ids.length);
    assert.equal(dashboards(both).length, 1);
  });
});
