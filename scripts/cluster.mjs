#!/usr/bin/env node
/**
 * npm run cluster — the production shape on one machine: every service as its own process on its
 * own port (TLS + mTLS), real PostgreSQL, Redis and RabbitMQ, the NGINX gateway in front at
 * https://127.0.0.1:8443 (http://127.0.0.1:8080 redirects there). Creates a dev CA and
 * certificates under ./data/certs and JWT keys under ./data/keys on first run, prints ONE "ready"
 * line, and stops everything it started on Ctrl-C.
 *
 *   npm run cluster [-- --only auth,dbservice] [--client-cert off|optional|require] [--verbose]
 *                      [--data-dir DIR] [--free-ports] [--source]
 *
 * The services run from the production bundle, as the image runs them (`node crm.mjs <service>`,
 * built like `npm run build` into node_modules/.cache/crm-cluster/ at every start, ≈ 1 s);
 * --source runs them from the TypeScript through tsx instead (no build; ≈ 40 MB more per process).
 *
 * Environment: DATABASE_URL, REDIS_URL, AMQP_URL (default: the local servers), LOG_LEVEL,
 * GATEWAY_HTTPS_PORT / GATEWAY_HTTP_PORT, CRM_GW_* (gateway template values, services/gateway/README.md).
 * Logs: data/cluster/logs/<service>.log and gateway-access.log.
 */
import { existsSync, readdirSync, rmSync } from "node:fs";
import { join, relative } from "node:path";
import { buildBundle } from "./build.mjs";
import { ClusterError, clusterServices, repoRoot, startCluster } from "./cluster/lib.mjs";

const args = process.argv.slice(2);
const opt = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
if (args.includes("--help") || args.includes("-h")) {
  console.log("usage: npm run cluster [-- --only auth,dbservice,...] [--client-cert off|optional|require] [--verbose] [--data-dir DIR] [--free-ports] [--source]");
  process.exit(0);
}
const only = opt("--only")?.split(",").map((s) => s.trim()).filter(Boolean);
for (const name of only ?? []) {
  if (!clusterServices.some((s) => s.name === name)) {
    console.error(`cluster: unknown service ${JSON.stringify(name)}; use ${clusterServices.map((s) => s.name).join(", ")}`);
    process.exit(2);
  }
}
const certMode = opt("--client-cert") ?? process.env.GATEWAY_CLIENT_CERT ?? "optional";
const clientVerify = { off: "off", optional: "optional", require: "on", required: "on", on: "on" }[certMode];
if (!clientVerify) {
  console.error(`cluster: --client-cert must be off, optional or require (got ${JSON.stringify(certMode)})`);
  process.exit(2);
}
const verbose = args.includes("--verbose");
const dataDir = opt("--data-dir");
const freePorts = args.includes("--free-ports");
const fromSource = args.includes("--source");

let cluster;
let stopping = false;
let stoppingSince = 0;
const started = Date.now();

async function shutdown(signal) {
  if (stopping) {
    // Ctrl-C under `npm run cluster` arrives twice at once (the terminal signals the process group
    // and npm forwards it): only a second one a moment later means "no more waiting".
    if (Date.now() - stoppingSince < 1_000) return;
    cluster?.killAll();
    process.exit(130);
  }
  stopping = true;
  stoppingSince = Date.now();
  if (!cluster) return; // still starting: startCluster's own cleanup runs when it fails
  process.stderr.write(`cluster: ${signal}: stopping the gateway and ${cluster.services.size} services…\n`);
  await cluster.stop();
  process.stderr.write("cluster: stopped\n");
  process.exit(0);
}
process.on("SIGINT", () => void shutdown("SIGINT"));
process.on("SIGTERM", () => void shutdown("SIGTERM"));
// This run's own bundle (several clusters on free ports may run at once), removed at exit; the
// bundles of runs that were killed outright are removed by the next run.
const bundles = join(repoRoot, "node_modules", ".cache", "crm-cluster");
const bundleDir = join("node_modules", ".cache", "crm-cluster", String(process.pid));
const alive = (pid) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === "EPERM";
  }
};
if (!fromSource && existsSync(bundles)) {
  for (const d of readdirSync(bundles)) if (!alive(Number(d))) rmSync(join(bundles, d), { recursive: true, force: true });
}
process.on("exit", () => {
  cluster?.killAll();
  if (!fromSource) rmSync(join(repoRoot, bundleDir), { recursive: true, force: true });
});
// Started by npm: npm forwards SIGTERM to us (the script execs node), but when npm is killed
// outright we are handed to init; the cluster must not stay behind, so stop as on SIGTERM.
if (process.env.npm_lifecycle_event) {
  const parent = process.ppid;
  const watch = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(watch);
    void shutdown("parent exited");
  }, 250);
  watch.unref();
}

try {
  const bundle = fromSource ? undefined : await buildBundle(repoRoot, bundleDir, { pgliteTemplate: false });
  cluster = await startCluster({
    only,
    ...(bundle ? { bundle } : {}),
    ...(dataDir ? { dataDir } : {}),
    ports: freePorts ? "free" : "default",
    gateway: { clientVerify },
    onLog: verbose ? (name, line) => process.stdout.write(`${name.padEnd(9)} ${line}\n`) : undefined,
    onExit: (name, code) => {
      if (stopping) return;
      const p = cluster?.services.get(name);
      process.stderr.write(`cluster: ${name} exited (${code}); the gateway answers 502 for it. Last lines: ${p?.lastLines(3)}\n`);
    },
  });
} catch (err) {
  const msg = err instanceof ClusterError ? err.message : err instanceof Error ? err.stack : String(err);
  for (const line of String(msg).split("\n")) process.stderr.write(`cluster: ${line}\n`);
  process.exit(1);
}
if (stopping) {
  await cluster.stop();
  process.exit(0);
}

const rel = (p) => relative(process.cwd(), p) || ".";
const list = [...cluster.services.values()].map((s) => `${s.name}:${s.port}`).join(" ");
console.log(
  `cluster ready in ${((Date.now() - started) / 1000).toFixed(1)} s: ${cluster.gatewayUrl} (${cluster.httpUrl} redirects) → ${list}; ` +
    `CA ${rel(cluster.pki.ca)}, client cert ${rel(cluster.pki.cert("client"))}; logs ${rel(cluster.logDir)}; Ctrl-C stops`,
);
