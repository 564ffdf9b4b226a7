/**
 * Chart checks: the Helm chart renders (with a Helm-compatible renderer built from Go
 * text/template + sprig) in every mode and in a production-like configuration, every object is
 * valid Kubernetes, and the result matches what the services need: images, ports, environment,
 * probes, graceful shutdown, security contexts, and NetworkPolicies that allow exactly the flows
 * the services use. The expectations below are written from the services' contract
 * (ARCHITECTURE.md and the services' config), NOT read from the chart.
 */
import assert from "node:assert/strict";
import { existsSync, lstatSync, readdirSync, readFileSync, realpathSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { Ajv } from "ajv";
import { needNone } from "@crm/testkit";
import { defaultServiceIdentities } from "../../packages/kit/src/service-identities.ts";
import type { ServiceName } from "../../packages/kit/src/runtime.ts";
import { chartDir, goProblem, readYaml, render, repo, validateObject, type K8sObject, type Rendered } from "./lib.ts";

const skip = needNone(goProblem());

// ---------------------------------------------------------------- the contract -------------
const PORTS: Record<string, number> = { auth: 50055, dbservice: 8081, chats: 50095, timers: 50020, admin: 50070, email: 50051, logs: 50150, cache: 50060, records: 50110, webhooks: 50130 };
const SERVICES = Object.keys(PORTS);
const OPS_PORT = 9090;
/** caller -> services it calls (gRPC, mTLS) */
const PEERS: Record<string, string[]> = {
  gateway: ["auth", "chats", "timers", "admin", "email", "logs", "cache", "records", "webhooks"],
  auth: ["dbservice", "email", "logs"],
  dbservice: ["logs"],
  chats: ["dbservice", "logs"],
  timers: ["dbservice", "logs"],
  admin: ["dbservice", "email", "logs"],
  email: ["dbservice", "logs"],
  logs: [],
  cache: ["logs"],
  records: ["dbservice", "logs"],
  webhooks: ["dbservice", "logs"],
};
/** backing systems each process connects to */
// Every service that verifies user tokens reads the revocation list in Redis (a logout must reach it at once).
const USES: Record<string, string[]> = {
  gateway: [],
  auth: ["redis"],
  dbservice: ["postgresql", "redis", "rabbitmq"],
  chats: ["redis", "rabbitmq"],
  timers: ["redis"],
  admin: ["redis", "rabbitmq"],
  email: ["redis", "rabbitmq", "smtp"],
  logs: ["redis", "loki"],
  cache: ["redis"],
  records: ["redis", "rabbitmq"],
  webhooks: ["redis", "rabbitmq"],
  all: ["postgresql", "redis", "rabbitmq", "smtp", "loki"],
};
const COMMON_ENV = ["PORT", "HOST", "OPS_PORT", "LOG_LEVEL", "TLS_CERT_FILE", "TLS_KEY_FILE", "TLS_CA_FILE", "TLS_CLIENT_AUTH", "TLS_PEER_SERVICES", "JWT_ISSUER", "JWT_AUDIENCE", "JWT_PUBLIC_KEYS_FILE", "REDIS_URL", "AMQP_URL", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME", "SHUTDOWN_TIMEOUT_MS", "RPC_FAST_PATH", "CREDENTIAL_RELOAD_INTERVAL_MS", "LOGS_REPORT_LEVEL", ...SERVICES.map((s) => `${s.toUpperCase()}_URL`)];
const OWN_ENV: Record<string, string[]> = {
  dbservice: ["DATABASE_URL", "DB_POOL_MAX"],
  auth: ["JWT_PRIVATE_KEY_FILE", "JWT_KEY_ID", "PUBLIC_URL"],
  admin: ["PUBLIC_URL"],
  email: ["SMTP_URL", "EMAIL_FROM", "EMAIL_WORKERS", "PUBLIC_URL"],
  logs: ["LOKI_URL"],
};
OWN_ENV.all = ["DATA_DIR", ...new Set(Object.values(OWN_ENV).flat())];
/** secret-sourced helpers that a URL next to them expands with $(VAR) */
const HELPER_ENV = ["DATABASE_PASSWORD", "REDIS_PASSWORD", "AMQP_PASSWORD", "SMTP_PASSWORD"];
/** The observability profile's components (observability.yaml). */
const OBSERVABILITY = ["otel-collector", "loki", "tempo", "prometheus", "grafana"];
const URL_OF: Record<string, string> = { postgresql: "DATABASE_URL", redis: "REDIS_URL", rabbitmq: "AMQP_URL", smtp: "SMTP_URL", loki: "LOKI_URL" };

// ------------------------------------------------------------------ configurations --------
const JWT = { jwt: { existingSecret: "crm-jwt" } };
const CONFIGS: { name: string; files: string[]; values?: Record<string, unknown>; mode: "microservices" | "allInOne"; ports: Record<string, number>; noTests?: true }[] = [
  { name: "defaults (microservices, bundled PostgreSQL/Redis/RabbitMQ)", files: [], values: JWT, mode: "microservices", ports: { dns: 53, postgresql: 5432, redis: 6379, rabbitmq: 5672 } },
  { name: "allInOne", files: [], values: { mode: "allInOne", postgresql: { enabled: false }, redis: { enabled: false }, rabbitmq: { enabled: false } }, mode: "allInOne", ports: { dns: 53 } },
  { name: "allInOne with real servers and Loki", files: [], values: { mode: "allInOne", ...JWT, externalLoki: { url: "http://loki.monitoring.svc:3100" }, allInOne: { persistence: { enabled: true } } }, mode: "allInOne", ports: { dns: 53, postgresql: 5432, redis: 6379, rabbitmq: 5672, loki: 3100 } },
  { name: "production-like", files: ["charts/crm/ci/production-values.yaml"], mode: "microservices", ports: { dns: 53, postgresql: 5432, redis: 6380, rabbitmq: 5671, loki: 3100, smtp: 465, otlp: 4318, gatewayOtlp: 4317 } },
  { name: "kind (skaffold default)", files: ["charts/crm/ci/kind-values.yaml", "charts/crm/ci/kind-dev-values.yaml"], mode: "microservices", ports: { dns: 53, postgresql: 5432, redis: 6379, rabbitmq: 5672, loki: 3100, otlp: 4318, gatewayOtlp: 4317 }, noTests: true },
  { name: "kind allInOne (skaffold -p allInOne)", files: ["charts/crm/ci/kind-values.yaml", "charts/crm/ci/kind-allinone-values.yaml"], mode: "allInOne", ports: { dns: 53 } },
];

// ------------------------------------------------------------------ helpers ----------------
const component = (o: K8sObject) => o.metadata.labels?.["app.kubernetes.io/component"] ?? "";
const of = (r: Rendered, kind: string) => r.objects.filter((o) => o.kind === kind);
const podLabels = (o: K8sObject) => (o.kind === "Pod" ? o.metadata.labels! : o.spec.template.metadata.labels);
const podSpec = (o: K8sObject) => (o.kind === "Pod" ? o.spec : o.spec.template.spec);
const matches = (selector: Record<string, string> | undefined, labels: Record<string, string>) =>
  Object.entries(selector ?? {}).every(([k, v]) => labels[k] === v);
const envOf = (c: any): Map<string, any> => new Map((c.env ?? []).map((e: any) => [e.name, e]));

/** TCP ports a NetworkPolicy rule's ports allow (undefined = all). */
function rulePorts(rule: any): number[] | undefined {
  if (!rule.ports?.length) return undefined;
  return rule.ports.map((p: any) => {
    assert.equal(p.protocol ?? "TCP", p.port === 53 ? p.protocol : "TCP");
    assert.equal(typeof p.port, "number", "NetworkPolicy ports are numeric here");
    return p.port;
  });
}

interface PodRef { name: string; labels: Record<string, string> }

function policiesFor(r: Rendered, labels: Record<string, string>, type: "Ingress" | "Egress") {
  return of(r, "NetworkPolicy").filter((p) => matches(p.spec.podSelector.matchLabels, labels) && p.spec.policyTypes.includes(type));
}

/** Is traffic from pod a to pod b on port allowed by both a's egress and b's ingress? */
function allowed(r: Rendered, a: PodRef, b: PodRef, port: number): boolean {
  const peerOk = (peers: any[] | undefined, labels: Record<string, string>) =>
    !peers || peers.length === 0 || peers.some((p) => !p.namespaceSelector && !p.ipBlock && p.podSelector && matches(p.podSelector.matchLabels, labels));
  const egress = policiesFor(r, a.labels, "Egress").some((p) => (p.spec.egress ?? []).some((rule: any) => (rulePorts(rule)?.includes(port) ?? true) && peerOk(rule.to, b.labels)));
  const ingress = policiesFor(r, b.labels, "Ingress").some((p) => (p.spec.ingress ?? []).some((rule: any) => (rulePorts(rule)?.includes(port) ?? true) && peerOk(rule.from, a.labels)));
  return egress && ingress;
}

// ------------------------------------------------------------------ values schema ---------
describe("values.schema.json", () => {
  const schema = JSON.parse(readFileSync(join(chartDir, "values.schema.json"), "utf8"));
  const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
  const validate = ajv.compile(schema);
  const valuesFiles = [
    "charts/crm/values.yaml",
    ...readdirSync(join(chartDir, "ci")).filter((f) => f.endsWith(".yaml")).map((f) => `charts/crm/ci/${f}`),
  ];

  for (const file of valuesFiles) {
    it(`${file} validates`, () => {
      const ok = validate(readYaml(file) ?? {});
      assert.ok(ok, `${file}: ${ajv.errorsText(validate.errors, { separator: "\n" })}`);
    });
  }

  it("rejects a misspelt key and a bad mode", () => {
    assert.equal(validate({ mode: "monolith" }), false);
    assert.equal(validate({ serviceDefaults: { replicas: 2 } }), false, "unknown keys must be refused, not ignored");
    assert.equal(validate({ services: { auth: { resorces: {} } } }), false);
    assert.equal(validate({ services: { billing: {} } }), false);
    for (const gone of ["loki", "grafana"]) assert.equal(validate({ [gone]: { enabled: true } }), false, `${gone}.enabled (the former Bitnami subchart) is refused, not ignored`);
  });

  it("documents every value (## @param) in values.yaml and the README table", async () => {
    const text = readFileSync(join(chartDir, "values.yaml"), "utf8");
    const readme = readFileSync(join(chartDir, "README.md"), "utf8");
    const params = [...text.matchAll(/## @param (\S+)/g)].map((m) => m[1]!);
    const leaves: string[] = [];
    const walk = (v: any, path: string) => {
      if (params.includes(path)) return;
      if (v && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length) for (const [k, x] of Object.entries(v)) walk(x, path ? `${path}.${k}` : k);
      else leaves.push(path);
    };
    walk(readYaml("charts/crm/values.yaml"), "");
    assert.deepEqual(leaves, [], "values without a ## @param line");
    for (const p of params) assert.ok(readme.includes(`\`${p}\``), `README values table lacks ${p}`);
    const { valuesTable } = await import("../crm/scripts/values-table.mjs");
    assert.ok(readme.endsWith(`\n## Values\n${valuesTable(text)}`), "README's values table is current: node charts/crm/scripts/values-table.mjs --write");
  });
});

// ------------------------------------------------------------------ Chart.yaml -------------
describe("Chart.yaml", () => {
  it("has no dependencies: nothing for `helm dependency build` to fetch (no Bitnami subcharts)", () => {
    const chart = readYaml("charts/crm/Chart.yaml");
    const values = readYaml("charts/crm/values.yaml");
    assert.equal(chart.apiVersion, "v2");
    assert.equal(chart.dependencies, undefined, "PostgreSQL, Redis and RabbitMQ are the chart's own (data-services.yaml), Loki and Grafana the observability profile's (observability.yaml), or external");
    assert.ok(!existsSync(join(chartDir, "Chart.lock")) && !existsSync(join(chartDir, "charts")), "no Chart.lock, no vendored charts/");
    for (const own of ["postgresql", "redis", "rabbitmq", "observability"]) assert.equal(typeof values[own]?.enabled, "boolean", `values.yaml needs ${own}.enabled`);
    for (const gone of ["loki", "grafana"]) assert.equal(values[gone], undefined, `values.yaml has no ${gone} (the former subchart's values)`);
    for (const ext of ["externalDatabase", "externalRedis", "externalRabbitmq", "externalLoki", "otel"]) assert.ok(values[ext], `values.yaml needs ${ext}`);
  });
});

// ------------------------------------------------------------------ render -----------------
describe("chart renders", { skip }, () => {
  for (const cfg of CONFIGS) {
    describe(cfg.name, () => {
      const r = render(cfg.files, { values: cfg.values });
      // the CRM's own workloads; the observability profile's pods are checked in observability.test.ts
      const deployments = of(r, "Deployment").filter((d) => !OBSERVABILITY.includes(component(d)));
      const components = deployments.map(component).sort();

      it("renders the workloads of its mode, and NOTES", () => {
        if (cfg.mode === "allInOne") assert.deepEqual(components, ["all"]);
        else assert.deepEqual(components, [...SERVICES, "gateway"].sort());
        assert.ok(r.notes.includes("helm test"), "NOTES.txt renders");
      });

      it("every object is valid Kubernetes (schema, no unknown fields, DNS names)", () => {
        const errors = r.objects.flatMap(validateObject);
        assert.deepEqual(errors, []);
        const ids = r.objects.map((o) => `${o.kind}/${o.metadata.name}`);
        assert.equal(new Set(ids).size, ids.length, "duplicate objects");
        for (const o of r.objects) {
          assert.ok(o.metadata.labels?.["app.kubernetes.io/instance"], `${o.kind}/${o.metadata.name} has standard labels`);
          assert.equal(o.metadata.labels?.["app.kubernetes.io/managed-by"], "Helm");
        }
      });

      it("every Service selects a Deployment's (or a data service's StatefulSet's) pods, on a port its container has", () => {
        const workloads = [...of(r, "Deployment"), ...of(r, "StatefulSet")];
        for (const svc of of(r, "Service")) {
          const targets = workloads.filter((d) => matches(svc.spec.selector, podLabels(d)));
          assert.equal(targets.length, 1, `Service ${svc.metadata.name} selects exactly one workload`);
          const containers = podSpec(targets[0]!).containers;
          for (const p of svc.spec.ports) {
            const found = containers.some((c: any) => (c.ports ?? []).some((cp: any) => cp.name === p.targetPort || cp.containerPort === p.targetPort));
            assert.ok(found, `Service ${svc.metadata.name} port ${p.name} -> ${p.targetPort} exists`);
          }
        }
        for (const d of of(r, "Deployment")) assert.ok(of(r, "Service").some((s) => matches(s.spec.selector, podLabels(d))), `Deployment ${d.metadata.name} has a Service`);
        for (const d of deployments) assert.ok(matches(d.spec.selector.matchLabels, podLabels(d)), `${d.metadata.name} selector matches its template`);
      });

      it("HPAs and PDBs point at Deployments", () => {
        for (const h of of(r, "HorizontalPodAutoscaler")) assert.ok(deployments.some((d) => d.metadata.name === h.spec.scaleTargetRef.name), h.metadata.name);
        for (const p of of(r, "PodDisruptionBudget")) assert.equal(deployments.filter((d) => matches(p.spec.selector.matchLabels, podLabels(d))).length, 1, p.metadata.name);
        for (const d of deployments) {
          const hpa = of(r, "HorizontalPodAutoscaler").some((h) => h.spec.scaleTargetRef.name === d.metadata.name);
          assert.ok(!(hpa && d.spec.replicas !== undefined), `${d.metadata.name}: replicas must be left to its HPA`);
        }
      });

      it("every image is the one CRM image, nginx for the gateway", () => {
        const images = new Set<string>();
        for (const o of [...deployments, ...of(r, "Pod")]) {
          for (const c of [...(podSpec(o).initContainers ?? []), ...podSpec(o).containers]) {
            if (component(o) === "gateway" && c.name === "console") images.add(c.image); // the console's files come with the CRM image
            else if (component(o) === "gateway" && c.name === "metrics") assert.match(c.image, /^docker\.io\/nginx\/nginx-prometheus-exporter:\d+\.\d+\.\d+/, "the gateway's exporter: NGINX's official image, pinned");
            else if (component(o) === "gateway") assert.match(c.image, /^(docker\.io\/)?(library\/)?nginx:\d+\.\d+\.\d+/, "gateway runs the official nginx image, pinned");
            else images.add(c.image);
          }
        }
        assert.equal(images.size, 1, `one image for every CRM process: ${[...images].join(", ")}`);
        const [image] = [...images];
        if (cfg.name === "production-like") assert.equal(image, "registry.example.com/crm/crm@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
      });

      it("each process runs its target with the right port, environment and files", () => {
        const services = of(r, "Service");
        for (const d of deployments.filter((x) => component(x) !== "gateway")) {
          const name = component(d);
          const c = podSpec(d).containers[0];
          assert.deepEqual(c.args, [name], `${name} runs \`node dist/crm.mjs ${name}\` (the image's entrypoint + this argument)`);
          assert.equal(c.command, undefined, "the image's ENTRYPOINT is used");
          const env = envOf(c);
          const port = name === "all" ? 8080 : PORTS[name]!;
          assert.equal(env.get("PORT")?.value, String(port));
          assert.equal(env.get("HOST")?.value, "0.0.0.0");
          assert.ok(c.ports.some((p: any) => p.containerPort === port), `${name} exposes ${port}`);
          const allowedNames = new Set([...COMMON_ENV, ...(OWN_ENV[name] ?? []), ...HELPER_ENV]);
          for (const n of env.keys()) assert.ok(allowedNames.has(n), `${name}: env ${n} is not read by the service`);
          // $(VAR) references resolve to an earlier variable, and every helper is used
          const names = [...env.keys()];
          names.forEach((n, i) => {
            for (const m of String(env.get(n).value ?? "").matchAll(/\$\((\w+)\)/g)) assert.ok(names.slice(0, i).includes(m[1]!), `${name}: ${n} uses $(${m[1]}) defined before it`);
          });
          for (const h of HELPER_ENV.filter((h) => env.has(h))) assert.ok(names.some((n) => String(env.get(n).value ?? "").includes(`$(${h})`)), `${name}: ${h} is used`);
          // URLs of backing systems: present exactly for what the process uses (when configured)
          for (const [use, variable] of Object.entries(URL_OF)) {
            if (!env.has(variable)) continue;
            assert.ok(USES[name]!.includes(use), `${name} gets ${variable} but does not use ${use}`);
          }
          if (name !== "all") {
            for (const use of USES[name]!) if (use in cfg.ports) assert.ok(env.has(URL_OF[use]!), `${name} needs ${URL_OF[use]}`);
            assert.equal(env.get("OPS_PORT")?.value, String(OPS_PORT));
            assert.equal(env.get("OTEL_SERVICE_NAME")?.value, name);
            for (const v of ["TLS_CERT_FILE", "TLS_KEY_FILE", "TLS_CA_FILE", "JWT_PUBLIC_KEYS_FILE"]) assert.ok(env.has(v), `${name} needs ${v}`);
            // service identities: exactly the components that call it, the kit's default too
            const callers = Object.keys(PEERS).filter((c) => PEERS[c]!.includes(name)).sort();
            assert.equal(env.get("TLS_PEER_SERVICES")?.value, callers.join(","), `${name}: TLS_PEER_SERVICES`);
            assert.deepEqual(defaultServiceIdentities(name as ServiceName), callers, `${name}: the kit's default service identities`);
            // peers: exactly the services it calls, at a Service that exposes the peer's port over TLS
            const peerVars = names.filter((n) => /^[A-Z]+_URL$/.test(n) && SERVICES.includes(n.slice(0, -4).toLowerCase()));
            assert.deepEqual(peerVars.map((n) => n.slice(0, -4).toLowerCase()).sort(), [...PEERS[name]!].sort(), `${name}: peer URLs`);
            for (const v of peerVars) {
              const u = new URL(env.get(v).value);
              const peer = v.slice(0, -4).toLowerCase();
              assert.equal(u.protocol, "https:");
              assert.equal(Number(u.port), PORTS[peer]);
              const svc = services.find((s) => s.metadata.name === u.hostname);
              assert.ok(svc, `${name}: ${v} host ${u.hostname} is a Service`);
              assert.ok(svc!.spec.ports.some((p: any) => p.port === PORTS[peer]));
              assert.equal(svc!.spec.selector["app.kubernetes.io/component"], peer);
            }
          }
          if (name === "dbservice" || name === "all") assert.ok(name === "all" || env.has("DATABASE_URL"), "dbservice gets DATABASE_URL");
          if (name === "auth") assert.ok(env.has("JWT_PRIVATE_KEY_FILE"), "auth signs tokens");
          for (const other of SERVICES.filter((s) => s !== "dbservice")) if (name === other) assert.ok(!env.has("DATABASE_URL") && !env.has("DATABASE_PASSWORD"), `only dbservice has database credentials (${name})`);
          if (name !== "auth" && name !== "all") assert.ok(!env.has("JWT_PRIVATE_KEY_FILE"), `${name} must not get the signing key`);
          // files named by the environment are mounted, from a volume that carries that key
          const mounts = c.volumeMounts ?? [];
          for (const v of ["TLS_CERT_FILE", "TLS_KEY_FILE", "TLS_CA_FILE", "JWT_PUBLIC_KEYS_FILE", "JWT_PRIVATE_KEY_FILE"]) {
            const file = env.get(v)?.value;
            if (!file) continue;
            const m = mounts.find((x: any) => file.startsWith(`${x.mountPath}/`));
            assert.ok(m, `${name}: ${v}=${file} is under a volume mount`);
            const vol = podSpec(d).volumes.find((x: any) => x.name === m.name);
            const key = file.slice(m.mountPath.length + 1);
            assert.ok(!vol.secret?.items || vol.secret.items.some((i: any) => i.path === key), `${name}: ${v} key ${key} is projected`);
          }
          if (name === "all") {
            assert.equal(env.get("DATA_DIR")?.value, "/data");
            assert.ok(mounts.some((m: any) => m.mountPath === "/data"), "DATA_DIR is a volume");
            assert.equal(d.spec.replicas, 1);
            assert.equal(d.spec.strategy.type, "Recreate");
          }
        }
      });

      it("pods are hardened (Pod Security Standard restricted)", () => {
        for (const o of [...deployments, ...of(r, "Pod")]) {
          const spec = podSpec(o);
          assert.equal(spec.securityContext.runAsNonRoot, true, o.metadata.name);
          assert.equal(spec.securityContext.seccompProfile?.type, "RuntimeDefault");
          assert.equal(spec.automountServiceAccountToken, false, `${o.metadata.name}: no API token`);
          assert.ok(!spec.hostNetwork && !spec.hostPID && !spec.hostIPC);
          for (const v of spec.volumes ?? []) assert.ok(!v.hostPath, "no hostPath");
          for (const c of spec.containers) {
            const sc = c.securityContext;
            assert.equal(sc.allowPrivilegeEscalation, false);
            assert.equal(sc.readOnlyRootFilesystem, true);
            assert.equal(sc.runAsNonRoot, true);
            assert.ok(sc.runAsUser > 0);
            assert.deepEqual(sc.capabilities.drop, ["ALL"]);
            assert.ok(!sc.capabilities.add?.length);
            assert.ok(c.resources?.requests?.cpu && c.resources?.requests?.memory && c.resources?.limits?.memory, `${o.metadata.name}: resources`);
            for (const p of c.ports ?? []) assert.ok(p.containerPort >= 1024, "no privileged ports (non-root)");
          }
        }
      });

      it("probes: native gRPC readiness, liveness, startup; grace covers preStop + drain", () => {
        for (const d of deployments) {
          const c = podSpec(d).containers[0];
          assert.ok(c.readinessProbe && c.livenessProbe && c.startupProbe, `${d.metadata.name} has the three probes`);
          const env = envOf(c);
          if (component(d) !== "gateway") {
            const port = component(d) === "all" ? 8080 : OPS_PORT;
            assert.deepEqual(c.readinessProbe.grpc, { port }, `${d.metadata.name}: gRPC readiness on ${port}`);
            for (const p of [c.livenessProbe, c.startupProbe]) {
              const probePort = p.grpc?.port ?? p.httpGet?.port;
              const resolved = typeof probePort === "string" ? c.ports.find((x: any) => x.name === probePort)?.containerPort : probePort;
              assert.equal(resolved, port);
            }
          }
          const pre = c.lifecycle?.preStop?.exec?.command;
          assert.ok(pre, `${d.metadata.name}: preStop`);
          const sleep = Number(/sleep\D*(\d+)/.exec(pre.join(" "))![1]);
          const drainMs = component(d) === "gateway" ? 10_000 : Number(env.get("SHUTDOWN_TIMEOUT_MS")?.value);
          assert.ok(podSpec(d).terminationGracePeriodSeconds > sleep + drainMs / 1000, `${d.metadata.name}: terminationGracePeriodSeconds ${podSpec(d).terminationGracePeriodSeconds} > preStop ${sleep}s + drain ${drainMs / 1000}s`);
        }
      });

      it("NetworkPolicies: default deny, and exactly the flows the services use", () => {
        const pods: PodRef[] = [...deployments, ...of(r, "Pod")].map((o) => ({ name: component(o), labels: podLabels(o) }));
        const deny = of(r, "NetworkPolicy").find((p) => p.spec.policyTypes.includes("Ingress") && p.spec.policyTypes.includes("Egress") && !p.spec.ingress && !p.spec.egress);
        assert.ok(deny, "a default-deny policy");
        for (const p of pods) {
          assert.ok(matches(deny!.spec.podSelector.matchLabels, p.labels), `default deny covers ${p.name}`);
          assert.ok(policiesFor(r, p.labels, "Egress").length > 0);
        }
        // between our own pods: every (from, to, port) that is allowed must be expected, and vice versa
        const expected = new Set<string>();
        const hasTests = pods.some((p) => p.name === "tests");
        if (cfg.mode === "microservices") {
          for (const [from, tos] of Object.entries(PEERS)) for (const to of tos) expected.add(`${from} -> ${to}:${PORTS[to]}`);
          if (hasTests) expected.add(`tests -> gateway:8443`);
        } else if (hasTests) expected.add(`tests -> all:8080`);
        const candidatePorts = [...new Set([...Object.values(PORTS), OPS_PORT, 8443, 8080])];
        const actual = new Set<string>();
        for (const a of pods) for (const b of pods) for (const port of candidatePorts) {
          if (a.name === b.name) continue;
          const target = b.name === "gateway" ? (port === 8443 || port === 8080) : b.name === "all" ? port === 8080 : port === PORTS[b.name];
          if (!target) continue;
          if (b.name === "gateway" || b.name === "all") {
            // the front door is open to clients; check only that our own pods reach it as expected
            const front = b.name === "gateway" ? 8443 : 8080;
            if (a.name === "tests" && port === front && allowed(r, a, b, port)) actual.add(`${a.name} -> ${b.name}:${port}`);
            continue;
          }
          if (allowed(r, a, b, port)) actual.add(`${a.name} -> ${b.name}:${port}`);
        }
        assert.deepEqual([...actual].sort(), [...expected].sort());
        // nothing may reach a service's ops port or a service port from outside its callers
        for (const p of pods.filter((x) => SERVICES.includes(x.name))) {
          for (const pol of policiesFor(r, p.labels, "Ingress")) for (const rule of pol.spec.ingress ?? []) assert.ok(rule.from?.length, `${p.name}: no ingress rule open to everyone`);
        }
        // egress outside our pods: DNS plus exactly the backing systems the process uses
        for (const p of pods.filter((x) => x.name !== "tests")) {
          const ports = new Set<number>();
          for (const pol of policiesFor(r, p.labels, "Egress"))
            for (const rule of pol.spec.egress ?? []) {
              const toOurs = (rule.to ?? []).some((peer: any) => peer.podSelector && !peer.namespaceSelector && pods.some((q) => matches(peer.podSelector.matchLabels, q.labels)));
              if (toOurs) continue;
              for (const port of rulePorts(rule) ?? [-1]) ports.add(port);
            }
          // traces: the services over OTLP/HTTP (otel.endpoint), the gateway over OTLP/gRPC (gateway.tracing)
          const uses = [...USES[p.name]!, p.name === "gateway" ? "gatewayOtlp" : "otlp"].filter((u) => u in cfg.ports);
          const want = new Set([53, ...uses.map((u) => cfg.ports[u]!)]);
          assert.deepEqual([...ports].sort(), [...want].sort(), `${p.name}: egress ports outside the release`);
        }
      });

      if (cfg.mode === "microservices") {
        it("gateway: every placeholder of the nginx template is set, upstreams are the services", () => {
          const gw = deployments.find((d) => component(d) === "gateway")!;
          const c = podSpec(gw).containers[0];
          const env = envOf(c);
          const cm = of(r, "ConfigMap").find((x) => x.metadata.name === gw.metadata.name)!;
          const template = cm.data!["nginx.conf.template"]!;
          assert.equal(template, readFileSync(join(repo, "services/gateway/nginx.conf.template"), "utf8").replace(/\n$/, ""), "the chart ships services/gateway's template");
          const placeholders = new Set([...template.matchAll(/\$\{(CRM_GW_[A-Z0-9_]+)\}/g)].map((m) => m[1]!));
          for (const p of placeholders) assert.ok(env.has(p), `gateway env sets ${p}`);
          assert.equal(env.get("NGINX_ENVSUBST_FILTER")?.value, "CRM_GW_", "envsubst touches only CRM_GW_* (nginx's own $variables stay)");
          for (const svc of PEERS.gateway!) {
            const addr = env.get(`CRM_GW_${svc.toUpperCase()}_ADDR`)?.value;
            assert.ok(addr, `upstream ${svc}`);
            const [host, port] = addr.split(":");
            const s = of(r, "Service").find((x) => x.metadata.name === host);
            assert.ok(s && s.spec.selector["app.kubernetes.io/component"] === svc && Number(port) === PORTS[svc]);
          }
          // every conf/ include and the njs files the template loads are shipped and mounted
          const mounted = new Map<string, string[]>();
          for (const v of podSpec(gw).volumes) if (v.configMap) mounted.set(v.name, v.configMap.items.map((i: any) => i.path));
          const mountPath = (dir: string) => c.volumeMounts.find((m: any) => m.mountPath === `/etc/nginx/crm/${dir}`)?.name;
          for (const inc of [...template.matchAll(/include (conf\/[\w.-]+);/g)].map((m) => m[1]!)) {
            assert.ok(mounted.get(mountPath("conf"))!.includes(inc.slice(5)), `${inc} is mounted`);
            assert.ok(cm.data![`conf.${inc.slice(5)}`], `${inc} is in the ConfigMap`);
          }
          for (const js of [...template.matchAll(/js_import \w+ from ([\w.-]+);/g)].map((m) => m[1]!)) assert.ok(mounted.get(mountPath("njs"))!.includes(js), `njs/${js} is mounted`);
          for (const f of readdirSync(join(repo, "services/gateway/conf"))) assert.equal(cm.data![`conf.${f}`], readFileSync(join(repo, "services/gateway/conf", f), "utf8").replace(/\n$/, ""));
          for (const v of ["CRM_GW_TLS_CERT", "CRM_GW_UPSTREAM_CERT", "CRM_GW_UPSTREAM_CA", "CRM_GW_CLIENT_CA", "CRM_GW_JWKS_FILE"]) {
            const file = env.get(v).value;
            assert.ok(c.volumeMounts.some((m: any) => file.startsWith(`${m.mountPath}/`)), `${v} is mounted`);
          }
          // the web console: copied from the CRM image by an init container into a volume nginx reads at CRM_GW_WEB_ROOT
          const init = (podSpec(gw).initContainers ?? []).find((x: any) => x.name === "console");
          assert.ok(init, "an init container copies the console");
          const webRoot = env.get("CRM_GW_WEB_ROOT").value;
          assert.equal(init.volumeMounts.find((m: any) => m.mountPath === webRoot)?.name, "console");
          assert.deepEqual(c.volumeMounts.find((m: any) => m.mountPath === webRoot), { name: "console", mountPath: webRoot, readOnly: true });
          assert.ok(podSpec(gw).volumes.find((v: any) => v.name === "console")?.emptyDir, "an emptyDir holds the copy");
          assert.ok(init.command.join(" ").includes(`'/app/web/dist', '${webRoot}'`), "it copies the image's web/dist (charts/test/image-run.test.ts runs this command in the image)");
          assert.equal(init.securityContext.readOnlyRootFilesystem, true);
          assert.equal(init.securityContext.runAsUser, podSpec(gw).securityContext.runAsUser, "as nginx's user, so nginx reads the copy");
          assert.equal(env.get("CRM_GW_HTTPS_LISTEN")?.value, "8443");
          assert.equal(env.get("CRM_GW_HTTP_LISTEN")?.value, "8080");
          const svc = of(r, "Service").find((x) => x.metadata.name === gw.metadata.name)!;
          assert.deepEqual(svc.spec.ports.map((p: any) => [p.port, p.targetPort]).sort(), [[443, "https"], [80, "http"]].sort());
        });

        it("certificates: one per process, CN = its name, valid for the names peers dial", () => {
          const certs = of(r, "Certificate").filter((x) => !x.spec.isCA);
          const secretOf = (d: K8sObject) => podSpec(d).volumes.find((v: any) => v.name === "tls")?.secret?.secretName;
          for (const d of deployments) {
            const cert = certs.find((x) => x.spec.secretName === secretOf(d));
            assert.ok(cert, `${d.metadata.name} mounts a cert-manager certificate`);
            assert.equal(cert!.spec.commonName, component(d));
            assert.ok(cert!.spec.usages.includes("server auth") && cert!.spec.usages.includes("client auth"));
            const svc = of(r, "Service").find((s) => matches(s.spec.selector, podLabels(d)))!;
            assert.ok(cert!.spec.dnsNames.includes(svc.metadata.name), "the Service name peers dial");
            assert.ok(cert!.spec.dnsNames.includes(component(d)), "the bare name nginx verifies (proxy_ssl_name = upstream name)");
          }
        });
      }

      it("helm test pod: a hook that calls the front door with the one image", () => {
        const pod = of(r, "Pod").find((p) => p.metadata.annotations?.["helm.sh/hook"] === "test");
        if (cfg.noTests) return assert.equal(pod, undefined, "tests.enabled=false renders no test pod");
        assert.ok(pod, "a helm test pod");
        const env = envOf(pod!.spec.containers[0]);
        const url = new URL(env.get("CRM_TEST_URL").value);
        const front = of(r, "Service").find((s) => s.metadata.name === url.hostname);
        assert.ok(front, "the test URL is a Service of the release");
        assert.equal(front!.spec.selector["app.kubernetes.io/component"], cfg.mode === "allInOne" ? "all" : "gateway");
        const cm = of(r, "ConfigMap").find((c) => c.metadata.name === pod!.spec.volumes.find((v: any) => v.name === "smoke").configMap.name);
        assert.equal(cm?.data?.["smoke.mjs"], readFileSync(join(chartDir, "files/tests/smoke.mjs"), "utf8").replace(/\n$/, ""));
      });

      it("every Secret and ConfigMap a pod uses is rendered or named in the values", () => {
        const names = new Set(r.objects.filter((o) => o.kind === "Secret" || o.kind === "ConfigMap").map((o) => o.metadata.name));
        for (const c of of(r, "Certificate")) names.add(c.spec.secretName);
        const external = new Set(["crm-jwt", "crm-jwt-keys", "crm-dev-jwt", "crm-public-tls", "crm-db", "crm-redis", "crm-amqp", "crm-smtp", "crm-redis", "crm-postgresql", "crm-rabbitmq"]);
        for (const o of [...deployments, ...of(r, "Pod")]) {
          const spec = podSpec(o);
          for (const v of spec.volumes ?? []) {
            const ref = v.secret?.secretName ?? v.configMap?.name;
            if (!ref || v.secret?.optional) continue;
            assert.ok(names.has(ref) || external.has(ref), `${o.metadata.name}: volume ${v.name} -> ${ref} exists`);
          }
          for (const c of spec.containers) for (const e of c.env ?? []) if (e.valueFrom?.secretKeyRef) {
            const ref = e.valueFrom.secretKeyRef.name;
            assert.ok(names.has(ref) || external.has(ref), `${o.metadata.name}: ${e.name} -> secret ${ref} exists`);
          }
        }
      });
    });
  }

  it("tls.serviceIdentities replaces a service's TLS_PEER_SERVICES ([] = none); the others keep their callers", () => {
    const r = render([], { values: { ...JWT, tls: { serviceIdentities: { logs: ["gateway", "auth"], cache: [] } } } });
    const peerServices = (svc: string) => envOf(podSpec(of(r, "Deployment").find((d) => component(d) === svc)!).containers[0]).get("TLS_PEER_SERVICES")?.value;
    assert.equal(peerServices("logs"), "gateway,auth");
    assert.equal(peerServices("cache"), "none");
    assert.equal(peerServices("dbservice"), "admin,auth,chats,email,records,timers,webhooks");
  });

  describe("refuses bad configurations with one clear message", () => {
    const bad: [string, Record<string, unknown>, RegExp][] = [
      ["no JWT keys", {}, /jwt\.existingSecret/],
      ["grace shorter than preStop + drain", { ...JWT, shutdown: { terminationGracePeriodSeconds: 20 } }, /terminationGracePeriodSeconds/],
      ["no database", { ...JWT, postgresql: { enabled: false } }, /externalDatabase\.host/],
      ["both bundled and external Redis", { ...JWT, externalRedis: { host: "r" } }, /choose one/],
      ["external database without a password", { ...JWT, postgresql: { enabled: false }, externalDatabase: { host: "db" } }, /externalDatabase\.password or externalDatabase\.existingSecret/],
      ["cert-manager without CA or issuer", { ...JWT, tls: { certManager: { createCA: false } } }, /issuerRef\.name/],
    ];
    for (const [name, values, message] of bad) {
      it(name, () => assert.throws(() => render([], { values }), message));
    }
  });

  it("the validator itself catches a misspelt field and a wrong type", () => {
    const r = render([], { values: JWT });
    const d = structuredClone(of(r, "Deployment")[0]!);
    d.spec.template.spec.containers[0].readinesProbe = d.spec.template.spec.containers[0].readinessProbe;
    assert.ok(validateObject(d).some((e) => e.includes("unknown field") && e.includes("readinesProbe")));
    const s = structuredClone(of(r, "Service")[0]!);
    s.spec.ports[0].port = "http";
    assert.ok(validateObject(s).length > 0);
  });
});

describe("gateway files in the chart", () => {
  it("charts/crm/files/gateway/ links to services/gateway (one nginx configuration for every runtime)", () => {
    const dir = join(chartDir, "files/gateway");
    for (const name of ["nginx.conf.template", "conf", "njs", "entrypoint"]) {
      assert.ok(lstatSync(join(dir, name)).isSymbolicLink(), `files/gateway/${name} is a link`);
      assert.equal(realpathSync(join(dir, name)), realpathSync(join(repo, "services/gateway", name)));
    }
    // only these: a link to the whole folder would make the test runner find the gateway's tests twice
    assert.deepEqual(readdirSync(dir).sort(), ["conf", "entrypoint", "nginx.conf.template", "njs"]);
  });
});

describe("gateway.console.enabled=false", { skip }, () => {
  it("renders no copy of the console (navigations then get the gateway's JSON 404)", () => {
    const r = render([], { values: { ...JWT, gateway: { console: { enabled: false } } } });
    const gw = of(r, "Deployment").find((d) => component(d) === "gateway")!;
    assert.equal(podSpec(gw).initContainers, undefined);
    assert.ok(!podSpec(gw).volumes.some((v: any) => v.name === "console"));
    assert.ok(!podSpec(gw).containers[0].volumeMounts.some((m: any) => m.name === "console"));
  });
});
