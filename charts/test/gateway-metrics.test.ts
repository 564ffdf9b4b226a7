/**
 * The gateway's NGINX metrics (issue 20 item 5): nginx serves stub_status on a unix socket in its
 * runtime folder (services/gateway/nginx.conf.template), and the chart's nginx-prometheus-exporter
 * sidecar (gateway.metrics) reads it through --nginx.scrape-uri. The two only meet when the socket
 * the exporter dials is the file nginx creates: the same path, on a volume both containers mount
 * at that place. These checks read both sides from the rendered chart.
 */
import assert from "node:assert/strict";
import { posix } from "node:path";
import { describe, it } from "node:test";
import { needNone } from "@crm/testkit";
import { gatewayEnvsubst, gatewayParts, goProblem, render, validateObject } from "./lib.ts";

const skip = needNone(goProblem());
const JWT = { jwt: { existingSecret: "crm-jwt" } };
/** --nginx.scrape-uri=unix:<socket>:<path>, read as the exporter reads it (parseUnixSocketAddress). */
function scrapeTarget(exporter: any): { socket: string; path: string } {
  const uris = (exporter.args as string[]).filter((a) => a.startsWith("--nginx.scrape-uri=")).map((a) => a.slice("--nginx.scrape-uri=".length));
  assert.equal(uris.length, 1, `one scrape URI: ${JSON.stringify(exporter.args)}`);
  const uri = uris[0]!;
  assert.ok(uri.startsWith("unix:"), `a unix socket, not a TCP port: ${uri}`);
  const parts = uri.split(":");
  assert.ok(parts.length === 3, `unix:<socket>:<request path>: ${uri}`);
  return { socket: parts[1]!, path: parts[2]! };
}

/** The server blocks of a rendered nginx.conf (brace matching; the template has no braces in strings there). */
function serverBlocks(conf: string): string[] {
  const out: string[] = [];
  for (const m of conf.matchAll(/\bserver\s*\{/g)) {
    let depth = 0;
    for (let i = m.index! + m[0].length - 1; i < conf.length; i++) {
      if (conf[i] === "{") depth++;
      else if (conf[i] === "}" && --depth === 0) {
        out.push(conf.slice(m.index!, i + 1));
        break;
      }
    }
  }
  return out;
}

/** The volume a container sees at `dir`: its mount with the longest mountPath containing it. */
function volumeAt(container: any, dir: string): { name: string; mountPath: string; readOnly?: boolean } | undefined {
  const inside = (container.volumeMounts ?? []).filter((m: any) => !m.subPath && (dir === m.mountPath || dir.startsWith(m.mountPath.replace(/\/?$/, "/"))));
  return inside.sort((a: any, b: any) => b.mountPath.length - a.mountPath.length)[0];
}

describe("gateway metrics: the exporter reads the stub_status socket nginx listens on", { skip }, () => {
  it("the scrape URI names nginx's status.sock and its stub_status location, on one volume mounted at the same place in both containers", () => {
    const r = render([], { values: JWT });
    const { dep, pod, nginx, template } = gatewayParts(r);
    assert.deepEqual(validateObject(dep), []);
    const exporter = pod.containers.find((c: any) => c.name === "metrics");
    assert.ok(nginx && exporter, `containers: ${pod.containers.map((c: any) => c.name)}`);
    const target = scrapeTarget(exporter);
    assert.ok(posix.isAbsolute(target.socket), target.socket);

    // nginx's side: the rendered configuration listens on exactly that socket, and serves
    // stub_status at the request path the exporter asks for
    const conf = gatewayEnvsubst(template, nginx);
    const servers = serverBlocks(conf).filter((s) => /\bstub_status\s*;/.test(s));
    assert.equal(servers.length, 1, "one server answers stub_status");
    const listens = [...servers[0]!.matchAll(/^\s*listen\s+([^;]+);/gm)].map((m) => m[1]!.trim());
    assert.deepEqual(listens, [`unix:${target.socket}`], "the stub_status server listens on the exporter's socket only (no TCP port)");
    assert.match(servers[0]!, new RegExp(`location\\s*=\\s*${target.path.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\s*\\{\\s*stub_status;\\s*\\}`), `location = ${target.path} { stub_status; }`);

    // the file system: the socket's folder is the same volume in both containers
    const dir = posix.dirname(target.socket);
    const atNginx = volumeAt(nginx, dir);
    const atExporter = volumeAt(exporter, dir);
    assert.ok(atNginx, `nginx mounts a volume at ${dir}`);
    assert.ok(atExporter, `the exporter mounts a volume at ${dir}`);
    assert.equal(atExporter.name, atNginx.name, `${dir}: nginx writes to ${atNginx.name}, the exporter reads ${atExporter.name}`);
    assert.equal(atExporter.mountPath, atNginx.mountPath, "mounted at the same path, so the socket has one path in both");
    assert.notEqual(atNginx.readOnly, true, "nginx can create the socket there");
    const volume = pod.volumes.find((v: any) => v.name === atNginx.name);
    assert.ok(volume?.emptyDir, `${atNginx.name} is a pod-local emptyDir: ${JSON.stringify(volume)}`);

    // the runtime folder the socket is in is the one nginx is given (pid, jwt.sock, status.sock)
    const env = new Map<string, any>(nginx.env.map((e: any) => [e.name, e.value]));
    assert.equal(env.get("CRM_GW_RUNTIME_DIR"), dir);
    // a unix socket is connected to with write permission on it: the exporter runs as nginx's user
    const uid = (c: any) => c.securityContext?.runAsUser ?? pod.securityContext?.runAsUser;
    assert.equal(uid(exporter), uid(nginx));
  });

  it("serves /metrics on the port named metrics (9113), the one the PodMonitor and the profile's Prometheus scrape", () => {
    const r = render([], { values: { ...JWT, podMonitor: { enabled: true } } });
    const { pod } = gatewayParts(r);
    const exporter = pod.containers.find((c: any) => c.name === "metrics");
    assert.ok(exporter.args.includes("--web.listen-address=:9113"));
    assert.deepEqual(exporter.ports, [{ name: "metrics", containerPort: 9113, protocol: "TCP" }]);
    assert.equal(exporter.readinessProbe.httpGet.port, "metrics");
    const pm = r.objects.find((o) => o.kind === "PodMonitor");
    assert.ok(pm?.spec.podMetricsEndpoints.some((e: any) => e.port === "metrics" && e.path === "/metrics"));
  });

  it("gateway.metrics.enabled=false: no sidecar, the socket stays unread", () => {
    const { pod } = gatewayParts(render([], { values: { ...JWT, gateway: { metrics: { enabled: false } } } }));
    assert.deepEqual(pod.containers.map((c: any) => c.name), ["nginx"]);
  });
});
