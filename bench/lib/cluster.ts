/**
 * The local cluster (scripts/cluster/lib.mjs: every service its own process with TLS + mTLS,
 * NGINX in front) on free ports, a fresh database and a temporary data dir, with the pids the
 * bench needs for CPU and RSS.
 */
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freshDatabase, TEST_AMQP_URL, TEST_REDIS_URL, type TestDatabase } from "@crm/testkit";
import { repoRoot } from "./child.js";
import { pidOfPort, withDescendants } from "./proc.js";
import { removeDir } from "./app.js";

type ClusterLib = typeof import("../../scripts/cluster/lib.mjs");
export type Cluster = Awaited<ReturnType<ClusterLib["startCluster"]>>;

export function clusterProblem(): string | undefined {
  return existsSync(join(repoRoot, "scripts/cluster/lib.mjs")) ? undefined : "scripts/cluster/lib.mjs (npm run cluster, issue 3) is not in this tree yet";
}

export interface BenchCluster {
  cluster: Cluster;
  db: TestDatabase;
  /** pid of each service process (the one listening on its port). */
  pids: Record<string, number>;
  /** nginx master and workers. */
  nginxPids(): number[];
  stop(): Promise<void>;
}

export interface BenchClusterOptions {
  only?: string[];
  serviceEnv?: Record<string, Record<string, string>>;
  env?: Record<string, string>;
  gatewayVars?: Record<string, string>;
  /** false: no NGINX (the services only). */
  gateway?: boolean;
  /** A built crm.mjs to run every service from (as the image does); default: from source (tsx). */
  bundle?: string;
  /** With a bundle: true runs it with --enable-source-maps (the image runs it without). */
  sourceMaps?: boolean;
  /** This database (kept at stop) instead of a fresh one (dropped at stop): a restart on a migrated database. */
  databaseUrl?: string;
}

/** The cluster library of the tree under test (repoRoot: this checkout, or another with --compare). */
export const clusterLib = async () => (await import(join(repoRoot, "scripts/cluster/lib.mjs"))) as ClusterLib;

export async function startBenchCluster(o: BenchClusterOptions = {}): Promise<BenchCluster> {
  const lib = await clusterLib();
  const db: TestDatabase = o.databaseUrl ? { url: o.databaseUrl, drop: async () => {} } : await freshDatabase("crm_bench");
  const dataDir = mkdtempSync(join(tmpdir(), "crm-bench-cluster-"));
  let cluster: Cluster | undefined;
  try {
    cluster = await lib.startCluster({
      dataDir,
      ports: "free",
      databaseUrl: db.url,
      // The test servers' URLs (with --compare, each tree's own RabbitMQ vhost and Redis database).
      redisUrl: TEST_REDIS_URL,
      amqpUrl: TEST_AMQP_URL,
      env: { LOG_LEVEL: "info", ...o.env }, // the cluster waits for each service's "ready" line (info)
      ...(o.only ? { only: o.only } : {}),
      ...(o.serviceEnv ? { serviceEnv: o.serviceEnv } : {}),
      gateway: o.gateway === false ? false : { clientVerify: "optional", ...(o.gatewayVars ? { vars: o.gatewayVars } : {}) },
      ...(o.bundle ? { bundle: o.bundle } : {}),
      ...(o.sourceMaps !== undefined ? { sourceMaps: o.sourceMaps } : {}),
      readyTimeoutMs: 120_000,
    });
  } catch (err) {
    removeDir(dataDir);
    await db.drop();
    throw err;
  }
  const c = cluster;
  const pids: Record<string, number> = {};
  for (const [name] of c.services) {
    const pid = pidOfPort(c.ports[name]!);
    if (pid) pids[name] = pid;
  }
  return {
    cluster: c,
    db,
    pids,
    nginxPids: () => (c.nginx ? withDescendants(c.nginx.pid) : []),
    async stop() {
      await c.stop();
      removeDir(dataDir);
      await db.drop();
    },
  };
}
