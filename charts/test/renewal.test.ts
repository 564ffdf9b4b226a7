/**
 * Renewed certificates and a rotated JWKS reach the running pods (issue 20 item 1): the services
 * get CREDENTIAL_RELOAD_INTERVAL_MS and read their credentials from whole Secret volumes (a subPath
 * mount would never see a renewed file); the gateway runs the reload loop from the nginx image's
 * /docker-entrypoint.d/, executable, watching exactly the certificate files it mounts.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { needNone } from "@crm/testkit";
import { goProblem, render, repo, type K8sObject } from "./lib.ts";

const skip = needNone(goProblem());
const JWT = { jwt: { existingSecret: "crm-jwt" } };
const script = "40-crm-reload-on-change.sh";
const component = (o: K8sObject) => o.metadata.labels?.["app.kubernetes.io/component"] ?? "";
const envOf = (c: any): Map<string, string> => new Map((c.env ?? []).map((e: any) => [e.name, e.value]));

describe("certificate and key renewal in the chart", { skip }, () => {
  const r = render([], { values: JWT });
  const deployments = r.objects.filter((o) => o.kind === "Deployment");
  const gateway = deployments.find((d) => component(d) === "gateway")!;
  const gwSpec = gateway.spec.template.spec;
  const nginx = gwSpec.containers[0];

  it("every service re-reads its TLS files and JWKS every 10 s, from Secret volumes without subPath", () => {
    const services = deployments.filter((d) => component(d) !== "gateway");
    assert.ok(services.length >= 8);
    for (const d of services) {
      const c = d.spec.template.spec.containers[0];
      assert.equal(envOf(c).get("CREDENTIAL_RELOAD_INTERVAL_MS"), "10000", component(d));
      for (const m of c.volumeMounts ?? []) {
        const vol = d.spec.template.spec.volumes.find((v: any) => v.name === m.name);
        if (vol?.secret) assert.equal(m.subPath, undefined, `${component(d)}: Secret ${vol.secret.secretName} is mounted whole, so renewals reach it`);
      }
    }
    const off = render([], { values: { ...JWT, tls: { reloadIntervalSeconds: 0 } } });
    const auth = off.objects.find((o) => o.kind === "Deployment" && component(o) === "auth")!;
    assert.equal(envOf(auth.spec.template.spec.containers[0]).get("CREDENTIAL_RELOAD_INTERVAL_MS"), "0");
  });

  it("the gateway runs the reload loop from /docker-entrypoint.d, executable, as shipped in services/gateway", () => {
    assert.equal(nginx.command, undefined, "the image's entrypoint runs (it starts /docker-entrypoint.d/*.sh)");
    assert.equal(nginx.args[0], "nginx", "the entrypoint runs its scripts only when the command is nginx");
    const mount = nginx.volumeMounts.find((m: any) => m.mountPath === `/docker-entrypoint.d/${script}`);
    assert.ok(mount, "the script is mounted into /docker-entrypoint.d");
    assert.equal(mount.subPath, script);
    const vol = gwSpec.volumes.find((v: any) => v.name === mount.name);
    assert.equal(vol.configMap.defaultMode, 0o555, "the entrypoint runs only executable scripts");
    const item = vol.configMap.items.find((i: any) => i.path === script);
    const cm = r.objects.find((o) => o.kind === "ConfigMap" && o.metadata.name === vol.configMap.name)!;
    assert.equal(cm.data![item.key], readFileSync(join(repo, "services/gateway/entrypoint", script), "utf8").replace(/\n$/, ""));
  });

  it("the gateway's loop watches exactly the certificate files nginx reads, every 10 s", () => {
    const env = envOf(nginx);
    assert.equal(env.get("CRM_GW_RELOAD_INTERVAL"), "10");
    const watched = env.get("CRM_GW_RELOAD_FILES")!.split(" ").sort();
    const read = ["CRM_GW_TLS_CERT", "CRM_GW_TLS_KEY", "CRM_GW_CLIENT_CA", "CRM_GW_UPSTREAM_CERT", "CRM_GW_UPSTREAM_KEY", "CRM_GW_UPSTREAM_CA"].map((v) => env.get(v)!);
    assert.deepEqual(watched, [...new Set(read)].sort());
    for (const file of watched) {
      const m = nginx.volumeMounts.find((x: any) => file.startsWith(`${x.mountPath}/`));
      assert.ok(m && !m.subPath, `${file} is in a whole Secret volume`);
      assert.ok(gwSpec.volumes.find((v: any) => v.name === m.name).secret, `${file} comes from a Secret`);
    }
  });
});
