/**
 * Chart hygiene (issue 20 item 8): every ci/*.yaml renders on its own (chart-testing installs
 * them one at a time), the pods' checksum/jwt follows the keys' content (not the Secret's name),
 * and replicas spread over zones as well as nodes.
 */
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { needNone } from "@crm/testkit";
import { chartDir, goProblem, render, validateObject, type K8sObject, type Rendered } from "./lib.ts";

const skip = needNone(goProblem());
const component = (o: K8sObject) => o.metadata.labels?.["app.kubernetes.io/component"] ?? "";
const deployments = (r: Rendered) => r.objects.filter((o) => o.kind === "Deployment");
const checksums = (r: Rendered) => Object.fromEntries(deployments(r).map((d) => [component(d), d.spec.template.metadata.annotations["checksum/jwt"] as string]));
const ciFiles = readdirSync(join(chartDir, "ci")).filter((f) => f.endsWith(".yaml")).sort();

describe("each ci/*.yaml on its own", { skip }, () => {
  for (const file of ciFiles) {
    it(`${file} renders alone into valid objects`, () => {
      const r = render([`charts/crm/ci/${file}`]);
      assert.ok(deployments(r).length > 0);
      assert.deepEqual(r.objects.flatMap(validateObject), []);
    });
  }
});

describe("checksum/jwt hashes the keys, not the Secret's name", { skip }, () => {
  const keys = (privateKey: string, jwks: string) => ({ jwt: { privateKey, jwks } });
  const base = checksums(render([], { values: keys("key-1", "jwks-1") }));

  it("a new JWKS rolls every pod; a new signing key only auth, the one that reads it", () => {
    const newJwks = checksums(render([], { values: keys("key-1", "jwks-2") }));
    for (const c of Object.keys(base)) assert.notEqual(newJwks[c], base[c], `${c} rolls for a new JWKS`);
    const newKey = checksums(render([], { values: keys("key-2", "jwks-1") }));
    for (const c of Object.keys(base)) {
      if (c === "auth") assert.notEqual(newKey[c], base[c], "auth rolls for a new signing key");
      else assert.equal(newKey[c], base[c], `${c} does not read the signing key`);
    }
  });

  it("an existing Secret: its content as the cluster has it (lookup), whatever it is called", () => {
    const secret = (name: string, key: string, jwks: string): K8sObject => ({
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name, namespace: "crm" },
      data: { "jwt-private-key.pem": Buffer.from(key).toString("base64"), "jwks.json": Buffer.from(jwks).toString("base64") },
    });
    const with_ = (name: string, key: string, jwks: string) => checksums(render([], { values: { jwt: { existingSecret: name } }, cluster: [secret(name, key, jwks)] }));
    const a = with_("crm-jwt", "key-1", "jwks-1");
    assert.deepEqual(with_("other-name", "key-1", "jwks-1"), a, "the same keys under another name: no roll");
    const rotated = with_("crm-jwt", "key-1", "jwks-2");
    for (const c of Object.keys(a)) assert.notEqual(rotated[c], a[c], `${c} rolls when the Secret's JWKS changed`);
    // without a cluster (helm template, --dry-run) only the name is known
    const offline = checksums(render([], { values: { jwt: { existingSecret: "crm-jwt" } } }));
    assert.notEqual(offline.auth, a.auth);
  });
});

describe("topology spread", { skip }, () => {
  it("every Deployment spreads its replicas over zones and over nodes, selecting its own pods", () => {
    const r = render([], { values: { jwt: { existingSecret: "crm-jwt" } } });
    for (const d of deployments(r)) {
      const spread = d.spec.template.spec.topologySpreadConstraints as { topologyKey: string; labelSelector: { matchLabels: Record<string, string> } }[];
      assert.deepEqual(spread.map((s) => s.topologyKey), ["topology.kubernetes.io/zone", "kubernetes.io/hostname"], component(d));
      for (const s of spread) assert.deepEqual(s.labelSelector.matchLabels, d.spec.selector.matchLabels, `${component(d)} counts only its own pods`);
    }
  });
});
