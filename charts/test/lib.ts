/**
 * Support for the chart checks: builds the Helm-compatible renderer (charts/test/renderer, Go
 * text/template + sprig from Debian's packages) once into a cache dir, renders the chart, parses
 * the manifests, and validates objects against the Kubernetes schemas.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, copyFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";

export const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const chartDir = join(repo, "charts/crm");
const rendererSrc = join(repo, "charts/test/renderer/main.go");
const gocode = "/usr/share/gocode/src";

/**
 * What the renderer needs from the machine (for needNone()): undefined when it is all there, else
 * ONE line naming exactly the Debian packages that are missing.
 */
export function goProblem(): string | undefined {
  const missing = [
    ["golang-go", "the go command", spawnSync("go", ["version"], { stdio: "ignore" }).status === 0],
    ["golang-github-masterminds-sprig-dev", "the sprig sources", existsSync(join(gocode, "github.com/Masterminds/sprig/functions.go"))],
    ["golang-k8s-sigs-yaml-dev", "the sigs.k8s.io/yaml sources", existsSync(join(gocode, "sigs.k8s.io/yaml/yaml.go"))],
  ].filter(([, , ok]) => !ok);
  if (missing.length === 0) return undefined;
  return `the chart renderer needs ${missing.map(([, what]) => what).join(" and ")}; install with: apt-get install -y ${missing.map(([pkg]) => pkg).join(" ")}`;
}

/**
 * Builds crm-render into $TMPDIR/crm-chart-render/<hash of main.go>/ (GOPATH mode over the Debian
 * sources; the /v3 import paths of sprig and semver are links into them). Reruns reuse it.
 */
export function buildRenderer(): string {
  const src = readFileSync(rendererSrc);
  const hash = createHash("sha256").update(src).update(process.version).digest("hex").slice(0, 16);
  const base = join(tmpdir(), "crm-chart-render");
  const bin = join(base, hash, "crm-render");
  if (existsSync(bin)) return bin;
  const gopath = join(base, "gopath");
  rmSync(gopath, { recursive: true, force: true });
  for (const [link, target] of [
    ["github.com/Masterminds/sprig/v3", "github.com/Masterminds/sprig"],
    ["github.com/Masterminds/semver/v3", "github.com/Masterminds/semver"],
  ] as const) {
    mkdirSync(dirname(join(gopath, "src", link)), { recursive: true });
    symlinkSync(join(gocode, target), join(gopath, "src", link));
  }
  const pkg = join(gopath, "src/crmrender");
  mkdirSync(pkg, { recursive: true });
  copyFileSync(rendererSrc, join(pkg, "main.go"));
  mkdirSync(dirname(bin), { recursive: true });
  const tmpBin = `${bin}.${process.pid}`;
  execFileSync("go", ["build", "-o", tmpBin, "."], {
    cwd: pkg,
    env: { ...process.env, GO111MODULE: "off", GOPATH: `${gopath}:/usr/share/gocode`, GOCACHE: join(base, "gocache"), GOFLAGS: "", GOPROXY: "off" },
    stdio: ["ignore", "inherit", "inherit"],
  });
  execFileSync("mv", [tmpBin, bin]);
  return bin;
}

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: any;
  data?: Record<string, string>;
  [k: string]: any;
}

export interface Rendered {
  objects: K8sObject[];
  /** template name -> raw output */
  manifests: Record<string, string>;
  notes: string;
}

export interface RenderOptions {
  release?: string;
  namespace?: string;
  values?: Record<string, unknown>;
  /** Objects `lookup` finds, as if they were in the cluster (default: none, as `helm template`). */
  cluster?: K8sObject[];
}

/** Renders the chart with values files (paths relative to the repo) plus inline values. */
export function render(valuesFiles: string[], opts: RenderOptions = {}): Rendered {
  const bin = buildRenderer();
  const args = ["-chart", chartDir, "-release", opts.release ?? "crm", "-namespace", opts.namespace ?? "crm"];
  for (const f of valuesFiles) args.push("-values", resolve(repo, f));
  if (opts.values) {
    const f = join(tmpdir(), `crm-values-${process.pid}-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(f, JSON.stringify(opts.values));
    args.push("-values", f);
  }
  if (opts.cluster) {
    const f = join(tmpdir(), `crm-cluster-${process.pid}-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(f, JSON.stringify(opts.cluster));
    args.push("-cluster", f);
  }
  const res = spawnSync(bin, args, { encoding: "utf8" });
  if (res.status !== 0) throw new Error(res.stderr.trim() || `crm-render exited ${res.status}`);
  const out = JSON.parse(res.stdout) as { manifests: Record<string, string>; notes: string };
  const objects: K8sObject[] = [];
  for (const [name, text] of Object.entries(out.manifests).sort()) {
    for (const doc of parseDocs(text, name)) objects.push(doc as K8sObject);
  }
  return { objects, manifests: out.manifests, notes: out.notes };
}

/** The gateway's rendered pieces: its Deployment, the pod spec and its nginx container, and nginx.conf's template. */
export function gatewayParts(r: Rendered) {
  const isGateway = (o: K8sObject) => o.metadata.labels?.["app.kubernetes.io/component"] === "gateway";
  const dep = r.objects.find((o) => o.kind === "Deployment" && isGateway(o));
  if (!dep) throw new Error("no gateway Deployment rendered");
  const cm = r.objects.find((o) => o.kind === "ConfigMap" && isGateway(o) && o.data?.["nginx.conf.template"]);
  if (!cm) throw new Error("no gateway ConfigMap with nginx.conf.template rendered");
  const pod = dep.spec.template.spec;
  return { dep, pod, nginx: pod.containers.find((c: any) => c.name === "nginx"), configMap: cm, template: cm.data!["nginx.conf.template"]! };
}

/** The nginx image entrypoint's envsubst (20-envsubst-on-templates.sh, NGINX_ENVSUBST_FILTER=CRM_GW_): only variables the container sets. */
export function gatewayEnvsubst(template: string, container: any): string {
  const env = new Map<string, string>((container.env ?? []).filter((e: any) => e.value !== undefined).map((e: any) => [e.name, String(e.value)]));
  return template.replace(/\$\{(CRM_GW_[A-Z0-9_]+)\}/g, (m, name: string) => env.get(name) ?? m);
}

/**
 * Parses a YAML stream as Kubernetes would read it (YAML 1.1, like sigs.k8s.io/yaml) and as YAML
 * 1.2; a document that means different things in the two (an unquoted "on", an octal) is an error.
 */
export function parseDocs(text: string, source: string): unknown[] {
  const v11 = parseAllDocuments(text, { version: "1.1" });
  const v12 = parseAllDocuments(text, { version: "1.2" });
  const out: unknown[] = [];
  const docs11 = Array.isArray(v11) ? v11 : [v11];
  const docs12 = Array.isArray(v12) ? v12 : [v12];
  docs11.forEach((d, i) => {
    if (d.errors.length) throw new Error(`${source}: YAML error: ${d.errors[0]!.message}`);
    const a = d.toJS();
    const b = docs12[i]!.toJS();
    if (JSON.stringify(a) !== JSON.stringify(b)) throw new Error(`${source}: document ${i} reads differently as YAML 1.1 and 1.2 (quote the value):\n${JSON.stringify(a)}\n${JSON.stringify(b)}`);
    if (a !== null && a !== undefined) out.push(a);
  });
  return out;
}

export function readYaml(file: string): any {
  const docs = parseDocs(readFileSync(resolve(repo, file), "utf8"), file);
  return docs[0];
}

// ------------------------------------------------------------------ Kubernetes validation ----
// the typed models of the official client (its ObjectSerializer is not re-exported by the index)
import { ObjectSerializer } from "@kubernetes/client-node/dist/gen/models/ObjectSerializer.js";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { StatefulSet } from "kubernetes-models/apps/v1/StatefulSet";
import { DaemonSet } from "kubernetes-models/apps/v1/DaemonSet";
import { Service } from "kubernetes-models/v1/Service";
import { ServiceAccount } from "kubernetes-models/v1/ServiceAccount";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { Secret } from "kubernetes-models/v1/Secret";
import { Pod } from "kubernetes-models/v1/Pod";
import { PersistentVolumeClaim } from "kubernetes-models/v1/PersistentVolumeClaim";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import { Ingress } from "kubernetes-models/networking.k8s.io/v1/Ingress";
import { Role } from "kubernetes-models/rbac.authorization.k8s.io/v1/Role";
import { RoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding";
import { Certificate, Issuer } from "@kubernetes-models/cert-manager/cert-manager.io/v1";

/**
 * Gateway API TLSRoute (gateway.networking.k8s.io/v1alpha2), which no installed model covers: the
 * fields and limits of the API's CRD (parentRefs, hostnames, rules[].backendRefs), unknown fields
 * refused.
 */
class TLSRoute {
  constructor(private readonly o: any) {}
  validate() {
    const only = (x: any, keys: string[], where: string) => {
      if (!x || typeof x !== "object" || Array.isArray(x)) throw new Error(`${where} must be an object`);
      for (const k of Object.keys(x)) if (!keys.includes(k)) throw new Error(`${where}.${k} is not a field of TLSRoute`);
    };
    const list = (x: any, where: string, max: number, min = 0) => {
      if (!Array.isArray(x) || x.length < min || x.length > max) throw new Error(`${where} must be a list of ${min} to ${max} items`);
      return x as any[];
    };
    only(this.o, ["apiVersion", "kind", "metadata", "spec"], "");
    const spec = this.o.spec;
    only(spec, ["parentRefs", "hostnames", "rules"], "spec");
    list(spec.parentRefs, "spec.parentRefs", 32).forEach((p, i) => {
      only(p, ["group", "kind", "namespace", "name", "sectionName", "port"], `spec.parentRefs[${i}]`);
      if (typeof p.name !== "string" || !p.name) throw new Error(`spec.parentRefs[${i}].name is required`);
    });
    for (const h of list(spec.hostnames ?? [], "spec.hostnames", 16)) {
      if (typeof h !== "string" || !/^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(h)) throw new Error(`spec.hostnames: ${h} is not a host name`);
    }
    list(spec.rules, "spec.rules", 16, 1).forEach((r, i) => {
      only(r, ["name", "backendRefs"], `spec.rules[${i}]`);
      list(r.backendRefs, `spec.rules[${i}].backendRefs`, 16, 1).forEach((b, j) => {
        only(b, ["group", "kind", "name", "namespace", "port", "weight"], `spec.rules[${i}].backendRefs[${j}]`);
        if (typeof b.name !== "string" || !b.name) throw new Error(`spec.rules[${i}].backendRefs[${j}].name is required`);
        if ((b.kind ?? "Service") === "Service" && !(Number.isInteger(b.port) && b.port > 0 && b.port < 65536)) throw new Error(`spec.rules[${i}].backendRefs[${j}].port is required for a Service`);
      });
    });
  }
}

const models: Record<string, { model: new (d: any) => { validate(): void }; clientType?: string }> = {
  "apps/v1/Deployment": { model: Deployment, clientType: "V1Deployment" },
  "apps/v1/StatefulSet": { model: StatefulSet, clientType: "V1StatefulSet" },
  "apps/v1/DaemonSet": { model: DaemonSet, clientType: "V1DaemonSet" },
  "v1/Service": { model: Service, clientType: "V1Service" },
  "v1/ServiceAccount": { model: ServiceAccount, clientType: "V1ServiceAccount" },
  "v1/ConfigMap": { model: ConfigMap, clientType: "V1ConfigMap" },
  "v1/Secret": { model: Secret, clientType: "V1Secret" },
  "v1/Pod": { model: Pod, clientType: "V1Pod" },
  "v1/PersistentVolumeClaim": { model: PersistentVolumeClaim, clientType: "V1PersistentVolumeClaim" },
  "autoscaling/v2/HorizontalPodAutoscaler": { model: HorizontalPodAutoscaler, clientType: "V2HorizontalPodAutoscaler" },
  "policy/v1/PodDisruptionBudget": { model: PodDisruptionBudget, clientType: "V1PodDisruptionBudget" },
  "networking.k8s.io/v1/NetworkPolicy": { model: NetworkPolicy, clientType: "V1NetworkPolicy" },
  "networking.k8s.io/v1/Ingress": { model: Ingress, clientType: "V1Ingress" },
  "gateway.networking.k8s.io/v1alpha2/TLSRoute": { model: TLSRoute },
  "rbac.authorization.k8s.io/v1/Role": { model: Role, clientType: "V1Role" },
  "rbac.authorization.k8s.io/v1/RoleBinding": { model: RoleBinding, clientType: "V1RoleBinding" },
  "cert-manager.io/v1/Certificate": { model: Certificate },
  "cert-manager.io/v1/Issuer": { model: Issuer },
};

/** Fields present in `a` that a typed round trip dropped: unknown (misspelt, misplaced) fields. */
function unknownFields(a: unknown, b: unknown, path: string, out: string[]) {
  if (a === null || typeof a !== "object") return;
  if (Array.isArray(a)) {
    a.forEach((x, i) => unknownFields(x, Array.isArray(b) ? b[i] : undefined, `${path}[${i}]`, out));
    return;
  }
  for (const [k, v] of Object.entries(a)) {
    const bv = b && typeof b === "object" ? (b as any)[k] : undefined;
    if (bv === undefined && v !== undefined && v !== null) out.push(`${path}.${k}`);
    else unknownFields(v, bv, `${path}.${k}`, out);
  }
}

/**
 * Validates one object: the JSON schema of its kind (kubernetes-models: types, required fields,
 * formats) AND no unknown fields (a round trip through @kubernetes/client-node's typed models,
 * which keep only the fields the API defines, like `kubectl --validate=strict`).
 */
export function validateObject(o: K8sObject): string[] {
  const key = `${o.apiVersion}/${o.kind}`;
  const m = models[key];
  if (!m) return [`${key} ${o.metadata?.name}: no schema for this kind (add it to charts/test/lib.ts)`];
  const errs: string[] = [];
  try {
    new m.model(o).validate();
  } catch (e) {
    errs.push(`${key} ${o.metadata?.name}: ${(e as Error).message}`);
  }
  if (m.clientType) {
    const S = ObjectSerializer as any;
    const back = S.serialize(S.deserialize(structuredClone(o), m.clientType), m.clientType);
    const unknown: string[] = [];
    unknownFields(o, back, "", unknown);
    for (const u of unknown) errs.push(`${key} ${o.metadata?.name}: unknown field ${u}`);
  }
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(o.metadata?.name ?? "") || o.metadata.name.length > 63) errs.push(`${key} ${o.metadata?.name}: not a valid DNS-1123 name`);
  return errs;
}
