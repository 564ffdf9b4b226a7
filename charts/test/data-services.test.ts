/**
 * The chart's own development data services (issue 20 item 2, data-services.yaml): PostgreSQL,
 * Valkey (Redis) and RabbitMQ as one-pod StatefulSets from the projects' official images, with
 * a generated password that survives upgrades, wired to exactly the URLs the services get, and
 * reachable only by the components that use them. Production turns them off for external
 * services (ci/production-values.yaml).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { Ajv } from "ajv";
import { needNone } from "@crm/testkit";
import { chartDir, goProblem, parseDocs, render, validateObject, type K8sObject, type Rendered } from "./lib.ts";

const skip = needNone(goProblem());
const JWT = { jwt: { existingSecret: "crm-jwt" } };
const component = (o: K8sObject) => o.metadata.labels?.["app.kubernetes.io/component"] ?? "";
const of = (r: Rendered, kind: string, c?: string) => r.objects.filter((o) => o.kind === kind && (c === undefined || component(o) === c));
const envOf = (c: any) => new Map<string, any>((c.env ?? []).map((e: any) => [e.name, e]));
const DATA = { postgresql: { image: "docker.io/library/postgres:", port: 5432 }, redis: { image: "docker.io/valkey/valkey:", port: 6379 }, rabbitmq: { image: "docker.io/library/rabbitmq:", port: 5672 } } as const;

describe("development data services", { skip }, () => {
  const r = render([], { values: JWT });
  const dbservice = of(r, "Deployment", "dbservice")[0]!.spec.template.spec.containers[0];

  it("one hardened pod each, from the official image, on a volume claim", () => {
    for (const [name, d] of Object.entries(DATA)) {
      const [sts] = of(r, "StatefulSet", name);
      assert.ok(sts, `${name} StatefulSet`);
      assert.equal(sts.spec.replicas, 1);
      const pod = sts.spec.template.spec;
      const c = pod.containers[0];
      assert.ok(c.image.startsWith(d.image), `${name}: ${c.image}`);
      assert.doesNotMatch(c.image, /:latest$|bitnami/);
      assert.ok(c.ports.some((p: any) => p.containerPort === d.port));
      assert.ok(c.readinessProbe && c.livenessProbe && c.resources?.limits?.memory);
      assert.equal(pod.securityContext.runAsNonRoot, true);
      assert.equal(pod.securityContext.seccompProfile.type, "RuntimeDefault");
      assert.equal(pod.automountServiceAccountToken, false);
      assert.equal(c.securityContext.allowPrivilegeEscalation, false);
      assert.deepEqual(c.securityContext.capabilities.drop, ["ALL"]);
      assert.equal(sts.spec.volumeClaimTemplates[0].metadata.name, "data");
      assert.ok(c.volumeMounts.some((m: any) => m.name === "data"));
      const svc = of(r, "Service", name)[0]!;
      assert.equal(svc.metadata.name, `crm-${name}`);
      assert.deepEqual(svc.spec.ports.map((p: any) => p.port), [d.port]);
    }
    const ephemeral = render([], { values: { ...JWT, postgresql: { persistence: { enabled: false } } } });
    const sts = of(ephemeral, "StatefulSet", "postgresql")[0]!;
    assert.equal(sts.spec.volumeClaimTemplates, undefined);
    assert.ok(sts.spec.template.spec.volumes.some((v: any) => v.name === "data" && v.emptyDir));
  });

  it("the services' URLs name these Services, with the passwords the pods were given", () => {
    const ref = (e: any) => `${e.valueFrom.secretKeyRef.name}/${e.valueFrom.secretKeyRef.key}`;
    const env = envOf(dbservice);
    const pg = envOf(of(r, "StatefulSet", "postgresql")[0]!.spec.template.spec.containers[0]);
    assert.match(env.get("DATABASE_URL").value, /^postgresql:\/\/crm:\$\(DATABASE_PASSWORD\)@crm-postgresql\.crm\.svc\.cluster\.local:5432\/crm\?sslmode=disable$/);
    assert.equal(pg.get("POSTGRES_USER").value, "crm");
    assert.equal(pg.get("POSTGRES_DB").value, "crm");
    assert.equal(ref(env.get("DATABASE_PASSWORD")), ref(pg.get("POSTGRES_PASSWORD")));
    const redis = envOf(of(r, "StatefulSet", "redis")[0]!.spec.template.spec.containers[0]);
    assert.match(env.get("REDIS_URL").value, /@crm-redis\.crm\.svc\.cluster\.local:6379\/0$/);
    assert.equal(ref(env.get("REDIS_PASSWORD")), ref(redis.get("REDIS_PASSWORD")));
    const mq = envOf(of(r, "StatefulSet", "rabbitmq")[0]!.spec.template.spec.containers[0]);
    assert.match(env.get("AMQP_URL").value, /^amqp:\/\/crm:\$\(AMQP_PASSWORD\)@crm-rabbitmq\.crm\.svc\.cluster\.local:5672$/);
    assert.equal(mq.get("RABBITMQ_DEFAULT_USER").value, "crm");
    assert.equal(ref(env.get("AMQP_PASSWORD")), ref(mq.get("RABBITMQ_DEFAULT_PASS")));
  });

  it("a generated password is URL-safe, kept on upgrade (lookup) and kept after an uninstall", () => {
    const secret = of(r, "Secret").find((s) => s.metadata.name === "crm-postgresql")!;
    assert.equal(secret.metadata.annotations?.["helm.sh/resource-policy"], "keep");
    assert.match(Buffer.from(secret.data!.password!, "base64").toString(), /^[A-Za-z0-9]{32}$/);
    const existing: K8sObject = { apiVersion: "v1", kind: "Secret", metadata: { name: "crm-postgresql", namespace: "crm" }, data: { password: Buffer.from("kept-password").toString("base64") } };
    const upgraded = render([], { values: JWT, cluster: [existing] });
    assert.equal(of(upgraded, "Secret").find((s) => s.metadata.name === "crm-postgresql")!.data!.password, existing.data!.password);
    const own = render([], { values: { ...JWT, postgresql: { auth: { existingSecret: "my-pg" } } } });
    assert.equal(of(own, "Secret").find((s) => s.metadata.name === "crm-postgresql"), undefined, "no generated Secret next to an existing one");
    assert.equal(envOf(of(own, "StatefulSet", "postgresql")[0]!.spec.template.spec.containers[0]).get("POSTGRES_PASSWORD").valueFrom.secretKeyRef.name, "my-pg");
  });

  it("only the components that use a data service reach it; it reaches nothing", () => {
    const policies = of(r, "NetworkPolicy");
    const deny = policies.find((p) => p.metadata.name === "crm-crm-default-deny" || p.metadata.name.endsWith("default-deny"))!;
    for (const [name, d] of Object.entries(DATA)) {
      const labels = of(r, "StatefulSet", name)[0]!.spec.template.metadata.labels;
      assert.ok(Object.entries(deny.spec.podSelector.matchLabels).every(([k, v]) => labels[k] === v), `${name} pods are under the default deny`);
      const own = policies.filter((p) => Object.entries(p.spec.podSelector.matchLabels ?? {}).every(([k, v]) => labels[k] === v) && p !== deny);
      assert.equal(own.length, 1, name);
      const pol = own[0]!;
      assert.deepEqual(pol.spec.egress, []);
      const from = pol.spec.ingress.flatMap((rule: any) => rule.from.map((f: any) => f.podSelector.matchLabels["app.kubernetes.io/component"])).sort();
      const users = of(r, "Deployment")
        .filter((dep) => {
          const e = envOf(dep.spec.template.spec.containers[0]);
          return e.has({ postgresql: "DATABASE_URL", redis: "REDIS_URL", rabbitmq: "AMQP_URL" }[name]!);
        })
        .map(component)
        .sort();
      assert.deepEqual(from, users, `${name}: exactly the components configured with its URL`);
      assert.deepEqual(pol.spec.ingress.flatMap((rule: any) => rule.ports.map((p: any) => p.port)), [d.port]);
    }
  });

  it("production-like values run none of them", () => {
    const prod = render(["charts/crm/ci/production-values.yaml"]);
    assert.deepEqual(of(prod, "StatefulSet"), []);
  });
});

/**
 * The chart README's production example ("Data services", **Production**): the operators' objects
 * and the values that point the CRM at them. The values block is rendered as it stands (plus the
 * --set of the RabbitMQ user its comment asks for), and each name in it is checked against the name
 * the operator derives from its object (as the README's comments say: CloudNativePG makes
 * <cluster>-rw and <cluster>-app and labels its pods cnpg.io/cluster=<cluster>; the RabbitMQ
 * operator makes <cluster> and <cluster>-default-user and labels its pods
 * app.kubernetes.io/name=<cluster>), so a renamed object or a misspelt key fails here, not at
 * install.
 */
describe("the chart README's production data services", { skip }, () => {
  const readme = readFileSync(join(chartDir, "README.md"), "utf8");
  const start = readme.indexOf("\n## Data services: PostgreSQL, Redis, RabbitMQ\n");
  assert.ok(start >= 0, "the README has its data services section");
  const section = readme.slice(start + 1, readme.indexOf("\n## ", start + 1));
  const blocks = [...section.matchAll(/^```yaml\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
  const valuesBlock = blocks.filter((b) => b.startsWith("# values\n"));
  const operatorBlock = blocks.filter((b) => /^kind: (Cluster|RabbitmqCluster)$/m.test(b));
  assert.equal(valuesBlock.length, 1, "one values block (first line: # values) in the section");
  assert.equal(operatorBlock.length, 1, "one block with the operators' objects in the section");
  const values = parseDocs(valuesBlock[0]!, "charts/crm/README.md (values)")[0] as any;
  const operators = parseDocs(operatorBlock[0]!, "charts/crm/README.md (operators)") as any[];
  const pg = operators.find((o) => o.apiVersion === "postgresql.cnpg.io/v1" && o.kind === "Cluster");
  const mq = operators.find((o) => o.apiVersion === "rabbitmq.com/v1beta1" && o.kind === "RabbitmqCluster");
  // what the install adds by hand (the comment in the block): the operator's generated user name
  const mqUser = "default_user_5Qb3kV";
  const r = render([], { values: { ...values, ...JWT, externalRabbitmq: { ...values.externalRabbitmq, user: mqUser } } });

  it("the values validate against values.schema.json and render valid objects", () => {
    const validate = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true }).compile(JSON.parse(readFileSync(join(chartDir, "values.schema.json"), "utf8")));
    assert.ok(validate(values), JSON.stringify(validate.errors));
    assert.deepEqual(r.objects.flatMap(validateObject), []);
    assert.ok(pg && mq, "a CloudNativePG Cluster and a RabbitmqCluster");
  });

  it("no development data service: no StatefulSet, no Service, no generated password", () => {
    assert.deepEqual(of(r, "StatefulSet").map((o) => o.metadata.name), []);
    for (const name of Object.keys(DATA)) {
      assert.deepEqual([...of(r, "Service", name), ...of(r, "NetworkPolicy", name)].map((o) => o.metadata.name), [], name);
      assert.equal(of(r, "Secret").find((s) => s.metadata.name === `crm-${name}`), undefined, `crm-${name} Secret`);
    }
  });

  it("every service gets the external URLs, with the operators' Secrets and names", () => {
    const ref = (e: any) => `${e.valueFrom.secretKeyRef.name}/${e.valueFrom.secretKeyRef.key}`;
    const initdb = pg.spec.bootstrap.initdb;
    const want = {
      DATABASE_URL: [`postgresql://${initdb.owner}:$(DATABASE_PASSWORD)@${pg.metadata.name}-rw:5432/${initdb.database}?sslmode=require`, "DATABASE_PASSWORD", `${pg.metadata.name}-app/password`],
      AMQP_URL: [`amqp://${mqUser}:$(AMQP_PASSWORD)@${mq.metadata.name}:5672`, "AMQP_PASSWORD", `${mq.metadata.name}-default-user/password`],
      REDIS_URL: ["rediss://:$(REDIS_PASSWORD)@crm-cache.example.internal:6380/0", "REDIS_PASSWORD", "crm-redis/redis-password"],
    } as const;
    const users: Record<string, string[]> = { DATABASE_URL: [], AMQP_URL: [], REDIS_URL: [] };
    for (const dep of of(r, "Deployment")) {
      const env = envOf(dep.spec.template.spec.containers[0]);
      for (const [name, [url, password, secret]] of Object.entries(want)) {
        if (!env.has(name)) continue;
        users[name]!.push(component(dep));
        assert.equal(env.get(name).value, url, `${component(dep)} ${name}`);
        assert.equal(ref(env.get(password)), secret, `${component(dep)} ${password}`);
      }
    }
    assert.deepEqual(users.DATABASE_URL, ["dbservice"], "only dbservice holds database credentials");
    assert.ok(users.AMQP_URL!.length >= 3 && users.REDIS_URL!.length >= 3, JSON.stringify(users));
  });

  it("NetworkPolicies let the users out to the operators' pods only, on their ports", () => {
    const egress = (c: string) => of(r, "NetworkPolicy", c).flatMap((p) => p.spec.egress ?? []);
    const rulesTo = (c: string, port: number) => egress(c).filter((rule: any) => rule.ports?.some((p: any) => p.port === port));
    assert.deepEqual(rulesTo("dbservice", 5432).map((x: any) => x.to), [[{ podSelector: { matchLabels: { "cnpg.io/cluster": pg.metadata.name } } }]]);
    for (const c of ["dbservice", "chats", "email"]) {
      assert.deepEqual(rulesTo(c, 5672).map((x: any) => x.to), [[{ podSelector: { matchLabels: { "app.kubernetes.io/name": mq.metadata.name } } }]], c);
      assert.equal(rulesTo(c, 6380).length, 1, `${c}: Redis's port (no egressTo: anywhere)`);
    }
  });
});
